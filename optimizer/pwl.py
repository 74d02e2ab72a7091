"""Yield curves -> concave piecewise-linear (PWL) income functions, with an error bound.

For venue ``i`` with income curve ``f_i`` (concave, non-decreasing, USD/year) and a domain
``[lb_i, ub_i]`` (what this cycle's limits let the position be), we build the chord interpolant

    f̂_i(x) = min_k ( a_ik x + b_ik ),   k = 1..P

through breakpoints ``lb_i = β_0 < β_1 < ... < β_m = ub_i``. Because ``f_i`` is concave the chords
lie below it (``f̂_i <= f_i``) and the minimum of the chord lines *is* the interpolant.

Breakpoint placement ("where the curvature is"): sample ``f_i`` on a grid of ``M`` nodes that
contains ``lb``, ``ub``, the current position ``x0`` and a node close to ``lb``; start from the
breakpoints {lb, x0, ub} and, ``K - 1`` times, split the piece at the grid node where the gap
``f - f̂`` is largest (greedy L∞ refinement, vectorised across venues). Pieces therefore gather
at kinks and where the slope falls fast, and a linear curve gets one piece.

Error bound (per venue, USD/year), ``0 <= f - f̂ <= ε_i`` on the whole domain:

    ε_i = max_j gap_ij  +  max_j h_j (S_{j-1} - S_{j+1}) / 4

where ``gap_ij`` is the gap at grid node ``j`` and the second term bounds how far a concave
function can rise above the chord of one grid cell of width ``h_j`` whose end derivatives are
bracketed by the neighbouring cell slopes ``S`` (concavity: ``f'(X_j) <= S_{j-1}``,
``f'(X_{j+1}) >= S_{j+1}``; for a chord on ``[u, v]`` the gap is at most ``(v-u)(f'(u)-f'(v))/4``).
The optimum of the PWL problem is then within ``Σ_i ε_i`` of the optimum of the true curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.types import YieldCurve

FloatArray = NDArray[np.float64]


def evaluate_curves(curves: Sequence[YieldCurve], x_usd: FloatArray, emission_haircut: float) -> FloatArray:
    """``income_usd`` of curve ``i`` at each ``x_usd[i, :]``: shape (n, M).

    Curves whose class defines ``batch_income_usd(curves, x, emission_haircut)`` (a classmethod
    taking a list of its instances and an (m, M) array) are evaluated in one call per class, which
    matters at 10k venues; the others one call per curve.
    """
    n = len(curves)
    out = np.empty_like(x_usd, dtype=float)
    by_type: dict[type, list[int]] = {}
    for i, curve in enumerate(curves):
        by_type.setdefault(type(curve), []).append(i)
    for cls, idx in by_type.items():
        batch = getattr(cls, "batch_income_usd", None)
        if batch is not None:
            rows = np.asarray(idx)
            out[rows] = batch([curves[i] for i in idx], x_usd[rows], emission_haircut)
        else:
            for i in idx:
                out[i] = curves[i].income_usd(x_usd[i], emission_haircut)
    if n and not np.all(np.isfinite(out)):
        bad = int(np.argwhere(~np.isfinite(out))[0][0])
        raise ValueError(f"yield curve {bad} returned a non-finite income")
    return out


@dataclass(frozen=True, slots=True)
class PiecewiseLinear:
    """``f̂_i(x) = min_k (slope[i,k] x + intercept[i,k])`` on ``[lb_i, ub_i]``; USD and USD/year."""

    slope: FloatArray  # (n, P) APR of each piece
    intercept: FloatArray  # (n, P) USD/year
    breakpoints: FloatArray  # (n, P + 1) USD, non-decreasing; padded pieces repeat the last one
    lb_usd: FloatArray
    ub_usd: FloatArray
    error_bound_usd: FloatArray  # (n,) ε_i: 0 <= f_i - f̂_i <= ε_i on [lb_i, ub_i]
    income_ub_usd: FloatArray  # (n,) f̂_i(ub_i), the scale the error is compared with

    def linear(self, rel: float = 1e-7) -> NDArray[np.bool_]:
        """Venues whose curve is linear on its domain (up to ``rel``): two pieces (split at x0) are exact."""
        return self.error_bound_usd <= rel * (1.0 + np.abs(self.income_ub_usd))

    @property
    def pieces(self) -> int:
        return int(self.slope.shape[1])

    def __call__(self, x_usd: FloatArray) -> FloatArray:
        x = np.asarray(x_usd, dtype=float)
        return np.min(self.slope * x[:, None] + self.intercept, axis=1)


def fit_pwl(
    curves: Sequence[YieldCurve],
    lb_usd: FloatArray,
    ub_usd: FloatArray,
    x0_usd: FloatArray,
    pieces: int,
    samples: int,
    emission_haircut: float,
    split_budget: NDArray[np.int64] | None = None,
) -> PiecewiseLinear:
    """Chord interpolants with at most ``pieces + 1`` pieces (``pieces`` plus the split at ``x0``).

    ``split_budget[i]`` (default ``pieces - 1``) caps the greedy splits of venue ``i``; 0 gives the
    two chords ``[lb, x0]``, ``[x0, ub]`` (used for venues known to have linear curves).
    """
    n = len(curves)
    lb = np.asarray(lb_usd, dtype=float)
    width = np.maximum(np.asarray(ub_usd, dtype=float) - lb, 1e-6)
    ub = lb + width
    x0 = np.clip(np.asarray(x0_usd, dtype=float), lb, ub)
    m = max(int(samples), 8)
    g = np.linspace(0.0, 1.0, m - 2)
    # grid: uniform nodes, a node at 0.1 % of the domain (the steepest part of most curves), and x0
    grid = np.concatenate([lb[:, None] + width[:, None] * g[None, :], (lb + 1e-3 * width)[:, None], x0[:, None]], axis=1)
    grid.sort(axis=1)
    f = evaluate_curves(curves, grid, emission_haircut)
    h = np.diff(grid, axis=1)
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
    is_bp[np.arange(n), np.argmax(grid >= x0[:, None] - 1e-12 * (1 + np.abs(x0[:, None])), axis=1)] = True
    budget = np.full(n, max(pieces - 1, 0)) if split_budget is None else np.asarray(split_budget)
    for r in range(max(pieces - 1, 0)):
        active = budget > r
        if not active.any():
            break
        gap = f - _chord_values(grid, f, is_bp, cols)
        gap[is_bp] = -1.0
        j = np.argmax(gap, axis=1)
        useful = (gap[np.arange(n), j] > 1e-12 * (1.0 + np.abs(f[:, -1]))) & active
        is_bp[np.arange(n)[useful], j[useful]] = True
    gap = f - _chord_values(grid, f, is_bp, cols)
    s_prev = np.concatenate([cell_slope[:, :1], cell_slope[:, :-1]], axis=1)
    s_next = np.concatenate([cell_slope[:, 1:], cell_slope[:, -1:]], axis=1)
    between = np.max(h * np.maximum(s_prev - s_next, 0.0), axis=1) / 4.0
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
    slope = np.where(dx > 0, np.diff(vals, axis=1) / np.where(dx > 0, dx, 1.0), np.nan)
    slope = _fill_nan_forward(slope)
    slope = np.where(np.isnan(slope), cell_slope[:, :1], slope)
    intercept = vals[:, :-1] - slope * bps[:, :-1]
    return PiecewiseLinear(
        slope=slope,
        intercept=intercept,
        breakpoints=bps,
        lb_usd=lb,
        ub_usd=np.asarray(ub_usd, dtype=float),
        error_bound_usd=error,
        income_ub_usd=f[:, -1].copy(),
    )


def _chord_values(grid: FloatArray, f: FloatArray, is_bp: NDArray[np.bool_], cols: NDArray[np.int64]) -> FloatArray:
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
