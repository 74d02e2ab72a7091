"""Across bridge arbitrage: route fees and limits from the Across API, per-chain token prices
from the coins API.

``GET {base}/api/suggested-fees?inputToken&outputToken&originChainId&destinationChainId&amount``
(live https://app.across.to) carries the fee split, the expected fill time and the route's
limits; ``GET {base}/api/limits?…`` is read instead when ``params.limits_endpoint`` is set.
Prices: ``{coins_url}/prices/current/{origin coin},{destination coin}`` (batched with every
other venue's coins).

Curve: :func:`adapters.curves.bridge_arb_curve` with the gaps ``s = P_dst / P_src - 1`` (what we
sell into) of the recent hourly coins charts plus today's (``params.spread_history``; a gap
mean-reverts within hours, a position is held for weeks), ``fee = (lpFee.pct + relayerCapitalFee.pct) / 1e18``,
``gas = relayerGasFee.total`` in USD, ``C = maxDepositInstant`` in USD (the size an instant fill
takes and that closes the gap), and round trips per year
``N = min(SPY / (2 * expectedFillTimeSec), round_trips_per_day * 365)``: the fill time bounds how
often inventory can go there and back; the gap reopening bounds how often a round pays
(``across.arb_income_per_year_usd``).

Quote curve: the fee grows with the amount (the LP fee is the hub pool's rate averaged over the
utilization move the transfer causes), so the quote is also asked at ``params.quote_amounts_usd``;
state ``quote_amount_usd_k`` / ``quote_fee_pct_k`` (LP + capital fee, no gas; ``k = 0`` is
``quote_amount_usd``) is what the optimizer prices every bridge leg with (optimizer/costs.py). A
sample the route refuses (above its maxDeposit, a failed fetch) is left out; the venue stands on
its main quote.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from adapters.base import SECONDS_PER_YEAR, Adapter, BuildContext, Endpoint, Params, VenuePlan
from adapters.config import FeedSettings
from adapters.curves import bridge_arb_curve
from adapters.errors import FeedError
from adapters.models import AcrossLimits, AcrossSuggestedFees
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import across

PCT_SCALE = 10**18


class AcrossParams(Params):
    origin_chain_id: Annotated[int, Field(gt=0)]
    destination_chain_id: Annotated[int, Field(gt=0)]
    input_token: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    output_token: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    origin_price_coin: str = Field(min_length=3)
    destination_price_coin: str = Field(min_length=3)
    input_decimals: Annotated[int, Field(ge=0, le=36)] = 6
    # the size the fee quote is asked for
    quote_amount_usd: Annotated[float, Field(gt=0)] = 10_000.0
    # more sizes the quote is sampled at (one more request each): the fee curve the optimizer
    # prices bridge legs with (optimizer/costs.py); none: legs are priced at the linear bridge_fee_bps
    quote_amounts_usd: tuple[Annotated[float, Field(gt=0)], ...] = ()
    # None: settings.bridge_round_trips_per_day
    round_trips_per_day: Annotated[float, Field(gt=0)] | None = None
    limits_endpoint: bool = False  # read /api/limits instead of the quote's embedded limits
    # Expect the gaps of the recent hourly price history (the coins chart over
    # feeds.volatility_span_hours) rather than today's gap alone; off: today's gap only.
    spread_history: bool = True


class AcrossAdapter(Adapter):
    name: ClassVar[str] = "across"
    feed: ClassVar[str] = "across"
    prefix: ClassVar[str] = "across"
    live_base_url: ClassVar[str] = "https://app.across.to"
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.BRIDGE_ARB})
    params_model = AcrossParams

    def plan(
        self, venue: VenueConfig, params: AcrossParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        route = (
            ("destinationChainId", str(params.destination_chain_id)),
            ("inputToken", params.input_token),
            ("originChainId", str(params.origin_chain_id)),
            ("outputToken", params.output_token),
        )
        amount = str(round(params.quote_amount_usd * 10**params.input_decimals))
        endpoints = [
            Endpoint(
                self.feed,
                f"{base_url}/api/suggested-fees",
                tuple(sorted((*route, ("amount", amount)))),
            )
        ]
        if params.limits_endpoint:
            endpoints.append(Endpoint(self.feed, f"{base_url}/api/limits", route))
        for usd in params.quote_amounts_usd:
            units = str(round(usd * 10**params.input_decimals))
            endpoints.append(
                Endpoint(
                    self.feed,
                    f"{base_url}/api/suggested-fees",
                    tuple(sorted((*route, ("amount", units)))),
                )
            )
        pair = (params.origin_price_coin, params.destination_price_coin)
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            tuple(endpoints),
            coins=pair,
            chart_coins=pair if params.spread_history else (),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: AcrossParams = plan.params
        where = f"across {p.origin_chain_id}->{p.destination_chain_id}"
        fees: AcrossSuggestedFees = ctx.model(
            plan.endpoints[0], AcrossSuggestedFees, f"{where} suggested-fees"
        )
        ctx.check_time(
            self.feed, fees.timestamp, f"{where} suggested-fees field timestamp", plan.endpoints[0]
        )
        if p.limits_endpoint:
            limits = ctx.model(plan.endpoints[1], AcrossLimits, f"{where} limits")
        elif fees.limits is not None:
            limits = fees.limits
        else:
            raise FeedError(
                "schema",
                f"{where} suggested-fees: field limits: missing (set params.limits_endpoint)",
            )
        src = ctx.price(p.origin_price_coin).price
        dst = ctx.price(p.destination_price_coin).price
        spread = dst / src - 1.0
        unit = 10.0**p.input_decimals
        fee_pct = (fees.lpFee.pct + fees.relayerCapitalFee.pct) / PCT_SCALE
        if fee_pct > 1.0 or fees.totalRelayFee.pct > PCT_SCALE:
            raise FeedError(
                "out_of_range", f"{where} suggested-fees field totalRelayFee.pct: fee above 100 %"
            )
        gas_usd = ctx.check_amount(
            fees.relayerGasFee.total / unit * src, f"{where} field relayerGasFee.total"
        )
        capacity_usd = ctx.check_amount(
            limits.maxDepositInstant / unit * src, f"{where} field limits.maxDepositInstant"
        )
        max_deposit_usd = limits.maxDeposit / unit * src
        fill_seconds = max(float(fees.fill_seconds), 1.0)
        per_day = (
            p.round_trips_per_day
            if p.round_trips_per_day is not None
            else ctx.settings.bridge_round_trips_per_day
        )
        trips = min(SECONDS_PER_YEAR / (2.0 * fill_seconds), per_day * 365.0)
        spreads = (*self._history_spreads(ctx, p), spread) if p.spread_history else (spread,)
        curve = bridge_arb_curve(spreads, fee_pct, gas_usd, capacity_usd, trips)
        probe = (
            min(max(curve.capacity_usd, 1.0), p.quote_amount_usd)
            if curve.capacity_usd > 0
            else p.quote_amount_usd
        )
        real_apr = float(curve.real_income_usd(np.array([probe]))[0]) / probe
        ctx.check_apr(real_apr, f"{where} arbitrage APR")
        # Today's gap alone must be believable too: an absurd one is a broken feed or a crisis,
        # which a week of calm history must not average away.
        if capacity_usd > 0:
            today = (
                across.arb_income_per_year_usd(probe, spread, fee_pct, gas_usd, capacity_usd, trips)
                / probe
            )
            ctx.check_apr(today, f"{where} arbitrage APR at today's gap {spread:.4%}")
        quotes = self._quote_curve(plan, ctx, where, fee_pct)
        return VenueSnapshot(
            venue=plan.config.to_venue(),
            observed_at=fees.timestamp,
            curve=curve,
            real_apr=real_apr,
            emission_apr=0.0,
            tvl_usd=max_deposit_usd,
            exit_liquidity_usd=capacity_usd,
            state={
                "spread": spread,
                "spread_mean": sum(spreads) / len(spreads),
                "spread_samples": float(len(spreads)),
                "origin_price_usd": src,
                "destination_price_usd": dst,
                "fee_pct": fee_pct,
                "total_relay_fee_pct": fees.totalRelayFee.pct / PCT_SCALE,
                "gas_usd": gas_usd,
                "capacity_usd": capacity_usd,
                "max_deposit_usd": max_deposit_usd,
                "expected_fill_seconds": fill_seconds,
                "round_trips_per_year": trips,
                "is_amount_too_low": float(fees.isAmountTooLow),
                "position_usd": position_usd,
                **quotes,
            },
        )

    @staticmethod
    def _quote_curve(
        plan: VenuePlan, ctx: BuildContext, where: str, fee_pct: float
    ) -> dict[str, float]:
        """``quote_amount_usd_k`` / ``quote_fee_pct_k``: the main quote, then each sampled size the
        route answered (a refused or malformed sample is skipped: it prices no leg)."""
        p: AcrossParams = plan.params
        out = {"quote_amount_usd_0": p.quote_amount_usd, "quote_fee_pct_0": fee_pct}
        first = 2 if p.limits_endpoint else 1
        k = 1
        for usd, ep in zip(p.quote_amounts_usd, plan.endpoints[first:], strict=False):
            try:
                q: AcrossSuggestedFees = ctx.model(
                    ep, AcrossSuggestedFees, f"{where} suggested-fees at {usd:,.0f} USD"
                )
            except FeedError:
                continue
            pct = (q.lpFee.pct + q.relayerCapitalFee.pct) / PCT_SCALE
            if 0.0 <= pct < 1.0:
                out[f"quote_amount_usd_{k}"] = float(usd)
                out[f"quote_fee_pct_{k}"] = pct
                k += 1
        return out

    @staticmethod
    def _history_spreads(ctx: BuildContext, p: AcrossParams) -> tuple[float, ...]:
        """The hourly gaps ``P_dst / P_src - 1`` over the coins charts' common hours."""
        src = {
            round(pt.timestamp.timestamp() / 3600): pt.price
            for pt in ctx.chart(p.origin_price_coin).prices
        }
        dst = {
            round(pt.timestamp.timestamp() / 3600): pt.price
            for pt in ctx.chart(p.destination_price_coin).prices
        }
        return tuple(dst[h] / src[h] - 1.0 for h in sorted(src.keys() & dst.keys()))
