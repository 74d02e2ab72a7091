"""NFT rental: rental listings (reNFT's lending entities), the floor (a Chainlink NFT Floor Price
feed's rounds), the collection's sales (OpenSea v2 stats) and ETH/USD (coins).

- ``GET {renft}/v1/lendings?nftAddress=…``: every listing; ``renting`` non-null = rented now. The
  others' listed count ``S`` (our ``lentAmount`` taken out), the rented NFT-days a day ``D``
  (when some listings stand idle, demand is what is rented; when all are rented, at least that),
  the daily rent ``R`` (median ``dailyRentPrice``);
- ``GET {chainlink}/v1/nft-floor/{collection}/rounds?count=N``: the floor (last ``answer``) and
  its realized volatility from the hourly rounds (``protocols.nft_rental.realized_volatility``);
- ``GET {opensea}/api/v2/collections/{slug}/stats``: floor sales a day (``one_day`` interval),
  which set the days to sell (``protocols.nft_rental.days_to_sell``): the venue's ``exit_days``
  is the larger of the configured value and the days to sell what we would hold, so the NFT
  counts toward no liquidity floor shorter than that.

Curve (:class:`adapters.curves_composite.NftRentalCurve`): ``P_ETH 365 R n min(1, D/(S+n))``,
``n = x / P_floor``; capacity ``params.capacity_nfts`` floors.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import Annotated, ClassVar

from pydantic import Field

from adapters.base import Adapter, BuildContext, Endpoint, Params, VenuePlan
from adapters.config import FeedSettings
from adapters.curves_composite import NftRentalCurve
from adapters.errors import FeedError
from adapters.models_composite import FloorRounds, Lendings, OpenSeaStats
from adapters.siblings import sibling_url
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import nft_rental

ETH_COIN = "coingecko:ethereum"


class NftRentalParams(Params):
    collection: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    slug: str = Field(min_length=1)
    lender: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")  # our address in the listings
    floor_base_url: str | None = None  # None: {root}/chainlink
    stats_base_url: str | None = None  # live: https://api.opensea.io; None: {root}/opensea
    rounds: Annotated[int, Field(ge=2, le=720)] = 168  # hourly rounds for the volatility
    capacity_nfts: Annotated[float, Field(gt=0)] = 30.0  # what the floor listings let us buy
    max_share_of_sales: Annotated[float, Field(gt=0, le=1)] = 0.25
    exit_haircut: Annotated[float, Field(ge=0, lt=1)] = 0.06


class NftRentalAdapter(Adapter):
    name: ClassVar[str] = "nft_rental"
    feed: ClassVar[str] = "renft"
    prefix: ClassVar[str] = "renft"
    live_base_url: ClassVar[str] = (
        ""  # reNFT's subgraph (GraphQL); point base_url at a JSON gateway
    )
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.NFT_RENTAL})
    params_model = NftRentalParams

    def plan(
        self, venue: VenueConfig, params: NftRentalParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        floor = sibling_url(
            venue.id, base_url, "renft", "chainlink", params.floor_base_url, "floor_base_url"
        )
        stats = sibling_url(
            venue.id, base_url, "renft", "opensea", params.stats_base_url, "stats_base_url"
        )
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            (
                Endpoint(
                    self.feed,
                    f"{base_url}/v1/lendings",
                    (("nftAddress", params.collection.lower()),),
                ),
                Endpoint(
                    "chainlink",
                    f"{floor}/v1/nft-floor/{params.collection.lower()}/rounds",
                    (("count", str(params.rounds)),),
                ),
                Endpoint("opensea", f"{stats}/api/v2/collections/{params.slug}/stats"),
            ),
            coins=(ETH_COIN,),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: NftRentalParams = plan.params
        lend_ep, floor_ep, stats_ep = plan.endpoints
        where = f"nft rental {p.slug}"
        rounds: FloorRounds = ctx.model(floor_ep, FloorRounds, f"{where} floor rounds")
        last = max(rounds.rounds, key=lambda r: r.updatedAt)
        ctx.check_time(
            "chainlink",
            last.updatedAt,
            f"{where} floor rounds field rounds[-1].updatedAt",
            floor_ep,
        )
        scale = 10.0**rounds.decimals
        floor_eth = last.answer / scale
        if not floor_eth > 0:
            raise FeedError(
                "out_of_range",
                f"{where} floor rounds field answer: floor {floor_eth} is not positive",
            )
        ordered = sorted(rounds.rounds, key=lambda r: r.updatedAt)
        spacing = max(
            (ordered[-1].updatedAt - ordered[0].updatedAt).total_seconds()
            / max(len(ordered) - 1, 1),
            1.0,
        )
        sigma = nft_rental.realized_volatility(
            [max(r.answer / scale, 1e-18) for r in ordered], spacing
        )
        high = max(r.answer / scale for r in ordered)
        drawdown = max(0.0, 1.0 - floor_eth / high) if high > 0 else 0.0
        eth_usd = ctx.price(ETH_COIN).price
        listings: Lendings = ctx.model(lend_ep, Lendings, f"{where} lendings")
        ctx.check_time(self.feed, listings.timestamp, f"{where} lendings field timestamp", lend_ep)
        ours = [r for r in listings.data.lendings if r.lenderAddress.lower() == p.lender.lower()]
        others = [r for r in listings.data.lendings if r.lenderAddress.lower() != p.lender.lower()]
        listed_others = sum(r.lentAmount for r in others)
        rented_others = sum(r.lentAmount for r in others if r.renting is not None)
        our_n = sum(r.lentAmount for r in ours)
        our_rented = 0.0
        for r in ours:
            if r.renting is not None:
                share = r.renting.share if r.renting.share is not None else 1.0
                our_rented += r.lentAmount * share
        rents = [r.dailyRentPrice for r in others if r.dailyRentPrice > 0]
        rent = median(rents) if rents else 0.0
        ctx.check_apr(nft_rental.DAYS_PER_YEAR * rent / floor_eth, f"{where} rent yield")
        demand = rented_others + our_rented
        stats: OpenSeaStats = ctx.model(stats_ep, OpenSeaStats, f"{where} stats")
        one_day = next((iv for iv in stats.intervals if iv.interval == "one_day"), None)
        if one_day is None:
            raise FeedError("schema", f"{where} stats: field intervals: no one_day interval")
        floor_usd = floor_eth * eth_usd
        curve = NftRentalCurve(
            floor_usd=floor_usd,
            daily_rent_eth=rent,
            eth_usd=eth_usd,
            demand_nft_days_per_day=demand,
            listed_others=listed_others,
            capacity_usd=p.capacity_nfts * floor_usd,
        )
        hold_n = max(position_usd / floor_usd, 1.0)
        sell_days = nft_rental.days_to_sell(hold_n, one_day.sales, p.max_share_of_sales)
        venue = plan.config.to_venue()
        venue = dataclasses.replace(venue, exit_days=max(venue.exit_days, min(sell_days, 365.0)))
        occ_now = float(nft_rental.occupancy(demand, listed_others, position_usd / floor_usd))
        marginal = nft_rental.rental_yield_apr(
            rent, floor_eth, float(nft_rental.occupancy(demand, listed_others, 0.0))
        )
        return VenueSnapshot(
            venue=venue,
            observed_at=last.updatedAt,
            curve=curve,
            real_apr=marginal,
            emission_apr=0.0,
            tvl_usd=stats.total.market_cap * eth_usd if stats.total.market_cap else math.inf,
            exit_liquidity_usd=math.inf,  # a sale takes any amount; exit_days says how long
            state={
                "floor_eth": floor_eth,
                "floor_usd": floor_usd,
                "floor_sigma_annual": sigma,
                "floor_drawdown": drawdown,  # below the high of the rounds read (7 days hourly)
                "daily_rent_eth": rent,
                "demand_nft_days_per_day": demand,
                "listed_others": listed_others,
                "our_listed_nfts": our_n,
                "occupancy": occ_now,
                "sales_per_day": one_day.sales,
                "days_to_sell": sell_days,
                "exit_haircut": p.exit_haircut,
                "position_usd": position_usd,
            },
        )
