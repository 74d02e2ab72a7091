"""The small-venue-set paths of one decide (below ``optimizer.cycle_facts.SMALL_SET`` venues: the
bounds and the refinement windows on Python floats, the plan's incomes in one batch call) give the
decisions of the general NumPy path, field for field, memory included.

Each market is decided twice over a few cycles: once as shipped, once with ``SMALL_SET = 0`` and the
plain ``evaluate_curves`` (the general path), each by a fresh Optimizer carrying its own memory.
Edge cases: an empty venue set, a venue at its cap, idle on two chains, a queued withdrawal, a
frozen venue, NaN feed values, a position of ``-0.0``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import optimizer.cycle as cycle_mod
import optimizer.fastlp as fastlp_mod
import optimizer.pricing as pricing_mod
import optimizer.work as work_mod
from core.types import PortfolioState, VenueKind, VenueSnapshot
from optimizer import Optimizer
from optimizer.bench import all_limits
from optimizer.config import LiquidityFloor, OptimizerSettings, RiskLimits
from optimizer.cycle import build_cycle
from optimizer.decision import Decision, Timings
from optimizer.model import AllocationModel
from optimizer.pwl import evaluate_curves
from optimizer.testing import KinkedLendingCurve, make_snapshot, random_market
from optimizer.work import window_around

LIMITS = RiskLimits(
    max_venue_ratio=0.4,
    max_kind_ratio={},
    max_chain_ratio={},
    max_protocol_ratio={},
    min_idle_ratio=0.02,
    liquidity_floors=(LiquidityFloor(days=1.0, min_ratio=0.1),),
    max_turnover_ratio=0.8,
    max_avg_risk_score=6.0,
)
SETTINGS = OptimizerSettings(min_trade_usd=100.0, pieces=8, samples=64)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@contextmanager
def general_path() -> Iterator[None]:
    """Every small-set path off: the NumPy code every venue count takes from SMALL_SET up."""
    saved = (cycle_mod.SMALL_SET, work_mod.SMALL_SET, fastlp_mod.SMALL_SET, pricing_mod._evaluate)
    cycle_mod.SMALL_SET = work_mod.SMALL_SET = fastlp_mod.SMALL_SET = 0
    pricing_mod._evaluate = evaluate_curves  # type: ignore[assignment]
    try:
        yield
    finally:
        (cycle_mod.SMALL_SET, work_mod.SMALL_SET, fastlp_mod.SMALL_SET, pricing_mod._evaluate) = (
            saved  # type: ignore[assignment]
        )


def fingerprint(d: Decision) -> str:
    """Everything a decision says and passes on, timings aside (floats by repr: bit for bit)."""
    d = dataclasses.replace(d, timings=Timings())
    m = d.memory
    parts = (
        d.status,
        d.allocation,
        d.plan,
        d.objective_usd,
        d.predicted_apr,
        d.violations,
        sorted(d.limit_utilization.items()),
        d.reason,
        d.rebuilt,
        d.pwl_error_bound_usd,
        d.venues,
        d.current_violations,
        m.cycle,
        sorted(m.last_seen.items()),
        sorted(m.warm.items()),
        m.flights,
        m.model_linear,
        sorted(m.last_snapshot),
    )
    return re.sub(r" at 0x[0-9a-f]+", "", repr(parts))


def run(
    snaps: Sequence[VenueSnapshot],
    portfolio: PortfolioState,
    cycles: int = 3,
    limits: RiskLimits = LIMITS,
    settings: OptimizerSettings = SETTINGS,
) -> list[str]:
    """Decide ``cycles`` times, each cycle's holdings the last target (rates as they are)."""
    opt = Optimizer(limits, settings, home_chain="ethereum")
    out: list[str] = []
    memory = None
    for k in range(cycles):
        d = opt.decide(snaps, portfolio, T0 + timedelta(hours=k), memory=memory)
        out.append(fingerprint(d))
        memory = d.memory
        if d.plan.execute and d.allocation is not None:
            moved = {v: max(u, 0.0) for v, u in d.allocation.target_usd.items()}
            portfolio = dataclasses.replace(
                portfolio,
                positions_usd=moved,
                idle_usd=portfolio.nav_usd - portfolio.in_flight_usd - sum(moved.values()),
                idle_by_chain_usd={},
            )
    return out


