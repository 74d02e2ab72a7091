"""Each risk limit binds when it should: without it the optimizer would go further."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.types import PortfolioState, VenueCosts, VenueKind
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.config import LiquidityFloor
from optimizer.testing import DilutionCurve, FlatCurve, make_snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAV = 1_000_000.0
TOL = 1.0  # USD
# the hard limits themselves (no buffer): each binds exactly; the buffered targets are tested in test_optimizer_churn.py
SETTINGS = OptimizerSettings(
    min_trade_usd=0.0, min_benefit_cost_ratio=0.0, hysteresis_apr=0.0, limit_buffer_ratio=0.0
)


def decide(snaps, limits: RiskLimits, positions=None, idle=None, settings=SETTINGS):
    positions = positions or {}
    idle = NAV - sum(positions.values()) if idle is None else idle
    d = Optimizer(limits, settings, "ethereum").decide(
        snaps, PortfolioState(positions_usd=positions, idle_usd=idle), NOW
    )
    assert d.status == "optimal", d.reason
    assert d.violations == ()
    return d


def two_venues(**a_kw):
    return [
        make_snapshot("a", apr=0.10, **a_kw),
        make_snapshot("b", apr=0.05, protocol="compound-v3"),
    ]


def test_unconstrained_goes_all_in_best_venue():
    d = decide(two_venues(), RiskLimits())
    assert d.allocation.target_usd["a"] == pytest.approx(NAV, abs=TOL)


def test_max_venue_usd_binds():
    d = decide(two_venues(), RiskLimits(max_venue_usd=100_000))
    assert d.allocation.target_usd["a"] == pytest.approx(100_000, abs=TOL)
    assert d.limit_utilization["venue_usd:max"] == pytest.approx(1.0, abs=1e-4)


def test_max_venue_ratio_binds():
    d = decide(two_venues(), RiskLimits(max_venue_ratio=0.3))
    assert d.allocation.target_usd["a"] == pytest.approx(0.3 * NAV, abs=TOL)
    assert d.allocation.target_usd["b"] == pytest.approx(0.3 * NAV, abs=TOL)


def test_max_venue_tvl_ratio_binds_after_us():
    d = decide(two_venues(tvl_usd=900_000), RiskLimits(max_venue_tvl_ratio=0.1))
    # x / (900k + x) <= 0.1  <=>  x <= 100k
    assert d.allocation.target_usd["a"] == pytest.approx(100_000, abs=TOL)


def test_curve_capacity_binds():
    d = decide(
        [make_snapshot("a", FlatCurve(0.1, capacity_usd=250_000)), make_snapshot("b", apr=0.05)],
        RiskLimits(),
    )
    assert d.allocation.target_usd["a"] == pytest.approx(250_000, abs=TOL)


def test_max_kind_ratio_binds():
    snaps = [
        make_snapshot("a", apr=0.10),
        make_snapshot("b", apr=0.09),
        make_snapshot("c", apr=0.03, kind=VenueKind.STAKING, protocol="lido"),
    ]
    d = decide(snaps, RiskLimits(max_kind_ratio={VenueKind.LENDING: 0.5}))
    t = d.allocation.target_usd
    assert t["a"] + t["b"] == pytest.approx(0.5 * NAV, abs=TOL)
    assert d.limit_utilization["kind:lending"] == pytest.approx(1.0, abs=1e-4)


def test_max_chain_ratio_binds():
    snaps = [make_snapshot("a", apr=0.10, chain="arbitrum"), make_snapshot("b", apr=0.05)]
    d = decide(snaps, RiskLimits(max_chain_ratio={"arbitrum": 0.2}))
    assert d.allocation.target_usd["a"] == pytest.approx(0.2 * NAV, abs=TOL)


def test_max_protocol_ratio_binds():
    d = decide(two_venues(), RiskLimits(max_protocol_ratio={"aave-v3": 0.35}))
    assert d.allocation.target_usd["a"] == pytest.approx(0.35 * NAV, abs=TOL)


def test_max_dependency_ratio_counts_every_venue_built_on_it():
    snaps = [
        make_snapshot("steth-market", apr=0.10, dependencies=("lido",)),
        make_snapshot("lido", apr=0.08, kind=VenueKind.STAKING, protocol="lido"),
        make_snapshot("c", apr=0.03, protocol="compound-v3"),
    ]
    d = decide(snaps, RiskLimits(max_dependency_ratio={"lido": 0.4}))
    t = d.allocation.target_usd
    assert t["steth-market"] + t["lido"] == pytest.approx(0.4 * NAV, abs=TOL)
    assert t["steth-market"] == pytest.approx(0.4 * NAV, abs=TOL)  # the better of the two


def test_max_avg_risk_score_binds():
    snaps = [
        make_snapshot("a", apr=0.10, risk_score=8),
        make_snapshot("b", apr=0.05, risk_score=2, protocol="x"),
    ]
    d = decide(snaps, RiskLimits(max_avg_risk_score=4.0))
    t = d.allocation.target_usd
    assert (8 * t["a"] + 2 * t["b"]) / NAV == pytest.approx(4.0, abs=1e-5)
    assert d.limit_utilization["risk_score"] == pytest.approx(1.0, abs=1e-4)


def test_min_idle_binds():
    d = decide(two_venues(), RiskLimits(min_idle_ratio=0.1))
    assert d.allocation.idle_usd == pytest.approx(0.1 * NAV, abs=TOL)


def test_liquidity_floor_binds_and_counts_only_exit_liquidity():
    snaps = [
        make_snapshot("slow", apr=0.10, exit_days=7),
        make_snapshot("fast", apr=0.05, protocol="x", exit_liquidity_usd=100_000),
    ]
    limits = RiskLimits(liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.5),))
    d = decide(snaps, limits)
    t = d.allocation.target_usd
    liquid = d.allocation.idle_usd + min(t["fast"], 100_000)
    assert liquid == pytest.approx(0.5 * NAV, abs=TOL)
    assert d.limit_utilization["liquidity:1d"] == pytest.approx(1.0, abs=1e-4)


def test_liquidity_floor_counts_bridge_time_off_home_chain():
    snaps = [
        make_snapshot("arb", apr=0.10, chain="arbitrum", exit_days=0.0),
        make_snapshot("home", apr=0.05, protocol="x"),
    ]
    settings = SETTINGS.model_copy(update={"bridge_days": 0.5})
    limits = RiskLimits(liquidity_floors=(LiquidityFloor(days=0.1, min_ratio=0.6),))
    d = decide(snaps, limits, settings=settings)
    assert d.allocation.target_usd["arb"] == pytest.approx(0.4 * NAV, abs=TOL)


def test_max_turnover_binds():
    snaps = two_venues()
    d = decide(snaps, RiskLimits(max_turnover_ratio=0.2), positions={"b": NAV}, idle=0.0)
    t = d.allocation.target_usd
    assert abs(t["a"] - 0) + abs(t["b"] - NAV) == pytest.approx(0.2 * NAV, abs=TOL)
    assert t["a"] == pytest.approx(0.1 * NAV, abs=TOL)


def test_frozen_venue_may_not_grow_but_may_shrink():
    snaps = [make_snapshot("a", apr=0.10, frozen=True), make_snapshot("b", apr=0.05, protocol="x")]
    d = decide(snaps, RiskLimits(), positions={"a": 100_000})
    assert d.allocation.target_usd["a"] <= 100_000 + TOL
    snaps = [make_snapshot("a", apr=0.01, frozen=True), make_snapshot("b", apr=0.05, protocol="x")]
    d = decide(snaps, RiskLimits(), positions={"a": 100_000})
    assert d.allocation.target_usd["a"] == pytest.approx(0.0, abs=TOL)


def test_withdrawals_bounded_by_exit_liquidity():
    snaps = [
        make_snapshot("a", apr=0.10),
        make_snapshot("b", apr=0.01, protocol="x", exit_liquidity_usd=100_000),
    ]
    d = decide(snaps, RiskLimits(), positions={"b": 500_000})
    assert d.allocation.target_usd["b"] == pytest.approx(400_000, abs=TOL)


def test_locked_cap_is_not_a_violation_but_may_not_worsen():
    # 'b' holds 50 % of NAV, above a 30 % venue cap, and only 100k can leave this cycle
    snaps = [
        make_snapshot("a", apr=0.10),
        make_snapshot("b", apr=0.20, protocol="x", exit_liquidity_usd=100_000),
    ]
    d = decide(snaps, RiskLimits(max_venue_ratio=0.3), positions={"b": 500_000})
    assert d.allocation.target_usd["b"] == pytest.approx(400_000, abs=TOL)


def test_position_without_snapshot_is_held_or_shrinks_frozen():
    opt = Optimizer(RiskLimits(), SETTINGS, "ethereum")
    portfolio = PortfolioState(positions_usd={"gone": 200_000}, idle_usd=800_000)
    d = opt.decide([make_snapshot("a", apr=0.05)], portfolio, NOW)
    assert d.status == "optimal"
    assert d.allocation.target_usd["gone"] == 200_000  # never seen: held as is
    assert d.allocation.target_usd["a"] == pytest.approx(800_000, abs=TOL)
    # seen once, then lost: frozen at its last snapshot, may shrink within its exit liquidity
    opt = Optimizer(RiskLimits(), SETTINGS, "ethereum")
    opt.decide(
        [
            make_snapshot("a", apr=0.05),
            make_snapshot("gone", apr=0.01, protocol="x", exit_liquidity_usd=50_000),
        ],
        portfolio,
        NOW,
    )
    d = opt.decide([make_snapshot("a", apr=0.05)], portfolio, NOW)
    assert d.allocation.target_usd["gone"] == pytest.approx(150_000, abs=TOL)


def test_move_costs_keep_a_marginally_better_venue_out():
    costly = VenueCosts(deposit_usd=0, withdraw_usd=0, fee_bps=50)  # 0.5 % each way
    snaps = [
        make_snapshot("a", apr=0.051, costs=costly),
        make_snapshot("b", apr=0.05, protocol="x"),
    ]
    d = decide(snaps, RiskLimits(), positions={"b": NAV}, idle=0.0)
    assert d.allocation.target_usd["b"] == pytest.approx(NAV, abs=TOL)


def test_rate_impact_spreads_capital():
    snaps = [
        make_snapshot("a", DilutionCurve(interest_usd=100_000, supply_usd=1_000_000)),
        make_snapshot("b", DilutionCurve(interest_usd=100_000, supply_usd=1_000_000), protocol="x"),
    ]
    d = decide(snaps, RiskLimits())
    t = d.allocation.target_usd
    # two identical curves: the PWL optimum is a whole face (any split within one piece of each);
    # the simplex returns a vertex of it, one venue on a breakpoint, so "equal" is up to a piece
    assert t["a"] == pytest.approx(t["b"], rel=0.05)
