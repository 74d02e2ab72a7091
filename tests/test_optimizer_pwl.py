"""The PWL fit: chords below the curve, within the reported bound, pieces where the curvature is."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.pwl import fit_pwl
from optimizer.testing import DilutionCurve, FlatCurve, KinkedLendingCurve, LPCurve, TieredCurve


def curves():
    return [
        DilutionCurve(interest_usd=80_000, supply_usd=500_000, emission_usd=20_000),
        DilutionCurve(interest_usd=5_000, supply_usd=20_000),
        LPCurve(fees_usd=150_000, tvl_usd=1_000_000, sigma=0.4),
        KinkedLendingCurve(supply_usd=1_000_000, borrow_usd=880_000),
        TieredCurve(0.08, 0.03, tier_usd=120_000),
        FlatCurve(0.04),
    ]


@pytest.mark.parametrize("method", ["quantile", "greedy"])
@pytest.mark.parametrize("pieces", [2, 4, 8])
def test_chords_lie_below_the_curve_within_the_bound(method, pieces):
    cs = curves()
    n = len(cs)
    lb = np.array([0.0, 1_000.0, 0.0, 0.0, 50_000.0, 0.0])
    ub = np.minimum([2e6, 3e5, 8e5, 4e6, 6e5, 1e6], [c.capacity_usd for c in cs])
    x0 = np.array([0.0, 20_000.0, 100_000.0, 0.0, 60_000.0, 5e5])
    assert np.all(lb <= x0) and np.all(x0 <= ub)
    pwl = fit_pwl(cs, lb, ub, x0, pieces, 96, 0.5, method=method)
    xs = lb[:, None] + (ub - lb)[:, None] * np.linspace(0.0, 1.0, 4001)[None, :]
    for i, c in enumerate(cs):
        f = c.income_usd(xs[i], 0.5)
        fh = np.min(pwl.slope[i][None, :] * xs[i][:, None] + pwl.intercept[i][None, :], axis=1)
        gap = f - fh
        scale = 1e-9 * (1 + abs(f).max())
        assert gap.min() >= -scale, (i, gap.min())
        assert gap.max() <= pwl.error_bound_usd[i] + scale, (i, gap.max(), pwl.error_bound_usd[i])
        # the bound per piece holds on that piece, and no piece's bound exceeds the venue's
        bp = pwl.breakpoints[i]
        for k in range(pwl.pieces):
            on = (xs[i] >= bp[k]) & (xs[i] <= bp[k + 1])
            if on.any():
                assert gap[on].max() <= pwl.piece_error_usd[i, k] + scale, (i, k)
        assert pwl.piece_error_usd[i].max() <= pwl.error_bound_usd[i] + scale
        # error_near_usd at a breakpoint: the larger bound of the two pieces that meet there
        j = int(np.argmax(bp > bp[0]))
        near = pwl.error_near_usd(np.where(np.arange(n) == i, bp[j], lb))[i]
        assert near == max(pwl.piece_error_usd[i, j - 1], pwl.piece_error_usd[i, j])
        # exact at the forced breakpoints lb, x0, ub
        for x in (lb[i], x0[i], ub[i]):
            assert np.min(pwl.slope[i] * x + pwl.intercept[i]) == pytest.approx(
                float(c.income_usd(np.array([x]), 0.5)[0]), abs=scale + 1e-6
            )
    assert pwl.slope.shape == (n, pieces + 1)


def test_more_pieces_shrink_the_error():
    cs = curves()[:5]
    cs[3] = DilutionCurve(interest_usd=30_000, supply_usd=100_000)
    lb, ub, x0 = np.zeros(5), np.full(5, 5e5), np.zeros(5)
    errors = [fit_pwl(cs, lb, ub, x0, k, 96, 0.0).error_bound_usd.sum() for k in (2, 4, 8, 16)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.1 * errors[0]


def test_a_kink_gets_a_breakpoint_and_a_line_gets_none():
    tiered = TieredCurve(0.08, 0.03, tier_usd=123_456)
    pwl = fit_pwl([tiered, FlatCurve(0.05)], np.zeros(2), np.full(2, 4e5), np.zeros(2), 4, 96, 0.0)
    nearest = np.min(np.abs(pwl.breakpoints[0] - 123_456))
    assert nearest < 4e5 / 50  # on a grid node next to the kink
    assert list(pwl.linear()) == [False, True]


def test_hint_is_exact_and_window_gathers_breakpoints():
    c = DilutionCurve(interest_usd=80_000, supply_usd=500_000)
    hint = np.array([300_000.0])
    pwl = fit_pwl(
        [c],
        np.zeros(1),
        np.full(1, 1e6),
        np.zeros(1),
        8,
        96,
        0.0,
        hint_usd=hint,
        window_usd=(np.array([250_000.0]), np.array([350_000.0])),
        window_share=0.9,
    )
    assert np.min(pwl.slope[0] * 300_000 + pwl.intercept[0]) == pytest.approx(
        float(c.income_usd(hint)[0]), rel=1e-12
    )
    inside = ((pwl.breakpoints[0] >= 250_000) & (pwl.breakpoints[0] <= 350_000)).sum()
    assert inside >= 5


def test_a_forced_node_a_hair_from_a_grid_node_does_not_bend_the_fit():
    # the daemon's steady state: last cycle's solution sat on a breakpoint (a grid node); this cycle the
    # domain's top moved by a rounding error (5e6 -> 4999999.999999999), so the same position is now a
    # hair (~1e-9 USD) from a grid node. That cell's chord is noise (f's rounding / 1e-9: measured -0.06)
    # and the concavity fix used to drag every slope right of it down: the piece [x0, ub] of an
    # increasing curve came out with slope -0.0625, and the optimizer held 2.8M where 3.3M was optimal
    # (bench quality seed 4 steady state: 0.67 % gap)
    c = LPCurve(fees_usd=698710.0479862315, tvl_usd=4203781.583079804, sigma=0.3575186318219709)
    x0 = 2765957.446808511  # 26/47 of 5e6: a node of the uniform grid on [0, 5e6]
    for hint in (2765957.4468085095, x0):
        for ub in (5e6, 4999999.999999999):
            pwl = fit_pwl(
                [c],
                np.array([0.0]),
                np.array([ub]),
                np.array([x0]),
                8,
                96,
                0.5,
                hint_usd=np.array([hint]),
                window_usd=(np.array([2074468.0851063821]), np.array([ub])),
            )
            assert np.all(pwl.slope[0] > 0.0), pwl.slope[0]
            assert np.all(np.diff(pwl.slope[0]) <= 1e-12), pwl.slope[0]
            xs = np.linspace(0.0, ub, 4001)
            fh = np.min(pwl.slope[0][None, :] * xs[:, None] + pwl.intercept[0][None, :], axis=1)
            gap = c.income_usd(xs, 0.5) - fh
            assert gap.min() >= -1e-6 and gap.max() <= pwl.error_bound_usd[0] + 1e-6


def test_batch_income_equals_income_for_every_test_curve() -> None:
    """``evaluate_curves`` takes a class's batch method when it has one: it must agree with
    ``income_usd`` everywhere, beyond capacity too (the LP batch once kept falling there)."""
    from optimizer.pwl import evaluate_curves
    from optimizer.testing import random_market

    snaps = random_market(200, 3).snapshots
    curves = [s.curve for s in snaps]
    caps = np.array([c.capacity_usd if np.isfinite(c.capacity_usd) else 1e7 for c in curves])
    x = np.stack([np.zeros(len(curves)), 0.5 * caps, caps, 3.0 * caps], axis=1)
    batched = evaluate_curves(curves, x, 0.5)
    one_by_one = np.array([c.income_usd(x[i], 0.5) for i, c in enumerate(curves)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-12, atol=1e-9)


def test_incremental_fit_refits_only_what_changed_and_equals_a_full_fit() -> None:
    """With a FitCache, a venue whose curve samples, domain, forced breakpoints and window are what
    they were gets its cached pieces; the result equals a fit from scratch, row for row."""
    from optimizer.pwl import FitCache
    from optimizer.testing import random_market

    snaps = random_market(120, 5).snapshots
    curves = [s.curve for s in snaps]
    n = len(curves)
    lb = np.zeros(n)
    ub = np.full(n, 2e6)
    x0 = np.linspace(0.0, 1e6, n)
    hint = np.where(np.arange(n) % 3 == 0, 5e5, np.nan)
    window = (hint - 1e5, hint + 1e5)
    cache = FitCache()
    args = dict(pieces=8, samples=96, emission_haircut=0.5, hint_usd=hint, window_usd=window)
    first = fit_pwl(curves, lb, ub, x0, cache=cache, **args)
    assert cache.refitted == n
    # a tenth of the venues change: three curves are replaced, others move their position or window
    changed = [LPCurve(1e5, 3e7, 0.3), DilutionCurve(2e5, 5e7), FlatCurve(0.04)]
    curves2 = list(curves)
    for k, c in zip((4, 40, 80), changed, strict=True):
        curves2[k] = c
    x0b = x0.copy()
    x0b[[7, 8, 9]] += 1234.5
    hint2 = hint.copy()
    hint2[[30, 33]] = 7e5
    window2 = (hint2 - 1e5, hint2 + 1e5)
    args2 = dict(args, hint_usd=hint2, window_usd=window2)
    inc = fit_pwl(curves2, lb, ub, x0b, cache=cache, **args2)
    assert cache.refitted == 8
    full = fit_pwl(curves2, lb, ub, x0b, **args2)
    for name in ("slope", "intercept", "breakpoints", "error_bound_usd", "income_ub_usd"):
        np.testing.assert_array_equal(getattr(inc, name), getattr(full, name), err_msg=name)
    # the unchanged rows are the first fit's
    keep = np.setdiff1d(np.arange(n), [4, 40, 80, 7, 8, 9, 30, 33])
    np.testing.assert_array_equal(inc.breakpoints[keep], first.breakpoints[keep])
    # nothing changed: nothing refitted
    fit_pwl(curves2, lb, ub, x0b, cache=cache, **args2)
    assert cache.refitted == 0
