"""Each reserve's Aave v3 rate curve, fitted to its own history with no look-ahead.

Shape (kink ``Uopt`` and ``slope2``): :func:`protocols.realdata.fit_best_optimal_usage_ratio` on the
reserve's daily readings of the trailing ``window_days`` (120) *before* each refit time
``tau_k = t_first + k * refit_days`` (before ``tau_1``: the Ethereum stablecoin preset Uopt 0.92,
slope2 60 %, protocol_math.md "before Dec 2024"). The fit reads utilization from the two rates;
here the amounts give it directly, so the reserve factor handed to the fit is the one that makes
``R_s = R_b U (1 - RF)`` exact: ``RF = 1 - R_s / (R_b U)`` with ``U = borrowed / supplied``.

Level: at every row the curve is calibrated to pass through the observed point ``(U_0, R_b)``
(governance moves slope1 often, and since Oct 2025 a risk oracle moves slope2): below the kink
``slope1 = R_b Uopt / U_0``; above it ``slope1`` is the fit's last segment's and ``slope2`` solves
``R_b = slope1 + slope2 (U_0 - Uopt) / (1 - Uopt)`` (when that ``slope2`` would be under ``slope1``,
both are ``R_b / (1 + e)``, ``e = (U_0 - Uopt) / (1 - Uopt)``: Aave's ``slope1 <= slope2``; when it
would pass Aave's cap ``slope1 + slope2 <= 1000 %``, ``slope2 = 1000 % - slope1`` and ``slope1 =
(R_b - 1000 % e) / (1 - e)``; ``U`` is clamped at 1 as in the gates). With ``RF`` as above the model's supply APR at
``U_0`` is the observed one, so our deposit of 0 changes nothing and a deposit ``x`` moves the rate
along the reserve's own curve: ``U = borrowed / (supplied + x)``.

Everything is precomputed as [time, reserve] arrays once per history (shared by every strategy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from backtest.history import LendingHistory
from protocols import aave
from protocols.realdata import RateSeries, fit_best_optimal_usage_ratio

FloatArray = NDArray[np.float64]

PRIOR_OPTIMAL_USAGE_RATIO = 0.92
PRIOR_SLOPE1_APR = 0.055
PRIOR_SLOPE2_APR = 0.60
DAY_SECONDS = 86_400
# the kinks Aave v3 stablecoin reserves use (protocols.realdata.COMMON_OPTIMAL_USAGE_RATIOS' stable part)
CANDIDATE_OPTIMAL_USAGE_RATIOS = (0.80, 0.90, 0.92)


def _checked_strategy(
    slope1_apr: float, slope2_apr: float, optimal_usage_ratio: float, reserve_factor: float
) -> aave.AaveRateStrategy:
    """An ``AaveRateStrategy`` (base 0) whose fields :meth:`RateModels.strategies` has checked."""
    s = object.__new__(aave.AaveRateStrategy)
    for name, value in (
        ("base_variable_borrow_apr", 0.0),
        ("slope1_apr", slope1_apr),
        ("slope2_apr", slope2_apr),
        ("optimal_usage_ratio", optimal_usage_ratio),
        ("reserve_factor", reserve_factor),
    ):
        object.__setattr__(s, name, value)
    return s


@dataclass(frozen=True)
class RateModels:
    """Calibrated kinked-curve parameters per [time, reserve] (base rate 0)."""

    optimal_usage_ratio: FloatArray
    slope1_apr: FloatArray
    slope2_apr: FloatArray
    reserve_factor: FloatArray
    refits: int

    def strategy(self, i: int, j: int) -> aave.AaveRateStrategy:
        return aave.AaveRateStrategy(
            0.0,
            float(self.slope1_apr[i, j]),
            float(self.slope2_apr[i, j]),
            float(self.optimal_usage_ratio[i, j]),
            float(self.reserve_factor[i, j]),
        )

    def strategies(self, rows: list[tuple[int, int]]) -> list[aave.AaveRateStrategy]:
        """``[self.strategy(i, j) for i, j in rows]``, checked once for the batch.

        ``AaveRateStrategy`` checks its fields when made (~50 us, most of a 1,000-reserve cycle's
        snapshot time); here the same rules run as array comparisons over the batch (finite; slopes
        >= 0; Uopt in [1 %, 99 %]; slope1 <= slope2; RF in [0, 1); base + slope1 + slope2 <= 1000 %,
        the same float sums) and each passing row is made without re-checking: equal (and hashing
        equal) to the checked one. A batch with any failing row is made row by row, so the
        constructor raises its own error."""
        if not rows:
            return []
        ii = np.fromiter((i for i, _ in rows), dtype=np.intp, count=len(rows))
        jj = np.fromiter((j for _, j in rows), dtype=np.intp, count=len(rows))
        s1, s2 = self.slope1_apr[ii, jj], self.slope2_apr[ii, jj]
        uopt, rf = self.optimal_usage_ratio[ii, jj], self.reserve_factor[ii, jj]
        with np.errstate(invalid="ignore"):
            ok = (
                np.isfinite(s1)
                & np.isfinite(s2)
                & np.isfinite(uopt)
                & np.isfinite(rf)
                & (s1 >= 0.0)
                & (s2 >= 0.0)
                & (uopt >= aave.MIN_OPTIMAL_USAGE_RATIO)
                & (uopt <= aave.MAX_OPTIMAL_USAGE_RATIO)
                & (s1 <= s2)
                & (rf >= 0.0)
                & (rf < 1.0)
                & ((0.0 + s1) + s2 <= aave.MAX_BORROW_APR)
            )
        if not ok.all():
            return [self.strategy(i, j) for i, j in rows]
        return [
            _checked_strategy(a, b, c, d)
            for a, b, c, d in zip(s1.tolist(), s2.tolist(), uopt.tolist(), rf.tolist(), strict=True)
        ]

    def supply_apr_with(
        self, i: int, supplied_usd: FloatArray, borrowed_usd: FloatArray, ours_usd: FloatArray
    ) -> FloatArray:
        """Vectorised over reserves: ``R_s(U)`` at ``U = borrowed / (supplied + ours)``."""
        total = supplied_usd + ours_usd
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(total > 0, borrowed_usd / np.where(total > 0, total, 1.0), 0.0)
        # clamped at 1 as the calibration's U_0 (a source's two amounts read a moment apart show
        # up to 1.001, the gates' slack): unclamped, the curve paid more than the observed rate
        u = np.minimum(u, 1.0)
        uopt, s1, s2 = self.optimal_usage_ratio[i], self.slope1_apr[i], self.slope2_apr[i]
        below = s1 * u / uopt
        above = s1 + s2 * (u - uopt) / (1.0 - uopt)
        rb = np.where(u <= uopt, below, above)
        out = rb * u * (1.0 - self.reserve_factor[i])
        # nan_to_num costs ~20 small NumPy calls; the rates are almost always all finite
        return out if np.isfinite(out).all() else np.nan_to_num(out)


def _shape(h: LendingHistory, j: int, lo: int, hi: int) -> tuple[float, float, float] | None:
    """(Uopt, slope1, slope2) fitted on reserve ``j``'s daily rows in [lo, hi); None if too few."""
    per_day = max(DAY_SECONDS // h.step_seconds, 1)
    idx = np.arange(lo, hi, per_day)
    s, b = h.supplied_usd[idx, j], h.borrowed_usd[idx, j]
    rs, rb = h.supply_apr[idx, j], h.borrow_apr[idx, j]
    ok = np.isfinite(rs) & (s > 0) & (b > 0) & (rb > 0) & (rs > 0)
    if ok.sum() < 10:
        return None
    u = b[ok] / s[ok]
    rf = np.clip(1.0 - rs[ok] / (rb[ok] * u), 0.0, 0.99)
    days = (h.times[idx[ok]] // DAY_SECONDS).astype("datetime64[D]")
    series = RateSeries(
        network=h.reserves[j].network,
        symbol=h.reserves[j].symbol,
        asset="",
        date=days,
        supply_apr=rs[ok],
        borrow_apr=rb[ok],
        reserve_factor=rf,
        liquidity_index=np.ones(int(ok.sum())),
    )
    fit = fit_best_optimal_usage_ratio(series, CANDIDATE_OPTIMAL_USAGE_RATIOS)
    if not fit.segments:
        return None
    last = fit.segments[-1]
    slope2s = [seg.slope2_apr for seg in fit.segments if seg.slope2_apr is not None]
    slope2 = slope2s[-1] if slope2s else math.nan
    return fit.optimal_usage_ratio, last.slope1_apr, slope2


def fit_rate_models(
    h: LendingHistory, refit_days: float = 30.0, window_days: float = 120.0
) -> RateModels:
    t_count, r_count = len(h.times), len(h.reserves)
    uopt = np.full((t_count, r_count), PRIOR_OPTIMAL_USAGE_RATIO)
    s1_shape = np.full((t_count, r_count), PRIOR_SLOPE1_APR)
    s2_shape = np.full((t_count, r_count), PRIOR_SLOPE2_APR)
    t0 = int(h.times[0])
    refit = int(refit_days * DAY_SECONDS)
    window = int(window_days * DAY_SECONDS)
    refits = 0
    tau = t0 + refit
    while tau <= int(h.times[-1]):
        hi = int(np.searchsorted(h.times, tau, side="left"))  # rows strictly before tau
        lo = int(np.searchsorted(h.times, tau - window, side="left"))
        nxt = int(np.searchsorted(h.times, tau + refit, side="left"))
        for j in range(r_count):
            shape = _shape(h, j, lo, hi)
            refits += 1
            if shape is None:
                if hi > 0:  # keep the previous period's shape
                    uopt[hi:nxt, j] = uopt[hi - 1, j]
                    s1_shape[hi:nxt, j] = s1_shape[hi - 1, j]
                    s2_shape[hi:nxt, j] = s2_shape[hi - 1, j]
                continue
            u_k, s1_k, s2_k = shape
            uopt[hi:nxt, j] = u_k
            s1_shape[hi:nxt, j] = s1_k
            s2_shape[hi:nxt, j] = s2_k if math.isfinite(s2_k) else s2_shape[hi - 1, j]
        tau += refit
    # calibrate every row through its observed point (U0, R_b)
    s, b, rs, rb = h.supplied_usd, h.borrowed_usd, h.supply_apr, h.borrow_apr
    with np.errstate(invalid="ignore", divide="ignore"):
        u0 = np.where(s > 0, b / np.where(s > 0, s, 1.0), 0.0)
        u0 = np.nan_to_num(np.clip(u0, 0.0, 1.0))
        rb0 = np.nan_to_num(rb)
        rs0 = np.nan_to_num(rs)
        below = u0 <= uopt
        slope1 = np.where(below & (u0 > 0), rb0 * uopt / np.where(u0 > 0, u0, 1.0), s1_shape)
        slope1 = np.where(below & (u0 <= 0), np.maximum(rb0, s1_shape), slope1)
        excess = np.where(below, 1.0, (u0 - uopt) / (1.0 - uopt))
        slope2 = np.where(below, s2_shape, (rb0 - slope1) / np.where(excess > 0, excess, 1.0))
        rf = np.where((rb0 > 0) & (u0 > 0), 1.0 - rs0 / np.where(rb0 * u0 > 0, rb0 * u0, 1.0), 0.1)
    # above the kink with a borrow APR under the shape's slope1 (a real kink above the fit's, a
    # slope cut since the refit) no slope2 >= slope1 passes through the point; the curve with
    # slope1 = slope2 = R_b / (1 + e) does (before, slope2 was raised to slope1 and the curve paid
    # more than the history: 11 % for an observed 4 % at U = 1)
    flat = ~below & (slope2 < slope1)
    # just above the kink at a high borrow APR the solved slope2 can pass Aave's cap (slope1 +
    # slope2 <= MAX_BORROW_APR); then slope2 = MAX - slope1 and slope1 = (R_b - MAX e) / (1 - e)
    # still pass through the point (before, slope2 was cut at the cap and the curve paid less than
    # the history: 8.0 % for an observed 15.4 %, USDT at U = 0.9203 on 2023-02-17)
    capped = ~below & (slope2 > aave.MAX_BORROW_APR - slope1) & (excess < 1.0)
    if capped.any():
        raised = (rb0 - aave.MAX_BORROW_APR * excess) / np.where(capped, 1.0 - excess, 1.0)
        slope1 = np.where(capped, raised, slope1)
        slope2 = np.where(capped, aave.MAX_BORROW_APR - raised, slope2)
    if flat.any():
        level = rb0 / (1.0 + excess)
        slope1, slope2 = np.where(flat, level, slope1), np.where(flat, level, slope2)
    slope1 = np.clip(np.nan_to_num(slope1), 0.0, aave.MAX_BORROW_APR / 2)
    slope2 = np.clip(np.maximum(np.nan_to_num(slope2), slope1), 0.0, aave.MAX_BORROW_APR - slope1)
    slope2 = np.maximum(slope2, slope1)
    rf = np.clip(np.nan_to_num(rf), 0.0, 0.99)
    return RateModels(uopt, slope1, slope2, rf, refits)
