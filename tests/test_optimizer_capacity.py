"""A venue's capacity bounds growth, never forces an exit (README §4).

Capacity (``YieldCurve.capacity_usd``: a route's instant-fill limit, a product quota, a supply cap) is
what the venue can take from us *now*. When it shrinks below the position (the daemon saw the Across
route's capacity drop to 0 every few cycles), the position may stay: the income curve is flat beyond
capacity, so the excess earns nothing more but costs nothing to keep; leaving is an ordinary plan
that must pay for itself. Growth above capacity stays forbidden, in the model, the segment simplex
and the independent checker. Risk limits keep forcing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from core.types import PortfolioState, VenueCosts, VenueKind
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from optimizer.cycle import build_cycle
from optimizer.testing import FlatCurve, make_snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAV = 1_000_000.0
SETTINGS = OptimizerSettings()
ARB_COSTS = VenueCosts(deposit_usd=2.0, withdraw_usd=2.0, fee_bps=1.0)


def market(capacity: float, alternative_apr: float = 0.0):
    """The bridge-arb venue (off the home chain, like the Across route) and a lending venue."""
    return [
        make_snapshot(
            "arb",
            FlatCurve(0.08, capacity_usd=capacity),
            kind=VenueKind.BRIDGE_ARB,
            protocol="across",
            chain="arbitrum",
            costs=ARB_COSTS,
        ),
        make_snapshot("lend", apr=alternative_apr, protocol="aave-v3"),
    ]


HOLDINGS = PortfolioState(positions_usd={"arb": 185_000.0, "lend": 700_000.0}, idle_usd=115_000.0)


SOME_IDLE = RiskLimits(min_idle_ratio=0.02)
NO_LIMITS = RiskLimits()


def decide(snaps, portfolio=HOLDINGS, limits=SOME_IDLE, settings=SETTINGS):
    return Optimizer(limits, settings, "ethereum").decide(snaps, portfolio, NOW)


def check(snaps, target: dict[str, float], portfolio=HOLDINGS, limits=NO_LIMITS):
    full = {s.venue.id: portfolio.positions_usd.get(s.venue.id, 0.0) for s in snaps} | target
    idle = portfolio.nav_usd - sum(full.values())
    return check_allocation(snaps, portfolio, full, idle, limits, SETTINGS, "ethereum")


@pytest.mark.parametrize("capacity", [0.0, 50_000.0, 184_000.0])
def test_shrunken_capacity_forces_no_withdrawal(capacity):
    # nothing pays more than holding (the alternative earns 0): before, the capacity drop forced the
    # position out ("restores broken limits (capacity ...)") at ~$100 of gas, bridge and fees
    d = decide(market(capacity))
    assert d.status == "optimal", d.reason
    assert d.current_violations == ()
    assert not d.plan.execute, d.plan.reason
    assert "restores broken limits" not in d.plan.reason
    assert d.allocation is not None
    assert d.allocation.target_usd["arb"] == pytest.approx(185_000.0, abs=1.0)


@pytest.mark.parametrize("lp_method", ["segment", "cvxpy"])
def test_model_bounds_growth_by_max_of_capacity_and_position(lp_method):
    settings = OptimizerSettings(
        lp_method=lp_method, min_benefit_cost_ratio=0.0, hysteresis_apr=0.0, limit_buffer_ratio=0.0
    )
    snaps = market(50_000.0, alternative_apr=0.03)
    cycle = build_cycle(snaps, HOLDINGS, RiskLimits(), settings, "ethereum")
    assert cycle.ub[0] * NAV == pytest.approx(185_000.0)  # max(capacity, x0), not the capacity
    # the arb venue is the best one, but it may not grow above its position while capacity is below it
    d = decide(snaps, settings=settings)
    assert d.status == "optimal", d.reason
    assert d.allocation.target_usd["arb"] <= 185_000.0 + 1.0
    # below its position, capacity still caps where the venue can go: a position under capacity grows to it
    small = PortfolioState(positions_usd={"arb": 10_000.0, "lend": 700_000.0}, idle_usd=290_000.0)
    d = decide(snaps, portfolio=small, settings=settings)
    assert d.allocation.target_usd["arb"] == pytest.approx(50_000.0, abs=1.0)


def test_leaving_above_capacity_is_an_ordinary_gated_plan():
    # the excess above capacity earns nothing; moving it where it earns is a plan like any other: it
    # executes on its own gain (not as a forced restore), and only the excess leaves
    d = decide(market(50_000.0, alternative_apr=0.06))
    assert d.status == "optimal", d.reason
    assert d.current_violations == ()
    assert d.plan.execute and "restores broken limits" not in d.plan.reason
    assert d.allocation.target_usd["arb"] == pytest.approx(50_000.0, rel=1e-3)


def test_checker_holds_above_capacity_but_rejects_growth():
    snaps = market(50_000.0)
    assert check(snaps, {}).ok  # holding 185k above a 50k capacity is no violation
    assert check(snaps, {"arb": 120_000.0}).ok  # shrinking part of the way either
    rep = check(snaps, {"arb": 190_000.0})  # growing above capacity is
    assert any(v.startswith("capacity") for v in rep.violations), rep.violations
    # below capacity the position may grow to it, not beyond
    low = PortfolioState(positions_usd={"arb": 10_000.0}, idle_usd=990_000.0)
    assert check(snaps, {"arb": 50_000.0}, portfolio=low).ok
    rep = check(snaps, {"arb": 60_000.0}, portfolio=low)
    assert any(v.startswith("capacity") for v in rep.violations), rep.violations
    assert rep.excess[0] == pytest.approx(0.2)


def test_risk_limits_above_the_position_still_force():
    # a venue cap (a risk limit) broken by the holdings beyond the drift band is restored, capacity or not
    d = decide(market(0.0), limits=RiskLimits(min_idle_ratio=0.02, max_venue_ratio=0.10))
    assert d.status == "optimal", d.reason
    assert any(v.startswith("venue_ratio") for v in d.current_violations)
    assert d.plan.execute and "restores broken limits (venue_ratio" in d.plan.reason
    assert d.allocation.target_usd["arb"] <= 0.10 * NAV + 1.0


def test_capacity_drop_cycle_by_cycle_costs_nothing():
    # the daemon's pattern: capacity 0 every other cycle, nothing else changes; one Optimizer across
    # cycles must not withdraw and re-enter (before: a forced exit, then a re-entry, every flap)
    opt = Optimizer(RiskLimits(min_idle_ratio=0.02), SETTINGS, "ethereum")
    executed = []
    for cycle in range(6):
        d = opt.decide(market(0.0 if cycle % 2 else 400_000.0), HOLDINGS, NOW)
        assert d.status == "optimal", d.reason
        executed.append(
            d.plan.execute
            and any(m.venue_id == "arb" and m.action.value == "withdraw" for m in d.plan.moves)
        )
    assert not any(executed)
    assert np.isfinite(d.objective_usd)
