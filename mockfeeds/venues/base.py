"""Venue models of the simulated market: each kind's pool state, how it evolves, how our deposits
change it, and what it earns. All protocol math comes from :mod:`protocols`.

A model never holds our position: the market does (exact Decimal). The model sees it as
``ours_usd`` (a float mirror the market keeps current) because our money is part of the pool's
state: it is supply in a lending pool, liquidity in an LP, inventory on a bridge route.

``step(t, dt, z, m)`` advances the pool by ``dt`` simulated seconds using the standard normals
``z`` (reproducible: the market draws them in a fixed order) and returns the growth factor of one
unit of our position over the step (``1 + apr * dt / year`` for interest, share-rate ratios for
staking, ``(1 + IL) * (1 + fees/TVL)`` for a hedged LP position).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.view import MarketView

SPY = 31_536_000.0
DAY = 86_400.0
N_NORMALS = 4  # standard normals each venue draws per step


def ou_step(
    x: float, mean: float, stationary_sd: float, reversion_per_day: float, dt_days: float, z: float
) -> float:
    """Exact Ornstein-Uhlenbeck transition: ``x' = m + (x - m) a + sd sqrt(1 - a^2) z``, ``a = e^{-theta dt}``."""
    a = math.exp(-reversion_per_day * dt_days)
    return mean + (x - mean) * a + stationary_sd * math.sqrt(max(0.0, 1.0 - a * a)) * z


def jump_happens(rate_per_day: float, dt_days: float, u: float) -> bool:
    """A Poisson event with ``rate_per_day`` happens in ``dt_days`` when ``u < 1 - e^{-rate dt}``."""
    return u < -math.expm1(-rate_per_day * dt_days)


def decayed_per_day(usd_per_day: float, half_life_days: float, age_days: float) -> float:
    """Emission that halves every ``half_life_days``: ``usd_per_day * 2^(-age / half_life)``."""
    return usd_per_day * 2.0 ** (-max(0.0, age_days) / half_life_days)


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


class VenueModel:
    """Base class: the shared bookkeeping of every kind."""

    kind = ""

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.chain = cfg.chain
        self.asset = cfg.asset
        self.epoch0 = epoch0  # when the simulated history starts (emission decay origin)
        self.ours_usd = 0.0
        self.paused = False  # exploit: deposits and withdrawals refused
        self.oracle_offset_bps = 0.0  # exploit_path: the pool's own oracle off the market
        # liquidity crunch on venues without a pool model
        self.withdraw_cap_usd: float | None = None
        self.halted = False  # bridge halt on an arb route

    # --- state persistence -------------------------------------------------------------------
    STATE_FIELDS: tuple[str, ...] = ()

    def dump(self) -> dict[str, Any]:
        d = {
            k: (list(v) if isinstance(v, deque) else v)
            for k in self.STATE_FIELDS
            for v in (getattr(self, k),)
        }
        d.update(
            ours_usd=self.ours_usd,
            paused=self.paused,
            withdraw_cap_usd=self.withdraw_cap_usd,
            halted=self.halted,
        )
        return d

    def load(self, d: dict[str, Any]) -> None:
        for k in (*self.STATE_FIELDS, "ours_usd", "paused", "withdraw_cap_usd", "halted"):
            if k in d:
                v = d[k]
                setattr(
                    self,
                    k,
                    deque(v, maxlen=getattr(self, k).maxlen)
                    if isinstance(getattr(self, k, None), deque)
                    else v,
                )

    # --- interface ---------------------------------------------------------------------------
    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        raise NotImplementedError

    def base_apr(self, m: MarketView) -> float:
        """Marginal real APR now (what the feed reports)."""
        raise NotImplementedError

    def reward_apr(self, m: MarketView) -> float:
        return 0.0

    def tvl_usd(self, m: MarketView) -> float:
        raise NotImplementedError

    def available_usd(self, m: MarketView) -> float:
        """What a withdrawal can take right now, pool-wide (before our position bound)."""
        cap = math.inf if self.withdraw_cap_usd is None else self.withdraw_cap_usd
        return cap

    def entry_cost_fraction(self, amount_usd: float, m: MarketView) -> float:
        if self.cfg.entry_fee_bps is not None:
            return self.cfg.entry_fee_bps / 10_000
        return 0.0

    def exit_cost_fraction(self, amount_usd: float, m: MarketView) -> float:
        """Share of a withdrawal lost on the way out (an unwind's swap, a sale below floor); 0 here."""
        return 0.0

    def deposit_limit_usd(self, m: MarketView) -> float:
        return math.inf

    def on_deposit(self, usd: float, m: MarketView) -> None:
        self.ours_usd += usd

    def on_withdraw(self, usd: float, m: MarketView) -> None:
        self.ours_usd = max(0.0, self.ours_usd - usd)

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: MarketView) -> float:
        """0 for instant withdrawals; otherwise seconds until the queued withdrawal pays out."""
        return 0.0

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        """Kind-specific DefiLlama row fields (volume, il, tokens)."""
        return {}
