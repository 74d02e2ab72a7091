"""Yield curves -> concave piecewise-linear (PWL) income functions, with an error bound.

For venue ``i`` with income curve ``f_i`` (concave, non-decreasing, USD/year) and a domain
``[lb_i, ub_i]`` (what this cycle's limits let the position be), we build the chord interpolant

    f̂_i(x) = min_k ( a_ik x + b_ik ),   k = 1..P

through breakpoints ``lb_i = β_0 < β_1 < ... < β_m = ub_i``. Because ``f_i`` is concave the chords
lie below it (``f̂_i <= f_i``) and the minimum of the chord lines *is* the interpolant.

Breakpoint placement ("where the curvature is"): sample ``f_i`` on a grid of ``M`` nodes (half
uniform, half geometric from ``10⁻⁴`` of the domain, plus the current position ``x0``); keep
{lb, x0, ub} and add ``K - 1`` breakpoints at equal quantiles of ``Σ_j sqrt(slope drop_j · h_j)`` (≈ ``∫ sqrt(f'') dx``)
(density ∝ sqrt(f''), the asymptotically optimal one for the L∞ error; a kink gets a breakpoint
on it). ``method="greedy"`` instead splits, ``K - 1`` times, the piece whose gap is largest at the
node of that gap (slower, and measured no better). A linear curve needs no breakpoint.

Error bound (per venue, USD/year), ``0 <= f - f̂ <= ε_i`` on the whole domain:

    ε_i = max_j gap_ij  +  max_j h_j (S_{j-1} - S_{j+1}) / 4

where ``gap_ij`` is the gap at grid node ``j`` and the second term bounds how far a concave
function can rise above the chord of one grid cell of width ``h_j`` whose end derivatives are
bracketed by the neighbouring cell slopes ``S`` (concavity: ``f'(X_j) <= S_{j-1}``,
``f'(X_{j+1}) >= S_{j+1}``; for a chord on ``[u, v]`` the gap is at most ``(v-u)(f'(u)-f'(v))/4``).
The optimum of the PWL problem is then within ``Σ_i ε_i`` of the optimum of the true curves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.types import YieldCurve
from optimizer.pwl_kernel import fit_rows_quantile, rows_equal, sorted_grid
from optimizer.pwl_numpy import _fit_rows_numpy

FloatArray = NDArray[np.float64]


def evaluate_curves(
    curves: Sequence[YieldCurve], x_usd: FloatArray, emission_haircut: float
) -> FloatArray:
    """``income_usd`` of curve ``i`` at each ``x_usd[i, :]``: shape (n, M).

    Curves whose class itself defines ``batch_income_usd(curves, x, emission_haircut)`` (a classmethod
    taking a list of its instances and an (m, M) array) are evaluated in one call per class, which
    matters at 10k venues; the others one call per curve.
    """
    n = len(curves)
    out = np.empty_like(x_usd, dtype=float)
    by_type: dict[type, list[int]] = {}
    for i, curve in enumerate(curves):
        by_type.setdefault(type(curve), []).append(i)
    for cls, idx in by_type.items():
        # only a class's *own* batch method: a subclass that overrides income must not be bypassed
        batch = cls.__dict__.get("batch_income_usd")
        batch = batch.__get__(None, cls) if batch is not None else None
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
    # (n, P) the same bound on each piece alone (0 on padded pieces): f_i - f̂_i <= it there
    piece_error_usd: FloatArray

    def error_near_usd(self, x_usd: FloatArray) -> FloatArray:
        """Per venue, the largest error bound of the pieces that touch ``x_usd[i]`` (both pieces
        when ``x`` is on a breakpoint, up to 1e-9 of the domain): ``f_i - f̂_i`` there at most.

        For an LP optimum ``x*`` this bounds what the true curves can still gain (README §2):
        with the LP's prices, venue ``i``'s true optimum lies in the pieces touching ``x*_i``
        (concavity: the true derivative crosses the price between the outer ends of the pieces
        whose slopes bracket it), where ``f_i <= f̂_i + e_i``; so the true optimum is at most the
        PWL optimum plus ``Σ_i e_i``, and the PWL optimum is at most the true value at ``x*``."""
        x = np.asarray(x_usd, dtype=float)[:, None]
        bp = self.breakpoints
        tol = (1e-9 * (bp[:, -1] - bp[:, 0]) + 1e-9)[:, None]
        touch = (bp[:, :-1] <= x + tol) & (bp[:, 1:] >= x - tol)
        return np.max(np.where(touch, self.piece_error_usd, 0.0), axis=1)

    def linear(self, rel: float = 1e-7) -> NDArray[np.bool_]:
        """Venues whose curve is linear on its domain (up to ``rel``): two pieces (split at x0) are exact."""
        return self.error_bound_usd <= rel * (1.0 + np.abs(self.income_ub_usd))

    @property
    def pieces(self) -> int:
        return int(self.slope.shape[1])

    def __call__(self, x_usd: FloatArray) -> FloatArray:
        x = np.asarray(x_usd, dtype=float)
        return np.min(self.slope * x[:, None] + self.intercept, axis=1)


#: a warm cycle refits around its solution and solves again (at most this many times) while the fit's
#: error near the solution, Σ_i error_near_usd(x*)_i, exceeds this share of the objective: the
#: a-posteriori bound on what the true curves could still gain (README §2), held to the 0.1 % that
#: ``bench quality`` asks of every seed
WARM_REFINE_GAP_RATIO = 1e-3
WARM_REFINE_PASSES = 2


def refine_pays(
    pwl: PiecewiseLinear, x_usd: FloatArray, objective_nav: float | None, nav_usd: float
) -> bool:
    """Whether the fit near the LP optimum ``x_usd`` could hide more than ``WARM_REFINE_GAP_RATIO``
    of the objective (``objective_nav · nav_usd``, USD/year): ``Σ_i pwl.error_near_usd(x)_i``
    bounds the true curves' optimum minus the true value at ``x`` (:meth:`error_near_usd`)."""
    if objective_nav is None or not np.isfinite(objective_nav):
        return False
    near = float(np.sum(pwl.error_near_usd(x_usd)))
    return near > WARM_REFINE_GAP_RATIO * abs(objective_nav) * nav_usd


