"""Stablecoin inventory on an Across route (bridge arbitrage) in the simulated market."""

from __future__ import annotations

from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import SPY, VenueModel
from mockfeeds.view import MarketView
from protocols import across


class BridgeArbVenue(VenueModel):
    """Stablecoin inventory on an Across route. Per year it earns
    ``N * max(0, q * (s * (1 - q/2C) - fee_pct(q)) - gas)`` with ``q = min(position, C (1 - fee/s))``,
    ``s = P_dst / P_src - 1`` from the per-chain token prices and ``fee_pct`` the Across LP +
    capital fee for ``q`` (:func:`protocols.across.arb_income_per_year_usd`)."""

    kind = "bridge_arb"
    STATE_FIELDS = ()

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.bridge_arb
        assert c is not None
        self.c = c
        rm = c.rate_model or mcfg.bridge.rate_model
        self.rate_model = across.RateModel(rm.ubar, rm.r0, rm.r1, rm.r2)
        self.round_trips_per_year = c.round_trips_per_day * 365.0

    def spread(self, m: MarketView) -> float:
        return (
            m.token_price(self.c.destination_chain, self.c.token)
            / m.token_price(self.c.origin_chain, self.c.token)
            - 1.0
        )

    def income_per_year(self, position_usd: float, m: MarketView) -> float:
        if self.halted or self.paused or position_usd <= 0:
            return 0.0
        q = min(position_usd, self.c.capacity_usd)
        fee = m.bridge_fee_pct(q, self.rate_model, include_gas=False)
        gas = m.cfg.chains[self.c.destination_chain].fill_gas_usd
        return across.arb_income_per_year_usd(
            position_usd, self.spread(m), fee, gas, self.c.capacity_usd, self.round_trips_per_year
        )

    REFERENCE_USD = 10_000.0

    def base_apr(self, m: MarketView) -> float:
        x = self.ours_usd if self.ours_usd > 0 else self.REFERENCE_USD
        return self.income_per_year(x, m) / x

    def tvl_usd(self, m: MarketView) -> float:
        return self.c.capacity_usd

    def available_usd(self, m: MarketView) -> float:
        return 0.0 if self.halted else super().available_usd(m)

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        if self.ours_usd <= 0:
            return 1.0
        return 1.0 + self.income_per_year(self.ours_usd, m) * dt / SPY / self.ours_usd

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        chain_tokens = m.cfg.chains
        return {
            "stablecoin": True,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": [
                chain_tokens[self.c.origin_chain].tokens[self.c.token].address,
                chain_tokens[self.c.destination_chain].tokens[self.c.token].address,
            ],
            "rewardTokens": None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }
