"""The fast paths of issue 13 compute what the code they replaced computed: the compiled PWL fit
and grid against the NumPy fit and ``np.sort``, a bridge leg's fee in plain floats against
``np.interp``, the checker's cached venue facts and per-venue caps against a fresh build and a
scalar rule per venue, and Parameters set without cvxpy's checks still checked before cvxpy solves."""

from __future__ import annotations

import math

import numpy as np
import pytest

import optimizer.pwl as pwl
from optimizer.bench_markets import all_limits
from optimizer.checker import CheckContext
from optimizer.checker_facts import VenueFacts
from optimizer.config import OptimizerSettings
from optimizer.costs import ConvexCost
from optimizer.cycle import build_cycle
from optimizer.limits import put, validate_parameters
from optimizer.model import AllocationModel
from optimizer.pwl_kernel import rows_equal, sorted_grid
from optimizer.testing import CHAINS, DilutionCurve, FlatCurve, LPCurve, random_market

FIELDS = (
    "slope",
    "intercept",
    "breakpoints",
    "error_bound_usd",
    "income_ub_usd",
    "piece_error_usd",
)


def _fit_inputs(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    market = random_market(n, seed, invested_share=0.6)
    curves = [s.curve for s in market.snapshots]
    lb = rng.uniform(0, 1e4, n) * (rng.uniform(size=n) < 0.3)
    ub = lb + rng.uniform(1e4, 5e6, n)
    x0 = lb + (ub - lb) * rng.uniform(0, 1, n) * (rng.uniform(size=n) < 0.6)
    hint = np.where(rng.uniform(size=n) < 0.5, lb + (ub - lb) * rng.uniform(0, 1, n), np.nan)
    # a hint a hair from a grid node (the simplex's vertex after the domain moved by rounding)
    hint[:20] = lb[:20] + (ub[:20] - lb[:20]) * 0.5 + 1e-9
    window = (hint * 0.8, hint * 1.2) if seed % 2 else None
    budget = np.where(rng.uniform(size=n) < 0.3, 0, 7).astype(float)
    return curves, lb, ub, x0, hint, window, budget


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_compiled_fit_is_the_numpy_fit(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    curves, lb, ub, x0, hint, window, budget = _fit_inputs(seed)
    args = dict(split_budget=budget, hint_usd=hint, window_usd=window)
    fast = pwl.fit_pwl(curves, lb, ub, x0, 8, 128, 0.5, **args)  # type: ignore[arg-type]
    monkeypatch.setattr(pwl, "_fit_rows", pwl._fit_rows_numpy)
    slow = pwl.fit_pwl(curves, lb, ub, x0, 8, 128, 0.5, **args)  # type: ignore[arg-type]
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.shape == b.shape, name
        # the same arithmetic in the same order: equal to the bit (NaN where NumPy has NaN)
        assert np.array_equal(a, b, equal_nan=True), (name, np.nanmax(np.abs(a - b)))


def test_the_merged_grid_is_the_sorted_grid() -> None:
    rng = np.random.default_rng(5)
    n = 300
    lb = rng.uniform(0, 1e5, n)
    width = rng.uniform(1e-6, 1e7, n)
    g = np.unique(np.concatenate([np.linspace(0, 1, 64), np.geomspace(1e-4, 1, 64)[:-1]]))
    x0 = lb + width * rng.choice([0.0, 0.3, 1.0], n)
    hint = lb + width * rng.uniform(0, 1, n)
    cap = np.where(rng.uniform(size=n) < 0.5, x0, lb + width * g[rng.integers(0, len(g), n)])
    ref = np.concatenate(
        [lb[:, None] + width[:, None] * g[None, :], x0[:, None], hint[:, None], cap[:, None]],
        axis=1,
    )
    ref.sort(axis=1)
    assert np.array_equal(sorted_grid(lb, width, g, x0, hint, cap), ref)


def test_one_legs_fee_in_floats_is_the_array_fee() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        k = int(rng.integers(1, 6))
        amounts = np.sort(rng.uniform(1.0, 1e6, k))
        costs = amounts * np.sort(rng.uniform(0.0, 0.01, k))
        curve = ConvexCost.from_samples(amounts, costs)
        points = [*rng.uniform(-10.0, 2e6, 12), *curve.amounts_usd, 0.0]
        for a in points:
            assert curve.at(float(a)) == float(curve(np.array([a]))[0])
            assert float(curve(float(a))) == curve.at(float(a))


def _checker_case(seed: int):
    market = random_market(300, seed, invested_share=0.6)
    limits = all_limits(market)
    return market, limits, OptimizerSettings()


def test_cached_venue_facts_equal_a_fresh_build() -> None:
    market, limits, settings = _checker_case(1)
    snaps = market.snapshots
    cached = VenueFacts.of(snaps, limits, settings, CHAINS[0])
    assert VenueFacts.of(snaps, limits, settings, CHAINS[0]) is cached  # same venue set: reused
    fresh = VenueFacts.build(tuple(s.venue for s in snaps), limits, settings, CHAINS[0])
    for name in VenueFacts.__slots__:
        a, b = getattr(cached, name), getattr(fresh, name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), name
        elif name == "groups":
            assert [g[:3] for g in a] == [g[:3] for g in b]
            assert all(np.array_equal(x[3], y[3]) for x, y in zip(a, b, strict=True))
        elif name == "floor_masks":
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        else:
            assert a == b, name
    # another home chain is another key
    assert VenueFacts.of(snaps, limits, settings, CHAINS[1]) is not cached


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_venue_caps_match_a_scalar_rule_on_random_plans(seed: int) -> None:
    """The checker's per-venue caps (USD, share of NAV, share of TVL after us) against the rule
    written out per venue: ``x_i > max(cap_i, stay_i) + τ`` breaks it, utilisation ``x_i / allowed``."""
    market, limits, settings = _checker_case(seed)
    snaps, portfolio = market.snapshots, market.portfolio
    ctx = CheckContext(snaps, portfolio, limits, settings, CHAINS[0])
    nav = portfolio.nav_usd
    tol = settings.check_tolerance_ratio * nav
    rng = np.random.default_rng(seed)
    seen = 0
    for _ in range(20):
        x = ctx.x0 * rng.uniform(0.0, 3.0, len(snaps)) + rng.exponential(0.02 * nav, len(snaps))
        x[rng.uniform(size=len(x)) < 0.2] = 0.0
        rep = ctx.check(x, idle_usd=max(nav - float(x.sum()), 0.0))
        for name, caps in (
            ("venue_usd", [limits.max_venue_usd] * len(snaps)),
            ("venue_ratio", [limits.max_venue_ratio * nav] * len(snaps)),
            (
                "venue_tvl",
                [
                    limits.max_venue_tvl_ratio
                    * max(s.tvl_usd, 0.0)
                    / (1 - limits.max_venue_tvl_ratio)
                    for s in snaps
                ],
            ),
        ):
            broken, util = [], 0.0
            for i, s in enumerate(snaps):
                held = float(ctx.x0[i])
                stay = held - min(held, max(s.exit_liquidity_usd, 0.0))
                allowed = max(float(caps[i]), stay)
                if allowed > 0:
                    util = max(util, float(x[i]) / allowed)
                elif x[i] > 0:
                    util = math.inf
                if x[i] > allowed + tol:
                    broken.append(s.venue.id)
            said = [v.split(" ")[2] for v in rep.violations if v.startswith(f"{name}: venue ")]
            assert said == broken, name
            seen += len(broken)
            assert rep.utilization[f"{name}:max"] == pytest.approx(util, rel=1e-12), name
    assert seen > 0  # the random plans do break the caps


def test_parameters_set_unchecked_are_checked_before_cvxpy_solves() -> None:
    market, limits, settings = _checker_case(0)
    snaps = market.snapshots[:40]
    cycle = build_cycle(snaps, market.portfolio, limits, settings, CHAINS[0])
    model = AllocationModel(tuple(s.venue for s in snaps), limits, settings, CHAINS[0])
    model.update(cycle)
    validate_parameters(model.problem)  # what update set passes cvxpy's own checks
    box = model.limits[0]
    put(box.lb, -np.ones(len(snaps)))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="nonnegative"):
        validate_parameters(model.problem)
    assert model.solve_cvxpy().status == "solver_error"


def _numpy_batches(curves, x: np.ndarray, h: float) -> dict[str, np.ndarray]:
    """The NumPy expressions ``testing.py``'s batches were before they were compiled."""
    dil = [c for c in curves if isinstance(c, DilutionCurve)]
    lp = [c for c in curves if isinstance(c, LPCurve)]
    flat = [c for c in curves if isinstance(c, FlatCurve)]
    col = lambda v: np.array(v)[:, None]  # noqa: E731
    xd = np.minimum(x[: len(dil)], col([c.capacity_usd for c in dil]))
    xl = np.minimum(x[: len(lp)], col([c.capacity_usd for c in lp]))
    return {
        "dilution": (
            col([c.interest_usd for c in dil]) + (1.0 - h) * col([c.emission_usd for c in dil])
        )
        * xd
        / (col([c.supply_usd for c in dil]) + xd),
        "lp": (col([c.fees_usd for c in lp]) + (1.0 - h) * col([c.emission_usd for c in lp]))
        * xl
        / (col([c.tvl_usd for c in lp]) + xl)
        - col([c.sigma**2 / 8.0 for c in lp]) * xl,
        "flat": col([c.apr_value + (1.0 - h) * c.emission_apr for c in flat])
        * np.minimum(x[: len(flat)], col([c.capacity_usd for c in flat])),
    }


@pytest.mark.parametrize("h", [0.0, 0.5, 1.0])
def test_the_compiled_test_curves_are_the_numpy_expressions(h: float) -> None:
    rng = np.random.default_rng(11)
    k = 60
    caps = np.where(rng.uniform(size=k) < 0.4, np.inf, rng.uniform(1e3, 1e6, k))
    dil = [
        DilutionCurve(
            rng.uniform(0, 1e5), rng.uniform(0, 1e6) * (i % 7 != 0), rng.uniform(0, 1e4), caps[i]
        )
        for i in range(k)
    ]
    lp = [
        LPCurve(
            rng.uniform(0, 1e5), rng.uniform(1e3, 1e6), rng.uniform(0, 0.6), rng.uniform(0, 1e4)
        )
        for _ in range(k)
    ]
    flat = [FlatCurve(rng.uniform(0, 0.1), caps[i], rng.uniform(0, 0.02)) for i in range(k)]
    x = rng.uniform(0, 2e6, (k, 41))
    x[:, 0] = 0.0  # S + x = 0 where a supply is 0: NaN in both
    x[:, 1] = caps  # on the capacity
    x[::9, 2] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = _numpy_batches(dil + lp + flat, x, h)
    got = {
        "dilution": DilutionCurve.batch_income_usd(dil, x, h),
        "lp": LPCurve.batch_income_usd(lp, x, h),
        "flat": FlatCurve.batch_income_usd(flat, x, h),
    }
    for name in ref:
        assert np.array_equal(got[name], ref[name], equal_nan=True), name
    # a non-contiguous (column-sliced) x gives the same
    assert np.array_equal(
        DilutionCurve.batch_income_usd(dil, x[:, ::2], h), ref["dilution"][:, ::2], equal_nan=True
    )


def test_the_compiled_row_comparison_is_the_numpy_one() -> None:
    rng = np.random.default_rng(4)
    old = rng.uniform(size=(200, 30))
    old[rng.uniform(size=old.shape) < 0.05] = np.nan
    new = old.copy()
    rows = rng.choice(200, 60, replace=False)
    new[rows, rng.integers(0, 30, 60)] += 1e-12  # a hair is a difference
    new[::17, 3] = np.nan  # NaN where a number was: a difference; NaN where NaN was: equal
    same = np.ones(200, dtype=bool)
    same[::23] = False  # already different rows stay different
    want = same & ((old == new) | (np.isnan(old) & np.isnan(new))).all(axis=1)
    rows_equal(old, new, same)
    assert np.array_equal(same, want)
