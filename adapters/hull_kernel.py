"""The upper concave hull of a sampled income curve and the hull edges that need a bridge, one
compiled loop (Numba).

``EnvelopeCurve`` lays a chord ("bridge") over every stretch where a pool's exact income is not
concave (an Aave reserve above its kink: protocol_math.md §1.1), so the optimizer sees the concave
envelope. On the grid ``(xs, fs)`` (``xs`` increasing) the upper hull is Andrew's monotone chain
(A. M. Andrew, "Another efficient algorithm for convex hulls in two dimensions", 1979): walking
left to right, the last hull point ``a`` (after ``o``) is dropped while it lies on or below the
chord ``o -> i``, i.e. while

    cross = (x_a - x_o)(f_i - f_o) - (f_a - f_o)(x_i - x_o) >= 0.

A hull edge ``a -> b`` that skips grid points needs a bridge when the chord rises above the skipped
values by more than ``tol`` somewhere:

    max_j [ f_a + (x_j - x_a)(f_b - f_a) / (x_b - x_a) - f_j ] > tol,   a < j < b,

and not when that maximum is NaN (NumPy's ``np.max`` propagates a NaN; ``NaN > tol`` is false).

The same operations in the same order as the Python loop it replaces (kept as the reference in
``tests/test_hull_kernel.py``), so the edges are the same; a 3-year hourly replay builds ~14,000
curves above the kink, where that loop over NumPy scalars cost ~1.3 ms a curve (most of the replay's
snapshot time). Compiled (or loaded from numba's cache) when imported; the Dockerfile's build stage
imports it so the runtime user never compiles.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types as nt
from numpy.typing import NDArray

_V = nt.float64[:]  # any layout: callers pass column slices


@numba.njit(nt.int64[:, :](_V, _V, nt.float64), cache=True, nogil=True, error_model="numpy")
def hull_edges(
    xs: NDArray[np.float64], fs: NDArray[np.float64], tol: float
) -> NDArray[np.int64]:  # pragma: no cover - compiled
    """The hull edges ``(a, b)`` (grid indices, left to right) that need a bridge (above)."""
    n = xs.shape[0]
    hull = np.empty(n, dtype=np.int64)
    h = 0
    for i in range(n):
        while h >= 2:
            o = hull[h - 2]
            a = hull[h - 1]
            cross = (xs[a] - xs[o]) * (fs[i] - fs[o]) - (fs[a] - fs[o]) * (xs[i] - xs[o])
            if cross >= 0.0:  # a lies on or below the chord o-i
                h -= 1
            else:
                break
        hull[h] = i
        h += 1
    out = np.empty((max(h - 1, 0), 2), dtype=np.int64)
    k = 0
    for e in range(h - 1):
        a = hull[e]
        b = hull[e + 1]
        if b - a <= 1:
            continue
        rise = fs[b] - fs[a]
        run = xs[b] - xs[a]
        worst = -np.inf
        nan = False
        for j in range(a + 1, b):
            gap = (fs[a] + (xs[j] - xs[a]) * rise / run) - fs[j]
            if gap != gap:
                nan = True
            elif gap > worst:
                worst = gap
        if not nan and worst > tol:
            out[k, 0] = a
            out[k, 1] = b
            k += 1
    return out[:k]
