"""The segment simplex's warm paths (optimizer/fastlp.py, README §5): a rebuild for the same venue
set keeps the basis, a re-solve that changes only row bounds keeps the columns (and, when the basis
still fits, takes the optimum from it), width-0 columns are left out of HiGHS; each gives the
objective of a cold solve. And the fit's hint on x0 takes no breakpoint from the budget (§2)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from optimizer import Optimizer, OptimizerSettings
from optimizer.bench import T0, all_limits, drift
from optimizer.cycle import build_cycle
from optimizer.memory import EMPTY_MEMORY
from optimizer.model import AllocationModel
from optimizer.pwl import fit_pwl
from optimizer.testing import FlatCurve, LPCurve, TieredCurve, random_market

SETTINGS = OptimizerSettings()
HOME = "ethereum"


def _market(seed: int = 5, venues: int = 60):
    market = random_market(venues, seed, invested_share=0.5)
    snaps = tuple(sorted(market.snapshots, key=lambda s: s.venue.id))
    return market, snaps, all_limits(market)


def _curve_a_flat_venue(snaps, seed: int, cycle):
    """The snapshots with one flat (two-chord) venue's curve now kinked inside its domain."""
    nav = cycle.nav_usd
    flat = [
        i
        for i, s in enumerate(snaps)
        if isinstance(s.curve, FlatCurve) and (cycle.ub[i] - cycle.lb[i]) * nav > 10_000.0
    ]
    assert flat, "the market has a flat venue with room"
    i = flat[seed % len(flat)]
    apr = snaps[i].curve.apr_value
    tier = (0.5 * (cycle.lb[i] + cycle.ub[i])) * nav
    curved = TieredCurve(apr * 1.5, apr * 0.2, tier_usd=tier)
    return i, tuple(
        dataclasses.replace(s, curve=curved) if j == i else s for j, s in enumerate(snaps)
    )


def _cold(venues, limits, linear, cycle):
    cold = AllocationModel(venues, limits, SETTINGS, HOME, linear=linear)
    cold.update(cycle)
    return cold, cold.solve()


@pytest.mark.parametrize("seed", [5, 11])
def test_a_rebuild_for_the_same_venues_keeps_the_basis_and_gives_the_cold_objective(seed):
    market, snaps, limits = _market(seed)
    venues = tuple(s.venue for s in snaps)
    c1 = build_cycle(snaps, market.portfolio, limits, SETTINGS, HOME, linear=None)
    linear = c1.linear_fit()
    first = AllocationModel(venues, limits, SETTINGS, HOME, linear=linear)
    c1 = build_cycle(
        snaps, market.portfolio, limits, SETTINGS, HOME, linear=linear, fit_cache=first.fit_cache
    )
    first.update(c1)
    assert first.solve().status == "optimal"
    i, changed = _curve_a_flat_venue(snaps, seed, c1)
    assert linear[i]
    now_linear = linear.copy()
    now_linear[i] = False
    rebuilt = AllocationModel(venues, limits, SETTINGS, HOME, linear=now_linear, previous=first)
    assert rebuilt.fit_cache is first.fit_cache
    c2 = build_cycle(
        changed,
        market.portfolio,
        limits,
        SETTINGS,
        HOME,
        linear=now_linear,
        fit_cache=rebuilt.fit_cache,
    )
    assert rebuilt.fit_cache.refitted == 1  # only the venue that turned curved
    rebuilt.update(c2)
    warm = rebuilt.solve()
    assert rebuilt.segment is not None and rebuilt.segment.warm_solves == 1
    cold_model, cold = _cold(venues, limits, now_linear, c2)
    assert cold_model.segment is not None and cold_model.segment.warm_solves == 0
    assert warm.status == cold.status == "optimal"
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9, abs=1e-12)
    # the cvxpy reference, solved tightly (at Clarabel's default 1e-7 its Σ t exceeds g(x) by its
    # slack: 6e-6 relative here)
    cold_model.problem.solve(
        solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, ignore_dpp=True
    )
    assert warm.objective == pytest.approx(cold_model.problem.value, rel=1e-8)