#: a warm pass refits the fewest venues (largest ``error_near_usd`` first) that bring the bound of
#: the venues it keeps to this share of the trigger: the refitted ones then have the rest of it
REFINE_KEEP_SHARE = 0.5


def refine_rows(
    pwl: PiecewiseLinear,
    x_usd: FloatArray,
    objective_nav: float | None,
    nav_usd: float,
    eligible: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]:
    """The venues a warm refinement pass refits (README §2): with ``e = pwl.error_near_usd(x)`` and
    the trigger ``T = WARM_REFINE_GAP_RATIO · |objective|``, the fewest ``eligible`` venues, largest
    ``e_i`` first, such that the bound of the venues kept, ``Σ_{i kept} e_i``, is at most
    ``REFINE_KEEP_SHARE · T``. The others keep their pieces: the bound is a sum over venues, so
    only the venues that carry it are worth a refit. All eligible venues with ``e_i > 0`` when no
    objective is known. Sorted ascending."""
    near = pwl.error_near_usd(x_usd)
    ok = near > 0.0 if eligible is None else (near > 0.0) & eligible
    idx = np.nonzero(ok)[0]
    if objective_nav is None or not np.isfinite(objective_nav) or len(idx) == 0:
        return idx.astype(np.int64)
    keep_usd = REFINE_KEEP_SHARE * WARM_REFINE_GAP_RATIO * abs(objective_nav) * nav_usd
    order = idx[np.argsort(-near[idx], kind="stable")]
    # left[k]: the bound of every venue but the first k of ``order`` (the ineligible ones included)
    left = float(np.sum(near)) - np.concatenate([[0.0], np.cumsum(near[order])])
    k = int(np.argmax(left <= keep_usd)) if bool(np.any(left <= keep_usd)) else len(order)
    return np.sort(order[:k]).astype(np.int64)


def merge_rows(
    pwl: PiecewiseLinear, rows: NDArray[np.int64], part: PiecewiseLinear
) -> PiecewiseLinear:
    """``pwl`` with rows ``rows`` replaced by ``part`` (a fit of those venues alone, same pieces)."""
    if part.slope.shape[1] != pwl.slope.shape[1]:
        raise ValueError(
            f"refit pieces {part.slope.shape[1]} differ from the fit's {pwl.slope.shape[1]}"
        )

    def put(a: FloatArray, b: FloatArray) -> FloatArray:
        out = a.copy()
        out[rows] = b
        return out

    return PiecewiseLinear(
        slope=put(pwl.slope, part.slope),
        intercept=put(pwl.intercept, part.intercept),
        breakpoints=put(pwl.breakpoints, part.breakpoints),
        lb_usd=pwl.lb_usd,
        ub_usd=pwl.ub_usd,
        error_bound_usd=put(pwl.error_bound_usd, part.error_bound_usd),
        income_ub_usd=put(pwl.income_ub_usd, part.income_ub_usd),
        piece_error_usd=put(pwl.piece_error_usd, part.piece_error_usd),
    )


_UNIT_GRIDS: dict[int, FloatArray] = {}


