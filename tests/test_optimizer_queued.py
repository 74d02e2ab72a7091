"""A withdrawal from a queued venue is in flight, not idle: it funds no deposit of the same plan.

Observed in the daemon: a plan withdrew from lido-steth (exit_days 3, Lido's withdrawal queue) and,
in the same plan, deposited that money into the LP. The executor books a queued withdrawal in an
in-flight account that lands in idle days later, and a deposit only gets the idle that is there at
that moment, so the deposits came up short, idle fell to 0 and the next cycles paid ~$360 and
~$33 for forced restores of the idle floor. Now the model, the plan helpers and the independent
checker all book a queued withdrawal as in flight (README §4): it counts in NAV and toward the
liquidity floors at its landing horizon, never toward idle or the idle reserve.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.types import MoveAction, PortfolioState, VenueKind
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from optimizer.config import LiquidityFloor
from optimizer.testing import FlatCurve, make_snapshot
from tests.test_optimizer_churn import HOME, LIMITS, SETTINGS, T0, Book, market

NAV = 1_000_000.0


def observed_book() -> tuple[list, Book]:
    """The daemon's shape: most capital in Lido (3 % APR, 3-day queue) and a capped earn product,
    idle at its 2 % floor, the LP and the bridge-arb venue empty and paying far more."""
    snaps = market()
    book = Book(snaps, SETTINGS)
    book.positions.update({"lido-steth": 390_000.0, "aave-usdc": 290_000.0, "earn-usdt": 295_000.0})
    book.idle = {HOME: 25_000.0}
    return snaps, book


def funding(snaps, pf: PortfolioState, moves) -> tuple[float, float, float]:
    """(deposits, idle there now + instant withdrawals, queued withdrawals) of a plan, USD."""
    venues = {s.venue.id: s.venue for s in snaps}
    dep = sum(m.amount_usd for m in moves if m.action is MoveAction.DEPOSIT)
    wd = [m for m in moves if m.action is MoveAction.WITHDRAW]
    instant = sum(
        m.amount_usd for m in wd if venues[m.venue_id].exit_days <= SETTINGS.instant_exit_days
    )
    queued = sum(
        m.amount_usd for m in wd if venues[m.venue_id].exit_days > SETTINGS.instant_exit_days
    )
    return dep, pf.idle_usd + instant, queued


def test_a_queued_withdrawal_does_not_fund_a_deposit():
    snaps, book = observed_book()
    opt = Optimizer(LIMITS, SETTINGS, HOME)
    pf = book.portfolio()
    d = opt.decide(snaps, pf, T0)
    assert d.status == "optimal" and d.plan.execute, d.reason
    dep, funded, queued = funding(snaps, pf, d.plan.moves)
    # every deposit is paid by idle that is there now or lands now; Lido's queue pays nothing this plan
    assert dep <= funded - LIMITS.min_idle_ratio * NAV + 1.0, (dep, funded, queued)
    # the allocation's idle is what the executor will really hold, and it meets the floor
    assert d.allocation.idle_usd >= LIMITS.min_idle_ratio * pf.nav_usd
    book.execute(d.plan.moves)
    after = book.portfolio()
    assert after.idle_usd == pytest.approx(d.allocation.idle_usd, abs=50.0)  # gas and fees only
    held = check_allocation(
        snaps, after, dict(after.positions_usd), after.idle_usd, LIMITS, SETTINGS, HOME
    )
    assert max(held.excess, default=0.0) <= SETTINGS.drift_tolerance_ratio, held.violations
    # and the next cycles restore nothing: no forced plan paying to refill idle
    for c in range(1, 6):
        book.advance(24.0)
        pf = book.portfolio()
        nxt = opt.decide(snaps, pf, T0 + timedelta(days=c))
        assert nxt.status == "optimal", nxt.reason
        assert "restores broken limits" not in nxt.plan.reason, nxt.reason
        if nxt.plan.execute:
            dep, funded, _ = funding(snaps, pf, nxt.plan.moves)
            assert dep <= funded + 1.0
            book.execute(nxt.plan.moves)


def test_capital_in_flight_is_never_invested():
    # 300k on its way back from a queue, 10k idle: the plan may invest what is idle above the reserve, no more
    snaps = [
        make_snapshot("good", FlatCurve(0.10), protocol="p1"),
        make_snapshot("ok", FlatCurve(0.05), protocol="p2"),
    ]
    pf = PortfolioState(positions_usd={"ok": 690_000.0}, idle_usd=10_000.0, in_flight_usd=300_000.0)
    limits = RiskLimits(min_idle_ratio=0.005)
    settings = OptimizerSettings(min_trade_usd=0.0)
    d = Optimizer(limits, settings, HOME).decide(snaps, pf, T0)
    assert d.status == "optimal", d.reason
    t = d.allocation.target_usd
    assert d.allocation.idle_usd >= 0.005 * NAV - 1.0
    assert t["good"] + t["ok"] + d.allocation.idle_usd == pytest.approx(
        700_000.0, abs=1.0
    )  # in flight stays in flight
    assert t["good"] > 600_000  # the instant venue funds the better one


def test_a_queued_withdrawal_that_restores_a_cap_lands_in_flight_not_idle():
    # Lido above its 40 % cap (a mark moved it): the restore withdraws from the queue; that money is in
    # flight for 3 days, so idle (and the idle floor) must be met without it
    snaps = market()
    pf = PortfolioState(
        positions_usd={"lido-steth": 480_000.0, "aave-usdc": 500_000.0}, idle_usd=20_000.0
    )
    d = Optimizer(LIMITS, SETTINGS, HOME).decide(snaps, pf, T0)
    assert d.status == "optimal" and d.plan.execute, d.reason
    t = d.allocation.target_usd
    assert t["lido-steth"] <= 0.40 * NAV
    flight = 480_000.0 - t["lido-steth"]
    assert flight > 0
    assert sum(t.values()) + d.allocation.idle_usd + flight == pytest.approx(NAV, abs=1.0)
    dep, funded, queued = funding(snaps, pf, d.plan.moves)
    assert queued == pytest.approx(flight, abs=0.01)
    assert dep <= funded - 0.02 * NAV + 1.0


def test_the_next_cycle_counts_our_own_flight_at_its_horizon():
    # the earn product (1-day redemption) restored under its kind cap: its withdrawal counts toward
    # the 1-day floor now, and, in flight, the next cycle too (no forced "restore" of the floor)
    limits = RiskLimits(
        min_idle_ratio=0.02,
        max_kind_ratio={VenueKind.FIXED: 0.2},
        liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.3),),
    )
    snaps = market()
    book = Book(snaps, SETTINGS)
    book.positions.update({"lido-steth": 300_000.0, "earn-usdt": 400_000.0, "aave-usdc": 280_000.0})
    book.idle = {HOME: 20_000.0}
    opt = Optimizer(limits, SETTINGS, HOME)
    d = opt.decide(snaps, book.portfolio(), T0)
    assert d.plan.execute and any(
        m.venue_id == "earn-usdt" and m.action is MoveAction.WITHDRAW for m in d.plan.moves
    ), d.reason
    book.execute(d.plan.moves)
    assert book.in_flight > 0
    book.advance(2.0)  # two hours later, still in flight
    pf = book.portfolio()
    nxt = opt.decide(snaps, pf, T0 + timedelta(hours=2))
    assert nxt.status == "optimal", nxt.reason
    assert not any(v.startswith("liquidity_floors") for v in nxt.current_violations), (
        nxt.current_violations
    )
    assert "restores broken limits" not in nxt.plan.reason, nxt.reason
