"""Venue models of the simulated market, one file per kind (see :mod:`mockfeeds.venues.base`).

Each model sees the market through :class:`mockfeeds.view.MarketView` only; ``MODELS`` maps a
venue kind of the market YAML to its model class and :func:`build_venue` builds one.
"""

from __future__ import annotations

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import (
    DAY,
    N_NORMALS,
    SPY,
    VenueModel,
    decayed_per_day,
    jump_happens,
    norm_cdf,
    ou_step,
)
from mockfeeds.venues.bridge_arb import BridgeArbVenue
from mockfeeds.venues.fixed import FixedVenue
from mockfeeds.venues.hedged_lp import HedgedLpVenue
from mockfeeds.venues.lending import LendingVenue
from mockfeeds.venues.loop import LoopVenue
from mockfeeds.venues.lp import LpVenue
from mockfeeds.venues.nft_rental import NftRentalVenue
from mockfeeds.venues.staking import StakingVenue

MODELS: dict[str, type[VenueModel]] = {
    "lending": LendingVenue,
    "staking": StakingVenue,
    "lp": LpVenue,
    "bridge_arb": BridgeArbVenue,
    "fixed": FixedVenue,
    "loop": LoopVenue,
    "hedged_lp": HedgedLpVenue,
    "nft_rental": NftRentalVenue,
}


def build_venue(cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> VenueModel:
    """The model of one venue of the market YAML (its ``kind`` picks the class)."""
    return MODELS[cfg.kind](cfg, mcfg, epoch0)


__all__ = [
    "DAY",
    "MODELS",
    "N_NORMALS",
    "SPY",
    "BridgeArbVenue",
    "FixedVenue",
    "HedgedLpVenue",
    "LendingVenue",
    "LoopVenue",
    "LpVenue",
    "NftRentalVenue",
    "StakingVenue",
    "VenueModel",
    "build_venue",
    "decayed_per_day",
    "jump_happens",
    "norm_cdf",
    "ou_step",
]
