"""Each venue's rate over the holding horizon, forecast from its own past (README §3b).

The optimizer values a move as income over ``H = holding_horizon_days`` against a one-off cost.
Valued at today's rates (``rate_forecast: spot``), a spread that reverts within hours is counted
as if it held for all of ``H``: on the 14-day mixed-chain probe the optimizer moved $200k across
two bridges and back every day or two and lost 7.8 % of NAV a year in bridge fees.

``rate_forecast: mean_reversion`` models each venue's rate level ``r_t`` as an AR(1), the sampled
Ornstein-Uhlenbeck process,

    r_{t+1} - mu = phi (r_t - mu) + e_{t+1},       0 <= phi < 1,

whose ``j``-step forecast is ``E[r_{t+j} | r_t] = mu + phi^j (r_t - mu)`` (Hamilton, *Time Series
Analysis*, 1994, §4.2; the OU process of Uhlenbeck & Ornstein, 1930, sampled every ``Δt`` has
``phi = exp(-θ Δt)``, Vasicek 1977). The rate earned now holds for the first period, so the
expected average over the ``k = H / Δt`` periods of the horizon is

    r̄ = (1/k) Σ_{j=0}^{k-1} E[r_{t+j}] = mu + (r_0 - mu) (1 - phi^k) / (k (1 - phi))

(``-> r_0`` as ``phi -> 1``, ``-> mu + (r_0 - mu)/k`` at ``phi = 0``; ``k < 1`` is taken as 1:
a horizon shorter than one period earns ``r_0``). Fitted per venue on its last
``rate_forecast_window`` observations ``y_1..y_T``: ``mu`` their mean, ``phi`` the least-squares
lag-1 slope of the demeaned series ``Σ d_t d_{t-1} / Σ d_{t-1}²`` clamped to ``[0, PHI_MAX]``,
``Δt`` the median spacing of the observation times. (Least squares biases ``phi`` down by about
``(1 + 3 phi)/T`` in short samples, Kendall 1954; not corrected, which errs toward the mean.)
Fewer than ``rate_forecast_min_observations`` observations, a constant series or no positive
spacing: spot (``r̄ = r_0``), the behaviour before the forecast.

*Where the level is read* (:func:`level_rates`): the average APR of a reference deposit
``x_ref = rate_forecast_reference_ratio · NAV`` on the venue's curve, ``f_t(x_ref) / x_ref``
(emissions haircut). A curve is the pool's state *without us* (``core.types.YieldCurve``), so the
series does not move with our own deposits. Why not the marginal rate at ``x -> 0``
(``real_apr``, ratio 0): an Aave reserve above its kink quotes a spike that a deposit of our size
removes by itself (on the mixed-chain probe, USDC at 15.4 % at ``x -> 0`` and 9 % on average over
our 184k-398k), so a level shift read at 0 took the whole spike off every piece of the curve and the
optimizer still rotated: read at 0, 9.06 % net APY, 27 plans, $1,335 of bridge fees; at 10 % of
NAV 10.85 % / 17 / $827; at 40 % 11.97 % / 5 / $513 (README §3b). Read where we trade, the linear
shift is exact at ``x_ref``.

The curves keep their shape; the forecast moves their level: venue ``i``'s income becomes
``f_i(x) + s_i x`` with ``s_i = r̄_i - r_0,i``. A linear term keeps ``f_i`` concave, its chords
are exact, so the PWL fit and its error bounds are unchanged and only the slopes of the objective
move by ``s_i`` (:meth:`optimizer.cycle.CycleData.objective_pieces`); the plan's gains, the
pruning and the gate add ``s_i (target_i - x0_i) H/365`` (:class:`optimizer.pricing.PlanContext`).
The decision's predicted APR stays at today's rates (what the guards compare with the books).
Deterministic: the same memory and snapshots give the same shifts, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from core.types import VenueSnapshot
from optimizer.config import OptimizerSettings
from optimizer.pwl import evaluate_curves

__all__ = [
    "PHI_MAX",
    "RateHistory",
    "average_weight",
    "epoch_seconds",
    "expected_average_rate",
    "fit_ar1",
    "fit_ar1_rows",
    "level_rates",
]

FloatArray = NDArray[np.float64]

#: the largest persistence a fit may report: ``phi -> 1`` is a random walk, whose forecast is spot
PHI_MAX = 1.0 - 1e-9


def level_rates(
    snaps: Sequence[VenueSnapshot], emission_haircut: float, reference_usd: float
) -> FloatArray:
    """Each venue's rate level: ``f(x_ref) / x_ref`` on its curve (emissions haircut, one batched
    evaluation, :func:`optimizer.pwl.evaluate_curves`); ``reference_usd <= 0``: the marginal APR at
    ``x -> 0`` from the snapshot (``real_apr + (1 - haircut) emission_apr``)."""
    if not reference_usd > 0.0:
        return np.array(
            [float(s.real_apr) + (1.0 - emission_haircut) * float(s.emission_apr) for s in snaps],
            dtype=float,
        )
    x = np.full((len(snaps), 1), float(reference_usd))
    return evaluate_curves([s.curve for s in snaps], x, emission_haircut)[:, 0] / reference_usd


def epoch_seconds(now: datetime) -> float:
    """``now`` as POSIX seconds; a naive time is read as UTC (never the box's local zone)."""
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()


def fit_ar1(y: Sequence[float]) -> tuple[float, float] | None:
    """``(mu, phi)`` of an AR(1) fitted to ``y`` (module docstring); ``None``: no fit (fewer than 3
    points, or a constant series). One row of :func:`fit_ar1_rows`."""
    if len(y) < 3:
        return None
    mu, phi, ok = fit_ar1_rows(np.asarray(y, dtype=float)[None, :])
    return (float(mu[0]), float(phi[0])) if bool(ok[0]) else None


def fit_ar1_rows(y: FloatArray) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """:func:`fit_ar1` of every row of ``y`` (``(m, T)``, ``T >= 2``) at once: ``mu``, ``phi`` and
    whether the row could be fitted (not constant)."""
    mu = y.mean(axis=1)
    d = y - mu[:, None]
    den = (d[:, :-1] * d[:, :-1]).sum(axis=1)
    ok = den > 0.0
    num = (d[:, 1:] * d[:, :-1]).sum(axis=1)
    phi = np.divide(num, den, out=np.zeros_like(num), where=ok)
    return mu, np.minimum(np.maximum(phi, 0.0), PHI_MAX), ok


def expected_average_rate(r0: float, mu: float, phi: float, periods: float) -> float:
    """``mu + (r0 - mu) (1 - phi^k) / (k (1 - phi))``, ``k = max(periods, 1)``: the AR(1)'s expected
    average rate over the next ``k`` periods, the first earning ``r0`` (module docstring)."""
    w = average_weight(np.array([phi], dtype=float), np.array([periods], dtype=float))
    return mu + (r0 - mu) * float(w[0])


def average_weight(phi: FloatArray, periods: FloatArray) -> FloatArray:
    """``(1 - phi^k) / (k (1 - phi))`` with ``k = max(periods, 1)``, elementwise: the weight of
    today's deviation ``r0 - mu`` in the expected average (``1/k`` at ``phi = 0``; ``1 - phi^k``
    through ``expm1``, with no cancellation for ``phi`` near 1)."""
    k = np.maximum(periods, 1.0)
    pos = phi > 0.0
    logp = np.log(np.where(pos, phi, 1.0))
    w = np.where(pos, -np.expm1(k * logp) / (k * (1.0 - np.where(pos, phi, 0.0))), 1.0 / k)
    return np.asarray(w, dtype=float)


class RateHistory:
    """Per venue, the last ``window`` observations ``(POSIX seconds, marginal rate)``, one per
    decide that saw its snapshot (:func:`level_rates`); kept in
    :class:`optimizer.memory.OptimizerMemory` (``rate_series``).

    Each venue's series is an immutable tuple that passes from one decide's memory to the next
    as it is (a recorded observation makes a new tuple of at most ``window`` entries): at 1,000
    venues x 30 observations, re-reading every entry into a new container each decide cost ~20 ms.
    """

    def __init__(
        self, window: int, series: Mapping[str, Sequence[tuple[float, float]]] | None = None
    ):
        self.window = window
        self.series: dict[str, tuple[tuple[float, float], ...]] = {
            k: (v if isinstance(v, tuple) else tuple((float(t), float(r)) for t, r in v))[-window:]
            for k, v in (series or {}).items()
        }

    def record(self, ids: Sequence[str], rates: Sequence[float], now: datetime) -> None:
        """One observation per venue at ``now`` (a second decide at the same time replaces it)."""
        t = epoch_seconds(now)
        keep = self.window - 1
        for vid, r in zip(ids, rates, strict=True):
            q = self.series.get(vid, ())
            if q and q[-1][0] == t:
                q = q[:-1]
            self.series[vid] = (q[-keep:] if keep else ()) + ((t, float(r)),)

    def shifts(
        self, ids: Sequence[str], rates: FloatArray, settings: OptimizerSettings
    ) -> FloatArray | None:
        """``s_i = r̄_i - r_0,i`` per venue, ``r_0 = rates[i]`` its level now (0 where the forecast is
        spot); ``None`` when every one is 0 (the cycle then is exactly the spot one)."""
        if settings.rate_forecast == "spot":
            return None
        horizon_s = settings.holding_horizon_days * 86_400.0
        least = settings.rate_forecast_min_observations
        out = np.zeros(len(ids))
        # venues with enough history, grouped by series length (all of them, in the steady state)
        groups: dict[int, list[int]] = {}
        for i, vid in enumerate(ids):
            q = self.series.get(vid)
            if q is not None and len(q) >= least:
                groups.setdefault(len(q), []).append(i)
        for rows in groups.values():
            m, t = len(rows), len(self.series[ids[rows[0]]])
            flat = chain.from_iterable(chain.from_iterable(self.series[ids[i]] for i in rows))
            obs = np.fromiter(flat, dtype=float, count=m * t * 2).reshape(m, t, 2)
            steps = np.diff(obs[:, :, 0], axis=1)
            positive = steps > 0.0
            if bool(positive.all()):
                timed: NDArray[np.bool_] = np.ones(m, dtype=bool)
                spacing = np.median(steps, axis=1)
            else:  # the median spacing of each row's positive steps; a row with none: spot
                timed = np.asarray(positive.any(axis=1), dtype=bool)
                spacing = np.nanmedian(np.where(positive, steps, np.nan)[timed], axis=1)
            mu, phi, ok = fit_ar1_rows(obs[timed][:, :, 1])
            idx = np.asarray(rows)[timed]
            r0 = rates[idx]
            w = average_weight(phi, horizon_s / spacing)
            out[idx] = np.where(ok, (mu + (r0 - mu) * w) - r0, 0.0)
        return out if bool(np.any(out != 0.0)) else None
