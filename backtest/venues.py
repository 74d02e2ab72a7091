"""The replay's venues: one Aave v3 lending venue per reserve of a history, with its chain's gas."""

from __future__ import annotations

from collections.abc import Mapping

from backtest.history import LendingHistory
from core.types import Venue, VenueCosts, VenueKind

# gas of one supply or withdraw transaction per chain, USD (Aave v3 supply ~150-200k gas; Ethereum at
# ~15 gwei and ETH ~2,500 USD, L2s at their 2024-25 typical fees); unknown chains pay Ethereum's
CHAIN_GAS_USD: Mapping[str, float] = {
    "ethereum": 6.0,
    "arbitrum": 0.10,
    "base": 0.05,
    "optimism": 0.05,
    "polygon": 0.03,
    "avalanche": 0.10,
    "bnb": 0.10,
    "gnosis": 0.01,
    "scroll": 0.10,
    "zksync": 0.10,
    "linea": 0.10,
    "metis": 0.10,
    "celo": 0.01,
}


def venue_id(network: str, symbol: str) -> str:
    return f"aave-v3-{network}-{symbol.lower()}"


def history_venues(h: LendingHistory, risk_score: float = 1.0) -> list[Venue]:
    """One Aave v3 lending venue per reserve of the history, with its chain's gas."""
    out = []
    for r in h.reserves:
        gas = CHAIN_GAS_USD.get(r.network, CHAIN_GAS_USD["ethereum"])
        out.append(
            Venue(
                id=venue_id(r.network, r.symbol),
                kind=VenueKind.LENDING,
                protocol="aave-v3",
                chain=r.network,
                asset=r.symbol.split("-")[0],
                risk_score=risk_score,
                costs=VenueCosts(deposit_usd=gas, withdraw_usd=gas),
            )
        )
    return out
