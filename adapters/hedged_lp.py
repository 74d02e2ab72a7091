"""A delta-hedged LP: the pool's DefiLlama row (fees, TVL), the ETH price history (volatility)
and a perpetual's funding (Binance USD-M shape).

- ``GET {base}/pools`` (as :mod:`adapters.defillama`): ``apyBase`` is the fee APR
  ``volume x fee x 365 / TVL``; ``tvlUsd`` includes our LP part, which is taken out;
- ``GET {binance}/fapi/v1/fundingRate?symbol=…&limit=…`` (live ``https://fapi.binance.com``): the
  recent 8-hour rates; their mean, annualised, is the expected funding the short receives
  (``protocols.hedged_lp.annual_funding_rate``); ``GET {binance}/fapi/v1/premiumIndex`` for
  freshness (``time``) and the last rate;
- ``params.price_coin``'s hourly coins history: σ.

Curve (:class:`adapters.curves_composite.HedgedLpCurve`): ``F V/(T+V) + (f/2 - σ²/8 - c_reb) V``
with ``V = a x`` (the rest is perp margin). State: ``funding_apr``, ``carry_apr``,
``residual_std_apr`` (the discretely re-hedged residual), ``unhedged_std_apr``,
``perp_liquidation_move``.
"""

from __future__ import annotations

from statistics import fmean
from typing import Annotated, Any, ClassVar

from pydantic import Field

from adapters.base import Adapter, BuildContext, Endpoint, Params, VenuePlan, index_rows
from adapters.config import FeedSettings
from adapters.curves_composite import HedgedLpCurve
from adapters.errors import FeedError
from adapters.http import Fetched
from adapters.models import LlamaPool, LlamaPoolsEnvelope, parse
from adapters.models_composite import FundingRate, PremiumIndex
from adapters.siblings import sibling_url
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import hedged_lp, uniswap


class HedgedLpParams(Params):
    pool: str = Field(min_length=1)
    price_coin: str | None = None
    sigma_annual: Annotated[float, Field(ge=0, le=10)] | None = None
    fee: Annotated[float, Field(gt=0, lt=0.1)] = uniswap.V2_FEE
    symbol: str = "ETHUSDT"
    funding_base_url: str | None = None  # live: https://fapi.binance.com; None: {root}/binance
    funding_limit: Annotated[int, Field(ge=1, le=1000)] = 21  # 7 days of 8-hour rates
    funding_interval_hours: Annotated[float, Field(gt=0)] = 8.0
    perp_leverage: Annotated[float, Field(ge=1, le=20)] = 3.0
    rebalance_hours: Annotated[float, Field(gt=0)] = 24.0
    taker_fee: Annotated[float, Field(ge=0, lt=0.01)] = hedged_lp.BINANCE_TAKER_FEE


def _pool_index(fetched: Fetched) -> dict[str, Any]:
    return index_rows(parse(LlamaPoolsEnvelope, fetched.payload, "defillama pools").data, "pool")


class HedgedLpAdapter(Adapter):
    name: ClassVar[str] = "hedged_lp"
    feed: ClassVar[str] = "defillama"
    prefix: ClassVar[str] = "defillama"
    live_base_url: ClassVar[str] = "https://yields.llama.fi"
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.HEDGED_LP})
    params_model = HedgedLpParams

    def plan(
        self, venue: VenueConfig, params: HedgedLpParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        binance = sibling_url(
            venue.id, base_url, "defillama", "binance", params.funding_base_url, "funding_base_url"
        )
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            (
                Endpoint(self.feed, f"{base_url}/pools"),
                Endpoint(
                    "binance",
                    f"{binance}/fapi/v1/fundingRate",
                    (("symbol", params.symbol), ("limit", str(params.funding_limit))),
                ),
                Endpoint(
                    "binance", f"{binance}/fapi/v1/premiumIndex", (("symbol", params.symbol),)
                ),
            ),
            chart_coins=(params.price_coin,)
            if params.price_coin and params.sigma_annual is None
            else (),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: HedgedLpParams = plan.params
        pools_ep, funding_ep, premium_ep = plan.endpoints
        where = f"hedged lp pool {p.pool}"
        hit = ctx.index(pools_ep, "pools", _pool_index).get(p.pool)
        if hit is None:
            raise FeedError("schema", f"{where}: field data: no row with pool {p.pool!r}")
        i, raw = hit
        row: LlamaPool = ctx.row(pools_ep, i, raw, LlamaPool, f"{where} (data.{i})")
        ctx.check_time(self.feed, ctx.fetched(pools_ep).fetched_at, f"{where} fetched", pools_ep)
        fee_apr = ctx.check_apr((row.apyBase or 0.0) / 100.0, f"{where} field apyBase")
        premium: PremiumIndex = ctx.model(
            premium_ep, PremiumIndex, f"binance premiumIndex {p.symbol}"
        )
        ctx.check_time(
            "binance", premium.time, f"binance premiumIndex {p.symbol} field time", premium_ep
        )
        raw_rates = ctx.fetched(funding_ep).payload
        if not isinstance(raw_rates, list) or not raw_rates:
            raise FeedError("schema", f"binance fundingRate {p.symbol}: expected a non-empty list")
        rates = [
            ctx.row(funding_ep, j, r, FundingRate, f"binance fundingRate {p.symbol} ({j})")
            for j, r in enumerate(raw_rates)
        ]
        funding = hedged_lp.annual_funding_rate(
            fmean(r.fundingRate for r in rates), p.funding_interval_hours
        )
        if p.sigma_annual is not None:
            sigma = p.sigma_annual
        elif p.price_coin:
            sigma = ctx.volatility(p.price_coin)
        else:
            raise FeedError(
                "schema", f"{where}: params.price_coin and params.sigma_annual are unset"
            )
        a = hedged_lp.lp_share(p.perp_leverage)
        lp_ours = a * position_usd
        tvl_others = max(row.tvlUsd - lp_ours, 0.0)
        annual_fees = fee_apr * row.tvlUsd
        days = p.rebalance_hours / 24.0
        curve = HedgedLpCurve(
            annual_fees_usd=annual_fees,
            tvl_others_usd=tvl_others,
            funding_apr=funding,
            sigma_annual=sigma,
            perp_leverage=p.perp_leverage,
            rebalance_days=days,
            taker_fee=p.taker_fee,
        )
        marginal = a * (annual_fees / max(tvl_others, 1.0) + curve.carry)
        return VenueSnapshot(
            venue=plan.config.to_venue(),
            observed_at=ctx.fetched(pools_ep).fetched_at,
            curve=curve,
            real_apr=marginal,
            emission_apr=0.0,
            tvl_usd=tvl_others / a,
            exit_liquidity_usd=row.tvlUsd,
            state={
                "fee_apr": fee_apr,
                "funding_apr": funding,
                "funding_8h_last": premium.lastFundingRate,
                "carry_apr": curve.carry,
                "sigma_annual": sigma,
                "lvr_apr": uniswap.lvr_apr(sigma),
                "rebalance_cost_apr": hedged_lp.rebalance_cost_apr(sigma, days, p.taker_fee),
                "residual_std_apr": hedged_lp.residual_std_apr(sigma, days),
                "unhedged_std_apr": hedged_lp.unhedged_std_apr(sigma),
                "perp_liquidation_move": hedged_lp.perp_liquidation_move(p.perp_leverage),
                "lp_share": a,
                "position_usd": position_usd,
            },
        )
