"""Compound v3 (Comet): the supply curve with our deposit's effect on utilization, COMP rewards.

``GET {base}/v3/{chain}/{comet}``: the Comet getters as JSON (``totalSupply``, ``totalBorrow``,
the per-second rate parameters, ``baseTrackingSupplySpeed``, ...).

State without us: borrow ``B = totalBorrow``, supply ``S = totalSupply - our position`` (clamped
so that ``B <= S``). Curve: :func:`adapters.curves.comet_lending_curve`, i.e.
``x * comet_supply_apr_after_deposit(curve, B, S, x)`` (protocol_math.md §2.2), plus COMP
``baseTrackingSupplySpeed / trackingIndexScale`` per second, priced through the coins API
(``emissions.price_coins["COMP"]``), else the payload's ``rewardTokenPriceUsd`` (a gateway
extra), else ``emissions.static_prices_usd``, and split pro rata to supply; paid only while the
supply is at least ``baseMinForRewards``.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from adapters.base import (
    Adapter,
    BuildContext,
    Endpoint,
    Params,
    VenuePlan,
    emission_allowed,
    reward_price_usd,
)
from adapters.config import FeedSettings
from adapters.curves import comet_lending_curve
from adapters.errors import FeedError
from adapters.models import Comet
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import compound

REWARD_SYMBOL = "COMP"


class CompoundParams(Params):
    chain: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    comet: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    price_coin: str | None = None  # base token price via the coins API; None: price_usd
    price_usd: float = Field(default=1.0, gt=0)  # USD-based comets (cUSDCv3, cUSDTv3)


class CompoundAdapter(Adapter):
    name: ClassVar[str] = "compound_v3"
    feed: ClassVar[str] = "compound"
    prefix: ClassVar[str] = "compound"
    # no public REST host: see README (Comet getters over JSON-RPC)
    live_base_url: ClassVar[str] = ""
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.LENDING})
    params_model = CompoundParams

    def plan(
        self, venue: VenueConfig, params: CompoundParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        reward_coin = settings.emissions.price_coins.get(REWARD_SYMBOL)
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            (Endpoint(self.feed, f"{base_url}/v3/{params.chain}/{params.comet}"),),
            coins=(params.price_coin,) if params.price_coin else (),
            optional_coins=(reward_coin,) if reward_coin and settings.emissions.enabled else (),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: CompoundParams = plan.params
        where = f"compound {p.chain} {p.comet}"
        c: Comet = ctx.model(plan.endpoints[0], Comet, where)
        ctx.check_time(self.feed, c.timestamp, f"{where} field timestamp", plan.endpoints[0])
        price_usd = ctx.price(p.price_coin).price if p.price_coin else p.price_usd
        unit = 10.0**c.decimals
        supply_usd = ctx.check_amount(
            c.totalSupply / unit * price_usd, f"{where} field totalSupply"
        )
        borrow_usd = ctx.check_amount(
            c.totalBorrow / unit * price_usd, f"{where} field totalBorrow"
        )
        if borrow_usd > supply_usd * (1 + 1e-9):
            raise FeedError(
                "out_of_range",
                f"{where} field totalBorrow {borrow_usd:.6g} USD exceeds totalSupply {supply_usd:.6g}",
            )
        feed_supply_apr = ctx.check_apr(
            float(compound.per_year(c.supplyRate / compound.FACTOR_SCALE)),
            f"{where} field supplyRate",
        )
        feed_borrow_apr = ctx.check_apr(
            float(compound.per_year(c.borrowRate / compound.FACTOR_SCALE)),
            f"{where} field borrowRate",
        )
        try:
            curve_params = compound.CometCurve.from_per_second_factors(
                c.supplyKink,
                c.supplyPerSecondInterestRateSlopeLow,
                c.supplyPerSecondInterestRateSlopeHigh,
                c.supplyPerSecondInterestRateBase,
                c.borrowKink,
                c.borrowPerSecondInterestRateSlopeLow,
                c.borrowPerSecondInterestRateSlopeHigh,
                c.borrowPerSecondInterestRateBase,
            )
        except ValueError as exc:
            raise FeedError("out_of_range", f"{where} rate curve: {exc}") from None
        others_supply_usd = max(supply_usd - position_usd, borrow_usd)

        emission_usd = 0.0
        reward_price = None
        if emission_allowed(ctx.settings, REWARD_SYMBOL):
            # COMP's price: the coins API, else the price the gateway sends, else the static one
            coin = plan.optional_coins[0] if plan.optional_coins else None
            reward_price = reward_price_usd(
                ctx, REWARD_SYMBOL, coin, fallback=c.rewardTokenPriceUsd
            )
        min_for_rewards_usd = c.baseMinForRewards / unit * price_usd
        if reward_price is not None and others_supply_usd >= min_for_rewards_usd:
            per_second = c.baseTrackingSupplySpeed / c.trackingIndexScale
            emission_usd = ctx.check_amount(
                per_second * compound.SECONDS_PER_YEAR * reward_price, f"{where} COMP USD/year"
            )
        emission_apr = emission_usd / others_supply_usd if others_supply_usd > 0 else 0.0
        ctx.check_apr(emission_apr, f"{where} COMP reward APR")

        curve = comet_lending_curve(
            curve_params,
            borrow_usd,
            others_supply_usd,
            supply_room_usd=0.0 if c.isPaused else math.inf,
            emission_usd_per_year=emission_usd,
        )
        u_without_us = compound.comet_utilization(borrow_usd, others_supply_usd)
        return VenueSnapshot(
            venue=plan.config.to_venue(),
            observed_at=c.timestamp,
            curve=curve,
            real_apr=float(compound.comet_supply_apr(curve_params, u_without_us)),
            emission_apr=emission_apr,
            tvl_usd=others_supply_usd,
            exit_liquidity_usd=0.0 if c.isPaused else max(supply_usd - borrow_usd, 0.0),
            state={
                "price_usd": price_usd,
                "total_supply_usd": supply_usd,
                "total_borrow_usd": borrow_usd,
                "supply_without_us_usd": others_supply_usd,
                "utilization": c.utilization / compound.FACTOR_SCALE,
                "utilization_without_us": u_without_us,
                "supply_apr_feed": feed_supply_apr,
                "borrow_apr_feed": feed_borrow_apr,
                "emission_usd_per_year": emission_usd,
                **({"reward_price_usd": reward_price} if reward_price is not None else {}),
                "position_usd": position_usd,
                "is_paused": float(c.isPaused),  # for the guards
            },
        )
