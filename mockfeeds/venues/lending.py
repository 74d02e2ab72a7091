"""Lending pools (Aave v3 reserves, Compound v3 comets) of the simulated market."""

from __future__ import annotations

import math
from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import (
    DAY,
    SPY,
    VenueModel,
    decayed_per_day,
    jump_happens,
    norm_cdf,
    ou_step,
)
from mockfeeds.view import MarketView
from protocols import aave, compound


class LendingVenue(VenueModel):
    """Aave v3 reserve or Compound v3 comet (``protocol`` decides the curve and the feed shape).

    Debt = ``u*`` x others' supply while no scenario pins utilization, so our supply lowers
    ``U = debt / (others + ours)`` and the rate exactly as ``aave.supply_apr_after_deposit`` says.
    """

    kind = "lending"
    STATE_FIELDS = ("s_others", "s_trend", "u_star", "pin_u", "liquidity_index", "borrow_index")

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.lending
        assert c is not None
        self.c = c
        self.is_compound = cfg.protocol.startswith("compound")
        if isinstance(c.strategy, str):
            self.strategy = aave.PRESETS[c.strategy]
        else:
            self.strategy = aave.AaveRateStrategy(**c.strategy)
        self.curve = (
            compound.CometCurve(**c.comet_curve) if c.comet_curve else compound.PRESET_CUSDCV3
        )
        self.s_others = c.total_supply_usd
        self.s_trend = c.total_supply_usd
        self.u_star = c.utilization
        self.pin_u: float | None = None
        self.liquidity_index = 1.0
        self.borrow_index = 1.0

    def total_supply(self) -> float:
        return self.s_others + self.ours_usd

    def debt(self) -> float:
        total = self.total_supply()
        if self.pin_u is not None:
            return self.pin_u * total
        return min(self.u_star * self.s_others, 0.9999 * total)

    def utilization(self) -> float:
        d = self.debt()
        return aave.utilization(d, max(0.0, self.total_supply() - d))

    def supply_apr_at(self, u: float) -> float:
        if self.is_compound:
            return float(compound.comet_supply_apr(self.curve, u))
        return float(aave.supply_apr(self.strategy, u))

    def borrow_apr_at(self, u: float) -> float:
        if self.is_compound:
            return float(compound.comet_borrow_apr(self.curve, u))
        return float(aave.borrow_apr(self.strategy, u))

    def base_apr(self, m: MarketView) -> float:
        return self.supply_apr_at(self.utilization())

    def borrow_apr(self) -> float:
        return self.borrow_apr_at(self.utilization())

    def emission_usd_per_day(self, t: float) -> float:
        inc = self.c.incentives
        return decayed_per_day(inc.usd_per_day, inc.half_life_days, (t - self.epoch0) / DAY)

    def reward_apr(self, m: MarketView) -> float:
        total = self.total_supply()
        return 0.0 if total <= 0 else self.emission_usd_per_day(m.state_time) * 365.0 / total

    def tvl_usd(self, m: MarketView) -> float:
        # DefiLlama's Aave adapter reports supply - borrow (available liquidity) as tvlUsd
        return max(0.0, self.total_supply() - self.debt()) * m.token_price(self.chain, self.asset)

    def available_usd(self, m: MarketView) -> float:
        avail = max(0.0, self.total_supply() - self.debt())
        return min(avail, super().available_usd(m))

    def deposit_limit_usd(self, m: MarketView) -> float:
        """Room under the reserve's supply cap (whole tokens at par; 0 = no cap)."""
        cap = self.c.supply_cap_tokens
        return math.inf if cap <= 0 else max(0.0, cap - self.total_supply())

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        dd = dt / DAY
        r_s = self.base_apr(m)
        r_b = self.borrow_apr()
        r_w = self.reward_apr(m)
        growth = 1.0 + r_s * dt / SPY
        self.liquidity_index *= growth
        self.borrow_index *= math.exp(r_b * dt / SPY)
        self.s_trend *= growth
        x = math.log(self.s_others * growth / self.s_trend)
        x = ou_step(x, 0.0, self.c.supply_log_sigma, self.c.supply_reversion_per_day, dd, z[0])
        self.s_others = self.s_trend * math.exp(x)
        u = ou_step(
            self.u_star,
            self.c.utilization_mean,
            self.c.utilization_sigma,
            self.c.reversion_per_day,
            dd,
            z[1],
        )
        if jump_happens(self.c.shock_prob_per_day, dd, norm_cdf(z[2])):
            # demand shocks are mostly up
            u += self.c.shock_size if z[3] > -0.5 else -self.c.shock_size
        self.u_star = min(max(u, 0.0), 0.995)
        return 1.0 + (r_s + r_w) * dt / SPY

    def pin(self, u: float | None) -> None:
        """Pin the pool's utilization (scenarios); unpinning keeps today's debt as the new demand."""
        if u is None and self.pin_u is not None and self.s_others > 0:
            self.u_star = min(self.pin_u * self.total_supply() / self.s_others, 0.995)
        self.pin_u = u

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        inc = self.c.incentives
        return {
            "stablecoin": True,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": [self.c.underlying],
            "rewardTokens": [inc.reward_address] if inc.usd_per_day > 0 else None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }
