"""DefiLlama yields: one ``/pools`` request for every venue that reads a pool row, optional
``/chart/{pool}`` history, and LP price volatility from the coins API.

``GET {base}/pools`` and ``GET {base}/chart/{pool}`` (live https://yields.llama.fi). The row's
percentages are in % (``apyBase`` 3.1 = 3.1 %); ``tvlUsd`` includes our position, which is
subtracted. Rows carry no timestamp, so their freshness is the time the server last vouched for
the body (200 or 304).

Curves by the venue's kind:

- ``lp``: :class:`adapters.curves.LpCurve`: the fee APR (``apyBase``; with ``history_days`` the
  mean of the chart's last days) is ``volume * fee * 365 / TVL``, so the row implies
  ``volume = apyBase * TVL / (fee * 365)`` and our income is
  ``uniswap.fee_income_after_deposit_usd(x, volume, TVL_without_us, fee) - sigma^2/8 * x``.
  ``sigma`` is 0 when ``ilRisk`` is "no", else ``params.sigma_annual``, else the realized
  volatility of ``params.price_coin`` over ``volatility_span_hours`` of hourly coins history.
- ``lending``: :class:`adapters.curves.DilutedCurve` (borrowers' interest stays, our deposit
  dilutes it; DefiLlama gives no borrow curve).
- ``staking`` / ``fixed``: :class:`adapters.curves.FlatCurve` (rewards pro rata to stake, so
  neither rate depends on our size).

Emissions (``apyReward``) of LP and lending pools are the pool-wide reward flow
``apyReward * TVL`` split pro rata.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import Field

from adapters.base import (
    Adapter,
    BuildContext,
    Endpoint,
    Params,
    VenuePlan,
    emission_allowed,
    index_rows,
)
from adapters.config import FeedSettings
from adapters.curves import DilutedCurve, FlatCurve, LpCurve
from adapters.errors import FeedError
from adapters.http import Fetched
from adapters.models import LlamaChart, LlamaPool, LlamaPoolsEnvelope, parse
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot, YieldCurve
from protocols import uniswap


class DefiLlamaParams(Params):
    pool: str = Field(min_length=1)
    price_coin: str | None = None  # the volatile token of an LP, for sigma from its price history
    sigma_annual: Annotated[float, Field(ge=0, le=10)] | None = None  # fixed volatility instead
    fee: Annotated[float, Field(gt=0, lt=0.1)] = uniswap.V2_FEE  # LP fee tier (Uniswap v2: 0.30 %)
    # >0: fee APR = mean apyBase of the chart's last days
    history_days: Annotated[int, Field(ge=0, le=365)] = 0
    capacity_usd: Annotated[float, Field(gt=0)] | None = None  # a cap the row does not state


def _pool_index(fetched: Fetched) -> dict[str, Any]:
    return index_rows(parse(LlamaPoolsEnvelope, fetched.payload, "defillama pools").data, "pool")


class DefiLlamaAdapter(Adapter):
    name: ClassVar[str] = "defillama"
    feed: ClassVar[str] = "defillama"
    prefix: ClassVar[str] = "defillama"
    live_base_url: ClassVar[str] = "https://yields.llama.fi"
    kinds: ClassVar[frozenset[VenueKind]] = frozenset(
        {VenueKind.LP, VenueKind.LENDING, VenueKind.STAKING, VenueKind.FIXED}
    )
    params_model = DefiLlamaParams

    def plan(
        self, venue: VenueConfig, params: DefiLlamaParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        endpoints = [Endpoint(self.feed, f"{base_url}/pools")]
        if params.history_days > 0:
            endpoints.append(Endpoint(self.feed, f"{base_url}/chart/{params.pool}"))
        needs_sigma = (
            venue.kind == VenueKind.LP and params.sigma_annual is None and params.price_coin
        )
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            tuple(endpoints),
            chart_coins=(params.price_coin,) if needs_sigma and params.price_coin else (),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: DefiLlamaParams = plan.params
        pools_ep = plan.endpoints[0]
        where = f"defillama pool {p.pool}"
        hit = ctx.index(pools_ep, "pools", _pool_index).get(p.pool)
        if hit is None:
            raise FeedError("schema", f"{where}: field data: no row with pool {p.pool!r}")
        i, raw = hit
        row: LlamaPool = ctx.row(pools_ep, i, raw, LlamaPool, f"{where} (data.{i})")
        fetched_at = ctx.fetched(pools_ep).fetched_at
        ctx.check_time(self.feed, fetched_at, f"{where} fetched", pools_ep)

        base_apr = ctx.check_apr((row.apyBase or 0.0) / 100.0, f"{where} field apyBase")
        if row.apyBase is not None and row.apyBase < 0 and plan.config.kind != VenueKind.LP:
            raise FeedError("out_of_range", f"{where} field apyBase {row.apyBase} % is negative")
        reward_apr = ctx.check_apr((row.apyReward or 0.0) / 100.0, f"{where} field apyReward")
        if not emission_allowed(ctx.settings, *(row.rewardTokens or [])):
            reward_apr = 0.0
        state: dict[str, float] = {
            "tvl_usd_feed": row.tvlUsd,
            "apy_base_feed": base_apr,
            "apy_reward_feed": reward_apr,
        }
        if p.history_days > 0:
            base_apr = self._history_apr(plan, ctx, where, p.history_days)
            state["apy_base_history_mean"] = base_apr
        tvl_others = max(row.tvlUsd - position_usd, 0.0)
        capacity = p.capacity_usd if p.capacity_usd is not None else math.inf
        kind = plan.config.kind
        curve: YieldCurve
        if kind == VenueKind.LP:
            sigma = self._sigma(plan, ctx, row, where)
            volume_1d = (
                base_apr * row.tvlUsd / (p.fee * uniswap.DAYS_PER_YEAR) if row.tvlUsd > 0 else 0.0
            )
            curve = LpCurve(max(volume_1d, 0.0), p.fee, tvl_others, sigma, reward_apr * row.tvlUsd)
            if capacity < curve.capacity_usd:
                curve.capacity_usd = capacity
            state.update(
                sigma_annual=sigma,
                il_apr=uniswap.lvr_apr(sigma),
                implied_volume_usd_1d=volume_1d,
                # the pool's swap fee: the optimizer prices a zap in or out from it and the
                # reserves (optimizer/costs.py)
                swap_fee=p.fee,
            )
            if row.volumeUsd1d is not None:
                state["volume_usd_1d_feed"] = row.volumeUsd1d
            # marginal, without us
            real_apr = base_apr * row.tvlUsd / max(tvl_others, 1.0) - uniswap.lvr_apr(sigma)
        elif kind == VenueKind.LENDING:
            # the marginal rate without us: the pool's interest over the others' supply
            curve = DilutedCurve(
                base_apr * row.tvlUsd, tvl_others, reward_apr * row.tvlUsd, capacity
            )
            real_apr = base_apr * row.tvlUsd / max(tvl_others, 1.0)
        else:
            curve = FlatCurve(base_apr, capacity, reward_apr)
            real_apr = base_apr
        state["position_usd"] = position_usd
        return VenueSnapshot(
            venue=plan.config.to_venue(),
            observed_at=fetched_at,
            curve=curve,
            real_apr=real_apr,
            emission_apr=reward_apr,
            tvl_usd=tvl_others,
            exit_liquidity_usd=row.tvlUsd,
            state=state,
        )

    def _history_apr(self, plan: VenuePlan, ctx: BuildContext, where: str, days: int) -> float:
        chart: LlamaChart = ctx.model(plan.endpoints[1], LlamaChart, f"{where} chart")
        points = sorted(chart.data, key=lambda d: d.timestamp)[-days:]
        # daily rows: the newest may be up to a day old by design, so allow one day on top
        age = (ctx.received_at(plan.endpoints[1]) - points[-1].timestamp).total_seconds()
        if age > ctx.settings.staleness_for(self.feed) + 86_400:
            raise FeedError("stale", f"{where} chart field data[-1].timestamp is {age:.0f}s old")
        if -age > ctx.settings.future_tolerance_seconds:
            raise FeedError(
                "future_timestamp", f"{where} chart field data[-1].timestamp is {-age:.0f}s ahead"
            )
        values = [d.apyBase if d.apyBase is not None else (d.apy or 0.0) for d in points]
        return ctx.check_apr(
            sum(values) / len(values) / 100.0, f"{where} chart field data.apyBase mean"
        )

    def _sigma(self, plan: VenuePlan, ctx: BuildContext, row: LlamaPool, where: str) -> float:
        p: DefiLlamaParams = plan.params
        if row.ilRisk is not None and row.ilRisk.lower() == "no":
            return 0.0
        if p.sigma_annual is not None:
            return p.sigma_annual
        if p.price_coin:
            sigma = ctx.volatility(p.price_coin)
            if sigma > 10.0:
                raise FeedError(
                    "out_of_range",
                    f"{where} price volatility {sigma:.3g} of {p.price_coin} > 1000 %",
                )
            return sigma
        raise FeedError(
            "schema",
            f"{where}: field ilRisk is {row.ilRisk!r} (not 'no') but params.price_coin and"
            " params.sigma_annual are unset",
        )