def both(snaps: Sequence[VenueSnapshot], portfolio: PortfolioState, **kw: object) -> None:
    fast = run(snaps, portfolio, **kw)  # type: ignore[arg-type]
    with general_path():
        slow = run(snaps, portfolio, **kw)  # type: ignore[arg-type]
    assert fast == slow


@pytest.mark.parametrize("seed", range(24))
def test_random_small_markets_decide_as_the_general_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    m = random_market(n, seed, invested_share=float(rng.uniform(0.0, 0.9)), frozen_share=0.15)
    both(m.snapshots, m.portfolio)


def test_an_empty_venue_set_holds_the_same() -> None:
    both((), PortfolioState(positions_usd={}, idle_usd=1e6), cycles=1)


def test_a_venue_at_its_cap_and_idle_on_two_chains() -> None:
    nav = 10_000_000.0
    snaps = (
        make_snapshot(
            "a", KinkedLendingCurve(8e6, 5e6, base=0.0, slope1=0.05, slope2=0.6, u_opt=0.8)
        ),
        make_snapshot("b", apr=0.06, chain="arbitrum"),
        make_snapshot("c", apr=0.03, tvl_usd=2e6, exit_liquidity_usd=1e5),
    )
    at_cap = LIMITS.max_venue_ratio * nav
    pf = PortfolioState(
        positions_usd={"a": at_cap, "c": 1e6},
        idle_usd=nav - at_cap - 1e6,
        idle_by_chain_usd={"ethereum": nav - at_cap - 1e6 - 2e6, "arbitrum": 2e6},
    )
    both(snaps, pf)


def test_a_queued_withdrawal_in_flight() -> None:
    nav = 5_000_000.0
    snaps = (
        make_snapshot("lido", apr=0.01, kind=VenueKind.STAKING, exit_days=3.0),
        make_snapshot("aave", apr=0.08),
    )
    pf = PortfolioState(positions_usd={"lido": 3e6}, idle_usd=nav - 3e6 - 2e5, in_flight_usd=2e5)
    both(snaps, pf)


def test_nan_feeds_frozen_venues_and_negative_zero() -> None:
    nav = 2_000_000.0
    snaps = (
        dataclasses.replace(make_snapshot("a", apr=0.05), exit_liquidity_usd=math.nan),
        dataclasses.replace(make_snapshot("b", apr=0.07), tvl_usd=math.nan),
        make_snapshot("c", apr=0.09, frozen=True),
    )
    pf = PortfolioState(positions_usd={"a": 5e5, "b": -0.0, "c": 3e5}, idle_usd=nav - 8e5)
    limits = LIMITS.model_copy(update={"max_venue_tvl_ratio": 0.5, "max_venue_usd": 1.5e6})
    both(snaps, pf, limits=limits)


