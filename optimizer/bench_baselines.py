"""The baselines ``bench quality`` (and the backtester) compare with: greedy highest-APY,
water-filling and equal weight, each kept inside the physical bounds and, optionally, the limits;
and the exact net income of an allocation on the true curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.types import VenueSnapshot
from optimizer.bench_markets import T0
from optimizer.config import OptimizerSettings, RiskLimits


def _exact_net_usd(
    snaps: Sequence[VenueSnapshot],
    x0: np.ndarray,
    x: np.ndarray,
    settings: OptimizerSettings,
    home: str,
) -> tuple[float, float, float]:
    """(annual true income, one-off exact move cost, net = income - cost · 365/H) of moving x0 -> x."""
    from optimizer.plan import make_moves

    income = sum(
        float(s.curve.income_usd(np.array([xi]), settings.emission_haircut)[0])
        for s, xi in zip(snaps, x, strict=True)
    )
    econ = make_moves(snaps, x0, x, settings, home, T0)
    return income, econ.cost_usd, income - econ.cost_usd * 365.0 / settings.holding_horizon_days


def _physical_bounds(
    snaps: Sequence[VenueSnapshot], x0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What any strategy must respect: withdrawals within exit liquidity, frozen venues don't grow, capacity."""
    exit_liq = np.array([s.exit_liquidity_usd for s in snaps])
    lb = x0 - np.minimum(x0, exit_liq)
    ub = np.array([s.curve.capacity_usd for s in snaps])
    ub = np.where([s.frozen for s in snaps], np.minimum(ub, x0), ub)
    return lb, np.maximum(ub, lb)


def _venue_caps(snaps: Sequence[VenueSnapshot], limits: RiskLimits, nav: float) -> np.ndarray:
    cap = np.full(len(snaps), limits.max_venue_ratio * nav)
    if limits.max_venue_usd is not None:
        cap = np.minimum(cap, limits.max_venue_usd)
    if limits.max_venue_tvl_ratio is not None and limits.max_venue_tvl_ratio < 1:
        r = limits.max_venue_tvl_ratio
        cap = np.minimum(cap, r * np.array([s.tvl_usd for s in snaps]) / (1 - r))
    return cap


def greedy_highest_apy(snaps, x0, budget_usd, limits, nav, haircut) -> np.ndarray:
    """Fill venues in order of their quoted APR at x -> 0 (no rate impact), each to its venue cap."""
    lb, ub = _physical_bounds(snaps, x0)
    ub = np.maximum(np.minimum(ub, _venue_caps(snaps, limits, nav)), lb)
    x = lb.copy()
    left = budget_usd - x.sum()
    quoted = np.array([float(s.curve.apr(np.array([1e-6]), haircut)[0]) for s in snaps])
    for i in np.argsort(-quoted):
        if left <= 0 or quoted[i] <= 0:
            break
        add = min(ub[i] - x[i], left)
        x[i] += add
        left -= add
    return x


def water_filling(snaps, x0, budget_usd, limits, nav, haircut, steps: int = 2000) -> np.ndarray:
    """The classic aggregator: put the next slice where the predicted APR after it is highest, so the
    best venue fills until its rate falls to the next one's; venue caps respected, nothing else."""
    lb, ub = _physical_bounds(snaps, x0)
    ub = np.maximum(np.minimum(ub, _venue_caps(snaps, limits, nav)), lb)
    x = lb.copy()
    left = budget_usd - x.sum()
    if left <= 0:
        return x
    step = left / steps
    for _ in range(steps):
        room = ub - x
        cand = np.nonzero(room > 1e-9)[0]
        if len(cand) == 0:
            break
        after = np.array(
            [
                float(snaps[i].curve.apr(np.array([x[i] + min(step, room[i])]), haircut)[0])
                for i in cand
            ]
        )
        k = int(np.argmax(after))
        if after[k] <= 0:
            break
        i = cand[k]
        x[i] += min(step, room[i])
    return x