def _unit_grid(m: int) -> FloatArray:
    """The fit's grid on ``[0, 1]`` for ``m`` samples (shared: do not modify; the same for every call
    with ``m``, so it is made once: four NumPy constructors were a tenth of a 4-venue decide). Not
    flagged read-only, which would give the Numba kernel a second signature to compile."""
    g = _UNIT_GRIDS.get(m)
    if g is None:
        half = (m - 1) // 2
        g = np.unique(
            np.concatenate(
                [np.linspace(0.0, 1.0, m - 1 - half), np.geomspace(1e-4, 1.0, half + 1)[:-1]]
            )
        )
        g = (
            np.concatenate([g, np.linspace(0.0, 1.0, m - 1 - len(g) + 2)[1:-1]])
            if len(g) < m - 1
            else g
        )
        _UNIT_GRIDS[m] = g
    return g


def fit_pwl(
    curves: Sequence[YieldCurve],
    lb_usd: FloatArray,
    ub_usd: FloatArray,
    x0_usd: FloatArray,
    pieces: int,
    samples: int,
    emission_haircut: float,
    split_budget: NDArray[np.int64] | None = None,
    method: str = "quantile",
    hint_usd: FloatArray | None = None,
    window_usd: tuple[FloatArray, FloatArray] | None = None,
    window_share: float = 0.5,
    cache: FitCache | None = None,
    cost_usd: Callable[[FloatArray], FloatArray] | None = None,
) -> PiecewiseLinear:
    """Chord interpolants with at most ``pieces + 1`` pieces (``pieces`` plus the split at ``x0``).

    ``split_budget[i]`` (default ``pieces - 1``) caps the greedy splits of venue ``i``; 0 gives the
    two chords ``[lb, x0]``, ``[x0, ub]`` (used for venues known to have linear curves).
    ``hint_usd[i]`` (NaN: none) is one more forced breakpoint, taken from the split budget: the
    previous solution, so that a refinement pass is exact where the optimum is (README).
    ``window_usd = (lo, hi)`` (NaN: none): a share ``window_share`` of the quantile breakpoints
    goes inside ``[lo_i, hi_i]`` (the pieces around the previous solution), the rest outside.

    ``cache`` (incremental fit): the curves are still sampled every call (one batched evaluation),
    but a venue whose samples, grid, forced breakpoints, window and budget are all what they were in
    the cached call gets its cached pieces; only the others are fitted. The fit of a row depends on
    nothing else, so the result is identical to a full fit.

    ``cost_usd(grid)`` (``(n, m)`` USD, convex in ``x`` with its minimum 0 at ``x0``): an annualised
    move cost subtracted from the samples before the fit (LP zaps, :mod:`optimizer.costs`), so that
    the pieces are those of the net, still concave, function and its breakpoints follow the cost's
    curvature too (a cost that bends on the scale of the pool gets its own pieces).
    """
    n = len(curves)
    lb = np.asarray(lb_usd, dtype=float)
    width = np.maximum(np.asarray(ub_usd, dtype=float) - lb, 1e-6)
    ub = lb + width
    x0 = np.clip(np.asarray(x0_usd, dtype=float), lb, ub)
    m = max(int(samples), 8)
    # grid: half uniform, half geometric from 1e-4 of the domain (rate impact bends a curve on the
    # scale of the pool, often far below our domain), plus x0
    g = _unit_grid(m)
    hint = np.full(n, np.nan) if hint_usd is None else np.asarray(hint_usd, dtype=float)
    # a hint on x0 (within rounding of the domain: the holdings followed the last target, the steady
    # state) is no extra breakpoint and takes nothing from the split budget
    has_hint = np.isfinite(hint) & ~(np.abs(hint - x0) <= 1e-9 * width)
    hint = np.clip(np.where(has_hint, hint, x0), lb, ub)
    # a grid node on the capacity: a curve is flat beyond it, a kink that the quantile placement then puts
    # a breakpoint on (capacity lies inside the domain only when a position is held above it, README §4)
    cap = np.array([float(c.capacity_usd) for c in curves]) if n else np.zeros(0)
    # else a duplicate of x0, which changes nothing
    cap = np.where((cap > lb) & (cap < ub), cap, x0)
    if n:
        c = np.ascontiguousarray
        grid = sorted_grid(
            c(lb, float), c(width, float), c(g, float), c(x0, float), c(hint, float), c(cap, float)
        )
    else:
        grid = np.zeros((0, len(g) + 3))
    m = grid.shape[1]
    f = evaluate_curves(curves, grid, emission_haircut)
    if cost_usd is not None:
        f = f - cost_usd(grid)
    budget = (
        np.full(n, float(max(pieces - 1, 0)))
        if split_budget is None
        else np.asarray(split_budget, dtype=float)
    )
    if window_usd is not None:
        win_lo, win_hi = (np.asarray(w, dtype=float) for w in window_usd)
    else:
        win_lo = win_hi = np.full(n, np.nan)
    key = (int(pieces), str(method), float(window_share), window_usd is not None, m)
    rows = np.arange(n)
    if cache is not None and cache.matches(key, n):
        same = cache.same_rows(grid, f, x0, hint, has_hint, budget, win_lo, win_hi)
        rows = np.nonzero(~same)[0]
    sel: slice | NDArray[np.int64] = slice(None) if len(rows) == n else rows  # no copy: all rows
    fit = _fit_rows(
        grid[sel],
        f[sel],
        width[sel],
        x0[sel],
        hint[sel],
        has_hint[sel],
        budget[sel],
        (win_lo[sel], win_hi[sel]) if window_usd is not None else None,
        pieces,
        method,
        window_share,
    )
    if cache is not None:
        out = cache.merge(rows, fit) if len(rows) < n and cache.matches(key, n) else fit
        cache.store(key, grid, f, x0, hint, has_hint, budget, win_lo, win_hi, out, len(rows))
        fit = out
    slope, intercept, bps, error, income_ub, piece_error = fit
    return PiecewiseLinear(
        slope=slope,
        intercept=intercept,
        breakpoints=bps,
        lb_usd=lb,
        ub_usd=np.asarray(ub_usd, dtype=float),
        error_bound_usd=error,
        income_ub_usd=income_ub,
        piece_error_usd=piece_error,
    )