@pytest.mark.parametrize("seed", range(12))
def test_the_cycle_bounds_equal_the_numpy_bounds(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    m = random_market(int(rng.integers(1, 8)), seed, invested_share=0.7, frozen_share=0.3)
    limits = LIMITS.model_copy(
        update={
            "max_venue_tvl_ratio": float(rng.choice([0.05, 0.5, 1.0])),
            "max_venue_usd": float(rng.choice([3e6, 1e9])),
            "max_venue_ratio": float(rng.choice([0.4, 1.0])),  # 1.0: investable binds
        }
    )
    idle = m.portfolio.idle_usd  # some of it in flight: investable below NAV, so it may bind
    pf = dataclasses.replace(m.portfolio, idle_usd=0.6 * idle, in_flight_usd=0.4 * idle)
    fast = build_cycle(m.snapshots, pf, limits, SETTINGS, "ethereum")
    with general_path():
        slow = build_cycle(m.snapshots, pf, limits, SETTINGS, "ethereum")
    for name in ("x0", "lb", "ub", "exit_liquidity"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.tobytes() == b.tobytes(), name  # (bytes: signs of zero too)


@pytest.mark.parametrize("seed", range(16))
def test_the_segment_lps_row_bounds_equal_scipys_matvec(seed: int) -> None:
    """The x-rows' bounds (group caps, risk budget) below SMALL_SET, ``rhs - M @ lb`` on Python
    floats, are scipy's CSR matvec byte for byte; and the whole decide's segment LP agrees."""
    rng = np.random.default_rng(300 + seed)
    m = random_market(int(rng.integers(1, 8)), seed, invested_share=0.8, frozen_share=0.2)
    snaps = tuple(sorted(m.snapshots, key=lambda s: s.venue.id))
    limits = all_limits(m)
    c = build_cycle(snaps, m.portfolio, limits, SETTINGS, "ethereum", linear=None)
    model = AllocationModel(tuple(s.venue for s in snaps), limits, SETTINGS, "ethereum")
    model.update(c)
    seg = model.segment
    assert seg is not None and seg._x_terms is not None and seg.x_rows.shape[0] > 0
    cols = seg._columns(c)
    fast = seg._row_upper(c, cols)
    seg._x_terms = None  # the general path
    slow = seg._row_upper(c, cols)
    assert fast.dtype == slow.dtype and fast.tobytes() == slow.tobytes()
    # the sum itself, on lower bounds that are seldom all 0 (a cycle's mostly are)
    seg._x_terms = fastlp_mod.SegmentLP(model)._x_terms
    rhs = rng.uniform(0.0, 1.0, seg.x_rows.shape[0])
    for _ in range(50):
        lb = rng.uniform(0.0, 1.0, seg.n) * rng.choice([0.0, 1e-3, 1.0], seg.n)
        got = np.array(seg._x_rows_at(rhs.tolist(), lb))
        assert got.tobytes() == (rhs - seg.x_rows @ lb).tobytes()


def test_window_around_equals_numpy_on_ties_and_rounding() -> None:
    rng = np.random.default_rng(5)
    for t in range(2000):
        n, m = int(rng.integers(1, 8)), int(rng.integers(2, 10))
        grid = (
            rng.choice([0.0, 1.0, 2.5, 1e6], (n, m)) if t % 3 == 0 else rng.uniform(0, 1e6, (n, m))
        )
        bp = np.sort(grid, axis=1)
        x = bp[np.arange(n), rng.integers(0, m, n)] + rng.choice([0.0, 1e-12, -1e-12, 3.0], n)
        fast = window_around(bp, x)
        with general_path():
            slow = window_around(bp, x)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(fast, slow, strict=True))


def test_the_plans_batched_incomes_equal_evaluate_curves() -> None:
    from adapters.curves_batch import aave_lending_curves
    from protocols.aave import AaveRateStrategy

    rng = np.random.default_rng(9)
    for _ in range(20):
        n = int(rng.integers(1, 8))
        reserves = [
            (
                AaveRateStrategy(
                    float(rng.uniform(0, 0.01)),
                    float(rng.uniform(0.02, 0.06)),
                    float(rng.uniform(0.5, 1.0)),
                    float(rng.uniform(0.7, 0.92)),
                    0.1,
                ),
                float(rng.uniform(1e6, 1e8)),  # debt
                float(rng.uniform(1e6, 1e8)),  # liquidity
            )
            for _ in range(n)
        ]
        curves = aave_lending_curves(reserves)
        x = rng.uniform(0.0, 5e7, (n, 2))
        fast = pricing_mod._evaluate(curves, x, 0.0)
        assert fast.tobytes() == evaluate_curves(curves, x, 0.0).tobytes()
    # mixed classes take evaluate_curves itself
    mixed = [*aave_lending_curves(reserves[:1]), make_snapshot("f", apr=0.04).curve]
    x = np.array([[1e6, 2e6], [3e6, 4e6]])
    assert (
        pricing_mod._evaluate(mixed, x, 0.0).tobytes() == evaluate_curves(mixed, x, 0.0).tobytes()
    )


class _NoCache(dict):  # type: ignore[type-arg]
    """A decide's checked-target cache that never answers: every check runs the checker."""

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        return default


@pytest.mark.parametrize("seed", range(8))
def test_the_checked_target_cache_decides_as_checking_every_target(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every report the cache hands out (a passing one for both kinds of call, a full one for a
    first-only trial whatever it says) gives the decisions of running the checker every time; the
    holdings a hair below the idle floor (inside the drift band) make the pruning try them again."""
    rng = np.random.default_rng(300 + seed)
    m = random_market(int(rng.integers(2, 8)), seed, invested_share=0.985)
    cases = [(m.snapshots, m.portfolio)]
    fast = [run(s, p, cycles=2) for s, p in cases]
    start = work_mod.DecideWork.start.__func__  # type: ignore[attr-defined]

    def uncached(cls, *a, **k):  # type: ignore[no-untyped-def]
        w = start(cls, *a, **k)
        w.checked = _NoCache()
        return w

    monkeypatch.setattr(work_mod.DecideWork, "start", classmethod(uncached))
    slow = [run(s, p, cycles=2) for s, p in cases]
    assert fast == slow