class _LimitSlack:
    """How much more each venue may take before some limit binds (for the limit-aware baselines).

    Adding ``δ`` to venue ``i`` is allowed while ``δ <= slack_i(x)``: the minimum over its venue cap,
    each group cap it belongs to, the risk budget, min idle, every liquidity floor (an addition
    is liquid only up to the exit liquidity) and turnover.
    """

    def __init__(
        self,
        snaps,
        x0,
        idle_usd,
        limits: RiskLimits,
        nav: float,
        settings: OptimizerSettings,
        home: str,
    ):
        self.snaps, self.x0, self.limits, self.nav = snaps, x0, limits, nav
        self.total = idle_usd + x0.sum()
        _, ub = _physical_bounds(snaps, x0)
        self.ub = np.maximum(np.minimum(ub, _venue_caps(snaps, limits, nav)), x0)
        fams = [
            ({str(k): v for k, v in limits.max_kind_ratio.items()}, lambda v: (str(v.kind),)),
            (limits.max_chain_ratio, lambda v: (v.chain,)),
            (limits.max_protocol_ratio, lambda v: (v.protocol,)),
            (limits.max_dependency_ratio, lambda v: v.exposures),
        ]
        rows, caps = [], []
        for caps_cfg, members in fams:
            for key, ratio in caps_cfg.items():
                rows.append(np.array([key in members(s.venue) for s in snaps], dtype=float))
                caps.append(ratio * nav)
        self.G = np.array(rows) if rows else np.zeros((0, len(snaps)))
        self.caps = np.array(caps)
        self.r = np.array([s.venue.risk_score for s in snaps])
        self.L = np.array([s.exit_liquidity_usd for s in snaps])
        e = np.array(
            [
                s.venue.exit_days + (settings.bridge_days if s.venue.chain != home else 0.0)
                for s in snaps
            ]
        )
        self.floors = [(e <= f.days, f.min_ratio * nav) for f in limits.liquidity_floors]

    def slack(self, x: np.ndarray) -> np.ndarray:
        idle = self.total - x.sum()
        out = np.minimum(self.ub - x, idle - self.limits.min_idle_ratio * self.nav)
        if len(self.caps):
            room = self.caps - self.G @ x
            out = np.minimum(out, np.where(self.G > 0, room[:, None], np.inf).min(axis=0))
        if self.limits.max_avg_risk_score is not None:
            room = self.limits.max_avg_risk_score * self.nav - self.r @ x
            out = np.minimum(
                out, np.where(self.r > 0, room / np.where(self.r > 0, self.r, 1.0), np.inf)
            )
        liquid_part = np.minimum(x, self.L)
        for mask, need in self.floors:
            room = idle + liquid_part[mask].sum() - need
            out = np.minimum(out, room + np.where(mask, np.maximum(self.L - x, 0.0), 0.0))
        if self.limits.max_turnover_ratio is not None:
            room = self.limits.max_turnover_ratio * self.nav - np.abs(x - self.x0).sum()
            out = np.minimum(out, (self.x0 - x) + np.abs(x - self.x0) + room)
        return np.maximum(out, 0.0)


def within_limits(
    order_fn, snaps, x0, idle_usd, limits, nav, settings, home, steps: int = 2000
) -> np.ndarray:
    """A baseline that keeps every limit: from the current holdings, deploy idle in slices to the
    venue ``order_fn(x)`` ranks first among those with room (it never withdraws)."""
    lim = _LimitSlack(snaps, x0, idle_usd, limits, nav, settings, home)
    x = x0.astype(float).copy()
    step = max(idle_usd, 0.0) / steps
    for _ in range(steps):
        room = lim.slack(x)
        score = np.where(room > 1e-6, order_fn(x, np.minimum(room, step)), -np.inf)
        i = int(np.argmax(score))
        if not np.isfinite(score[i]) or score[i] <= 0:
            break
        x[i] += min(step, room[i])
    return x


def equal_weight(snaps, x0, budget_usd, limits, nav, haircut) -> np.ndarray:
    """(investable - min idle) / n in every venue, within physical bounds only."""
    lb, ub = _physical_bounds(snaps, x0)
    x = np.clip(np.full(len(snaps), budget_usd / len(snaps)), lb, ub)
    return x
