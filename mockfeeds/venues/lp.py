"""Uniswap v2 stable/WETH pairs in the simulated market."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import DAY, SPY, VenueModel, decayed_per_day, ou_step
from mockfeeds.view import MarketView
from protocols import uniswap


class LpVenue(VenueModel):
    """Uniswap v2 stable/WETH pair. The pool's USD value follows ``sqrt(r)`` of the WETH price
    ratio plus fees; our position is valued hedged (LP / HODL), so per step it grows by
    ``(1 + IL(r)) * (1 + fees * share / ours)``: fee APR minus LVR sigma^2/8 on average."""

    kind = "lp"
    STATE_FIELDS: tuple[str, ...] = (
        "tvl_others",
        "tvl_trend",
        "last_price",
        "volumes",
        "il_window",
    )

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.lp
        assert c is not None
        self.c = c
        self.tvl_others = c.tvl_usd
        self.tvl_trend = c.tvl_usd
        self.last_price: float | None = None
        # [t_end, usd] per step, 7 days
        self.volumes: deque[list[float]] = deque(maxlen=7 * 24 * 12)
        self.il_window: deque[list[float]] = deque(maxlen=7 * 24 * 12)  # [t_end, price]
        self.sigma = mcfg.eth_price.sigma_annual

    def pool_tvl(self) -> float:
        return self.tvl_others + self.ours_usd

    def tvl_usd(self, m: MarketView) -> float:
        return self.pool_tvl()

    def volume_since(self, t_from: float) -> float:
        return sum(v for te, v in self.volumes if te > t_from)

    def volume_1d(self, m: MarketView) -> float:
        return self._windowed(m, 1.0)

    def _windowed(self, m: MarketView, days: float) -> float:
        if not self.volumes:
            return self.c.volume_usd_1d * days
        t = m.state_time
        first = self.volumes[0][0]
        covered = min(days * DAY, t - first + self._step_len())
        v = self.volume_since(t - days * DAY)
        return v * (days * DAY / covered) if covered > 0 else v

    def _step_len(self) -> float:
        if len(self.volumes) >= 2:
            return self.volumes[-1][0] - self.volumes[-2][0]
        return DAY

    def base_apr(self, m: MarketView) -> float:
        return uniswap.fee_apr(self.volume_1d(m), self.pool_tvl(), self.c.fee)

    def reward_apr(self, m: MarketView) -> float:
        inc = self.c.incentives
        per_day = decayed_per_day(
            inc.usd_per_day, inc.half_life_days, (m.state_time - self.epoch0) / DAY
        )
        return per_day * 365.0 / self.pool_tvl()

    def entry_cost_fraction(self, amount_usd: float, m: MarketView) -> float:
        if self.cfg.entry_fee_bps is not None:
            return self.cfg.entry_fee_bps / 10_000
        return uniswap.single_sided_entry_cost_fraction(amount_usd, self.pool_tvl(), self.c.fee)

    def exit_cost_fraction(self, amount_usd: float, m: MarketView) -> float:
        """A withdrawal to the stablecoin swaps the volatile half back through the pool (a zap out:
        the swap's fee and price impact against what the burn leaves); none with a configured
        ``entry_fee_bps`` (a venue whose costs are given flat)."""
        if self.cfg.entry_fee_bps is not None or amount_usd <= 0 or self.kind != "lp":
            return 0.0  # (a hedged LP closes its perp too: modelled without an exit cost)
        tvl = self.pool_tvl()
        if amount_usd >= tvl:
            return 0.5  # the formula's limit: the whole pool out, half of it lost
        return uniswap.single_sided_exit_cost_fraction(amount_usd, tvl, self.c.fee)

    def available_usd(self, m: MarketView) -> float:
        # reserves always cover one LP's share; only a liquidity-crunch scenario caps exits
        return min(self.pool_tvl(), super().available_usd(m))

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        dd = dt / DAY
        price = m.token_price(self.chain, self.c.token1_symbol)
        prev = self.last_price if self.last_price is not None else price
        r = price / prev
        self.last_price = price
        sd_step = self.sigma * math.sqrt(dt / SPY)
        move = abs(math.log(r)) / (sd_step * math.sqrt(2.0 / math.pi)) if sd_step > 0 else 1.0
        vol = (
            self.c.volume_usd_1d
            * dd
            * math.exp(self.c.volume_sigma * z[0] - 0.5 * self.c.volume_sigma**2)
        )
        vol *= 0.5 + 0.5 * min(move, 6.0)  # volume rises with the price move (arbitrage flow)
        self.volumes.append([t + dt, vol])
        self.il_window.append([t + dt, price])
        tvl_before = self.pool_tvl()
        fees = vol * self.c.fee
        inc = self.c.incentives
        rewards = decayed_per_day(inc.usd_per_day, inc.half_life_days, (t - self.epoch0) / DAY) * dd
        value_ratio = uniswap.lp_value_ratio(r)
        fee_growth = 1.0 + fees / tvl_before if tvl_before > 0 else 1.0
        self.tvl_others *= value_ratio * fee_growth
        self.tvl_trend *= value_ratio * fee_growth
        x = math.log(self.tvl_others / self.tvl_trend)
        x = ou_step(
            x, 0.0, self.c.liquidity_log_sigma, self.c.liquidity_reversion_per_day, dd, z[1]
        )
        self.tvl_others = self.tvl_trend * math.exp(x)
        reward_growth = rewards / tvl_before if tvl_before > 0 else 0.0
        return (1.0 + uniswap.impermanent_loss(r)) * fee_growth + reward_growth

    def il_7d(self, m: MarketView) -> float | None:
        if not self.il_window:
            return None
        t = m.state_time
        old = next((p for te, p in self.il_window if te >= t - 7 * DAY), None)
        if old is None or self.last_price is None:
            return None
        return uniswap.impermanent_loss(self.last_price / old)

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        chain_tokens = m.cfg.chains[self.chain].tokens
        v1 = self.volume_1d(m)
        v7 = self._windowed(m, 7.0)
        inc = self.c.incentives
        return {
            "stablecoin": False,
            "ilRisk": "yes",
            "exposure": "multi",
            "underlyingTokens": [
                chain_tokens[self.c.token0_symbol].address,
                chain_tokens[self.c.token1_symbol].address,
            ],
            "rewardTokens": [inc.reward_address] if inc.usd_per_day > 0 else None,
            "volumeUsd1d": v1,
            "volumeUsd7d": v7,
            "apyBase7d": uniswap.fee_apr_7d(v7, self.pool_tvl(), self.c.fee) * 100.0,
        }