_Fit = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


class FitCache:
    """The last fit's inputs and pieces, per row (the venue order of one compiled problem), so that
    :func:`fit_pwl` refits only the venues whose inputs changed. ``refitted`` counts the rows the
    last call fitted (``n`` on a full fit)."""

    def __init__(self) -> None:
        self.key: tuple[object, ...] | None = None
        self.n = -1
        self.inputs: tuple[FloatArray, ...] = ()
        self.out: _Fit | None = None
        self.refitted = 0

    def matches(self, key: tuple[object, ...], n: int) -> bool:
        return self.key == key and self.n == n and self.out is not None

    def same_rows(self, *arrays: FloatArray) -> NDArray[np.bool_]:
        """Rows whose every input equals the cached one (NaN equal to NaN): the per-venue inputs
        first, then the ``(n, m)`` grid and samples compiled, row by row, stopping at a row's first
        difference (when every rate moved, most rows differ at their second node)."""
        same = np.ones(self.n, dtype=bool)
        pairs = list(zip(self.inputs, arrays, strict=True))
        for old, new in pairs:
            if old.ndim == 1:
                same &= (
                    (old == new) | (np.isnan(old) & np.isnan(new))
                    if old.dtype.kind == "f"
                    else old == new
                )
        for old, new in pairs:
            if old.ndim == 2:
                c = np.ascontiguousarray
                rows_equal(c(old, dtype=float), c(new, dtype=float), same)
        return same

    def merge(self, rows: NDArray[np.int64], fit: _Fit) -> _Fit:
        assert self.out is not None
        merged = tuple(a.copy() for a in self.out)
        for a, b in zip(merged, fit, strict=True):
            a[rows] = b
        return merged  # type: ignore[return-value]

    def store(self, key: tuple[object, ...], *rest: object) -> None:
        *inputs, out, refitted = rest
        # the (n, m) grid and samples are fit_pwl's own fresh arrays: kept, not copied
        self.key, self.out = key, out  # type: ignore[assignment]
        self.inputs = tuple(a if i < 2 else np.array(a) for i, a in enumerate(inputs))  # type: ignore[misc]
        self.n = len(self.inputs[0])
        self.refitted = int(refitted)  # type: ignore[call-overload]


def _fit_rows(
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
    bound, f̂ at ub), see :func:`fit_pwl`. The quantile method runs compiled, a loop per row
    (:mod:`optimizer.pwl_kernel`, the same math); ``method="greedy"`` runs :func:`_fit_rows_numpy`."""
    if method != "quantile" or len(grid) == 0:
        return _fit_rows_numpy(
            grid, f, width, x0, hint, has_hint, budget, window_usd, pieces, method, window_share
        )
    n = len(grid)
    lo, hi = window_usd if window_usd is not None else (np.full(n, np.nan), np.full(n, np.nan))
    return fit_rows_quantile(
        np.ascontiguousarray(grid, dtype=float),
        np.ascontiguousarray(f, dtype=float),
        np.ascontiguousarray(width, dtype=float),
        np.ascontiguousarray(x0, dtype=float),
        np.ascontiguousarray(hint, dtype=float),
        np.ascontiguousarray(has_hint, dtype=bool),
        np.ascontiguousarray(budget, dtype=float),
        np.ascontiguousarray(lo, dtype=float),
        np.ascontiguousarray(hi, dtype=float),
        window_usd is not None,
        int(pieces),
        float(window_share),
    )
