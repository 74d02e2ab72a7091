"""What a venue model may see of the market it lives in: a narrow, read-only view.

The venue models (:mod:`mockfeeds.venues`) need the world's time, its configuration (chains and
their tokens), token prices and the Across fee for a bridged amount, and nothing else. They see
the market through this ``Protocol``, so :mod:`mockfeeds.venues` never imports
:mod:`mockfeeds.market` (which builds the venues): the import graph has no circle, and a venue
can be stepped against any object with these members (a test double, a replayed market).
"""

from __future__ import annotations

from typing import Protocol

from mockfeeds.config import MarketConfig
from protocols import across


class MarketView(Protocol):
    """The members of :class:`mockfeeds.market.Market` that venue models use."""

    @property
    def cfg(self) -> MarketConfig:
        """The validated market configuration (chains, tokens, bridge, venues)."""
        ...

    @property
    def state_time(self) -> float:
        """The world's time: UTC epoch seconds of the last whole tick."""
        ...

    def eth_price_usd(self) -> float:
        """ETH in USD now."""
        ...

    def venue_base_apr(self, venue_id: str) -> float:
        """Another venue's marginal real APR now (a loop's collateral earns its staking venue's)."""
        ...

    def token_price(self, chain: str, symbol: str) -> float:
        """A token's USD price on a chain now (basis and depeg marks included)."""
        ...

    def bridge_fee_pct(
        self,
        amount_usd: float,
        rate_model: across.RateModel | None = None,
        *,
        include_gas: bool,
        to_chain: str | None = None,
    ) -> float:
        """Across ``totalRelayFee.pct`` for bridging ``amount_usd`` (a fraction of it)."""
        ...
