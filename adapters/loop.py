"""A staking-lending loop on Aave v3 E-mode (stETH collateral, WETH debt): three feeds.

- ``GET {base}/v3/{market}/reserves`` (Aave ``UiPoolDataProviderV3.getReservesHumanized`` as
  JSON, like :mod:`adapters.aave`): the WETH reserve's rate strategy, debt and liquidity; the
  collateral reserve's E-mode LTV / liquidation threshold / bonus and both prices (stETH/ETH =
  ``price(wstETH reserve) / price(WETH)``, the price the lending market's oracle uses);
- ``GET {base}/v3/{market}/users/{user}`` (``getUserReservesHumanized`` + ``getUserAccountData``):
  our collateral and debt, the account's health factor;
- ``GET {lido}/v1/protocol/steth/apr/sma``: the staking APR the collateral earns.

Curve (:func:`adapters.curves_composite.loop_curve`): equity ``x`` at the leverage of
``params.target_health_factor`` at today's price, ``L = h / (h - p LT)`` capped by ``LTV``
(``protocols.loop.leverage_for_health_factor``), earning ``L (s + r_c) - (L - 1) b(U)`` with our
debt ``(L - 1) x`` in the reserve's utilization (our current debt taken out first).

State for the limits and guards: ``health_factor`` and ``leverage`` of our account now (the
target's when we hold nothing), ``target_health_factor``, ``target_leverage``,
``liquidation_distance`` (``1 - 1/HF``), ``steth_eth_price``, ``unwind_cost_fraction`` (an instant
unwind at today's discount), ``queue_unwind_rounds``.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

from pydantic import Field

from adapters.aave import _reserve_index
from adapters.base import Adapter, BuildContext, Endpoint, Params, VenuePlan
from adapters.config import FeedSettings
from adapters.curves_composite import loop_curve
from adapters.errors import FeedError
from adapters.models import LidoAprSma
from adapters.models_composite import AaveEmodeReserve, AaveUser
from adapters.siblings import sibling_url
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import aave, loop

WAD = 1e18


class LoopParams(Params):
    market: str = "ethereum"
    user: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    target_health_factor: Annotated[float, Field(gt=1.0, le=10.0)] = 1.08
    collateral_asset: str = "wstETH"
    debt_asset: str = "WETH"
    staking_base_url: str | None = None  # live: https://eth-api.lido.fi; None: {root}/lido
    swap_fee: Annotated[float, Field(ge=0, lt=0.1)] = 0.0001  # Curve stETH/ETH, instant unwind
    unwind_liquidity_eth: Annotated[float, Field(gt=0)] = 60_000.0  # what the pool takes at once
    floor_health_factor: Annotated[float, Field(gt=1.0)] = 1.01  # of a queue unwind's rounds


class LoopAdapter(Adapter):
    name: ClassVar[str] = "aave_loop"
    feed: ClassVar[str] = "aave"
    prefix: ClassVar[str] = "aave"
    live_base_url: ClassVar[str] = ""  # a JSON gateway over the Aave contracts, as aave_v3
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.LOOP})
    params_model = LoopParams

    def plan(
        self, venue: VenueConfig, params: LoopParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        lido = sibling_url(
            venue.id, base_url, "aave", "lido", params.staking_base_url, "staking_base_url"
        )
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            (
                Endpoint(self.feed, f"{base_url}/v3/{params.market}/reserves"),
                Endpoint(self.feed, f"{base_url}/v3/{params.market}/users/{params.user.lower()}"),
                Endpoint("lido", f"{lido}/v1/protocol/steth/apr/sma"),
            ),
        )

    def _reserve(self, ctx: BuildContext, ep: Endpoint, asset: str, where: str) -> AaveEmodeReserve:
        hit = ctx.index(ep, "reserves", _reserve_index).get(asset.lower())
        if hit is None:
            raise FeedError("schema", f"{where}: field reservesData: no reserve {asset!r}")
        i, raw = hit
        return ctx.row(ep, i, raw, AaveEmodeReserve, f"{where} (reservesData.{i})")

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: LoopParams = plan.params
        res_ep, user_ep, apr_ep = plan.endpoints
        where = f"aave {p.market} loop"
        weth = self._reserve(ctx, res_ep, p.debt_asset, f"{where} {p.debt_asset}")
        col = self._reserve(ctx, res_ep, p.collateral_asset, f"{where} {p.collateral_asset}")
        ctx.check_time(self.feed, weth.lastUpdateTimestamp, f"{where} lastUpdateTimestamp", res_ep)
        if col.eModeCategoryId == 0 or col.eModeLiquidationThreshold == 0:
            raise FeedError(
                "schema",
                f"{where} {p.collateral_asset}: field eModeCategoryId: not in an E-mode category",
            )
        ltv = col.eModeLtv / 10_000
        lt = col.eModeLiquidationThreshold / 10_000
        if not 0 < ltv < lt < 1:
            raise FeedError(
                "out_of_range",
                f"{where}: eModeLtv {ltv} and eModeLiquidationThreshold {lt} must satisfy 0 < LTV < LT < 1",
            )
        eth_price = weth.priceInMarketReferenceCurrency / 1e8
        price = col.priceInMarketReferenceCurrency / max(weth.priceInMarketReferenceCurrency, 1)
        if not (eth_price > 0 and 0.2 < price < 1.5):
            raise FeedError(
                "out_of_range",
                f"{where}: stETH/ETH price {price:.6g} (or ETH {eth_price}) out of range",
            )
        try:
            strategy = aave.AaveRateStrategy(
                aave.from_ray(weth.baseVariableBorrowRate),
                aave.from_ray(weth.variableRateSlope1),
                aave.from_ray(weth.variableRateSlope2),
                aave.from_ray(weth.optimalUsageRatio),
                weth.reserveFactor / 10_000.0,
            )
        except ValueError as exc:
            raise FeedError("out_of_range", f"{where} WETH rate strategy: {exc}") from None
        index = aave.from_ray(weth.variableBorrowIndex)
        debt_eth = ctx.check_amount(
            weth.totalScaledVariableDebt * index / WAD, f"{where} WETH debt"
        )
        avail_eth = ctx.check_amount(
            weth.availableLiquidity / WAD, f"{where} WETH availableLiquidity"
        )
        supply_eth = debt_eth + avail_eth
        user: AaveUser = ctx.model(user_ep, AaveUser, f"{where} user {p.user}")
        ctx.check_time(self.feed, user.timestamp, f"{where} user timestamp", user_ep)
        ours = {r.underlyingAsset.lower(): r for r in user.userReserves}
        our_debt = ours.get(weth.underlyingAsset.lower())
        our_col = ours.get(col.underlyingAsset.lower())
        our_debt_eth = our_debt.scaledVariableDebt * index / WAD if our_debt else 0.0
        our_col_steth = our_col.scaledATokenBalance / WAD if our_col else 0.0
        debt_others = max(debt_eth - our_debt_eth, 0.0)
        sma = ctx.model(apr_ep, LidoAprSma, "lido apr/sma")
        latest = max(sma.data.aprs, key=lambda a: a.timeUnix)
        ctx.check_time("lido", latest.timeUnix, "lido apr/sma field data.aprs[-1].timeUnix", apr_ep)
        staking = ctx.check_apr(sma.data.smaApr / 100.0, "lido apr/sma field data.smaApr")
        col_apr = ctx.check_apr(
            aave.from_ray(col.liquidityRate), f"{where} collateral liquidityRate"
        )
        try:
            target_lev = loop.leverage_for_health_factor(p.target_health_factor, lt, ltv, price)
        except ValueError as exc:
            raise FeedError("out_of_range", f"{where}: {exc}") from None
        if our_debt_eth > 0:
            hf = user.accountData.healthFactor / WAD
            lev = our_col_steth * price / max(our_col_steth * price - our_debt_eth, 1e-18)
            if our_col_steth * price <= our_debt_eth:
                lev = math.inf
        else:
            hf = loop.health_factor_at_leverage(target_lev, lt, price)
            lev = target_lev
        frozen_pool = weth.isPaused or weth.isFrozen or not weth.borrowingEnabled or col.isPaused
        curve = loop_curve(
            leverage=target_lev,
            staking_apr=staking,
            strategy=strategy,
            debt_others_eth=debt_others,
            supply_eth=max(supply_eth, 1e-9),
            eth_usd=eth_price,
            collateral_supply_apr=col_apr,
            cap_usd=0.0 if frozen_pool else math.inf,
        )
        b0 = float(loop.borrow_apr_after_borrow(strategy, debt_others, max(supply_eth, 1e-9), 0.0))
        marginal = float(loop.net_apr(target_lev, staking, b0, col_apr))
        lev_now = lev if math.isfinite(lev) else target_lev
        exit_usd = (
            0.0 if col.isPaused else p.unwind_liquidity_eth * eth_price / max(lev_now - 1.0, 1e-9)
        )
        venue = plan.config.to_venue()
        try:
            rounds = float(loop.queue_unwind_rounds(target_lev, lt, p.floor_health_factor, price))
        except ValueError:
            rounds = math.inf
        return VenueSnapshot(
            venue=venue,
            observed_at=weth.lastUpdateTimestamp,
            curve=curve,
            real_apr=marginal,
            emission_apr=0.0,
            tvl_usd=supply_eth * eth_price,
            exit_liquidity_usd=exit_usd,
            state={
                "health_factor": hf,
                "leverage": lev,
                "target_health_factor": p.target_health_factor,
                "target_leverage": target_lev,
                "liquidation_distance": loop.liquidation_distance(hf),
                "steth_eth_price": price,
                "ltv": ltv,
                "liquidation_threshold": lt,
                "borrow_apr": b0,
                "staking_apr": staking,
                "net_apr": marginal,
                "utilization": debt_eth / max(supply_eth, 1e-9),
                "our_debt_eth": our_debt_eth,
                "our_collateral_steth": our_col_steth,
                "unwind_cost_fraction": loop.unwind_cost_fraction(lev_now, price, p.swap_fee),
                "queue_unwind_rounds": rounds,
                "position_usd": position_usd,
            },
        )
