"""A custodial fixed-rate product (Binance Simple Earn flexible): flat APR up to the product's cap.

``GET {base}/sapi/v1/simple-earn/flexible/list?current=N&size=100`` (live
https://api.binance.com, a signed USER_DATA request: see README). The list is paged (at most 100
rows a page); the poller reads page 1, then the rest its ``total`` calls for, once per cycle for
every fixed venue together.

Curve: :class:`adapters.curves.FlatCurve`, ``income(x) = APR * min(x, cap)`` with
``APR = latestAnnualPercentageRate`` (a decimal string, simple interest accrued daily:
``protocols.fixed.accrued_interest_usd``). The cap is the feed's ``maxPurchaseAmountPerUser`` when
it sends one, else ``params.quota_usd``; a product that cannot be bought now (``canPurchase``
false, ``isSoldOut``, status not ``PURCHASING``) caps at our current position: hold, do not grow.
The rows carry no timestamp; freshness is the time the server last vouched for the body.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import Field

from adapters.base import Adapter, BuildContext, Endpoint, Params, VenuePlan, index_rows
from adapters.config import FeedSettings
from adapters.curves import FlatCurve
from adapters.errors import FeedError
from adapters.http import Fetched
from adapters.models import EarnList, EarnProduct, parse
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot
from protocols import fixed


class FixedParams(Params):
    product_id: str = Field(min_length=1)
    # the product's cap when the feed does not state it
    quota_usd: Annotated[float, Field(gt=0)] | None = None
    # USD per unit of the product's asset (stablecoins: 1)
    price_usd: Annotated[float, Field(gt=0)] = 1.0


def _product_index(fetched: Fetched) -> dict[str, Any]:
    return index_rows(parse(EarnList, fetched.payload, "earn flexible list").rows, "productId")


class FixedAdapter(Adapter):
    name: ClassVar[str] = "fixed"
    feed: ClassVar[str] = "earn"
    prefix: ClassVar[str] = "earn"
    live_base_url: ClassVar[str] = "https://api.binance.com"
    kinds: ClassVar[frozenset[VenueKind]] = frozenset({VenueKind.FIXED})
    params_model = FixedParams

    def plan(
        self, venue: VenueConfig, params: FixedParams, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        return VenuePlan(
            venue,
            self,
            params,
            base_url,
            (Endpoint(self.feed, f"{base_url}/sapi/v1/simple-earn/flexible/list", paged=True),),
        )

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        p: FixedParams = plan.params
        ep = plan.endpoints[0]
        where = f"earn product {p.product_id}"
        hit = ctx.index(ep, "products", _product_index).get(p.product_id)
        if hit is None:
            raise FeedError(
                "schema", f"{where}: field rows: no product with productId {p.product_id!r}"
            )
        i, raw = hit
        row: EarnProduct = ctx.row(ep, i, raw, EarnProduct, f"{where} (rows.{i})")
        fetched_at = ctx.fetched(ep).fetched_at
        ctx.check_time(self.feed, fetched_at, f"{where} fetched", ep)
        apr = ctx.check_apr(
            row.latestAnnualPercentageRate, f"{where} field latestAnnualPercentageRate"
        )
        if row.maxPurchaseAmountPerUser is not None:
            quota_usd = row.maxPurchaseAmountPerUser * p.price_usd
        elif p.quota_usd is not None:
            quota_usd = p.quota_usd
        else:
            quota_usd = math.inf
        try:
            product = fixed.FixedRateProduct(
                product_id=row.productId,
                asset=row.asset,
                apr=apr,
                risk_score=plan.config.risk_score,
                redemption_delay_seconds=plan.config.exit_days * 86_400.0,
                min_purchase_usd=row.minPurchaseAmount * p.price_usd,
                quota_usd=quota_usd,
            )
        except ValueError as exc:
            raise FeedError("out_of_range", f"{where}: {exc}") from None
        open_for_purchase = (
            row.canPurchase and not row.isSoldOut and row.status.upper() == "PURCHASING"
        )
        capacity = product.quota_usd if open_for_purchase else min(product.quota_usd, position_usd)
        return VenueSnapshot(
            venue=plan.config.to_venue(),
            observed_at=fetched_at,
            curve=FlatCurve(product.apr, capacity),
            real_apr=product.apr,
            emission_apr=0.0,
            tvl_usd=product.quota_usd,
            exit_liquidity_usd=math.inf if row.canRedeem else 0.0,
            state={
                "apr": product.apr,
                "quota_usd": product.quota_usd,
                "min_purchase_usd": product.min_purchase_usd,
                "can_purchase": float(open_for_purchase),
                "can_redeem": float(row.canRedeem),
                "daily_interest_per_1000_usd": fixed.daily_interest_usd(1000.0, product.apr),
                "position_usd": position_usd,
            },
        )
