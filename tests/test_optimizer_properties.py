"""Property tests: random markets and limit sets give solutions that pass the independent checker,
are never worse than holding, and conserve capital."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.types import PortfolioState, VenueCosts, VenueKind
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from optimizer.config import LiquidityFloor
from optimizer.cycle import cost_rates
from optimizer.testing import DilutionCurve, FlatCurve, KinkedLendingCurve, LPCurve, make_snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAV = 1_000_000.0
HOME = "ethereum"
SETTINGS = OptimizerSettings(min_trade_usd=50.0)


@st.composite
def curves(draw):
    kind = draw(st.sampled_from(["flat", "dilution", "lp", "kinked"]))
    pool = draw(st.floats(1e5, 2e7))
    if kind == "flat":
        cap = draw(st.one_of(st.just(float("inf")), st.floats(1e4, 2e6)))
        return FlatCurve(draw(st.floats(0.0, 0.15)), capacity_usd=cap)
    if kind == "dilution":
        return DilutionCurve(
            draw(st.floats(0.0, 0.15)) * pool, pool, emission_usd=draw(st.floats(0.0, 0.05)) * pool
        )
    if kind == "lp":
        return LPCurve(draw(st.floats(0.01, 0.3)) * pool, pool, sigma=draw(st.floats(0.05, 0.6)))
    return KinkedLendingCurve(supply_usd=pool, borrow_usd=pool * draw(st.floats(0.3, 0.97)))


@st.composite
def markets(draw):
    n = draw(st.integers(1, 7))
    snaps = []
    for i in range(n):
        snaps.append(
            make_snapshot(
                f"v{i}",
                draw(curves()),
                kind=draw(st.sampled_from(list(VenueKind))),
                protocol=draw(st.sampled_from(["aave-v3", "lido", "curve", "morpho"])),
                chain=draw(st.sampled_from([HOME, "arbitrum", "base"])),
                risk_score=draw(st.floats(0.0, 9.0)),
                dependencies=draw(st.sampled_from([(), ("lido",)])),
                exit_days=draw(st.sampled_from([0.0, 1.0, 7.0])),
                costs=VenueCosts(
                    draw(st.floats(0, 20)),
                    draw(st.floats(0, 20)),
                    draw(st.sampled_from([0.0, 5.0, 30.0])),
                ),
                tvl_usd=draw(st.floats(1e5, 1e8)),
                exit_liquidity_usd=draw(st.floats(0.0, 2e6)),
                frozen=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    weights = [draw(st.floats(0.0, 1.0)) if draw(st.booleans()) else 0.0 for _ in range(n)]
    invested = draw(st.floats(0.0, 1.0))
    total = sum(weights)
    positions = {
        s.venue.id: invested * NAV * w / total
        for s, w in zip(snaps, weights, strict=False)
        if total > 0 and w > 0
    }
    pf = PortfolioState(positions_usd=positions, idle_usd=NAV - sum(positions.values()))
    return snaps, pf


@st.composite
def limit_sets(draw):
    maybe = lambda strat: draw(st.one_of(st.none(), strat))  # noqa: E731
    floors = draw(
        st.sampled_from(
            [
                (),
                (LiquidityFloor(days=1, min_ratio=0.2),),
                (LiquidityFloor(days=0, min_ratio=0.1), LiquidityFloor(days=7, min_ratio=0.4)),
            ]
        )
    )
    return RiskLimits(
        min_idle_ratio=draw(st.floats(0.0, 0.3)),
        max_venue_usd=maybe(st.floats(5e4, 1e6)),
        max_venue_ratio=draw(st.floats(0.1, 1.0)),
        max_venue_tvl_ratio=maybe(st.floats(0.01, 0.5)),
        max_kind_ratio=draw(st.sampled_from([{}, {VenueKind.LENDING: 0.4, VenueKind.LP: 0.2}])),
        max_chain_ratio=draw(st.sampled_from([{}, {"arbitrum": 0.3}])),
        max_protocol_ratio=draw(st.sampled_from([{}, {"aave-v3": 0.35}])),
        max_dependency_ratio=draw(st.sampled_from([{}, {"lido": 0.3}])),
        max_avg_risk_score=maybe(st.floats(1.0, 8.0)),
        liquidity_floors=floors,
        max_turnover_ratio=maybe(st.floats(0.05, 1.0)),
    )


def true_net_usd(snaps, x_usd, x0_usd, opt_settings: OptimizerSettings) -> float:
    """True income minus the same annualised linear move costs the objective uses."""
    income = sum(
        float(s.curve.income_usd(np.array([x]), opt_settings.emission_haircut)[0])
        for s, x in zip(snaps, x_usd, strict=False)
    )
    c_in, c_out = cost_rates([s.venue for s in snaps], opt_settings, HOME, NAV)
    moves = float(
        (c_in * np.maximum(x_usd - x0_usd, 0) + c_out * np.maximum(x0_usd - x_usd, 0)).sum()
    )
    return income - moves * 365.0 / opt_settings.holding_horizon_days


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(markets(), limit_sets())
def test_random_markets_give_checked_conserving_never_worse_solutions(market, limits):
    snaps, pf = market
    d = Optimizer(limits, SETTINGS, HOME).decide(snaps, pf, NOW)
    ids = [s.venue.id for s in snaps]
    x0 = np.array([pf.positions_usd.get(i, 0.0) for i in ids])
    holding = check_allocation(
        snaps, pf, dict(zip(ids, x0, strict=False)), pf.idle_usd, limits, SETTINGS, HOME
    )
    if holding.ok:
        # holding is feasible, so the problem is too: no excuse to hold for infeasibility
        assert d.status == "optimal", d.reason
    assert d.status in {"optimal", "infeasible"}, d.reason
    if d.status != "optimal":
        assert d.plan.moves == () and not d.plan.execute
        return
    target = d.allocation.target_usd
    # capital conserved; a withdrawal from a queued venue is in flight after the plan, never idle
    queued = {s.venue.id for s in snaps if s.venue.exit_days > SETTINGS.instant_exit_days}
    flight = sum(max(pf.positions_usd.get(i, 0.0) - target[i], 0.0) for i in queued)
    assert (
        abs(sum(target.values()) + d.allocation.idle_usd + pf.in_flight_usd + flight - pf.nav_usd)
        <= 1e-6 * NAV
    )
    assert d.allocation.idle_usd >= -1e-6 * NAV
    # every limit holds, rechecked from scratch
    rep = check_allocation(snaps, pf, target, d.allocation.idle_usd, limits, SETTINGS, HOME)
    assert rep.ok, rep.violations
    x = np.array([target[i] for i in ids])
    if holding.ok:
        # never worse than holding (up to the PWL error bound and the dropped sub-minimum trades)
        slack = d.pwl_error_bound_usd + SETTINGS.min_trade_usd * len(ids) * 0.5 + 1e-6 * NAV
        assert true_net_usd(snaps, x, x0, SETTINGS) >= true_net_usd(snaps, x0, x0, SETTINGS) - slack
    if d.plan.execute and not d.current_violations:
        assert d.plan.expected_gain_usd >= SETTINGS.min_benefit_cost_ratio * d.plan.cost_usd - 1e-9
    # the plan's moves take the holdings exactly to the target
    after = dict(pf.positions_usd)
    for m in d.plan.moves:
        if m.action.value == "withdraw":
            after[m.venue_id] = after.get(m.venue_id, 0.0) - m.amount_usd
        elif m.action.value == "deposit":
            after[m.venue_id] = after.get(m.venue_id, 0.0) + m.amount_usd
    if d.plan.execute:
        for i in ids:
            assert abs(after.get(i, 0.0) - target[i]) <= 0.01


def _max_violation_at(model, x: np.ndarray, cycle) -> float:
    """Largest violation of any cvxpy constraint at ``x``, with the auxiliary variables at their best
    values for ``x`` (t = g(x), liquid z = min(x, L), turnover u = |x - x0|, in flight w = (x0 - x)⁺)."""
    a, b = cycle.objective_pieces(SETTINGS)
    for v in model.problem.variables():
        name = v.name()
        if name == "x":
            v.value = x
        elif name == "t":
            v.value = np.min(a * x[:, None] + b, axis=1)
        elif name == "turnover":
            v.value = np.abs(x - cycle.x0)
        elif name == "in_flight":
            v.value = np.maximum(cycle.x0 - x, 0.0)[model.queued_idx]
        elif name == "liquid":
            lim = next(lim for lim in model.limits if lim.name == "liquidity")
            v.value = np.minimum(x[lim.idx], cycle.exit_liquidity[lim.idx])
    worst = 0.0
    for c in model.problem.constraints:
        viol = np.asarray(c.violation(), dtype=float)
        worst = max(worst, float(viol.max()) if viol.size else 0.0)
    return worst


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(markets(), limit_sets())
def test_segment_simplex_matches_the_cvxpy_reference(market, limits):
    """optimizer/fastlp.py solves the same LP exactly: same optimum as the cvxpy problem solved tightly
    (Clarabel at 1e-10), and its solution is feasible for every cvxpy constraint."""
    snaps, pf = market
    opt = Optimizer(limits, SETTINGS, HOME)
    opt.decide(snaps, pf, NOW)
    model = opt._model
    assert model is not None and model.segment is not None
    cycle = model._cycle
    seg = model.solve()
    model.problem.solve(
        solver="CLARABEL",
        tol_gap_abs=1e-10,
        tol_gap_rel=1e-10,
        tol_feas=1e-10,
        max_iter=400,
        enforce_dpp=model.use_dpp,
        ignore_dpp=not model.use_dpp,
    )
    if model.problem.status not in ("optimal", "optimal_inaccurate"):
        assert seg.status != "optimal" or seg.detail != "segment simplex", (
            seg,
            model.problem.status,
        )
        return
    ref = float(model.problem.value)
    assert seg.status == "optimal" and seg.detail == "segment simplex", seg
    # the reference's Σ t may exceed g(x) by its feasibility tolerance; compare both ways
    assert abs(seg.objective - ref) <= 1e-6 * abs(ref) + 1e-9, (seg.objective, ref)
    assert _max_violation_at(model, seg.x, cycle) <= 1e-8
