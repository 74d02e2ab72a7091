"""The replay's yield curves: built once per reserve state, in batches; hindsight's marked curves.

A reserve's curve is a pure function of the replayed state *without us* (the calibrated rate
strategy, the debt, the others' liquidity), never of our position: :class:`CurveMemo` keeps each
build (``adapters.curves.aave_lending_curve``, in batches by ``adapters.curves_batch``) for every
strategy, cycle and run of the process. :class:`MarkedCurve` adds a foreseen mark move to a curve
(the hindsight strategy's view of the next period).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

from adapters.curves import EnvelopeCurve, aave_lending_curve
from adapters.curves_batch import aave_lending_curves
from core.types import YieldCurve
from protocols import aave

# how many distinct reserve states keep their built curve (CurveMemo): ~3 years of 6-hourly cycles
# of 4 reserves with their hindsight rows fit; a 1,000-reserve replay just cycles through it
CURVE_MEMO_ENTRIES = 1 << 16
# how many curves ReplayMarket builds in one batch when a cycle misses (the coming cycles' states
# read ahead: a batch of 2,048 costs about what a batch of 3 does per NumPy call)
PREFETCH_CURVES = 2048
CurveKey = tuple[aave.AaveRateStrategy, float, float]


class CurveMemo:
    """``adapters.curves.aave_lending_curve`` memoised on its exact inputs, built in batches.

    A reserve's curve is a pure function of the replayed state *without us* (the calibrated rate
    strategy, the debt, the others' liquidity), never of our position, so every strategy of a run,
    every cycle whose state did not change (a reserve with no supply or borrow that hour: a quarter
    of DAI's hours) and every run in the same process (the sweep's grid points, the look-ahead
    check's cuts) share one build. The misses of a cycle are built together by
    ``adapters.curves_batch.aave_lending_curves`` (the same curves, bit for bit, ~30x cheaper for
    many reserves). Curves are immutable; the key is the floats themselves, so a hit is exactly
    what a fresh build gives. Oldest entries go first past ``max_entries``.
    """

    def __init__(self, max_entries: int = CURVE_MEMO_ENTRIES, *, batch: bool = True) -> None:
        """``CurveMemo(0, batch=False)`` is the unoptimised path (one ``aave_lending_curve`` per
        reserve per cycle, nothing kept): the benchmark's "before"."""
        self.max_entries = max_entries
        self.batch = batch
        # oldest first; OrderedDict pops its oldest in O(1) (a dict's ``next(iter(d))`` after many
        # deletions at its front walks the dead slots: quadratic over a 1,000-venue month)
        self._curves: OrderedDict[CurveKey, EnvelopeCurve] = OrderedDict()
        self.hits = 0
        self.builds = 0

    def prefetch(self, keys: list[CurveKey]) -> None:
        """Build the curves of ``keys`` not kept yet, in one batch (no hit is counted).

        A replay knows the states of its coming cycles; building them together turns ~2,000 small
        batches of 2-4 reserves (NumPy's per-call overhead: ~2 ms each) into one. Each curve is a
        pure function of its key, so a curve built ahead is the one its cycle would build (the
        batch is elementwise: bit for bit), and nothing about a later state reaches a decision
        before its time: a cycle reads only the curves of its own row's keys."""
        memo = self._curves
        if self.max_entries <= 0:
            return
        todo = list(dict.fromkeys(k for k in keys if k not in memo))[: self.max_entries]
        if not todo:
            return
        built = aave_lending_curves(todo) if self.batch else [aave_lending_curve(*k) for k in todo]
        for k, c in zip(todo, built, strict=True):
            memo[k] = c
        self.builds += len(todo)
        while len(memo) > self.max_entries:
            memo.popitem(last=False)

    def get(self, keys: list[CurveKey]) -> list[EnvelopeCurve]:
        if self.max_entries <= 0 and not self.batch:
            self.builds += len(keys)
            return [aave_lending_curve(*k) for k in keys]
        memo = self._curves
        missing = list(dict.fromkeys(k for k in keys if k not in memo))
        if missing:
            built = (
                aave_lending_curves(missing)
                if self.batch
                else [aave_lending_curve(*k) for k in missing]
            )
            for k, c in zip(missing, built, strict=True):
                memo[k] = c
            self.builds += len(missing)
        self.hits += len(keys) - len(missing)
        out = [memo[k] for k in keys]
        while len(memo) > self.max_entries:
            memo.popitem(last=False)
        return out


CURVES = CurveMemo()  # one per process


def curve_strategy(curve: YieldCurve) -> aave.AaveRateStrategy:
    """The rate strategy a memoised lending curve was built on (its exact income holds it)."""
    strategy = getattr(getattr(curve, "_exact_real", None), "strategy", None)
    if not isinstance(strategy, aave.AaveRateStrategy):
        raise TypeError(f"not an Aave lending curve: {type(curve).__name__}")
    return strategy


class MarkedCurve(YieldCurve):
    """A curve plus a foreseen mark move: ``real(x) = base(x) + d * min(x, capacity)`` (``d`` APR).

    ``base`` is concave and non-decreasing, so ``base + d x`` is concave; it stays non-decreasing
    (the :class:`~core.types.YieldCurve` contract) because the capacity stops where the marginal
    income ``base'(x) + d`` reaches 0: for ``d >= 0`` the base's own capacity, for ``d < 0`` the
    point found by bisection on the slope (0 when ``base'(0) + d <= 0``: the venue takes nothing).
    Only the hindsight strategy builds these (``ReplayMarket.hindsight_snapshots``)."""

    def __init__(self, base: YieldCurve, drift_apr: float) -> None:
        self.base = base
        self.drift_apr = float(drift_apr)
        cap = float(base.capacity_usd)
        if self.drift_apr < 0.0 and cap > 0.0:
            cap = self._slope_zero(min(cap, 1e15))
        self.capacity_usd = cap

    def _slope(self, x: float) -> float:
        step = max(x * 1e-6, 1e-3)
        lo = max(x - step, 0.0)
        f = self.base.real_income_usd(np.array([lo, x + step]))
        return float(f[1] - f[0]) / (x + step - lo) + self.drift_apr

    def _slope_zero(self, cap: float) -> float:
        if self._slope(0.0) <= 0.0:
            return 0.0
        if self._slope(cap) >= 0.0:
            return cap
        lo, hi = 0.0, cap
        for _ in range(60):
            mid = (lo + hi) / 2.0
            lo, hi = (mid, hi) if self._slope(mid) > 0.0 else (lo, mid)
            if hi - lo <= 1e-6 * max(hi, 1.0):
                break
        return lo

    def real_income_usd(self, x_usd: NDArray[np.float64]) -> NDArray[np.float64]:
        x = np.clip(np.asarray(x_usd, dtype=np.float64), 0.0, self.capacity_usd)
        return np.asarray(self.base.real_income_usd(x), dtype=np.float64) + self.drift_apr * x

    def emission_income_usd(self, x_usd: NDArray[np.float64]) -> NDArray[np.float64]:
        x = np.clip(np.asarray(x_usd, dtype=np.float64), 0.0, self.capacity_usd)
        return np.asarray(self.base.emission_income_usd(x), dtype=np.float64)
