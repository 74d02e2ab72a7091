"""Many Aave v3 supply curves at once: :func:`adapters.curves.aave_lending_curve`, vectorised.

A replay or a 1,000-reserve universe builds one curve per reserve per cycle; one build is ~40
small NumPy calls (the grid, the exact income on it, the peak's refinement, the concavity test),
~1.3 ms, almost all of it per-call overhead. :func:`aave_lending_curves` runs the *same* steps of
``EnvelopeCurve.__init__`` for every reserve in one set of ``[reserve, grid]`` array operations and
gives back the same ``adapters.envelope.EnvelopeCurve`` objects, bit for bit: every step is elementwise (IEEE
arithmetic does not depend on the array's shape), the grids are NumPy's own ``geomspace`` and
``linspace`` with array end points (the same values as one row at a time), and the peak search
keeps each row's own early stop. A pool above its kink (two local peaks, an income not concave on
its grid) is built here too: every peak refined and the best kept in ``EnvelopeCurve``'s order,
then ``_hull_bridges``' upper hull per row (:func:`adapters.hull_kernel.hull_edges`, the same kernel) and
``_refine_bridge``'s three alternating tangent searches for every bridge of every row at once
(:func:`_bridged`). A reserve whose build leaves these paths (a grid point that coincides with
another, no income at any size, no local peak, a corner point outside the domain) is built by
``EnvelopeCurve`` itself with ``aave_lending_curve``'s arguments, on the inlined income
(:func:`_scalar`). A test compares both on thousands of random reserves, bridged ones included.

The exact income is ``x * R_s(D / (D + L + x))`` with ``R_s = R_b(U) U (1 - RF)`` and ``R_b`` the
kinked ``DefaultReserveInterestRateStrategyV2`` curve (``protocols.aave.supply_apr_after_deposit``,
protocol_math.md §1.1), here with the strategy's fields as columns; the test pins it to the
protocol function's values exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from adapters.aave_income_kernel import supply_income_rows
from adapters.envelope import _GRID_POINTS, _REL_TOL, EnvelopeCurve, _Bridge
from adapters.hull_kernel import hull_edges
from protocols import aave

Matrix = NDArray[np.float64]
# the corner points EnvelopeCurve adds around a bend, in its order: b * (1 +- 10^-k), k = 1..7, then b
_BEND_FACTORS = np.array(
    [1.0 + sign * 10.0**-k for k in range(1, 8) for sign in (-1.0, 1.0)] + [1.0]
)
_PEAK_ROUNDS = 4  # EnvelopeCurve refines a peak with _argmax_in(rounds=4, points=33)
_PEAK_POINTS = 33


def _income(params: Matrix, debt: Matrix, liquidity: Matrix, x: Matrix) -> Matrix:
    """``x * supply_apr_after_deposit(strategy, D, L, x)`` per row (``params`` columns: base,
    slope1, slope2, Uopt, RF; ``debt``, ``liquidity`` ``[n, 1]``; ``x`` ``[n, m]``): the compiled
    loop (:mod:`adapters.aave_income_kernel`), the same values as :func:`_income_numpy` bit for
    bit; other shapes (a broadcast the loop does not index) take the NumPy expression."""
    n = params.shape[0]
    if (
        x.ndim == 2
        and x.shape[0] == n
        and debt.shape == (n, 1)
        and liquidity.shape == (n, 1)
        and params.shape == (n, 5)
    ):
        f64 = np.float64
        return supply_income_rows(
            params.astype(f64, copy=False),
            debt.astype(f64, copy=False),
            liquidity.astype(f64, copy=False),
            x.astype(f64, copy=False),
        )
    return _income_numpy(params, debt, liquidity, x)


def _income_numpy(params: Matrix, debt: Matrix, liquidity: Matrix, x: Matrix) -> Matrix:
    """The NumPy expression of :func:`_income` (any broadcastable shapes): the reference."""
    base, s1, s2, uopt, rf = (params[:, k : k + 1] for k in range(5))
    total = debt + liquidity + x
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(total > 0.0, debt / np.where(total > 0.0, total, 1.0), 0.0)
    below = base + s1 * u / uopt
    excess = (u - uopt) / (1.0 - uopt)
    above = base + s1 + s2 * excess
    rb = np.where(u <= uopt, below, above)
    return x * (rb * u * (1.0 - rf))


@dataclass(frozen=True, slots=True)
class AaveSupplyIncomeRows:
    """``adapters.curves.AaveSupplyIncome`` (``x * supply_apr_after_deposit(strategy, D, L, x)``)
    with the protocol function's operations inlined: the same values bit for bit (a test pins it),
    without its per-call input checks (the strategy was checked when it was made, ``D`` and ``L``
    when the batch was; a negative ``x`` is still refused). A curve is evaluated thousands of times
    a cycle by the optimizer's fit, checker and plan; the checks were most of that time."""

    strategy: aave.AaveRateStrategy
    debt_usd: float
    liquidity_usd: float

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        xs = np.asarray(x, dtype=np.float64)
        if xs.size and not xs.min() >= 0.0:
            raise ValueError(f"deposit must be >= 0, got {xs[~(xs >= 0.0)].ravel()[0]!r}")
        s = self.strategy
        total = self.debt_usd + self.liquidity_usd + xs
        if self.debt_usd + self.liquidity_usd > 0.0:
            u = self.debt_usd / total  # total > 0 everywhere: what the guarded form gives
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                u = np.where(total > 0.0, self.debt_usd / np.where(total > 0.0, total, 1.0), 0.0)
        below = s.base_variable_borrow_apr + s.slope1_apr * u / s.optimal_usage_ratio
        excess = (u - s.optimal_usage_ratio) / (1.0 - s.optimal_usage_ratio)
        above = s.base_variable_borrow_apr + s.slope1_apr + s.slope2_apr * excess
        rb = np.where(u <= s.optimal_usage_ratio, below, above)
        return xs * (rb * u * (1.0 - s.reserve_factor))


