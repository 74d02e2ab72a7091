"""Config models shared across rooms: how a venue is described and which feed reports on it.

The daemon's settings (``vault.settings``) embed these; adapters read ``FeedRef``; the optimizer
reads the static ``Venue`` facts built by :meth:`VenueConfig.to_venue`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from core.types import Venue, VenueCosts, VenueKind

NonNegative = Annotated[float, Field(ge=0)]


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are immutable after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CostsConfig(Strict):
    deposit_usd: NonNegative = 0.0
    withdraw_usd: NonNegative = 0.0
    fee_bps: Annotated[float, Field(ge=0, le=10_000)] = 0.0


class FeedRef(Strict):
    """Which adapter polls this venue, where, and with which adapter-specific parameters."""

    adapter: str  # e.g. "aave_v3", "compound_v3", "lido", "defillama", "across", "fixed"
    base_url: str | None = None  # None: the feeds' default base_url from settings
    params: dict[str, Any] = Field(default_factory=dict)
    # the venue asset's coins-feed id ("chain:address") and its peg's ("coingecko:ethereum" for an
    # ETH LST; none = 1 USD for a stablecoin): the poller adds asset_price_usd / peg_price_usd to
    # the snapshot's state for the depeg and price-anomaly guards (not fatal when unpriced)
    asset_coin: str | None = None
    peg_coin: str | None = None


class VenueConfig(Strict):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")]
    kind: VenueKind
    protocol: str
    chain: str
    asset: str
    risk_score: Annotated[float, Field(ge=0, le=10)] = 1.0
    dependencies: tuple[str, ...] = ()
    exit_days: NonNegative = 0.0
    costs: CostsConfig = CostsConfig()
    feed: FeedRef
    # Withdraw whatever the vault holds here at the next good opportunity and never deposit again
    # (an exit directive, kept in the books and the status meanwhile). A venue that holds money
    # cannot simply be deleted from the config: `run` refuses that, naming it.
    exit_only: bool = False

    def to_venue(self) -> Venue:
        return Venue(
            id=self.id,
            kind=self.kind,
            protocol=self.protocol,
            chain=self.chain,
            asset=self.asset,
            risk_score=self.risk_score,
            dependencies=tuple(self.dependencies),
            exit_days=self.exit_days,
            costs=VenueCosts(**self.costs.model_dump()),
        )
