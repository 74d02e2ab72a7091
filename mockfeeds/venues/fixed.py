"""Custodial fixed-rate earn products in the simulated market."""

from __future__ import annotations

from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import SPY, VenueModel
from mockfeeds.view import MarketView


class FixedVenue(VenueModel):
    """Custodial earn product: flat APR accrued linearly, redemption after a delay, a quota."""

    kind = "fixed"
    STATE_FIELDS = ("apr", "can_redeem")

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.fixed
        assert c is not None
        self.c = c
        self.apr = c.apr
        self.can_redeem = True

    def base_apr(self, m: MarketView) -> float:
        return self.apr

    def tvl_usd(self, m: MarketView) -> float:
        return self.c.quota_usd

    def deposit_limit_usd(self, m: MarketView) -> float:
        return max(0.0, self.c.quota_usd - self.ours_usd)

    def available_usd(self, m: MarketView) -> float:
        return 0.0 if not self.can_redeem else super().available_usd(m)

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        return 1.0 + self.apr * dt / SPY

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: MarketView) -> float:
        return self.c.redemption_delay_seconds

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        return {
            "stablecoin": True,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": None,
            "rewardTokens": None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }
