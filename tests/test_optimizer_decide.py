"""Optimizer.decide end to end: DPP, holds on failure, plan ordering, bridge legs, keys, gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cvxpy as cp
import numpy as np
import pytest

from core.types import MoveAction, PortfolioState, VenueCosts, VenueKind
from optimizer import Decision, Optimizer, OptimizerSettings, RiskLimits, check_feasibility
from optimizer.bench import all_limits
from optimizer.config import LiquidityFloor
from optimizer.model import AllocationModel, SolveResult
from optimizer.testing import DilutionCurve, KinkedLendingCurve, make_snapshot, random_market

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAV = 1_000_000.0
FREE = OptimizerSettings(min_trade_usd=0.0, min_benefit_cost_ratio=0.0, hysteresis_apr=0.0)


def portfolio(positions=None, idle=None) -> PortfolioState:
    positions = positions or {}
    return PortfolioState(
        positions_usd=positions, idle_usd=NAV - sum(positions.values()) if idle is None else idle
    )


# -- the problem -------------------------------------------------------------------------------


@pytest.mark.parametrize("risk_aversion", [0.0, 5.0])
def test_problem_is_dpp_with_every_limit(risk_aversion):
    market = random_market(60, seed=3, invested_share=0.5)
    settings = OptimizerSettings(risk_aversion=risk_aversion)
    opt = Optimizer(all_limits(market), settings, "ethereum")
    d = opt.decide(market.snapshots, market.portfolio, NOW)
    assert d.status == "optimal", d.reason
    model = opt._model
    assert model.problem.is_dpp()
    assert {type(limit).__name__ for limit in model.limits} == {
        "VenueBox",
        "MinIdle",
        "GroupCaps",
        "RiskBudget",
        "LiquidityFloors",
        "Turnover",
    }
    # solving with enforce_dpp does not raise, and a second cycle reuses the compiled problem
    d2 = opt.decide(market.snapshots, market.portfolio, NOW + timedelta(minutes=1))
    assert d2.status == "optimal" and not d2.rebuilt and d.rebuilt
    assert opt.rebuilds == 1


def test_rebuilt_only_when_venues_change():
    snaps = [make_snapshot("a", apr=0.05), make_snapshot("b", apr=0.04, protocol="x")]
    opt = Optimizer(RiskLimits(), FREE, "ethereum")
    assert opt.decide(snaps, portfolio(), NOW).rebuilt
    assert not opt.decide([make_snapshot("a", apr=0.06), snaps[1]], portfolio(), NOW).rebuilt
    assert opt.decide(
        [*snaps, make_snapshot("c", apr=0.03, protocol="y")], portfolio(), NOW
    ).rebuilt


def test_objective_is_the_pwl_value_of_the_allocation_and_near_the_truth():
    snaps = [
        make_snapshot(
            f"k{i}",
            KinkedLendingCurve(supply_usd=2e6 * (i + 1), borrow_usd=1.7e6 * (i + 1)),
            protocol=f"p{i}",
        )
        for i in range(4)
    ]
    d = Optimizer(RiskLimits(max_venue_ratio=0.5), FREE, "ethereum").decide(snaps, portfolio(), NOW)
    assert d.status == "optimal"
    true_income = sum(
        float(s.curve.income_usd(np.array([d.allocation.target_usd[s.venue.id]]), 0.5)[0])
        for s in snaps
    )
    assert d.pwl_error_bound_usd is not None
    assert true_income >= d.objective_usd - 1.0
    assert true_income <= d.objective_usd + d.pwl_error_bound_usd + 1.0
    assert d.predicted_apr == pytest.approx(true_income / NAV)


def test_risk_penalty_moves_capital_away_from_volatile_yield():
    rng = np.random.default_rng(0)
    settings = FREE.model_copy(update={"risk_aversion": 200.0, "risk_min_observations": 5})
    opt = Optimizer(RiskLimits(), settings, "ethereum")
    calm = Optimizer(RiskLimits(), FREE, "ethereum")
    for k in range(12):
        wobble = 0.06 + 0.03 * float(rng.standard_normal())
        snaps = [
            make_snapshot("volatile", DilutionCurve(wobble * 1e6, 1e6)),
            make_snapshot("steady", DilutionCurve(0.055 * 1e6, 1e6), protocol="x"),
        ]
        d = opt.decide(snaps, portfolio(), NOW + timedelta(minutes=k))
        d_calm = calm.decide(snaps, portfolio(), NOW + timedelta(minutes=k))
    assert d.status == "optimal" and opt._model.problem.is_dpp()
    assert d.allocation.target_usd["volatile"] < d_calm.allocation.target_usd["volatile"] - 1_000


# -- holds --------------------------------------------------------------------------------------


def assert_hold(d: Decision, status: str) -> None:
    assert d.status == status, d.reason
    assert d.plan.moves == () and d.plan.execute is False
    assert d.reason.startswith("hold")


def test_hold_when_infeasible():
    # 20 % idle required, everything sits in 'a', and turnover may not move anything
    snaps = [make_snapshot("a", apr=0.05)]
    d = Optimizer(RiskLimits(min_idle_ratio=0.2, max_turnover_ratio=0.0), FREE, "ethereum").decide(
        snaps, portfolio({"a": NAV}, idle=0.0), NOW
    )
    assert_hold(d, "infeasible")
    assert d.current_violations and "min_idle_ratio" in d.current_violations[0]


def test_hold_on_solver_error(monkeypatch):
    def boom(self, *args, **kwargs):
        raise cp.error.SolverError("injected")

    monkeypatch.setattr(cp.Problem, "solve", boom)
    # the segment simplex fails too, so the cvxpy fallback runs (and fails)
    monkeypatch.setattr("optimizer.fastlp.SegmentLP._solve", boom)
    d = Optimizer(RiskLimits(), FREE, "ethereum").decide([make_snapshot("a")], portfolio(), NOW)
    assert_hold(d, "solver_error")
    assert "injected" in d.reason


def test_hold_on_bad_curve():
    class Broken(DilutionCurve):
        def real_income_usd(self, x_usd):
            return np.full_like(np.asarray(x_usd, dtype=float), np.nan)

    d = Optimizer(RiskLimits(), FREE, "ethereum").decide(
        [make_snapshot("a", Broken(1, 1))], portfolio(), NOW
    )
    assert_hold(d, "solver_error")


def test_hold_when_check_fails(monkeypatch):
    real_solve = AllocationModel.solve

    def lying_solve(self):
        r = real_solve(self)
        return SolveResult(
            r.status, r.x * 1.5, r.objective, r.solve_seconds, r.solver_seconds, "tampered"
        )

    monkeypatch.setattr(AllocationModel, "solve", lying_solve)
    snaps = [make_snapshot("a", apr=0.05), make_snapshot("b", apr=0.04, protocol="x")]
    d = Optimizer(RiskLimits(max_venue_ratio=0.5, min_idle_ratio=0.1), FREE, "ethereum").decide(
        snaps, portfolio(), NOW
    )
    assert_hold(d, "check_failed")
    assert d.violations and any(
        "venue_ratio" in v or "conservation" in v or "min_idle" in v for v in d.violations
    )


def test_no_venues():
    d = Optimizer(RiskLimits(), FREE, "ethereum").decide([], portfolio(), NOW)
    assert_hold(d, "no_venues")


# -- plan ---------------------------------------------------------------------------------------


def cross_chain_case():
    snaps = [
        make_snapshot("arb-new", apr=0.09, chain="arbitrum"),
        make_snapshot("home-new", apr=0.08, protocol="x"),
        make_snapshot("arb-old", apr=0.01, chain="arbitrum", protocol="y"),
        make_snapshot("home-old", apr=0.01, protocol="z"),
    ]
    limits = RiskLimits(max_venue_ratio=0.5)
    return snaps, limits, portfolio({"arb-old": 400_000, "home-old": 400_000}, idle=200_000)


def test_plan_orders_withdrawals_bridges_deposits_with_bridge_legs():
    snaps, limits, pf = cross_chain_case()
    d = Optimizer(limits, FREE, "ethereum").decide(snaps, pf, NOW)
    assert d.status == "optimal" and d.plan.execute, d.reason
    actions = [m.action for m in d.plan.moves]
    order = {MoveAction.WITHDRAW: 0, MoveAction.BRIDGE: 1, MoveAction.DEPOSIT: 2}
    assert actions == sorted(actions, key=order.__getitem__)
    bridges = [m for m in d.plan.moves if m.action == MoveAction.BRIDGE]
    assert {(m.venue_id, m.from_chain, m.to_chain) for m in bridges} == {
        ("arb-old", "arbitrum", "ethereum"),
        ("arb-new", "ethereum", "arbitrum"),
    }
    # the leg back home comes before the leg out
    assert bridges[0].to_chain == "ethereum"
    # capital conserved: what leaves + idle funds what arrives
    out = sum(m.amount_usd for m in d.plan.moves if m.action == MoveAction.WITHDRAW)
    inn = sum(m.amount_usd for m in d.plan.moves if m.action == MoveAction.DEPOSIT)
    assert pf.idle_usd + out - inn == pytest.approx(d.allocation.idle_usd, abs=0.01)


def test_idempotency_keys_are_deterministic_and_unique():
    snaps, limits, pf = cross_chain_case()
    a = Optimizer(limits, FREE, "ethereum").decide(snaps, pf, NOW).plan.moves
    b = Optimizer(limits, FREE, "ethereum").decide(snaps, pf, NOW).plan.moves
    c = Optimizer(limits, FREE, "ethereum").decide(snaps, pf, NOW + timedelta(seconds=5)).plan.moves
    keys = [m.idempotency_key for m in a]
    assert keys == [m.idempotency_key for m in b]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {m.idempotency_key for m in c}


def test_trades_below_min_size_are_dropped():
    snaps = [make_snapshot("a", apr=0.05), make_snapshot("b", apr=0.04, protocol="x")]
    settings = FREE.model_copy(update={"min_trade_usd": 1_000.0})
    # the optimum wants 'a' at 500k and 'b' at 500k; 'b' holds 499.5k already
    d = Optimizer(RiskLimits(max_venue_ratio=0.5), settings, "ethereum").decide(
        snaps, portfolio({"b": 499_500}), NOW
    )
    assert d.status == "optimal"
    assert [m.venue_id for m in d.plan.moves] == ["a"]
    assert d.allocation.target_usd["b"] == 499_500


def test_gate_holds_when_gain_does_not_cover_cost():
    costly = VenueCosts(deposit_usd=50, withdraw_usd=50, fee_bps=10)
    snaps = [
        make_snapshot("a", apr=0.0501, costs=costly),
        make_snapshot("b", apr=0.05, protocol="x", costs=costly),
    ]
    settings = OptimizerSettings(
        min_trade_usd=0.0,
        min_benefit_cost_ratio=1.5,
        hysteresis_apr=0.0,
        holding_horizon_days=365 * 10,
    )  # long horizon: the model wants to move
    d = Optimizer(RiskLimits(), settings, "ethereum").decide(
        snaps, portfolio({"b": NAV}, idle=0.0), NOW
    )
    assert d.status == "optimal"
    assert d.plan.execute is False and d.plan.moves == ()
    # 30-day horizon in the gate: gain 0.0001 * 1M * 30/365 = 8 USD < 1.5 x (2 x 50 gas + 2 x 1000 fee)
    settings = settings.model_copy(update={"holding_horizon_days": 30})
    d = Optimizer(RiskLimits(), settings, "ethereum").decide(
        snaps, portfolio({"b": NAV}, idle=0.0), NOW
    )
    assert d.plan.execute is False


def test_hysteresis_ignores_wobble_but_acts_on_real_change():
    settings = OptimizerSettings(
        min_trade_usd=0.0, min_benefit_cost_ratio=0.0, hysteresis_apr=0.001
    )
    opt = Optimizer(RiskLimits(), settings, "ethereum")
    pf = portfolio({"b": NAV}, idle=0.0)
    wobble = [make_snapshot("a", apr=0.0505), make_snapshot("b", apr=0.05, protocol="x")]
    d = opt.decide(wobble, pf, NOW)
    assert d.plan.execute is False and "hysteresis" in d.plan.reason
    real = [make_snapshot("a", apr=0.06), make_snapshot("b", apr=0.05, protocol="x")]
    d = opt.decide(real, pf, NOW)
    assert d.plan.execute is True


def test_broken_limit_is_restored_even_if_it_costs():
    snaps = [make_snapshot("a", apr=0.05)]
    d = Optimizer(RiskLimits(min_idle_ratio=0.1), OptimizerSettings(), "ethereum").decide(
        snaps, portfolio({"a": NAV}, idle=0.0), NOW
    )
    assert d.status == "optimal" and d.plan.execute
    assert d.plan.moves[0].action == MoveAction.WITHDRAW
    # restored to the reserve plus the buffer (README §7), so that drift does not break it again
    assert d.plan.moves[0].amount_usd == pytest.approx(
        0.1 * NAV * (1 + OptimizerSettings().limit_buffer_ratio), abs=1.0
    )


# -- check-config -------------------------------------------------------------------------------


def test_check_feasibility_accepts_sane_limits_and_names_conflicts():
    venues = [
        make_snapshot("a", kind=VenueKind.LENDING).venue,
        make_snapshot("s", kind=VenueKind.STAKING, protocol="lido", exit_days=3).venue,
    ]
    assert check_feasibility(venues, RiskLimits(min_idle_ratio=0.1, max_venue_ratio=0.6)) == []
    problems = check_feasibility(
        venues,
        RiskLimits(
            min_idle_ratio=0.1,
            max_kind_ratio={VenueKind.LENDING: 0.3},
            liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.7),),
        ),
    )
    assert len(problems) == 1
    assert "max_kind_ratio[lending] 0.3" in problems[0] and "liquidity_floors[0]" in problems[0]
    assert "min_idle_ratio 0.1" in problems[0]
    assert check_feasibility([], RiskLimits()) != []


async def test_decide_runs_in_a_worker_thread():
    import asyncio

    opt = Optimizer(RiskLimits(), FREE, "ethereum")
    snaps = [make_snapshot("a", apr=0.05), make_snapshot("b", apr=0.04, protocol="x")]
    d = await asyncio.to_thread(opt.decide, snaps, portfolio(), NOW)
    assert d.status == "optimal" and d.plan.execute


def test_nan_feed_values_lock_that_venue_instead_of_holding_everything():
    bad = make_snapshot("bad", apr=0.2, tvl_usd=float("nan"), exit_liquidity_usd=float("nan"))
    snaps = [bad, make_snapshot("good", apr=0.05, protocol="x")]
    d = Optimizer(RiskLimits(max_venue_tvl_ratio=0.1), FREE, "ethereum").decide(
        snaps, portfolio({"bad": 100_000}), NOW
    )
    assert d.status == "optimal", d.reason
    assert d.allocation.target_usd["bad"] == pytest.approx(100_000)
    assert d.allocation.target_usd["good"] == pytest.approx(900_000, abs=1.0)


def test_moves_that_lose_money_on_exact_gas_are_undone():
    from optimizer.testing import FlatCurve

    # 1,000 USD at 10 % earns 8 USD in 30 days; its deposit gas is 50 USD. The convex model only
    # amortises gas (over 1 % of NAV), so it proposes the deposit; the exact-cost pruning drops it.
    tiny = make_snapshot(
        "tiny", FlatCurve(0.10, capacity_usd=1_000), costs=VenueCosts(deposit_usd=50)
    )
    snaps = [tiny, make_snapshot("b", apr=0.01, protocol="x")]
    d = Optimizer(RiskLimits(), FREE, "ethereum").decide(snaps, portfolio(), NOW)
    assert d.status == "optimal"
    assert d.allocation.target_usd["tiny"] == 0.0
    assert d.allocation.target_usd["b"] == pytest.approx(
        NAV - 1_000 * (1 - FREE.limit_buffer_ratio), abs=1.0
    )
    no_prune = FREE.model_copy(update={"prune_max_tries": 0})
    d = Optimizer(RiskLimits(), no_prune, "ethereum").decide(snaps, portfolio(), NOW)
    assert d.allocation.target_usd["tiny"] == pytest.approx(
        1_000 * (1 - no_prune.limit_buffer_ratio), abs=1.0
    )  # aims inside capacity


def test_a_flapping_feed_does_not_rebuild_the_problem():
    a, b = make_snapshot("a", apr=0.05), make_snapshot("b", apr=0.04, protocol="x")
    opt = Optimizer(RiskLimits(), FREE, "ethereum")
    assert opt.decide([a, b], portfolio(), NOW).rebuilt
    d = opt.decide([a], portfolio(), NOW)  # b's feed drops out: kept, frozen at its last snapshot
    assert not d.rebuilt and d.allocation.target_usd["b"] == 0.0
    assert not opt.decide([a, b], portfolio(), NOW).rebuilt
    short = Optimizer(
        RiskLimits(), FREE.model_copy(update={"keep_lost_venues_cycles": 0}), "ethereum"
    )
    short.decide([a, b], portfolio(), NOW)
    assert short.decide([a], portfolio(), NOW).rebuilt
