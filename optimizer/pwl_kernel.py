"""The quantile PWL fit of :func:`optimizer.pwl.fit_pwl`, one compiled loop per venue (Numba).

Same math as the NumPy path it replaces (:func:`optimizer.pwl_numpy._fit_rows_numpy`, kept as the
reference and for ``method="greedy"``), row by row instead of array by array, so that each venue's
131 nodes are walked a few times in registers instead of ~30 passes over an ``(n, m)`` array
(at 1,000 venues the array passes cost ~30 ms, the loops ~2 ms). Per venue, with grid
``X_0 < … < X_{m-1}`` and samples ``f_j``:

1. cells ``h_j = X_{j+1} - X_j`` (0 below ``1e-9`` of the domain: a cell narrower than rounding
   has a noise slope), slopes ``S_j = Δf_j / h_j``, an empty cell takes its left neighbour's slope
   (the first finite one for leading empties), then ``S_j ← min(S_0..S_j)`` (concavity against
   sampling noise) and ``f`` is rebuilt from ``f_0`` and the fixed slopes;
2. breakpoints: ``X_0``, ``X_{m-1}``, the first node at or right of ``x0`` and of the hint, and
   ``budget`` more at equal quantiles of ``Σ sqrt(max(S_{j-1} - S_j, 0) · (h_{j-1} + h_j)/2)``
   (weighted ``window_share`` inside the window, the rest outside);
3. the error bound ``max_j (f_j - f̂(X_j)) + max_j h_j (S_{j-1} - S_{j+1})⁺ / 4`` (README §2),
   and the same bound per piece (its interior nodes, its cells);
4. the pieces: slope and intercept of each chord, a chord narrower than rounding taking the slope
   on its left.

The only difference from the NumPy path is summation order: NumPy sums the window's inside and
outside mass pairwise, this loop in order, so the window weights can differ in the last bit
(``tests/test_optimizer_pwl.py`` compares both on random curves). Compiled once per source version
(``cache=True``, next to this file, or numba's user cache where the package is read-only) when this
module is imported, i.e. at process start: the first import after a source change compiles
(~10-20 s on a loaded 2-core box), later ones load (~1 s, most of it importing Numba). It runs
without the GIL: a decide in a worker thread leaves the event loop free while it fits.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types as nt
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# explicit signatures (C-contiguous float64 arrays; callers pass np.ascontiguousarray): compiled, or
# loaded from the cache, when this module is imported (process start), never inside a decide, and
# one specialisation each, whatever the callers' array layouts
_F1, _F2, _B1 = nt.float64[::1], nt.float64[:, ::1], nt.boolean[::1]


@numba.njit((_F1, nt.int64, nt.int64), cache=True, nogil=True)
def _fill_left(a: FloatArray, start: int, stop: int) -> None:  # pragma: no cover - compiled
    """NaNs in ``a[start:stop]`` take the nearest finite value to the left, leading ones the first
    finite value."""
    last = math.nan
    first = math.nan
    for j in range(start, stop):
        if not math.isnan(a[j]):
            first = a[j]
            break
    for j in range(start, stop):
        if math.isnan(a[j]):
            a[j] = first if math.isnan(last) else last
        else:
            last = a[j]


@numba.njit(
    (_F2, _F2, _F1, _F1, _F1, _B1, _F1, _F1, _F1, nt.boolean, nt.int64, nt.float64),
    cache=True,
    nogil=True,
)
def fit_rows_quantile(
    grid: FloatArray,
    f_in: FloatArray,
    width: FloatArray,
    x0: FloatArray,
    hint: FloatArray,
    has_hint: NDArray[np.bool_],
    budget_in: FloatArray,
    win_lo: FloatArray,
    win_hi: FloatArray,
    use_window: bool,
    pieces: int,
    window_share: float,
) -> tuple[
    FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray
]:  # pragma: no cover
    """(slope, intercept, breakpoints, error bound, f̂ at ub, error bound per piece) of every row
    (module docstring)."""
    n, m = grid.shape
    p1 = pieces + 1  # pieces per venue (``pieces`` plus the split at x0)
    piece_err = np.zeros((n, p1))
    slope = np.empty((n, p1))
    intercept = np.empty((n, p1))
    bps = np.empty((n, p1 + 1))
    error = np.empty(n)
    income_ub = np.empty(n)
    h = np.empty(m - 1)
    cs = np.empty(m - 1)
    f = np.empty(m)
    mass = np.empty(max(m - 2, 0))
    is_bp = np.zeros(m, dtype=np.bool_)
    cols = np.empty(m, dtype=np.int64)
    vals = np.empty(p1 + 1)
    for i in range(n):
        tiny = 1e-9 * width[i]
        for j in range(m - 1):
            hj = grid[i, j + 1] - grid[i, j]
            if hj > tiny:
                h[j] = hj
                cs[j] = (f_in[i, j + 1] - f_in[i, j]) / hj
            else:
                h[j] = 0.0
                cs[j] = math.nan
        _fill_left(cs, 0, m - 1)
        for j in range(1, m - 1):
            if cs[j - 1] < cs[j] or math.isnan(cs[j - 1]):
                cs[j] = cs[j - 1]
        f0 = f_in[i, 0]
        f[0] = f0
        acc = 0.0
        for j in range(m - 1):
            acc += cs[j] * h[j]
            f[j + 1] = f0 + acc
        # forced breakpoints: the ends, x0, the hint
        for j in range(m):
            is_bp[j] = False
        is_bp[0] = True
        is_bp[m - 1] = True
        for forced in (x0[i], hint[i]):
            at = forced - 1e-12 * (1.0 + abs(forced))
            k = 0
            for j in range(m):
                if grid[i, j] >= at:
                    k = j
                    break
            is_bp[k] = True
        budget = budget_in[i]
        if has_hint[i]:
            budget = max(budget - 1.0, 0.0)
        # quantile breakpoints at interior nodes 1..m-2
        for j in range(m - 2):
            drop = cs[j] - cs[j + 1]
            if not drop > 0.0:
                drop = 0.0 if not math.isnan(drop) else drop
            mass[j] = math.sqrt(drop * 0.5 * (h[j] + h[j + 1]))
        if use_window:
            lo, hi = win_lo[i], win_hi[i]
            m_in = 0.0
            m_out = 0.0
            fin = math.isfinite(lo)
            for j in range(m - 2):
                xj = grid[i, j + 1]
                if xj >= lo and xj <= hi and fin:
                    m_in += mass[j]
                else:
                    m_out += mass[j]
            if m_in > 0:
                w_in = window_share / m_in
                w_out = (1.0 - window_share) / (m_out if m_out > 0 else 1.0)
                for j in range(m - 2):
                    xj = grid[i, j + 1]
                    mass[j] *= w_in if (xj >= lo and xj <= hi and fin) else w_out
        if budget >= 1.0 and m > 2:
            acc = 0.0
            for j in range(m - 2):
                acc += mass[j]
                mass[j] = acc  # now the cumulative mass
            total = mass[m - 3]
            if total > 0:
                pos = 0
                k = 1
                while k <= budget:
                    q = (k / (budget + 1.0)) * total
                    while pos < m - 2 and mass[pos] < q:
                        pos += 1
                    is_bp[min(pos, m - 3) + 1] = True
                    k += 1
        # the chord through the breakpoints: its largest gap below f, and the pieces
        nb = 0
        for j in range(m):
            if is_bp[j]:
                cols[nb] = j
                nb += 1
        gap = -math.inf
        gap_nan = False
        for b in range(nb):
            g = f[cols[b]] - f[cols[b]]  # the chord is f itself on a breakpoint
            if math.isnan(g):
                gap_nan = True
            elif g > gap:
                gap = g
        # per piece: its interior nodes' gaps and its cells' rise bounds, for the venue's bound and
        # for the piece's own (README §2); the pieces' cells [cols[b], cols[b+1]) cover 0..m-2
        between = 0.0
        between_nan = False
        for b in range(nb - 1):
            left, right = cols[b], cols[b + 1]
            xl, fl, fr = grid[i, left], f[left], f[right]
            span = grid[i, right] - xl
            g_max = -math.inf
            g_nan = False
            for j in range(left + 1, right):
                t = (grid[i, j] - xl) / span if span > 0 else 0.0
                if not math.isfinite(t):
                    t = 0.0
                g = f[j] - (fl + t * (fr - fl))
                if math.isnan(g):
                    g_nan = True
                elif g > g_max:
                    g_max = g
            c_max = -math.inf
            c_nan = False
            for j in range(left, right):
                s_prev = cs[j - 1] if j > 0 else cs[0]
                s_next = cs[j + 1] if j < m - 2 else cs[m - 2]
                d = s_prev - s_next
                v = h[j] * (d if d > 0.0 else (0.0 if not math.isnan(d) else d))
                if math.isnan(v):
                    c_nan = True
                elif v > c_max:
                    c_max = v
            if g_nan:
                gap_nan = True
            elif g_max > gap:
                gap = g_max
            if c_nan:
                between_nan = True
            elif c_max > between:
                between = c_max
            g_part = math.nan if g_nan else max(g_max, 0.0)
            c_part = math.nan if c_nan else max(c_max, 0.0)
            piece_err[i, b] = g_part + c_part / 4.0
        if gap_nan or between_nan:
            error[i] = math.nan
        else:
            error[i] = max(gap, 0.0) + between / 4.0
        income_ub[i] = f[m - 1]
        for k in range(p1 + 1):
            c = cols[min(k, nb - 1)]
            bps[i, k] = grid[i, c]
            vals[k] = f[c]
        for k in range(p1):
            dx = bps[i, k + 1] - bps[i, k]
            if dx > max(1e-12 * (1.0 + abs(bps[i, k + 1])), tiny):
                slope[i, k] = (vals[k + 1] - vals[k]) / dx
            else:
                slope[i, k] = math.nan
        _fill_left(slope[i], 0, p1)
        for k in range(p1):
            if math.isnan(slope[i, k]):
                slope[i, k] = cs[0]
            intercept[i, k] = vals[k] - slope[i, k] * bps[i, k]
    return slope, intercept, bps, error, income_ub, piece_err


@numba.njit((_F1, _F1, _F1, _F1, _F1, _F1), cache=True, nogil=True)
def sorted_grid(
    lb: FloatArray,
    width: FloatArray,
    g: FloatArray,
    x0: FloatArray,
    hint: FloatArray,
    cap: FloatArray,
) -> FloatArray:  # pragma: no cover - compiled
    """Each row's sample nodes ``lb + width · g`` (``g`` ascending) merged with ``x0``, the hint and
    the capacity node: the sorted ``(n, len(g) + 3)`` grid of :func:`optimizer.pwl.fit_pwl`, the
    same values ``np.sort`` gives, in one pass per row instead of a sort."""
    n, k = len(lb), len(g)
    out = np.empty((n, k + 3))
    extra = np.empty(3)
    for i in range(n):
        extra[0], extra[1], extra[2] = x0[i], hint[i], cap[i]
        extra.sort()
        a = 0
        b = 0
        node = lb[i] + width[i] * g[0] if k else math.inf
        for j in range(k + 3):
            if b >= 3 or (a < k and node <= extra[b]):
                out[i, j] = node
                a += 1
                node = lb[i] + width[i] * g[a] if a < k else math.inf
            else:
                out[i, j] = extra[b]
                b += 1
    return out


@numba.njit(
    (nt.int64[::1], nt.int64, nt.int64[:, ::1], _F2, nt.int64[::1], nt.int64[::1], _F1, nt.int64),
    cache=True,
    nogil=True,
)
def segment_matrix(
    kept: NDArray[np.int64],
    slots: int,
    block_rows: NDArray[np.int64],
    block_values: FloatArray,
    x_start: NDArray[np.int64],
    x_index: NDArray[np.int64],
    x_value: FloatArray,
    x_row0: int,
) -> tuple[NDArray[np.int32], NDArray[np.int32], FloatArray]:  # pragma: no cover - compiled
    """The segment LP's matrix (:mod:`optimizer.fastlp`) over its kept slot columns, CSC.

    Column ``c = kept[j]`` (venue ``c // slots``): its coupling entries ``block_rows[c, k]`` /
    ``block_values[c, k]`` in ``k`` order, zeros dropped, then its venue's column of the constant
    rows (``x_start``/``x_index``/``x_value``, a CSC over the venues) with the row numbers after
    the ``x_row0`` coupling rows. One pass to count, one to fill (NumPy needed ~10 passes over the
    ``n (P + 2)`` columns and their ~10 entries each: 40 ms at 10k venues)."""
    ncol = len(kept)
    nb = block_rows.shape[1]
    start = np.empty(ncol + 1, dtype=np.int32)
    total = 0
    for j in range(ncol):
        c = kept[j]
        v = c // slots
        cnt = x_start[v + 1] - x_start[v]
        for k in range(nb):
            if block_values[c, k] != 0.0:
                cnt += 1
        start[j] = total
        total += cnt
    start[ncol] = total
    index = np.empty(total, dtype=np.int32)
    value = np.empty(total)
    p = 0
    for j in range(ncol):
        c = kept[j]
        v = c // slots
        for k in range(nb):
            b = block_values[c, k]
            if b != 0.0:
                index[p] = block_rows[c, k]
                value[p] = b
                p += 1
        for e in range(x_start[v], x_start[v + 1]):
            index[p] = x_index[e] + x_row0
            value[p] = x_value[e]
            p += 1
    return start, index, value


@numba.njit((_F2, _F2, _B1), cache=True, nogil=True)
def rows_equal(
    old: FloatArray, new: FloatArray, same: NDArray[np.bool_]
) -> None:  # pragma: no cover
    """``same[i] &= (old[i] == new[i]).all()`` with NaN equal to NaN, skipping rows already
    different and stopping at a row's first difference (:meth:`optimizer.pwl.FitCache.same_rows`)."""
    n, m = old.shape
    for i in range(n):
        if not same[i]:
            continue
        for j in range(m):
            a, b = old[i, j], new[i, j]
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                same[i] = False
                break
