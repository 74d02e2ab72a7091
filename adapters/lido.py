"""Lido stETH: staking APR (7-day SMA of the user APR) and the withdrawal queue's exit time.

``GET {base}/v1/protocol/steth/apr/sma`` (live https://eth-api.lido.fi) and
``GET {withdrawals}/v2/request-time/calculate?amount=ETH`` (live https://wq-api.lido.fi).

Curve: flat. The staking APR does not depend on our size (rewards are pro rata to stake), so
``income(x) = userAPR * x`` where ``userAPR = (1 - fee) * protocolAPR`` is what the API reports
(protocol_math.md §3.1; ``protocols.lido.user_apr_from_protocol_apr``). The exit time is the
queue's ``finalizationIn`` for the probe amount; the venue's ``exit_days`` becomes the larger of
the configured value and the feed's estimate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, ClassVar

from pydantic import Field

from adapters.base import Adapter, BuildContext, Endpoint, Params, VenuePlan
from adapters.config import FeedSettings
from adapters.curves import FlatCurve
from adapters.models import LidoAprSma, LidoRequestTime
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import lido


class LidoParams(Params):
    withdrawals_base_url: str | None = None  # live: https://wq-api.lido.fi; None: the venue's base
    exit_probe_eth: Annotated[float, Field(gt=0, le=lido.MAX_REQUEST_ETH * 1000)] = 100.0
    # the APR API reports no TVL; None: unbounded
    tvl_usd: Annotated[float, Field(ge=0)] | None = None


class LidoAdapter(Adapter):
    name: ClassVar[str] = "lido"
    feed: ClassVar[str] = "lido"
    prefix: ClassVar[str] = "lido"
    live_base_url: ClassVar[str] = "https://eth-api.lido.fi"
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.STAKING})
    params_model = LidoParams

    def plan(
        self, venue: VenueConfig, params: LidoParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        wq = (params.withdrawals_base_url or base_url).rstrip("/")
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            (
                Endpoint(self.feed, f"{base_url}/v1/protocol/steth/apr/sma"),
                Endpoint(
                    self.feed,
                    f"{wq}/v2/request-time/calculate",
                    (("amount", f"{params.exit_probe_eth:g}"),),
                ),
            ),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        apr_ep, wq_ep = plan.endpoints
        sma = ctx.model(apr_ep, LidoAprSma, "lido apr/sma")
        latest = max(sma.data.aprs, key=lambda p: p.timeUnix)
        ctx.check_time(
            self.feed, latest.timeUnix, "lido apr/sma field data.aprs[-1].timeUnix", apr_ep
        )
        apr = ctx.check_apr(sma.data.smaApr / 100.0, "lido apr/sma field data.smaApr")
        latest_apr = ctx.check_apr(latest.apr / 100.0, "lido apr/sma field data.aprs[-1].apr")
        recent = sorted(sma.data.aprs, key=lambda p: p.timeUnix)[-7:]
        recomputed = lido.sma_apr([p.apr / 100.0 for p in recent])  # the API's own 7-report SMA
        request = ctx.model(wq_ep, LidoRequestTime, "lido request-time")
        ctx.check_time(self.feed, ctx.fetched(wq_ep).fetched_at, "lido request-time fetch", wq_ep)
        exit_seconds = request.requestInfo.finalizationIn / 1000.0
        venue = plan.config.to_venue()
        venue = dataclasses.replace(venue, exit_days=max(venue.exit_days, exit_seconds / 86_400.0))
        tvl = plan.params.tvl_usd if plan.params.tvl_usd is not None else math.inf
        return VenueSnapshot(
            venue=venue,
            observed_at=latest.timeUnix,
            curve=FlatCurve(apr),
            real_apr=max(apr, 0.0),
            emission_apr=0.0,
            tvl_usd=tvl,
            exit_liquidity_usd=math.inf,  # the queue takes any amount; exit_days says how long
            state={
                "sma_apr": apr,
                "sma_apr_recomputed": recomputed,
                "latest_apr": latest_apr,
                "exit_seconds": exit_seconds,
                "exit_probe_eth": plan.params.exit_probe_eth,
                "position_usd": position_usd,
            },
        )
