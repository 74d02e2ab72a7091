"""Protocol-health signals: pure functions of a venue's snapshot and its recent history.

Each returns a :class:`Reading` (firing or clear, with the numbers that decided it) or ``None``
when the snapshot does not carry what the signal needs (the breaker then keeps its state: no data
is not evidence of health). The thresholds and the real episodes they come from are on the config
classes (:mod:`guard.config`); the persistence ("for T") and cool-down live in the breaker
(:mod:`guard.breaker`), not here.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.types import USD_PEGGED, VenueKind, VenueSnapshot
from guard.config import (
    DepegConfig,
    FrozenConfig,
    NavDrawdownConfig,
    OutflowConfig,
    PausedConfig,
    PriceAnomalyConfig,
    SlowExitConfig,
    WithdrawabilityConfig,
)

SECONDS_PER_YEAR = 31_536_000.0


@dataclass(frozen=True, slots=True)
class Sample:
    """The numbers of one venue at one time that the signals read (NaN where the feed has none)."""

    t: float  # feed time, UTC epoch seconds
    tvl_usd: float
    utilization: float
    price_usd: float  # the asset's market price (coins feed), else the pool's own oracle
    peg_usd: float  # what it should be worth (1 USD, or the peg coin's price); NaN: no peg
    pool_price_usd: float  # the pool's own oracle price (Aave, Compound); NaN elsewhere
    exit_liquidity_usd: float
    position_usd: float
    exit_quote_seconds: float
    real_apr: float


@dataclass(frozen=True, slots=True)
class Reading:
    firing: bool
    evidence: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""


def _f(state: Mapping[str, float], key: str) -> float:
    v = state.get(key)
    return float(v) if v is not None else math.nan


def sample(snap: VenueSnapshot, position_usd: float) -> Sample:
    """What the signals need from a snapshot, read from its ``state`` (see ``adapters/*.py``).

    Price: ``asset_price_usd`` (the coins feed, added by the poller for venues with
    ``feed.asset_coin``), else the pool's ``oracle_price_usd`` (Aave) for a USD-pegged asset, else the bridge
    route's side farther from 1. Peg: ``peg_price_usd`` (``feed.peg_coin``, e.g. ETH for stETH),
    else 1 USD for a USD-pegged asset.
    """
    s = snap.state
    usd_pegged = snap.venue.asset.upper() in USD_PEGGED
    pool = _f(s, "oracle_price_usd")
    price = _f(s, "asset_price_usd")
    if math.isnan(price) and usd_pegged:
        price = pool
        if math.isnan(price) and "origin_price_usd" in s and "destination_price_usd" in s:
            sides = (float(s["origin_price_usd"]), float(s["destination_price_usd"]))
            price = max(sides, key=lambda p: abs(p - 1.0))
    peg = _f(s, "peg_price_usd")
    if math.isnan(peg) and usd_pegged:
        peg = 1.0
    quote = _f(s, "exit_seconds")
    if math.isnan(quote):
        quote = _f(s, "expected_fill_seconds")
    return Sample(
        t=snap.observed_at.timestamp(),
        tvl_usd=float(snap.tvl_usd),
        utilization=_f(s, "utilization"),
        price_usd=price,
        peg_usd=peg,
        pool_price_usd=pool if "asset_price_usd" in s else math.nan,  # a second source
        exit_liquidity_usd=float(snap.exit_liquidity_usd),
        position_usd=position_usd,
        exit_quote_seconds=quote,
        real_apr=float(snap.real_apr),
    )


def depeg(cfg: DepegConfig, now: Sample) -> Reading | None:
    """``|price / peg - 1| x 10^4 > threshold_bps``."""
    if not (now.price_usd > 0 and now.peg_usd > 0):
        return None
    dev_bps = (now.price_usd / now.peg_usd - 1.0) * 10_000
    return Reading(
        abs(dev_bps) > cfg.threshold_bps,
        {"price_usd": now.price_usd, "peg_usd": now.peg_usd, "deviation_bps": dev_bps},
        f"price {now.price_usd:.4f} vs peg {now.peg_usd:.4f} ({dev_bps:+.0f} bp, limit {cfg.threshold_bps:g})",
    )


def outflow(
    cfg: OutflowConfig, kind: VenueKind, history: Sequence[Sample], now: Sample
) -> Reading | None:
    """``1 - TVL_now / max(TVL over the window) > drop_ratio``, for pools whose high is at least
    ``min_tvl_usd``. TVL is the others' funds (``VenueSnapshot.tvl_usd``, our position excluded),
    so our own exit never reads as a run. Bridge routes and custodial products report a limit or
    a quota there, not others' funds: not judged."""
    if kind in (VenueKind.BRIDGE_ARB, VenueKind.FIXED) or not math.isfinite(now.tvl_usd):
        return None
    window = [x.tvl_usd for x in history if x.t >= now.t - cfg.window_seconds]
    high = max([*window, now.tvl_usd])
    if not (math.isfinite(high) and high >= cfg.min_tvl_usd):
        return None
    drop = 1.0 - now.tvl_usd / high
    return Reading(
        drop > cfg.drop_ratio,
        {"tvl_usd": now.tvl_usd, "high_usd": high, "drop_ratio": drop},
        f"TVL {now.tvl_usd:,.0f} is {drop:.1%} below its {cfg.window_seconds / 3600:g} h high "
        f"{high:,.0f} (limit {cfg.drop_ratio:.0%})",
    )


def withdrawability(
    cfg: WithdrawabilityConfig, now: Sample, min_position_usd: float = 0.0
) -> Reading | None:
    """``U >= utilization`` or ``exit liquidity < exit_liquidity_ratio x position`` (for a position
    of at least ``min_position_usd``)."""
    util_known = not math.isnan(now.utilization)
    held = now.position_usd > 0 and now.position_usd >= min_position_usd
    short = held and now.exit_liquidity_usd < cfg.exit_liquidity_ratio * now.position_usd
    if not util_known and not held:
        return None
    hot = util_known and now.utilization >= cfg.utilization
    ev = {"exit_liquidity_usd": now.exit_liquidity_usd, "position_usd": now.position_usd}
    if util_known:
        ev["utilization"] = now.utilization
    parts = []
    if hot:
        parts.append(f"utilization {now.utilization:.4f} >= {cfg.utilization:g}")
    if short:
        parts.append(
            f"exit liquidity {now.exit_liquidity_usd:,.0f} < {cfg.exit_liquidity_ratio:g} x position {now.position_usd:,.0f}"
        )
    return Reading(hot or short, ev, "; ".join(parts) or "withdrawable")


def paused(cfg: PausedConfig, snap: VenueSnapshot) -> Reading | None:
    """Aave ``isPaused`` / not ``isActive``, Compound ``isPaused``, an earn product's
    ``canRedeem`` false, an Across route whose instant limit fell to 0 (bridge halt)."""
    s = snap.state
    flags = {
        "is_paused": s.get("is_paused", 0.0) > 0,
        "inactive": "is_active" in s and s["is_active"] == 0,
        "redemptions_closed": "can_redeem" in s and s["can_redeem"] == 0,
        "route_halted": "capacity_usd" in s and s["capacity_usd"] <= 0 and "spread" in s,
    }
    known = any(k in s for k in ("is_paused", "is_active", "can_redeem")) or "spread" in s
    if not known:
        return None
    on = [k for k, v in flags.items() if v]
    return Reading(bool(on), {k: float(v) for k, v in flags.items()}, ", ".join(on) or "open")


def frozen(cfg: FrozenConfig, snap: VenueSnapshot) -> Reading | None:
    """Aave ``isFrozen`` (no new supply), an earn product's ``canPurchase`` false."""
    s = snap.state
    if "is_frozen" not in s and "can_purchase" not in s:
        return None
    flags = {
        "is_frozen": s.get("is_frozen", 0.0) > 0,
        "purchases_closed": "can_purchase" in s and s["can_purchase"] == 0,
    }
    on = [k for k, v in flags.items() if v]
    return Reading(bool(on), {k: float(v) for k, v in flags.items()}, ", ".join(on) or "open")


def slow_exit(cfg: SlowExitConfig, history: Sequence[Sample], now: Sample) -> Reading | None:
    """``quote_now > ratio x median(quotes over the window)`` for the quoted exit time (Lido's
    ``finalizationIn``, Across' ``expectedFillTimeSec``); needs 3 earlier quotes."""
    if math.isnan(now.exit_quote_seconds):
        return None
    past = [
        x.exit_quote_seconds
        for x in history
        if x.t >= now.t - cfg.window_seconds and not math.isnan(x.exit_quote_seconds)
    ]
    if len(past) < 3:
        return None
    median = statistics.median(past)
    if median <= 0:
        return None
    ratio = now.exit_quote_seconds / median
    return Reading(
        ratio > cfg.ratio,
        {"quote_seconds": now.exit_quote_seconds, "median_seconds": median, "ratio": ratio},
        f"exit quoted {now.exit_quote_seconds:,.0f} s, {ratio:.1f} x the median {median:,.0f} s",
    )


def price_anomaly(
    cfg: PriceAnomalyConfig, history: Sequence[Sample], last: Sample | None, now: Sample
) -> Reading | None:
    """Jump: ``|ln(p_now / p_last)| > jump_sigma x max(sigma, min_sigma_bps / 10^4)`` with
    ``sigma`` the standard deviation of the log returns between the window's samples (>= 4).
    Sources: ``|coins price / pool oracle price - 1| x 10^4 > sources_bps``."""
    ev: dict[str, float] = {}
    parts: list[str] = []
    judged = False
    firing = False
    if now.price_usd > 0 and now.pool_price_usd > 0:
        judged = True
        apart = (now.price_usd / now.pool_price_usd - 1.0) * 10_000
        ev.update(coins_price_usd=now.price_usd, pool_price_usd=now.pool_price_usd, apart_bps=apart)
        if abs(apart) > cfg.sources_bps:
            firing = True
            parts.append(
                f"coins {now.price_usd:.4f} vs pool oracle {now.pool_price_usd:.4f} ({apart:+.0f} bp)"
            )
    prices = [x.price_usd for x in history if x.t >= now.t - cfg.window_seconds and x.price_usd > 0]
    if last is not None and last.price_usd > 0 and now.price_usd > 0 and len(prices) >= 5:
        judged = True
        returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
        sigma = max(statistics.pstdev(returns), cfg.min_sigma_bps / 10_000)
        jump = math.log(now.price_usd / last.price_usd)
        z = abs(jump) / sigma
        ev.update(jump_bps=jump * 10_000, sigma_bps=sigma * 10_000, z=z)
        if z > cfg.jump_sigma:
            firing = True
            parts.append(
                f"price {last.price_usd:.4f} -> {now.price_usd:.4f} ({jump * 1e4:+.0f} bp, "
                f"{z:.1f} sigma of {sigma * 1e4:.1f} bp)"
            )
    if not judged:
        return None
    return Reading(firing, ev, "; ".join(parts) or "in line")


def loss(
    shortfall_bps: float,
    last: Sample | None,
    now: Sample,
    nav_drop_usd: float,
    earned_usd: float | None = None,
    min_position_usd: float = 0.0,
) -> Reading | None:
    """Between two cycles: predicted ``P0 x apr0 x dt / year``; realized = the yield the books
    credited to the venue in between (``earned_usd``, from ``PortfolioState.earned_usd``), which
    moves in and out do not disturb. Fires when ``predicted - realized`` exceeds ``shortfall_bps``
    of ``P0``.

    Without the books' figure (``earned_usd`` None), realized is ``P1 - P0`` and the shortfall
    counts only as far as the NAV fell too (``min(shortfall, NAV drop + predicted)``), so a
    withdrawal alone (position down, NAV flat) is no loss; a withdrawal from one venue in the same
    cycle as a loss in another then blames the first up to the NAV drop.
    """
    if last is None or last.position_usd <= 0 or now.t <= last.t:
        return None
    if last.position_usd < min_position_usd:
        return None
    predicted = last.position_usd * max(last.real_apr, 0.0) * (now.t - last.t) / SECONDS_PER_YEAR
    if earned_usd is not None:
        attributable = max(predicted - earned_usd, 0.0)
        realized = earned_usd
    else:
        realized = now.position_usd - last.position_usd
        shortfall = max(predicted - realized, 0.0)
        attributable = min(shortfall, max(nav_drop_usd, 0.0) + predicted)
    ratio_bps = attributable / last.position_usd * 10_000
    return Reading(
        ratio_bps > shortfall_bps,
        {
            "position_before_usd": last.position_usd,
            "position_usd": now.position_usd,
            "predicted_usd": predicted,
            "realized_usd": realized,
            "shortfall_usd": attributable,
            "shortfall_bps": ratio_bps,
        },
        f"position {last.position_usd:,.2f} -> {now.position_usd:,.2f}, predicted +{predicted:,.2f}, "
        f"realized {realized:+,.2f}: {attributable:,.2f} short ({ratio_bps:.0f} bp, limit {shortfall_bps:g})",
    )


def nav_drawdown(
    cfg: NavDrawdownConfig, history: Sequence[tuple[float, float]], t: float, nav_usd: float
) -> Reading | None:
    """``1 - NAV_now / max(NAV over the window) > drawdown_ratio``."""
    window = [n for (s, n) in history if s >= t - cfg.window_seconds]
    high = max([*window, nav_usd])
    if high <= 0:
        return None
    dd = 1.0 - nav_usd / high
    return Reading(
        dd > cfg.drawdown_ratio,
        {"nav_usd": nav_usd, "high_usd": high, "drawdown_ratio": dd},
        f"NAV {nav_usd:,.2f} is {dd:.2%} below its {cfg.window_seconds / 3600:g} h high {high:,.2f}"
        f" (limit {cfg.drawdown_ratio:.0%})",
    )
