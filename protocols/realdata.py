"""Test the Aave v3 kinked rate model against real daily reserve data.

Input: ``shared/data/aave_v3_daily_rates.csv`` (one row per day, network and reserve; daily
snapshots of Aave's on-chain data provider, from ``th3nolo/aave-v3-data``; see
``shared/data/README.md``). Everything here is a pure function of the loaded table (reading it and the series helpers are
in :mod:`protocols.ratetable`, re-exported here).

Method (reference/protocol_math.md §1.1 and §1.3; the algebra is ours, hence **(derived)**):

1. Utilization from the two quoted rates: ``R_s = R_b * U * (1 - RF)`` gives
   ``U = R_s / (R_b * (1 - RF))`` wherever ``R_b > 0`` (:func:`protocols.aave.implied_utilization`).
2. Below the kink (``U <= Uopt``) with ``base = 0``, ``R_b = slope1 * U / Uopt``, so the
   *implied slope1* ``R_b * Uopt / U`` must equal the governance slope1 on every such day.
   Above the kink that quantity is inflated by the slope2 term, so those days are set apart.
3. Change-point segmentation of the below-kink implied slope1 series (optimal partitioning,
   least squares plus a penalty per segment; Jackson et al. 2005, "An algorithm for optimal
   partitioning of data on an interval") gives piecewise-constant slope1 segments.
4. Within each segment, slope2 is fitted by least squares on the above-kink days:
   ``R_b - base - slope1 = slope2 * (U - Uopt) / (1 - Uopt)``.
5. The fitted curve (:func:`protocols.aave.borrow_apr`) predicts each day's borrow APR from its
   utilization; a day is *explained* when the residual is within what rounding the two quotes
   to 1e-6 can produce (:func:`quote_rounding_bound_apr`; ~2e-6 below the kink, where
   ``dR_b/dU = slope1/Uopt`` ~ 0.05, up to ~3e-5 above it, where ``slope2/(1-Uopt)`` ~ 1.25).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocols.aave import AaveRateStrategy, borrow_apr
from protocols.ratetable import (
    FloatArray,
    RateSeries,
    RateTable,
    read_rates_csv,
    realized_supply_apr,
    recover_utilization,
    select_series,
)

__all__ = [
    "COMMON_OPTIMAL_USAGE_RATIOS",
    "KinkedFit",
    "RateSegment",
    "RateSeries",
    "RateTable",
    "describe_fit",
    "fit_best_optimal_usage_ratio",
    "fit_kinked_history",
    "implied_slope1",
    "quote_rounding_bound_apr",
    "read_rates_csv",
    "realized_supply_apr",
    "recover_utilization",
    "segment_piecewise_constant",
    "select_series",
]


def implied_slope1(
    borrow_apr: FloatArray,
    utilization: FloatArray,
    optimal_usage_ratio: float = 0.92,
    base_apr: float = 0.0,
) -> FloatArray:
    """``(R_b - base) * Uopt / U``: equals slope1 on days below the kink; NaN where U is NaN or 0."""
    b = np.asarray(borrow_apr, dtype=np.float64)
    u = np.asarray(utilization, dtype=np.float64)
    out = np.full(np.broadcast(b, u).shape, np.nan)
    ok = np.isfinite(u) & (u > 0.0)
    out[ok] = (np.broadcast_to(b, out.shape)[ok] - base_apr) * optimal_usage_ratio / u[ok]
    return out


def segment_piecewise_constant(
    values: Sequence[float] | FloatArray, penalty: float, min_size: int = 1
) -> list[tuple[int, int]]:
    """Optimal partition of ``values`` into constant segments: minimise
    ``sum over segments of sum (x_i - mean_segment)^2 + penalty * (number of segments)``
    exactly by dynamic programming (Jackson et al. 2005), O(n^2) with numpy. Returns half-open
    index ranges ``[(0, e1), (e1, e2), ..., (ek, n)]``. A step of height ``h`` between segments
    of lengths ``n1``, ``n2`` is found when ``h^2 * n1*n2/(n1+n2) > penalty``."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        return []
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    if penalty < 0.0:
        raise ValueError(f"penalty must be >= 0, got {penalty!r}")
    if min_size < 1 or min_size > n:
        raise ValueError(f"min_size must be in [1, {n}], got {min_size!r}")
    x = x - x.mean()  # centre to limit cancellation in sum(x^2) - sum(x)^2/m
    cs = np.concatenate(([0.0], np.cumsum(x)))
    cs2 = np.concatenate(([0.0], np.cumsum(x * x)))
    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    last_start = np.zeros(n + 1, dtype=np.int64)
    for t in range(min_size, n + 1):
        s = np.arange(0, t - min_size + 1)
        m = t - s
        seg_sum = cs[t] - cs[s]
        cost = np.maximum(cs2[t] - cs2[s] - seg_sum * seg_sum / m, 0.0)
        total = best[s] + cost + penalty
        j = int(np.argmin(total))
        best[t] = total[j]
        last_start[t] = s[j]
    bounds: list[tuple[int, int]] = []
    t = n
    while t > 0:
        s0 = int(last_start[t])
        bounds.append((s0, t))
        t = s0
    return bounds[::-1]


