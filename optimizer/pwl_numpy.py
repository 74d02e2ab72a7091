"""The PWL fit in NumPy, array by array over all venues: the reference the compiled quantile fit
(:mod:`optimizer.pwl_kernel`) is compared with to the bit, and the path of ``pwl_method: greedy``.
The math is :func:`optimizer.pwl.fit_pwl`'s (README §2)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
_Fit = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


def _fit_rows_numpy(
    grid: FloatArray,
    f: FloatArray,
    width: FloatArray,
    x0: FloatArray,
    hint: FloatArray,
    has_hint: NDArray[np.bool_],
    budget: NDArray[np.int64],
    window_usd: tuple[FloatArray, FloatArray] | None,
    pieces: int,
    method: str,
    window_share: float,
) -> _Fit:
    """The fit of each row of samples ``f`` on ``grid``: (slope, intercept, breakpoints, error
    bound, f̂ at ub), see :func:`fit_pwl`."""
    n, m = grid.shape
    h = np.diff(grid, axis=1)
    # a cell narrower than rounding (a forced node a hair from a grid node: last cycle's solution, which
    # the simplex puts on a breakpoint, i.e. a grid node, after the domain moved by a rounding error)
    # has a noise slope, f's rounding error / h (measured: -0.06 on a 1e-9 USD cell); through the
    # concavity fix below it would pull every slope to its right down with it. Treat it as empty.
    tiny = 1e-9 * width[:, None]
    h = np.where(h > tiny, h, 0.0)
    safe_h = np.where(h > 0, h, 1.0)
    cell_slope = np.where(h > 0, np.diff(f, axis=1) / safe_h, np.nan)
    # duplicate nodes (x0 on a grid node) give empty cells: borrow the neighbour's slope
    cell_slope = _fill_nan_forward(cell_slope)
    # enforce concavity against sampling noise: slopes may only fall (never raises f̂ above f)
    cell_slope = np.minimum.accumulate(cell_slope, axis=1)
    f = np.concatenate([f[:, :1], f[:, :1] + np.cumsum(cell_slope * h, axis=1)], axis=1)

    cols = np.arange(m)[None, :].repeat(n, axis=0)
    is_bp = np.zeros((n, m), dtype=bool)
    is_bp[:, 0] = True
    is_bp[:, -1] = True
    for forced in (x0, hint):
        is_bp[
            np.arange(n),
            np.argmax(grid >= forced[:, None] - 1e-12 * (1 + np.abs(forced[:, None])), axis=1),
        ] = True
    budget = np.where(has_hint, np.maximum(budget - 1, 0), budget)
    if method == "quantile":
        weight = None
        if window_usd is not None:
            lo, hi = (np.asarray(w, dtype=float)[:, None] for w in window_usd)
            inner = grid[:, 1:-1]
            inside = (inner >= lo) & (inner <= hi) & np.isfinite(lo)
            # a share ``window_share`` of the quantile mass inside the window, the rest outside
            drop = np.maximum(cell_slope[:, :-1] - cell_slope[:, 1:], 0.0)
            mass = np.sqrt(drop * 0.5 * (h[:, :-1] + h[:, 1:]))
            m_in = (mass * inside).sum(axis=1, keepdims=True)
            m_out = (mass * ~inside).sum(axis=1, keepdims=True)
            w_in = window_share / np.where(m_in > 0, m_in, 1.0)
            w_out = (1.0 - window_share) / np.where(m_out > 0, m_out, 1.0)
            weight = np.where(m_in > 0, np.where(inside, w_in, w_out), 1.0)
        _quantile_breakpoints(cell_slope, h, is_bp, budget, weight)
        budget = np.zeros(n, dtype=np.int64)
    chord = _chord_values(grid, f, is_bp, cols)
    scale = 1e-12 * (1.0 + np.abs(f[:, -1]))
    for r in range(max(pieces - 1, 0)):
        gap = f - chord
        gap[is_bp] = -1.0
        j = np.argmax(gap, axis=1)
        useful = (gap[np.arange(n), j] > scale) & (budget > r)
        rows = np.nonzero(useful)[0]
        if len(rows) == 0:
            break
        # split the piece [l, r] holding node j into [l, j], [j, r]; only nodes inside it change
        jr = j[rows][:, None]
        bp_r = is_bp[rows]
        c_r = cols[rows]
        left = np.where(bp_r & (c_r < jr), c_r, -1).max(axis=1)[:, None]
        right = np.where(bp_r & (c_r > jr), c_r, m).min(axis=1)[:, None]
        g_r, f_r = grid[rows], f[rows]
        xl, xj, xr = (np.take_along_axis(g_r, k, axis=1) for k in (left, jr, right))
        fl, fj, fr = (np.take_along_axis(f_r, k, axis=1) for k in (left, jr, right))
        with np.errstate(divide="ignore", invalid="ignore"):
            on_left = fl + (g_r - xl) * np.where(xj > xl, (fj - fl) / (xj - xl), 0.0)
            on_right = fj + (g_r - xj) * np.where(xr > xj, (fr - fj) / (xr - xj), 0.0)
        new = np.where(
            (c_r > left) & (c_r <= jr),
            on_left,
            np.where((c_r > jr) & (c_r < right), on_right, chord[rows]),
        )
        chord[rows] = new
        is_bp[rows, j[rows]] = True
    gap = f - chord
    s_prev = np.concatenate([cell_slope[:, :1], cell_slope[:, :-1]], axis=1)
    s_next = np.concatenate([cell_slope[:, 1:], cell_slope[:, -1:]], axis=1)
    cell_between = h * np.maximum(s_prev - s_next, 0.0)
    between = np.max(cell_between, axis=1) / 4.0
    error = np.maximum(np.max(gap, axis=1), 0.0) + between

    n_bp = is_bp.sum(axis=1)
    p = pieces + 1
    bps = np.empty((n, p + 1))
    vals = np.empty((n, p + 1))
    order = np.argsort(~is_bp, axis=1, kind="stable")  # breakpoint columns first, in grid order
    for_rows = np.arange(n)[:, None]
    take = np.minimum(np.arange(p + 1)[None, :], (n_bp - 1)[:, None])
    sel = order[for_rows, take]
    bps[:] = grid[for_rows, sel]
    vals[:] = f[for_rows, sel]
    dx = np.diff(bps, axis=1)
    # a piece narrower than rounding (a forced breakpoint a hair from a grid node) has no meaningful
    # slope: its chord through two almost equal points is noise and could break concavity (and so
    # lower the min-of-lines below the interpolant); treat it as a padded piece (the slope on its left)
    wide = dx > np.maximum(1e-12 * (1.0 + np.abs(bps[:, 1:])), tiny)
    slope = np.where(wide, np.diff(vals, axis=1) / np.where(wide, dx, 1.0), np.nan)
    slope = _fill_nan_forward(slope)
    slope = np.where(np.isnan(slope), cell_slope[:, :1], slope)
    intercept = vals[:, :-1] - slope * bps[:, :-1]
    # the same bound per piece (README §2): piece b holds the nodes after its left breakpoint up to
    # its right one and the cells that start in it
    piece = np.cumsum(is_bp, axis=1) - 1
    inner = ~is_bp
    piece_error = np.zeros((n, p))
    for b in range(p):
        g_part = np.max(np.where((piece == b) & inner, gap, -np.inf), axis=1)
        c_part = np.max(np.where(piece[:, :-1] == b, cell_between, -np.inf), axis=1)
        piece_error[:, b] = np.maximum(g_part, 0.0) + np.maximum(c_part, 0.0) / 4.0
    return slope, intercept, bps, error, f[:, -1].copy(), piece_error


def _quantile_breakpoints(
    cell_slope: FloatArray,
    h: FloatArray,
    is_bp: NDArray[np.bool_],
    budget: NDArray[np.int64],
    weight: FloatArray | None = None,
) -> None:
    """Mark ``budget[i]`` more breakpoints at equal quantiles of the measure ``Σ sqrt(slope drop · h)``.

    For a smooth curve the slope drop at node ``j`` is about ``f'' h``, so the measure is
    ``∫ sqrt(f'') dx`` and the density of breakpoints follows ``sqrt(f'')``, the asymptotically optimal density for the L∞ error of
    interpolation; a kink carries its whole slope drop at one node and gets a breakpoint on it.
    One pass, no refinement (``method="greedy"`` refines on the actual gap instead).
    """
    n, m = is_bp.shape
    drop = np.maximum(cell_slope[:, :-1] - cell_slope[:, 1:], 0.0)  # at interior nodes 1..m-2
    mass = np.sqrt(drop * 0.5 * (h[:, :-1] + h[:, 1:]))  # ∫ sqrt(f'') dx over the node's share
    if weight is not None:
        mass = mass * weight
    cum = np.cumsum(mass, axis=1)
    total = cum[:, -1:]
    kmax = int(budget.max()) if len(budget) else 0
    if kmax == 0:
        return
    q = (np.arange(1, kmax + 1)[None, :] / (budget[:, None] + 1.0)) * total  # (n, kmax)
    pos = np.minimum((cum[:, None, :] < q[:, :, None]).sum(axis=2), m - 3)  # first node reaching q
    valid = (np.arange(1, kmax + 1)[None, :] <= budget[:, None]) & (total > 0)
    rows = np.repeat(np.arange(n)[:, None], kmax, axis=1)
    is_bp[rows[valid], pos[valid] + 1] = True


def _chord_values(
    grid: FloatArray, f: FloatArray, is_bp: NDArray[np.bool_], cols: NDArray[np.int64]
) -> FloatArray:
    """Value at every grid node of the chord through the marked breakpoints."""
    n, m = grid.shape
    base = (np.arange(n) * m)[:, None]
    left = np.maximum.accumulate(np.where(is_bp, cols, 0), axis=1)
    right = np.minimum.accumulate(np.where(is_bp, cols, m - 1)[:, ::-1], axis=1)[:, ::-1]
    left += base
    right += base
    gflat, fflat = grid.ravel(), f.ravel()
    xl = gflat.take(left)
    span = gflat.take(right) - xl
    fl = fflat.take(left)
    np.divide(grid - xl, span, out=span, where=span > 0)
    span[~np.isfinite(span)] = 0.0
    return fl + span * (fflat.take(right) - fl)


def _fill_nan_forward(a: FloatArray) -> FloatArray:
    """Replace NaNs by the nearest finite value to the left (then to the right)."""
    a = a.copy()
    mask = np.isnan(a)
    if not mask.any():
        return a
    idx = np.where(~mask, np.arange(a.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    a = a[np.arange(a.shape[0])[:, None], idx]
    mask = np.isnan(a)
    if mask.any():  # leading NaNs: take the first finite value of the row
        first = np.argmax(~mask, axis=1)
        fill = a[np.arange(a.shape[0]), first]
        a = np.where(mask, fill[:, None], a)
    return a
