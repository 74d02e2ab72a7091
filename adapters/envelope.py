"""The concave envelope of an exact income function: :class:`EnvelopeCurve`.

Where the protocol's exact income is not concave (a lending pool whose utilization our deposit
pushes back through the kink: the rate's slope drops from slope2 to slope1, so income bends up;
a bridge route's fixed gas per round) the curve is the exact income's *least concave majorant*
(its concave envelope): exact wherever the exact income is itself on the envelope, a straight
chord across the bend. Where the exact income falls with size (past the point where our deposit
dilutes the rate faster than it adds principal), ``capacity_usd`` stops at the income's peak:
beyond it, more capital earns less, so the venue will not take it from us.

Also the shared helpers of every curve module: :func:`diluted_income_usd` (a pool-wide flow
split pro rata) and the array coercion. The curves by venue kind are in :mod:`adapters.curves`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adapters.hull_kernel import hull_edges
from core.types import YieldCurve

SECONDS_PER_YEAR = 31_536_000
_GRID_POINTS = 160
_REL_TOL = 1e-12

Vector = NDArray[np.float64]


def _as_array(x: ArrayLike) -> Vector:
    return np.asarray(x, dtype=np.float64)


def diluted_income_usd(x_usd: Vector, annual_pool_usd: float, others_usd: float) -> Vector:
    """Our share of a pool-wide annual flow when we hold ``x`` next to ``others`` USD:
    ``flow * x / (others + x)`` (fees of an LP, emissions split pro rata to supply). Concave and
    increasing in ``x``; 0 at ``x = 0``."""
    x = np.maximum(_as_array(x_usd), 0.0)
    total = others_usd + x
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0.0, x / np.where(total > 0.0, total, 1.0), 0.0)
    return annual_pool_usd * share


@dataclass(frozen=True, slots=True)
class _Bridge:
    x_a: float
    x_b: float
    f_a: float
    f_b: float


class EnvelopeCurve(YieldCurve):
    """A curve whose real income is the concave envelope of an exact, vectorised protocol function.

    ``exact_real(x)`` gives annual USD income for positions ``x`` (0 at 0). The envelope is found
    on a grid over ``[0, domain_usd]`` (geometric, plus the ``breakpoints`` where the exact
    function bends), then: ``capacity_usd`` = min(``cap_usd``, the income's peak); between
    consecutive grid points that both lie on the upper hull the curve is the exact function; across
    a hull edge that skips grid points it is that edge's chord. ``exact_emission`` must itself be
    concave and non-decreasing (pro-rata emissions are).
    """

    def __init__(
        self,
        exact_real: Callable[[Vector], Vector],
        *,
        domain_usd: float,
        cap_usd: float = math.inf,
        breakpoints: tuple[float, ...] = (),
        exact_emission: Callable[[Vector], Vector] | None = None,
    ) -> None:
        self._exact_real = exact_real
        self._exact_emission = exact_emission
        self._bridges: tuple[_Bridge, ...] = ()
        top = min(domain_usd, cap_usd)
        if not math.isfinite(top):
            raise ValueError("EnvelopeCurve needs a finite domain_usd or cap_usd")
        self.capacity_usd = 0.0
        if top <= 0.0:
            return
        # geometric near 0 (where positions usually are), linear across the range (so no step is
        # coarse anywhere), plus the bends
        grid = np.concatenate(
            (
                [0.0],
                np.geomspace(top * 1e-9, top, _GRID_POINTS),
                np.linspace(0.0, top, _GRID_POINTS // 2),
            )
        )
        # around each bend, points closing in geometrically, so a corner far smaller than the
        # curvature across one coarse step is still seen (and bridged) by the hull
        extra = [
            b * (1.0 + sign * 10.0**-k)
            for b in breakpoints
            if 0.0 < b < top and math.isfinite(b)
            for k in range(1, 8)
            for sign in (-1.0, 1.0)
        ]
        extra += [b for b in breakpoints if 0.0 < b < top and math.isfinite(b)]
        grid = np.unique(np.concatenate((grid, [e for e in extra if 0.0 < e < top])))
        values = np.asarray(exact_real(grid), dtype=np.float64)
        if float(np.max(values)) <= 0.0:
            return  # no size earns anything: the venue takes nothing from us
        # the income's peak: refine every local maximum of the grid (a narrow peak between two
        # coarse points can beat a point that looks higher on the grid), then keep the best
        interior = np.flatnonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])) + 1
        cells = [(float(grid[i - 1]), float(grid[i + 1])) for i in interior]
        if values[-1] >= values[-2]:  # rising into the last point: the peak may sit just before it
            cells.append((float(grid[-2]), float(grid[-1])))
        best_x, best_f = float(grid[-1]), float(values[-1])
        for lo, hi in cells:
            x = _argmax_in(exact_real, lo, hi, rounds=4)
            fx = float(np.asarray(exact_real(np.asarray([x])), dtype=np.float64)[0])
            if fx > best_f:
                best_x, best_f = x, fx
        if best_x < float(grid[-1]):  # income falls past its peak: capacity stops there
            grid = np.concatenate((grid[grid < best_x], [best_x]))
            values = np.asarray(exact_real(grid), dtype=np.float64)
        self.capacity_usd = float(grid[-1])
        self._bridges = tuple(_hull_bridges(exact_real, grid, values))

    def _real(self, x: Vector) -> Vector:
        xc = np.clip(x, 0.0, self.capacity_usd)
        y = np.asarray(self._exact_real(xc), dtype=np.float64)
        for b in self._bridges:
            inside = (xc > b.x_a) & (xc < b.x_b)
            if np.any(inside):
                t = (xc[inside] - b.x_a) / (b.x_b - b.x_a)
                y[inside] = b.f_a + t * (b.f_b - b.f_a)
        return y

    def real_income_usd(self, x_usd: Vector) -> Vector:
        x = _as_array(x_usd)
        return self._real(np.atleast_1d(x)).reshape(x.shape)

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        x = _as_array(x_usd)
        if self._exact_emission is None:
            return np.zeros_like(x)
        return np.asarray(
            self._exact_emission(np.clip(x, 0.0, self.capacity_usd)), dtype=np.float64
        )

    def exact_real_income_usd(self, x_usd: ArrayLike) -> Vector:
        """The protocol's own income at ``x`` (no envelope, no capacity clip); for tests and audits."""
        return np.asarray(self._exact_real(_as_array(x_usd)), dtype=np.float64)

    @property
    def bridges(self) -> tuple[tuple[float, float], ...]:
        """The ``(x_a, x_b)`` spans where the curve is a chord over a non-concave bend."""
        return tuple((b.x_a, b.x_b) for b in self._bridges)


def _argmax_in(
    f: Callable[[Vector], Vector], lo: float, hi: float, rounds: int = 6, points: int = 33
) -> float:
    """The maximiser of a unimodal ``f`` on ``[lo, hi]`` by repeated vectorised grid search: each
    round evaluates ``points`` values in one call and keeps the two cells around the best, so the
    bracket shrinks ``(points - 1) / 2`` fold a round (6 rounds: ~1e-7 of the starting width)."""
    for _ in range(rounds):
        xs = np.linspace(lo, hi, points)
        values = np.asarray(f(xs), dtype=np.float64)
        i = int(np.argmax(values))
        lo, hi = float(xs[max(i - 1, 0)]), float(xs[min(i + 1, points - 1)])
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            break
    return (lo + hi) / 2.0


def _hull_bridges(f: Callable[[Vector], Vector], xs: Vector, fs: Vector) -> list[_Bridge]:
    """Edges of the upper concave hull of ``(xs, fs)`` that skip points lying strictly below them."""
    slopes = np.diff(fs) / np.diff(xs)
    scale = max(float(np.max(np.abs(fs))), 1e-300)
    if np.all(np.diff(slopes) * np.diff(xs)[1:] <= _REL_TOL * scale):
        return []  # already concave on the grid: the fast path for most pools
    edges = hull_edges(
        np.asarray(xs, dtype=np.float64), np.asarray(fs, dtype=np.float64), _REL_TOL * scale
    )
    return [_refine_bridge(f, xs, int(a), int(b)) for a, b in edges]


def _refine_bridge(f: Callable[[Vector], Vector], xs: Vector, a: int, b: int) -> _Bridge:
    """Move a hull edge's ends from grid points to the true tangent points of the common tangent,
    so the chord meets the exact curve with equal slopes (no convex corner at the junction).

    With the right end ``x_b`` fixed, the left end minimises the chord slope
    ``(f(x_b) - f(x)) / (x_b - x)`` (every point left of it lies below the line); with the left end
    fixed, the right end maximises ``(f(x) - f(x_a)) / (x - x_a)``. A few alternations converge.
    """

    def fx(v: float) -> float:
        return float(np.asarray(f(np.asarray([v])), dtype=np.float64)[0])

    lo_a, hi_a = float(xs[max(a - 1, 0)]), float(xs[a + 1])
    lo_b, hi_b = float(xs[b - 1]), float(xs[min(b + 1, len(xs) - 1)])
    xa, xb = float(xs[a]), float(xs[b])
    fa, fb = fx(xa), fx(xb)
    for _ in range(3):
        top_a = min(hi_a, xb * (1 - 1e-12))

        def left_end(v: Vector, xb: float = xb, fb: float = fb) -> Vector:
            return -(fb - np.asarray(f(v))) / (xb - v)

        xa = _argmax_in(left_end, lo_a, top_a)
        fa = fx(xa)
        bottom_b = max(lo_b, xa * (1 + 1e-12) + 1e-12)

        def right_end(v: Vector, xa: float = xa, fa: float = fa) -> Vector:
            return (np.asarray(f(v)) - fa) / (v - xa)

        xb = _argmax_in(right_end, bottom_b, hi_b)
        fb = fx(xb)
    return _Bridge(xa, xb, fa, fb)


# --- exact income functions (frozen dataclasses, not closures, so snapshots pickle) -------------------