@dataclass(frozen=True)
class RateSegment:
    """A stretch of days on one (slope1, slope2) curve. Dates are observation days: the
    governance change that starts a segment happened between the previous segment's last day and
    this one's first day. ``slope2_apr`` is None when no day in the segment was above the kink."""

    first_date: np.datetime64
    last_date: np.datetime64
    slope1_apr: float
    slope2_apr: float | None
    n_days: int
    n_below_kink: int
    n_above_kink: int
    max_abs_slope1_dev: float  # over below-kink days: max |implied slope1 - slope1_apr|


@dataclass(frozen=True)
class KinkedFit:
    """Per-day results and segments of :func:`fit_kinked_history`. Per-day arrays align with
    ``series``; days without a utilization (borrow APR 0) have NaN and ``segment == -1``."""

    series: RateSeries
    optimal_usage_ratio: float
    base_apr: float
    tolerance_apr: FloatArray  # per day: quote-rounding bound + tol_apr
    utilization: FloatArray
    implied_slope1: FloatArray
    above_kink: NDArray[np.bool_]
    segment: NDArray[np.int64]
    model_borrow_apr: FloatArray
    residual_apr: FloatArray
    explained: NDArray[np.bool_]
    segments: tuple[RateSegment, ...]

    @property
    def n_days(self) -> int:
        return len(self.series)

    @property
    def n_valid(self) -> int:
        return int(np.isfinite(self.utilization).sum())

    @property
    def n_above_kink(self) -> int:
        return int(self.above_kink.sum())

    @property
    def share_explained(self) -> float:
        """Share of days with a utilization whose borrow APR the fitted curve reproduces."""
        return float(self.explained.sum() / self.n_valid) if self.n_valid else 0.0

    @property
    def share_slope1_constant(self) -> float:
        """Share of days with a utilization whose *naive* implied slope1 (ignoring the kink) is
        within ``tol_slope1`` of its segment's slope1: the headline piecewise-constancy figure."""
        return float(self._slope1_close().sum() / self.n_valid) if self.n_valid else 0.0

    def _slope1_close(self, tol_slope1: float = 1e-4) -> NDArray[np.bool_]:
        s1 = np.full(self.n_days, np.nan)
        has = self.segment >= 0
        s1[has] = [self.segments[k].slope1_apr for k in self.segment[has]]
        with np.errstate(invalid="ignore"):
            return np.abs(self.implied_slope1 - s1) <= tol_slope1

    @property
    def max_abs_residual_apr(self) -> float:
        r = self.residual_apr[np.isfinite(self.residual_apr)]
        return float(np.max(np.abs(r))) if r.size else math.nan

    @property
    def rms_residual_apr(self) -> float:
        r = self.residual_apr[np.isfinite(self.residual_apr)]
        return float(np.sqrt(np.mean(r * r))) if r.size else math.nan

    def kink_bracket(self, tol_slope1: float = 1e-4) -> tuple[float, float]:
        """Where the kink must be, from the data alone: (highest U of a day on its segment's
        slope1 line, lowest U of a day above it by more than ``tol_slope1``). The implied slope1
        off the line is inflated only past the kink, so the true Uopt lies in this interval
        (when its left end is below its right end)."""
        close = self._slope1_close(tol_slope1)
        valid = np.isfinite(self.implied_slope1) & (self.segment >= 0)
        on = valid & close
        off = valid & ~close
        lo = float(np.max(self.utilization[on])) if on.any() else math.nan
        hi = float(np.min(self.utilization[off])) if off.any() else math.nan
        return lo, hi