class AaveEnvelopeRows(EnvelopeCurve):
    """An ``EnvelopeCurve`` made by :func:`aave_lending_curves` on its common path (no hull bridge,
    no emissions, income :class:`AaveSupplyIncomeRows`), which the optimizer can also *evaluate* in
    batches: ``optimizer.pwl.evaluate_curves`` calls :meth:`batch_income_usd` once for all such
    curves of a cycle instead of ``income_usd`` once per curve (the fit, the checker and the plan
    evaluate every curve many times a cycle). Same values as ``income_usd``, bit for bit."""

    _row: tuple[float, float, float, float, float, float, float, float]

    @classmethod
    def batch_income_usd(
        cls, curves: Sequence[AaveEnvelopeRows], x_usd: Matrix, emission_haircut: float
    ) -> Matrix:
        """``income_usd`` of curve ``i`` at each ``x_usd[i, :]``: ``exact(clip(x, 0, capacity))``
        (no bridge to lay over it; no emission income, so the haircut changes nothing)."""
        rows = np.array([c._row for c in curves])
        x = np.clip(np.asarray(x_usd, dtype=np.float64), 0.0, rows[:, 7:8])
        return _income(rows[:, :5], rows[:, 5:6], rows[:, 6:7], x)


def aave_lending_curves(
    reserves: Sequence[tuple[aave.AaveRateStrategy, float, float]],
) -> list[EnvelopeCurve]:
    """``[aave_lending_curve(strategy, debt, liquidity) for ...]`` (no supply cap, no emissions):
    :class:`AaveEnvelopeRows` where the common path built it, the scalar builder's curve elsewhere."""
    n = len(reserves)
    if n == 0:
        return []
    strategies = [r[0] for r in reserves]
    debt = np.array([float(r[1]) for r in reserves])
    liquidity = np.array([float(r[2]) for r in reserves])
    params = np.array(
        [
            (
                s.base_variable_borrow_apr,
                s.slope1_apr,
                s.slope2_apr,
                s.optimal_usage_ratio,
                s.reserve_factor,
            )
            for s in strategies
        ]
    )
    others = debt + liquidity
    uopt = params[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        kink = np.where(debt > 0, debt / uopt - others, 0.0)
    top = np.maximum(8.0 * others, 1.0)
    fast = np.isfinite(top) & np.isfinite(kink)
    # the grid of EnvelopeCurve.__init__: 0, geometric, linear (its 0 and top are already there)
    grid = np.concatenate(
        (
            np.zeros((n, 1)),
            np.geomspace(top * 1e-9, top, _GRID_POINTS, axis=1),
            np.linspace(0.0, top, _GRID_POINTS // 2, axis=1)[:, 1:-1],
        ),
        axis=1,
    )
    bend = (kink > 0.0) & (kink < top)
    corners = kink[:, None] * _BEND_FACTORS[None, :]
    # every corner point must fall inside (0, top), else the row's grid is shorter: the scalar path
    fast &= ~bend | ((corners > 0.0) & (corners < top[:, None])).all(axis=1)
    curves: list[EnvelopeCurve | None] = [None] * n
    for has_bend in (False, True):
        rows = np.flatnonzero(fast & (bend == has_bend))
        if rows.size:
            g = grid[rows]
            if has_bend:
                g = np.concatenate((g, corners[rows]), axis=1)
            built = _build(g, params[rows], debt[rows], liquidity[rows])
            hulls: list[tuple[int, _Hull]] = [
                (k, c) for k, c in zip(rows.tolist(), built, strict=True) if isinstance(c, _Hull)
            ]
            if hulls:
                at = np.array([k for k, _ in hulls])
                bridges = _bridged(params[at], debt[at], liquidity[at], [c for _, c in hulls])
                for (k, hull), b in zip(hulls, bridges, strict=True):
                    curves[k] = _assemble(
                        strategies[k], float(debt[k]), float(liquidity[k]), hull.capacity_usd, b
                    )
            for k, curve in zip(rows.tolist(), built, strict=True):
                if isinstance(curve, float):
                    curves[k] = _assemble(strategies[k], float(debt[k]), float(liquidity[k]), curve)
    return [c if c is not None else _scalar(*reserves[k]) for k, c in enumerate(curves)]


def _scalar(
    strategy: aave.AaveRateStrategy, debt_usd: float, liquidity_usd: float
) -> EnvelopeCurve:
    """``aave_lending_curve(strategy, debt, liquidity)`` (its domain and kink, no cap, no
    emissions) on the inlined income :class:`AaveSupplyIncomeRows`: the same grid, peak search and
    hull bridges on the same values, without the protocol function's input checks in each of the
    ~100 evaluations a bridge's refinement makes (and in every evaluation the optimizer makes)."""
    debt, liquidity = float(debt_usd), float(liquidity_usd)
    others = debt + liquidity
    kink = debt / strategy.optimal_usage_ratio - others if debt > 0 else 0.0
    return EnvelopeCurve(
        AaveSupplyIncomeRows(strategy, debt, liquidity),
        domain_usd=max(8.0 * others, 1.0),
        breakpoints=(kink,),
    )


def _build(
    grid: Matrix, params: Matrix, debt: NDArray[np.float64], liquidity: NDArray[np.float64]
) -> list[float | _Hull | None]:
    """Per row the capacity of the curve ``EnvelopeCurve`` would build (concave on its grid), a
    :class:`_Hull` (its grid needs hull bridges), or None: take the scalar path."""
    n = grid.shape[0]
    d, liq = debt[:, None], liquidity[:, None]
    xs = np.sort(grid, axis=1)
    ok = (np.diff(xs, axis=1) > 0.0).all(axis=1)  # np.unique would drop a point: scalar
    f = _income(params, d, liq, xs)
    ok &= f.max(axis=1) > 0.0
    # the income's peaks: every local maximum of the grid (interior, or rising into the last
    # point), each refined, the best kept in EnvelopeCurve's order (interior cells left to right,
    # then the last cell; a later one wins only if strictly higher; the start is the last point)
    interior = (f[:, 1:-1] > f[:, :-2]) & (f[:, 1:-1] >= f[:, 2:])
    rising = f[:, -1] >= f[:, -2]
    ok &= interior.sum(axis=1) + rising >= 1
    width = xs.shape[1]
    pr, pc = np.nonzero(interior)  # row-major: each row's cells left to right
    rr = np.flatnonzero(rising)
    cell_rows = np.concatenate((pr, rr))
    lo = np.concatenate((xs[pr, pc], xs[rr, width - 2]))
    hi = np.concatenate((xs[pr, pc + 2], xs[rr, width - 1]))
    pd, pl = d[cell_rows], liq[cell_rows]
    lo, hi = _argmax_rows(params[cell_rows], pd, pl, lo, hi)
    peak = (lo + hi) / 2.0
    fpeak = _income(params[cell_rows], pd, pl, peak[:, None])[:, 0]
    last_x, last_f = xs[:, -1], f[:, -1]
    best, fbest = last_x.copy(), last_f.copy()
    for k, x, fx in zip(cell_rows.tolist(), peak.tolist(), fpeak.tolist(), strict=True):
        if fx > fbest[k]:
            best[k], fbest[k] = x, fx
    cut = best < last_x  # income falls past its peak: capacity stops there
    cap = np.where(cut, best, last_x)
    # the grid the scalar path keeps: the points below the peak, then the peak
    keep = np.where(cut, (xs < best[:, None]).sum(axis=1), width - 1)
    xs_t, f_t = xs.copy(), f.copy()
    r = np.arange(n)
    xs_t[r, keep] = np.where(cut, best, last_x)
    f_t[r, keep] = np.where(cut, fbest, last_f)
    length = keep + 1  # valid points per row
    # _hull_bridges' fast path: already concave on the grid (else a bridge: _bridged)
    col = np.arange(width)[None, :]
    valid = col < length[:, None]
    scale = np.maximum(np.where(valid, np.abs(f_t), 0.0).max(axis=1), 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = np.diff(f_t, axis=1) / np.diff(xs_t, axis=1)
        bend = np.diff(slopes, axis=1) * np.diff(xs_t, axis=1)[:, 1:]
    concave = np.where(
        col[:, : width - 2] < (length - 2)[:, None], bend <= _REL_TOL * scale[:, None], True
    )
    common = ok & (length >= 2)
    ok = common & concave.all(axis=1)
    out: list[float | _Hull | None] = [
        float(c) if good else None for c, good in zip(cap.tolist(), ok.tolist(), strict=True)
    ]
    for k in np.flatnonzero(common & ~ok).tolist():  # not concave on its grid: a hull bridge
        n_k = int(length[k])
        out[k] = _Hull(float(cap[k]), xs_t[k, :n_k], f_t[k, :n_k], float(scale[k]))
    return out


@dataclass(frozen=True, slots=True)
class _Hull:
    """A row whose exact income is not concave on its grid (``EnvelopeCurve``'s grid and values,
    the scale of its concavity test): its hull bridges are found by :func:`_bridged`."""

    capacity_usd: float
    xs: NDArray[np.float64]
    fs: NDArray[np.float64]
    scale: float


def _bracket_vec(
    g: Callable[[Matrix], Matrix], lo: NDArray[np.float64], hi: NDArray[np.float64], rounds: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The bracket ``[lo, hi]`` of each row's maximum of ``g`` after the grid search of
    ``adapters.envelope._argmax_in`` (33 points a round, each row stopping on its own test)."""
    lo, hi = lo.copy(), hi.copy()
    live = np.ones(lo.shape[0], dtype=bool)
    r = np.arange(lo.shape[0])
    for _ in range(rounds):
        if not live.any():
            break
        xs = np.linspace(lo, hi, _PEAK_POINTS, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            i = np.argmax(g(xs), axis=1)
        new_lo = xs[r, np.maximum(i - 1, 0)]
        new_hi = xs[r, np.minimum(i + 1, _PEAK_POINTS - 1)]
        lo, hi = np.where(live, new_lo, lo), np.where(live, new_hi, hi)
        live &= ~(hi - lo <= 1e-12 * np.maximum(1.0, np.abs(hi)))
    return lo, hi


def _argmax_vec(
    g: Callable[[Matrix], Matrix], lo: NDArray[np.float64], hi: NDArray[np.float64], rounds: int
) -> NDArray[np.float64]:
    """``adapters.envelope._argmax_in(g_row, lo, hi, rounds)`` per row: the bracket's middle."""
    lo, hi = _bracket_vec(g, lo, hi, rounds)
    out: NDArray[np.float64] = (lo + hi) / 2.0
    return out


def _bridged(
    params: Matrix, debt: NDArray[np.float64], liquidity: NDArray[np.float64], hulls: list[_Hull]
) -> list[tuple[_Bridge, ...]]:
    """Each row's bridges as ``adapters.envelope._refine_bridge`` makes them (three alternations of
    the left end's and the right end's tangent search), every bridge of every row at once: the
    same expressions elementwise, each search with its row's own early stop."""
    edges = [
        (k, a, b)
        for k, h in enumerate(hulls)
        for a, b in hull_edges(h.xs, h.fs, _REL_TOL * h.scale).tolist()
    ]
    out: list[list[_Bridge]] = [[] for _ in hulls]
    if not edges:
        return [()] * len(hulls)
    rows = np.array([k for k, _, _ in edges])
    prm, d, liq = params[rows], debt[rows][:, None], liquidity[rows][:, None]

    def f(v: Matrix) -> Matrix:
        return _income(prm, d, liq, v)

    def fx(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return _income(prm, d, liq, v[:, None])[:, 0]

    def pick(k: int, i: int) -> float:
        return float(hulls[k].xs[i])

    lo_a = np.array([pick(k, max(a - 1, 0)) for k, a, _ in edges])
    hi_a = np.array([pick(k, a + 1) for k, a, _ in edges])
    lo_b = np.array([pick(k, b - 1) for k, _, b in edges])
    hi_b = np.array([pick(k, min(b + 1, len(hulls[k].xs) - 1)) for k, _, b in edges])
    xa = np.array([pick(k, a) for k, a, _ in edges])
    xb = np.array([pick(k, b) for k, _, b in edges])
    fa, fb = fx(xa), fx(xb)
    for _ in range(3):
        top_a = np.minimum(hi_a, xb * (1 - 1e-12))
        xb_c, fb_c = xb[:, None], fb[:, None]

        def left_end(v: Matrix, xb_c: Matrix = xb_c, fb_c: Matrix = fb_c) -> Matrix:
            out: Matrix = -(fb_c - f(v)) / (xb_c - v)
            return out

        xa = _argmax_vec(left_end, lo_a, top_a, 6)
        fa = fx(xa)
        bottom_b = np.maximum(lo_b, xa * (1 + 1e-12) + 1e-12)
        xa_c, fa_c = xa[:, None], fa[:, None]

        def right_end(v: Matrix, xa_c: Matrix = xa_c, fa_c: Matrix = fa_c) -> Matrix:
            out: Matrix = (f(v) - fa_c) / (v - xa_c)
            return out

        xb = _argmax_vec(right_end, bottom_b, hi_b, 6)
        fb = fx(xb)
    for (k, _, _), x_a, x_b, f_a, f_b in zip(
        edges, xa.tolist(), xb.tolist(), fa.tolist(), fb.tolist(), strict=True
    ):
        out[k].append(_Bridge(x_a, x_b, f_a, f_b))
    return [tuple(b) for b in out]


def _argmax_rows(
    params: Matrix, d: Matrix, liq: Matrix, lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``adapters.curves._argmax_in`` per row (each row stops on its own test): the bracket."""
    return _bracket_vec(lambda xs: _income(params, d, liq, xs), lo, hi, _PEAK_ROUNDS)


def _assemble(
    strategy: aave.AaveRateStrategy,
    debt: float,
    liquidity: float,
    capacity_usd: float,
    bridges: tuple[_Bridge, ...] = (),
) -> EnvelopeCurve:
    """The EnvelopeCurve ``__init__`` would have made (the exact income, its capacity, its
    bridges), its income function the inlined :class:`AaveSupplyIncomeRows`; without bridges an
    :class:`AaveEnvelopeRows` (evaluated in batches)."""
    if bridges:
        bridged = EnvelopeCurve.__new__(EnvelopeCurve)
        bridged._exact_real = AaveSupplyIncomeRows(strategy, debt, liquidity)
        bridged._exact_emission = None
        bridged._bridges = bridges
        bridged.capacity_usd = capacity_usd
        return bridged
    curve = AaveEnvelopeRows.__new__(AaveEnvelopeRows)
    curve._exact_real = AaveSupplyIncomeRows(strategy, debt, liquidity)
    curve._exact_emission = None
    curve._bridges = ()
    curve.capacity_usd = capacity_usd
    s = strategy
    curve._row = (
        s.base_variable_borrow_apr,
        s.slope1_apr,
        s.slope2_apr,
        s.optimal_usage_ratio,
        s.reserve_factor,
        debt,
        liquidity,
        capacity_usd,
    )
    assert math.isfinite(capacity_usd)
    return curve
