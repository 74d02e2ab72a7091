"""NFT rental in the simulated market: floor NFTs of one collection rented out by the day
(ERC-4907), priced by a floor oracle, sold below floor to exit (protocols.nft_rental)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import DAY, SPY, VenueModel, ou_step
from mockfeeds.view import MarketView
from protocols import nft_rental


class NftRentalVenue(VenueModel):
    """Our position is ``n`` NFTs worth the floor each (fractional: a share of a pool of floor
    NFTs), valued in ETH at par like every ETH venue here, so it moves with the floor in ETH.
    Per tick: the floor follows a GBM (times a crash scenario's mark), the daily rent, the renters'
    demand and the others' listings are OU in logs, and we earn ``R min(1, D / (S + n))`` ETH a day
    per NFT. A withdrawal sells: it pays ``1 - exit_haircut`` of the floor value after
    ``days_to_sell`` (queued, like the Lido queue)."""

    kind = "nft_rental"
    STATE_FIELDS = (
        "floor_eth",
        "floor_mark",
        "daily_rent_eth",
        "demand",
        "demand_mult",
        "listed_others",
        "sales_per_day",
        "rounds",
        "round_id",
        "rent_received_eth",
    )

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.nft_rental
        assert c is not None
        self.c = c
        self.floor_eth = c.floor_eth
        self.floor_mark = 1.0  # a floor_crash scenario's multiplier
        self.daily_rent_eth = c.daily_rent_eth
        self.demand = c.demand_nft_days_per_day
        self.demand_mult = 1.0  # a rental_drought scenario's multiplier
        self.listed_others = c.listed_others
        self.sales_per_day = c.sales_per_day
        self.rounds: deque[list[float]] = deque(maxlen=24 * 30)  # [updatedAt, floor] per hour
        self.round_id = 0
        self.rent_received_eth = 0.0

    def floor(self) -> float:
        return self.floor_eth * self.floor_mark

    def n_ours(self, m: MarketView) -> float:
        return self.ours_usd / (self.floor() * m.eth_price_usd())

    def demand_now(self) -> float:
        return self.demand * self.demand_mult

    def occupancy(self, m: MarketView) -> float:
        return float(nft_rental.occupancy(self.demand_now(), self.listed_others, self.n_ours(m)))

    def base_apr(self, m: MarketView) -> float:
        return nft_rental.rental_yield_apr(self.daily_rent_eth, self.floor(), self.occupancy(m))

    def tvl_usd(self, m: MarketView) -> float:
        # the collection's market cap at the floor
        return self.floor() * self.c.supply * m.eth_price_usd()

    def exit_cost_fraction(self, amount_usd: float, m: MarketView) -> float:
        return self.c.exit_haircut

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: MarketView) -> float:
        n = amount_usd / (self.floor() * m.eth_price_usd())
        days = nft_rental.days_to_sell(n, self.sales_per_day, self.c.max_share_of_sales)
        return min(days, 365.0) * DAY

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        c = self.c
        dd, dty = dt / DAY, dt / SPY
        f0 = self.floor()
        n = self.n_ours(m) if f0 > 0 else 0.0
        occ = float(nft_rental.occupancy(self.demand_now(), self.listed_others, n))
        rent = self.daily_rent_eth * occ * dd  # ETH per NFT this tick
        self.rent_received_eth += rent * n
        self.floor_eth *= math.exp(
            (c.floor_drift_annual - 0.5 * c.floor_sigma_annual**2) * dty
            + c.floor_sigma_annual * math.sqrt(dty) * z[0]
        )
        self.daily_rent_eth = c.daily_rent_eth * math.exp(
            ou_step(
                math.log(self.daily_rent_eth / c.daily_rent_eth),
                0.0,
                c.rent_sigma,
                c.reversion_per_day,
                dd,
                z[1],
            )
        )
        self.demand = (
            c.demand_nft_days_per_day
            * math.exp(
                ou_step(
                    math.log(max(self.demand, 1e-9) / max(c.demand_nft_days_per_day, 1e-9)),
                    0.0,
                    c.demand_sigma,
                    c.reversion_per_day,
                    dd,
                    z[2],
                )
            )
            if c.demand_nft_days_per_day > 0
            else 0.0
        )
        self.sales_per_day = c.sales_per_day * math.exp(
            ou_step(
                math.log(self.sales_per_day / c.sales_per_day),
                0.0,
                0.2,
                c.reversion_per_day,
                dd,
                z[3],
            )
        )
        end = t + dt
        if not self.rounds or math.floor(end / 3600) != math.floor(self.rounds[-1][0] / 3600):
            self.round_id += 1
            self.rounds.append([end, self.floor()])
        f1 = self.floor()
        return (f1 + rent) / f0 if f0 > 0 else 1.0

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        return {
            "stablecoin": False,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": [self.c.collection],
            "rewardTokens": None,
            "volumeUsd1d": self.sales_per_day * self.floor() * m.eth_price_usd(),
            "volumeUsd7d": None,
            "apyBase7d": None,
        }