def test_a_venue_turning_curved_rebuilds_warm_and_a_fresh_optimizer_decides_the_same():
    market, snaps, limits = _market(7)
    opt = Optimizer(limits, SETTINGS, HOME)
    d1 = opt.decide(snaps, market.portfolio, T0, memory=EMPTY_MEMORY)
    assert d1.status == "optimal"
    model = opt._model
    assert model is not None
    assert model._cycle is not None
    i, changed = _curve_a_flat_venue(snaps, 7, model._cycle)
    assert model.linear[i]
    at = T0 + timedelta(hours=1)
    d2 = opt.decide(changed, market.portfolio, at, memory=d1.memory)
    assert d2.status == "optimal" and d2.rebuilt and opt._model is not model
    new = opt._model
    assert new is not None and new.segment is not None
    assert not new.linear[i] and np.array_equal(
        np.delete(new.linear, i), np.delete(model.linear, i)
    )
    assert new.segment.warm_solves >= 1 and new.fit_cache is model.fit_cache
    fresh = Optimizer(limits, SETTINGS, HOME).decide(
        changed, market.portfolio, at, memory=d1.memory
    )
    assert fresh.status == "optimal" and fresh.allocation is not None and d2.allocation is not None
    for vid, usd in d2.allocation.target_usd.items():
        assert fresh.allocation.target_usd[vid] == pytest.approx(
            usd, abs=1e-6 * market.portfolio.nav_usd
        )
    assert fresh.objective_usd == pytest.approx(d2.objective_usd, rel=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_bounds_only_re_solve_equals_a_cold_solve(seed):
    market, snaps, limits = _market(seed, venues=80)
    rng = np.random.default_rng(seed)
    snaps = tuple(drift(snaps, rng, T0, vol=0.05))
    venues = tuple(s.venue for s in snaps)
    probe = build_cycle(snaps, market.portfolio, limits, SETTINGS, HOME)
    linear = probe.linear_fit()
    model = AllocationModel(venues, limits, SETTINGS, HOME, linear=linear)
    cycle = build_cycle(snaps, market.portfolio, limits, SETTINGS, HOME, linear=linear)
    model.update(cycle)
    assert model.solve().status == "optimal"
    seg = model.segment
    assert seg is not None
    # width-0 columns (the two-chord venues' spare slots) are not passed to HiGHS
    assert seg._cols is not None and seg._cols.ncol < seg._cols.full_ncol
    for reserve in (1e-7, 1e-4, 0.05):  # a hair (the basis still fits), more, far more
        again = dataclasses.replace(cycle, idle_reserve=reserve)
        model.update(again)
        warm = model.solve()
        _, cold = _cold(venues, limits, linear, again)
        assert warm.status == cold.status
        if cold.status == "optimal":
            assert warm.objective == pytest.approx(cold.objective, rel=1e-9, abs=1e-12)
            assert warm.x is not None and cold.x is not None
            assert float(warm.x.sum()) == pytest.approx(float(cold.x.sum()), abs=1e-8)
    assert seg.rhs_only_solves >= 1  # at least the hair was taken from the basis


def test_a_hint_on_x0_takes_no_breakpoint_from_the_budget():
    curves = [LPCurve(fees_usd=60_000.0, tvl_usd=1_000_000.0, sigma=0.1) for _ in range(3)]
    lb, ub = np.zeros(3), np.full(3, 2_000_000.0)
    x0 = np.array([150_000.0, 400_000.0, 0.0])
    kw = dict(pieces=8, samples=128, emission_haircut=0.5)
    plain = fit_pwl(curves, lb, ub, x0, **kw)
    on_x0 = fit_pwl(curves, lb, ub, x0, hint_usd=x0.copy(), **kw)
    np.testing.assert_array_equal(on_x0.breakpoints, plain.breakpoints)
    np.testing.assert_array_equal(on_x0.slope, plain.slope)
    # a hint elsewhere is a breakpoint of its own, taken from the budget
    elsewhere = fit_pwl(curves, lb, ub, x0, hint_usd=x0 + 77_777.0, **kw)
    assert all(np.any(np.isclose(elsewhere.breakpoints[i], x0[i] + 77_777.0)) for i in range(3))
    assert np.unique(plain.breakpoints[0]).size == np.unique(elsewhere.breakpoints[0]).size
