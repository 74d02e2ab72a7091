"""One ``Optimizer.decide``'s working state: the stage clock, the per-call working copy of the
memory (:class:`DecideWork`), the risk history's factor model and the refinement window around
the last solution. Nothing here outlives one decide except through :class:`OptimizerMemory`."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from core.types import VenueSnapshot
from optimizer.checker import CheckContext, CheckReport
from optimizer.config import OptimizerSettings
from optimizer.cycle_facts import SMALL_SET
from optimizer.forecast import RateHistory
from optimizer.memory import OptimizerMemory
from optimizer.model import SolveResult

__all__ = ["SMALL_SET", "DecideWork", "RiskHistory", "StageClock", "window_around"]

FloatArray = NDArray[np.float64]


class StageClock:
    """Time of one decide() by stage, each summed over its calls: solve (and the solver inside it),
    fit, check (every checker call), prune (pruning, its checker calls excluded), plan (pricing the
    target, the post-cost state, the moves, the gate)."""

    def __init__(self) -> None:
        self.solve = 0.0
        self.solver: float | None = None
        self.fit = 0.0
        self.check = 0.0
        self.prune = 0.0
        self.plan = 0.0

    def add(self, result: SolveResult) -> SolveResult:
        self.solve += result.solve_seconds
        if result.solver_seconds is not None:
            self.solver = (self.solver or 0.0) + result.solver_seconds
        return result


def window_around(breakpoints: FloatArray, x_usd: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Where to refine: where the true optimum can be, given the LP's. On a breakpoint ``β_j`` (the
    simplex returns vertices) the LP's price of venue ``i`` lies between the slopes of the two pieces
    that meet there, and the true curve's derivative crosses it between their outer ends: the window
    is ``[β_{j-1}, β_{j+1}]``. Inside a piece (the venue at the margin, its piece's slope equal to the
    price), the derivative equals that slope somewhere in the piece: the window is the piece. "On" is
    up to rounding (1e-9 of the domain), so a solution reported a hair to either side of a breakpoint
    gets the same window. Never less than ``±max(25 % of x, 5 % of the domain)``, so that the price
    may move and windows do not shrink cycle after cycle.

    Below :data:`SMALL_SET` venues the same arithmetic runs on Python floats (:func:`_window_small`:
    IEEE doubles either way, so the windows are equal bit for bit; NumPy's per-call cost was most of
    the ~80 µs this took at 4 venues)."""
    n, m = breakpoints.shape
    if n < SMALL_SET and m > 0:
        small = _window_small(breakpoints.tolist(), x_usd.tolist())
        if small is not None:
            return np.array(small[0], dtype=float), np.array(small[1], dtype=float)
    rows = np.arange(n)
    span = breakpoints[:, -1] - breakpoints[:, 0]
    tol = (1e-9 * span + 1e-9)[:, None]
    x = x_usd[:, None]
    left = (breakpoints < x - tol).sum(axis=1)  # breakpoints strictly left of x
    # index of the first one strictly right of x
    right = (breakpoints <= x + tol).sum(axis=1)
    # (np.minimum/np.maximum: np.clip's dispatch costs more than the work on a handful of venues)
    lo = breakpoints[rows, np.minimum(np.maximum(left - 1, 0), m - 1)]
    hi = breakpoints[rows, np.minimum(right, m - 1)]
    floor = np.maximum(0.25 * np.abs(x_usd), 0.05 * span)
    return np.minimum(lo, x_usd - floor), np.maximum(hi, x_usd + floor)


def _window_small(
    rows: list[list[float]], xs: list[float]
) -> tuple[list[float], list[float]] | None:
    """:func:`window_around` on Python floats (finite inputs only; ``None``: use the NumPy path, which
    propagates a NaN the way ``np.minimum`` does). A row of breakpoints is non-decreasing
    (:class:`optimizer.pwl.PiecewiseLinear`), so "how many lie strictly left of ``x - tol``" is
    ``bisect_left`` and "how many lie at or left of ``x + tol``" is ``bisect_right``."""
    lo_out: list[float] = []
    hi_out: list[float] = []
    isfinite = math.isfinite
    for row, x in zip(rows, xs, strict=True):
        if not (isfinite(x) and isfinite(sum(row))):
            return None
        m = len(row)
        span = row[-1] - row[0]
        tol = 1e-9 * span + 1e-9
        left = bisect_left(row, x - tol)
        right = bisect_right(row, x + tol)
        lo = row[min(max(left - 1, 0), m - 1)]
        hi = row[min(right, m - 1)]
        floor = max(0.25 * abs(x), 0.05 * span)
        lo_out.append(min(lo, x - floor))
        hi_out.append(max(hi, x + floor))
    return lo_out, hi_out