def quote_rounding_bound_apr(
    series: RateSeries,
    utilization: FloatArray,
    slope_per_unit_u: FloatArray,
    quote_rounding_apr: float = 5e-7,
) -> FloatArray:
    """Largest borrow-APR residual that rounding the two quotes to ``±quote_rounding_apr`` can
    cause, to first order **(derived)**: ``U = R_s/(R_b(1-RF))`` moves by
    ``dU = q/(R_b(1-RF)) + U*q/R_b``, the model by ``|dR_b/dU| * dU``, and the observed borrow
    APR itself by ``q``. ``slope_per_unit_u`` is ``slope1/Uopt`` below the kink and
    ``slope2/(1-Uopt)`` above it."""
    b = series.borrow_apr
    with np.errstate(invalid="ignore", divide="ignore"):
        du = (
            quote_rounding_apr / (b * (1.0 - series.reserve_factor))
            + utilization * quote_rounding_apr / b
        )
    return quote_rounding_apr + np.abs(slope_per_unit_u) * du


def fit_kinked_history(
    series: RateSeries,
    optimal_usage_ratio: float = 0.92,
    base_apr: float = 0.0,
    penalty: float = 1e-6,
    tol_apr: float = 1e-6,
    quote_rounding_apr: float = 5e-7,
    min_excess_for_slope2: float = 0.002,
) -> KinkedFit:
    """Explain a reserve's daily (supply, borrow) APRs with a piecewise-constant kinked curve.

    Days with ``U > Uopt`` are above the kink; the below-kink implied slope1 series is segmented
    with :func:`segment_piecewise_constant` (``penalty`` in slope1^2 units: the default 1e-6
    isolates any stretch whose slope1 differs by more than ~10 bp); each above-kink day joins the
    segment of the nearest earlier below-kink day (the first segment if none).

    Per segment, slope1 is the median implied slope1 of its below-kink days; slope2 is the median
    of the per-day ``(R_b - base - slope1) * (1 - Uopt) / (U - Uopt)`` over its above-kink days
    with ``U - Uopt >= min_excess_for_slope2`` (there the quote rounding moves a per-day slope2
    by < ~1 %; all above-kink days are used if none qualifies). The median, not least squares,
    so a one-day excursion does not shift the segment's curve.

    A day is *explained* when ``|R_b - borrow_apr(curve, U)|`` is within the quote-rounding bound
    (:func:`quote_rounding_bound_apr`) plus ``tol_apr``.
    """
    u = recover_utilization(series)
    slope1_day = implied_slope1(series.borrow_apr, u, optimal_usage_ratio, base_apr)
    valid = np.isfinite(u)
    above = valid & (u > optimal_usage_ratio)
    below_idx = np.flatnonzero(valid & ~above)

    segment = np.full(len(series), -1, dtype=np.int64)
    if below_idx.size:
        bounds = segment_piecewise_constant(slope1_day[below_idx], penalty)
        seg_of_below = np.empty(below_idx.size, dtype=np.int64)
        for k, (a, b) in enumerate(bounds):
            seg_of_below[a:b] = k
        segment[below_idx] = seg_of_below
        for i in np.flatnonzero(above):
            prior = int(np.searchsorted(below_idx, i)) - 1
            segment[i] = seg_of_below[max(prior, 0)]

    model = np.full(len(series), np.nan)
    slope_per_u = np.full(len(series), np.nan)
    segments: list[RateSegment] = []
    n_segments = int(segment.max()) + 1 if below_idx.size else 0
    for k in range(n_segments):
        in_k = segment == k
        bel = in_k & ~above
        abv = in_k & above
        s1 = float(np.median(slope1_day[bel]))
        s2: float | None = None
        if abv.any():
            excess = u - optimal_usage_ratio
            use = abv & (excess >= min_excess_for_slope2)
            if not use.any():
                use = abv
            s2_day = (
                (series.borrow_apr[use] - base_apr - s1) * (1.0 - optimal_usage_ratio) / excess[use]
            )
            s2 = float(np.median(s2_day))
        days = series.date[in_k]
        segments.append(
            RateSegment(
                first_date=days.min(),
                last_date=days.max(),
                slope1_apr=s1,
                slope2_apr=s2,
                n_days=int(in_k.sum()),
                n_below_kink=int(bel.sum()),
                n_above_kink=int(abv.sum()),
                max_abs_slope1_dev=float(np.max(np.abs(slope1_day[bel] - s1))),
            )
        )
        predict = in_k
        try:
            strategy = AaveRateStrategy(
                base_apr, s1, s2 if s2 is not None else s1, optimal_usage_ratio, 0.0
            )
        except (
            ValueError
        ):  # fitted slope2 < slope1 contradicts the contract: leave those days unexplained
            strategy = AaveRateStrategy(base_apr, s1, s1, optimal_usage_ratio, 0.0)
            predict = bel
        model[predict] = borrow_apr(strategy, np.clip(u[predict], 0.0, 1.0))
        slope_per_u[bel] = s1 / optimal_usage_ratio
        slope_per_u[abv] = strategy.slope2_apr / (1.0 - optimal_usage_ratio)

    residual = series.borrow_apr - model
    tolerance = quote_rounding_bound_apr(series, u, slope_per_u, quote_rounding_apr) + tol_apr
    with np.errstate(invalid="ignore"):
        explained = np.abs(residual) <= tolerance
    return KinkedFit(
        series=series,
        optimal_usage_ratio=optimal_usage_ratio,
        base_apr=base_apr,
        tolerance_apr=tolerance,
        utilization=u,
        implied_slope1=slope1_day,
        above_kink=above,
        segment=segment,
        model_borrow_apr=model,
        residual_apr=residual,
        explained=explained,
        segments=tuple(segments),
    )


