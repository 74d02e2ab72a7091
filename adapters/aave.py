"""Aave v3 reserves: the kinked supply curve with our deposit's effect on utilization.

``GET {base}/v3/{market}/reserves`` (``UiPoolDataProviderV3.getReservesHumanized`` as JSON) and
``GET {base}/v3/{market}/incentives`` (``UiIncentiveDataProviderV3.getReservesIncentivesDataHumanized``).
Every venue of a market shares these two requests.

State without us: ``D = totalScaledVariableDebt * variableBorrowIndex / RAY`` (debt), available
liquidity ``L = availableLiquidity - our position`` (our deposit is liquidity; clamped at 0),
prices ``priceInMarketReferenceCurrency / 10^refDecimals * refPriceInUsd / 1e8``
(aave-utilities ``formatReserveUSD``). Curve: :func:`adapters.curves.aave_lending_curve`, i.e.
``x * supply_apr_after_deposit(strategy, D, L, x)`` plus the incentive APR
``emissionPerSecond * P_reward * SPY / (supply * P_asset)`` diluted by our share of supply.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from adapters.base import Adapter, BuildContext, Endpoint, Params, VenuePlan, emission_allowed
from adapters.config import FeedSettings
from adapters.curves import aave_lending_curve
from adapters.errors import FeedError
from adapters.http import Fetched
from adapters.models import AaveReserve, AaveReserveIncentives, AaveReserves, parse
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import aave

USD_PRICE_DECIMALS = 8  # aave-utilities USD_DECIMALS for marketReferenceCurrencyPriceInUsd


class AaveParams(Params):
    market: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    asset: str = Field(min_length=1)  # reserve symbol (e.g. "USDC") or underlying address
    incentives: bool = True  # read the incentives endpoint for emission yield


def _reserve_index(fetched: Fetched) -> dict[str, Any]:
    envelope = parse(AaveReserves, fetched.payload, "aave reserves")
    index: dict[str, Any] = {"__base__": envelope.baseCurrencyData}
    for i, raw in enumerate(envelope.reservesData):
        if not isinstance(raw, dict):
            raise FeedError("schema", f"aave reserves: field reservesData.{i}: not an object")
        for key in ("symbol", "underlyingAsset"):
            value = raw.get(key)
            if isinstance(value, str):
                index.setdefault(value.lower(), (i, raw))
    return index


def _incentive_index(fetched: Fetched) -> dict[str, Any]:
    if not isinstance(fetched.payload, list):
        raise FeedError("schema", "aave incentives: field (root): expected a list")
    out: dict[str, Any] = {}
    for i, raw in enumerate(fetched.payload):
        if isinstance(raw, dict) and isinstance(raw.get("underlyingAsset"), str):
            out[raw["underlyingAsset"].lower()] = (i, raw)
    return out


class AaveAdapter(Adapter):
    name: ClassVar[str] = "aave_v3"
    feed: ClassVar[str] = "aave"
    prefix: ClassVar[str] = "aave"
    # no public REST host: see README (a JSON gateway over UiPoolDataProviderV3)
    live_base_url: ClassVar[str] = ""
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.LENDING})
    params_model = AaveParams

    def plan(
        self, venue: VenueConfig, params: AaveParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        endpoints = [Endpoint(self.feed, f"{base_url}/v3/{params.market}/reserves")]
        if params.incentives and settings.emissions.enabled:
            endpoints.append(Endpoint(self.feed, f"{base_url}/v3/{params.market}/incentives"))
        return VenuePlan(venue, self, params, base_url, tuple(endpoints))

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: AaveParams = plan.params
        reserves_ep = plan.endpoints[0]
        where = f"aave {p.market} reserve {p.asset}"
        index = ctx.index(reserves_ep, "reserves", _reserve_index)
        hit = index.get(p.asset.lower())
        if hit is None:
            raise FeedError(
                "schema",
                f"{where}: field reservesData: no reserve with symbol or address {p.asset!r}",
            )
        i, raw = hit
        r: AaveReserve = ctx.row(reserves_ep, i, raw, AaveReserve, f"{where} (reservesData.{i})")
        base = index["__base__"]
        ctx.check_time(
            self.feed, r.lastUpdateTimestamp, f"{where} field lastUpdateTimestamp", reserves_ep
        )

        unit = 10.0**r.decimals
        price_usd = (
            r.priceInMarketReferenceCurrency
            / 10.0**base.marketReferenceCurrencyDecimals
            * base.marketReferenceCurrencyPriceInUsd
            / 10.0**USD_PRICE_DECIMALS
        )
        if not price_usd > 0:
            raise FeedError(
                "out_of_range",
                f"{where} field priceInMarketReferenceCurrency: price {price_usd} is not positive",
            )
        feed_supply_apr = ctx.check_apr(
            aave.from_ray(r.liquidityRate), f"{where} field liquidityRate"
        )
        feed_borrow_apr = ctx.check_apr(
            aave.from_ray(r.variableBorrowRate), f"{where} field variableBorrowRate"
        )
        try:
            strategy = aave.AaveRateStrategy(
                aave.from_ray(r.baseVariableBorrowRate),
                aave.from_ray(r.variableRateSlope1),
                aave.from_ray(r.variableRateSlope2),
                aave.from_ray(r.optimalUsageRatio),
                r.reserveFactor / 10_000.0,
            )
        except ValueError as exc:
            raise FeedError("out_of_range", f"{where} rate strategy: {exc}") from None

        debt_usd = ctx.check_amount(
            r.totalScaledVariableDebt * aave.from_ray(r.variableBorrowIndex) / unit * price_usd,
            f"{where} total debt",
        )
        available_usd = ctx.check_amount(
            r.availableLiquidity / unit * price_usd, f"{where} field availableLiquidity"
        )
        others_liquidity_usd = max(available_usd - position_usd, 0.0)
        others_supply_usd = debt_usd + others_liquidity_usd
        if r.supplyCap > 0:
            room_usd = max(r.supplyCap * price_usd - others_supply_usd, 0.0)
        else:
            room_usd = math.inf
        if not r.isActive or r.isFrozen or r.isPaused:
            room_usd = 0.0  # no new supply accepted; what we hold stays
        # a paused pool pays nobody out
        exit_usd = 0.0 if r.isPaused or not r.isActive else available_usd

        rewards = self._rewards(plan.endpoints[1], ctx, r, where) if len(plan.endpoints) > 1 else []
        emission_usd = sum(
            (per_second * price * aave.SECONDS_PER_YEAR for _, per_second, price in rewards), 0.0
        )
        emission_apr = sum(
            (
                aave.incentive_apr(per_second, price, others_supply_usd / price_usd, price_usd)
                for _, per_second, price in rewards
            ),
            0.0,
        )
        ctx.check_apr(emission_apr, f"{where} incentive APR")

        curve = aave_lending_curve(
            strategy,
            debt_usd,
            others_liquidity_usd,
            supply_room_usd=room_usd,
            emission_usd_per_year=emission_usd,
        )
        u_without_us = aave.utilization(debt_usd, others_liquidity_usd)
        real_apr = float(aave.supply_apr(strategy, u_without_us))
        return VenueSnapshot(
            venue=plan.config.to_venue(),
            observed_at=r.lastUpdateTimestamp,
            curve=curve,
            real_apr=real_apr,
            emission_apr=emission_apr,
            tvl_usd=others_supply_usd,
            exit_liquidity_usd=exit_usd,
            state={
                "price_usd": price_usd,
                "total_debt_usd": debt_usd,
                "available_liquidity_usd": available_usd,
                "available_liquidity_without_us_usd": others_liquidity_usd,
                "utilization": aave.utilization(debt_usd, available_usd),
                "utilization_without_us": u_without_us,
                "supply_apr_feed": feed_supply_apr,
                "borrow_apr_feed": feed_borrow_apr,
                "supply_apr_model": float(
                    aave.supply_apr(strategy, aave.utilization(debt_usd, available_usd))
                ),
                "supply_cap_room_usd": room_usd,
                "emission_usd_per_year": emission_usd,
                "reward_tokens": float(len(rewards)),
                "position_usd": position_usd,
                # for the guards: the pool's own oracle price and the reserve's flags (1.0 = set)
                "oracle_price_usd": price_usd,
                "is_paused": float(r.isPaused),
                "is_frozen": float(r.isFrozen),
                "is_active": float(r.isActive),
            },
        )

    def _rewards(
        self, ep: Endpoint, ctx: BuildContext, r: AaveReserve, where: str
    ) -> list[tuple[str, float, float]]:
        """aToken-side rewards still running, as (symbol, tokens per second, USD price):
        ``emissionPerSecond / 10^decimals`` and ``rewardPriceFeed / 10^priceFeedDecimals``."""
        hit = ctx.index(ep, "incentives", _incentive_index).get(r.underlyingAsset.lower())
        if hit is None:
            return []
        i, raw = hit
        inc: AaveReserveIncentives = ctx.row(
            ep, i, raw, AaveReserveIncentives, f"{where} incentives ({i})"
        )
        out = []
        for j, info in enumerate(inc.aIncentiveData.rewardsTokenInformation):
            if info.emissionEndTimestamp <= ctx.now or not emission_allowed(
                ctx.settings, info.rewardTokenSymbol
            ):
                continue
            price = info.rewardPriceFeed / 10.0**info.priceFeedDecimals
            per_second = info.emissionPerSecond / 10.0**info.rewardTokenDecimals
            ctx.check_amount(
                per_second * price, f"{where} incentives rewardsTokenInformation.{j} USD/second"
            )
            out.append((info.rewardTokenSymbol, per_second, price))
        return out