class RiskHistory:
    """Marginal APRs observed at each decide(), per venue; a factor model of their covariance.

    With ``T`` observations of ``n`` venues, ``Y`` (T×n) centred, ``Σ = YᵀY/(T-1) ≈ V_f Λ_f V_fᵀ + diag(s²)``
    (top-``f`` principal components plus the residual variance). The penalty is
    ``γ xᵀΣx = ‖(√γ V_f Λ_f^{1/2})ᵀ x‖² + ‖√γ s ∘ x‖²`` in NAV units.
    """

    def __init__(self, window: int, series: Mapping[str, Sequence[float]] | None = None):
        self.window = window
        self.series: dict[str, deque[float]] = {
            k: deque(v, maxlen=window) for k, v in (series or {}).items()
        }

    def record(self, snaps: Sequence[VenueSnapshot], haircut: float) -> None:
        for s in snaps:
            q = self.series.setdefault(s.venue.id, deque(maxlen=self.window))
            q.append(float(s.real_apr) + (1.0 - haircut) * float(s.emission_apr))

    def factors(
        self, ids: Sequence[str], settings: OptimizerSettings
    ) -> tuple[FloatArray, FloatArray] | None:
        depth = min((len(self.series.get(i, ())) for i in ids), default=0)
        if depth < settings.risk_min_observations:
            return None
        y = np.array([list(self.series[i])[-depth:] for i in ids]).T  # T x n
        y = y - y.mean(axis=0)
        u, sv, vt = np.linalg.svd(y / np.sqrt(depth - 1), full_matrices=False)
        f = settings.risk_factors
        k = min(f, len(sv))
        loadings = np.zeros((len(ids), f))
        loadings[:, :k] = vt[:k].T * sv[:k]
        resid = y / np.sqrt(depth - 1) - (u[:, :k] * sv[:k]) @ vt[:k]
        idio = np.sqrt(np.maximum((resid**2).sum(axis=0), 0.0))
        g = np.sqrt(settings.risk_aversion)
        return g * loadings, g * idio


@dataclass(slots=True)
class DecideWork:
    """One decide's working copy of its memory plus its per-call scratch; never outlives the call."""

    cycle: int
    last_snapshot: dict[str, VenueSnapshot]
    last_seen: dict[str, int]
    history: RiskHistory
    rates: RateHistory
    warm: dict[str, tuple[float, float, float]]
    flights: list[tuple[datetime, float]]
    model_linear: tuple[tuple[str, bool], ...]
    # scratch: this decide's (days left, USD) in flight, queued venues' exit days, exits ordered
    known: tuple[tuple[float, float], ...] = ()
    queued_exit_days: dict[str, float] = field(default_factory=dict)
    exit: frozenset[str] = frozenset()
    # this decide's forecast level shifts per venue of the venue set (optimizer/forecast.py), by id;
    # None: spot
    rate_shift: dict[str, float] | None = None
    # the checker's arrays for this decide's (snapshots, portfolio, in flight), built once
    checker: tuple[object, object, object, CheckContext] | None = None
    # this decide's checked targets: (target bytes, first_only) -> (the cycle, the plan context,
    # the report), so the same target is not checked twice in one decide (the holdings and a
    # target rounded back to them, the pruning's "hold" trial)
    checked: dict[tuple[bytes, bool], tuple[object, object, CheckReport]] = field(
        default_factory=dict
    )

    @classmethod
    def start(
        cls,
        memory: OptimizerMemory,
        window: int,
        exit: frozenset[str],
        rate_window: int,
    ) -> DecideWork:
        return cls(
            cycle=memory.cycle,
            last_snapshot=dict(memory.last_snapshot),
            last_seen=dict(memory.last_seen),
            history=RiskHistory(window, memory.risk_series),
            rates=RateHistory(rate_window, memory.rate_series),
            warm=dict(memory.warm),
            flights=list(memory.flights),
            model_linear=memory.model_linear,
            exit=exit,
        )

    def memory(self) -> OptimizerMemory:
        return OptimizerMemory(
            cycle=self.cycle,
            last_snapshot=self.last_snapshot,
            last_seen=self.last_seen,
            risk_series={k: tuple(v) for k, v in self.history.series.items()},
            rate_series={k: tuple(v) for k, v in self.rates.series.items()},
            warm=self.warm,
            flights=tuple(self.flights),
            model_linear=self.model_linear,
        )