# Optimal usage ratios seen on Aave v3 reserves (stablecoins 0.90/0.92, WETH 0.80-0.95, long-tail 0.45).
COMMON_OPTIMAL_USAGE_RATIOS: tuple[float, ...] = (0.45, 0.80, 0.85, 0.90, 0.92, 0.93, 0.94, 0.95)


def fit_best_optimal_usage_ratio(
    series: RateSeries,
    candidates: Sequence[float] = COMMON_OPTIMAL_USAGE_RATIOS,
    **fit_kwargs: float,
) -> KinkedFit:
    """:func:`fit_kinked_history` for each candidate Uopt; keep the one with the fewest
    ``unexplained days + segments`` (a description-length rule: every segment is one more
    parameter set to explain, every unexplained day one more exception; ties go to the smaller
    Uopt). Needed because the kink is not in the data file and differs by chain (Ethereum
    stablecoins 0.92, most L2 stablecoins 0.90). A Uopt set too high turns the days between the
    true kink and it into extra segments or unexplained days, so the rule penalises it."""
    if not candidates:
        raise ValueError("candidates must not be empty")
    best: tuple[int, float, KinkedFit] | None = None
    for uopt in candidates:
        fit = fit_kinked_history(series, uopt, **fit_kwargs)
        cost = int(fit.n_valid - fit.explained.sum()) + len(fit.segments)
        if best is None or cost < best[0]:
            best = (cost, uopt, fit)
    assert best is not None
    return best[2]


def describe_fit(fit: KinkedFit) -> str:
    """Plain-text summary of a fit (segments and fit statistics)."""
    s = fit.series
    lo, hi = fit.kink_bracket()
    lines = [
        f"{s.network}/{s.symbol} ({s.asset}): {fit.n_days} days, {fit.n_valid} with U,"
        f" U in [{np.nanmin(fit.utilization):.4f}, {np.nanmax(fit.utilization):.4f}],"
        f" {fit.n_above_kink} above Uopt={fit.optimal_usage_ratio}",
        f"  explained {fit.share_explained:.1%} (|resid| <= rounding bound, median {np.nanmedian(fit.tolerance_apr):.1e});"
        f" naive slope1 constant on {fit.share_slope1_constant:.1%};"
        f" rms resid {fit.rms_residual_apr:.2e}, max {fit.max_abs_residual_apr:.2e};"
        f" kink bracket [{lo:.4f}, {hi:.4f}]",
    ]
    for seg in fit.segments:
        s2 = "   n/a" if seg.slope2_apr is None else f"{seg.slope2_apr:6.2%}"
        lines.append(
            f"  {seg.first_date} .. {seg.last_date}  slope1 {seg.slope1_apr:6.3%}  slope2 {s2}"
            f"  days {seg.n_days:3d} (above kink {seg.n_above_kink:2d})  max dev {seg.max_abs_slope1_dev:.1e}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # reproduce the numbers in docs/aave-real-data.md
    # usage: python -m protocols.realdata [NETWORK SYMBOL [ASSET]] ; data from $YIELDVAULT_SHARED_DIR
    import os
    import sys

    shared = Path(
        os.environ.get("YIELDVAULT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
    )
    table = read_rates_csv(shared / "data" / "aave_v3_daily_rates.csv")
    args = sys.argv[1:] or ["ethereum", "USDC"]
    chosen = select_series(table, args[0], args[1], args[2] if len(args) > 2 else None)
    if args[:2] == ["ethereum", "USDC"]:
        print(describe_fit(fit_kinked_history(chosen, optimal_usage_ratio=0.92)))
    else:
        print(describe_fit(fit_best_optimal_usage_ratio(chosen)))
