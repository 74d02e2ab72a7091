"""Pydantic models of the composite kinds' payloads (same rules as :mod:`adapters.models`):
Aave E-mode reserve fields and the user account, Binance funding, a Chainlink floor feed's
rounds, OpenSea collection stats and reNFT lendings. Shapes: ``mockfeeds/README.md``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from adapters.models import (
    AaveReserve,
    BigUInt,
    DecFloat,
    DecNonNeg,
    FeedModel,
    NonNeg,
    Timestamp,
    _big_int,
    _dec_float,
)

Bps = Annotated[int, BeforeValidator(_big_int), Field(ge=0, le=20_000)]


class AaveEmodeReserve(AaveReserve):
    """A reserve with its E-mode category (``getReservesHumanized`` v3.0/3.1 fields, bps)."""

    eModeCategoryId: Annotated[int, Field(ge=0, le=255)] = 0
    eModeLtv: Bps = 0
    eModeLiquidationThreshold: Bps = 0
    eModeLiquidationBonus: Bps = 0


class AaveUserReserve(FeedModel):
    underlyingAsset: str
    scaledATokenBalance: BigUInt
    usageAsCollateralEnabledOnUser: bool
    scaledVariableDebt: BigUInt


class AaveAccountData(FeedModel):
    """``Pool.getUserAccountData``: base currency amounts (USD, 8 decimals), bps, HF (1e18)."""

    totalCollateralBase: BigUInt
    totalDebtBase: BigUInt
    availableBorrowsBase: BigUInt
    currentLiquidationThreshold: Bps
    ltv: Bps
    healthFactor: BigUInt


class AaveUser(FeedModel):
    userEmodeCategoryId: Annotated[int, Field(ge=0, le=255)]
    userReserves: list[AaveUserReserve]
    accountData: AaveAccountData
    timestamp: Timestamp


class FundingRate(FeedModel):
    """One ``/fapi/v1/fundingRate`` row: the rate per interval as a decimal string."""

    symbol: str
    fundingTime: Timestamp  # ms
    fundingRate: Annotated[
        float, BeforeValidator(_dec_float), Field(ge=-0.05, le=0.05, allow_inf_nan=False)
    ]
    markPrice: DecNonNeg


class PremiumIndex(FeedModel):
    symbol: str
    markPrice: DecNonNeg
    lastFundingRate: DecFloat
    nextFundingTime: Timestamp
    time: Timestamp


class FloorRound(FeedModel):
    roundId: BigUInt
    answer: BigUInt  # 1e18 per ETH
    updatedAt: Timestamp


class FloorRounds(FeedModel):
    description: str
    decimals: Annotated[int, Field(ge=0, le=36)]
    rounds: list[FloorRound] = Field(min_length=2)


class OpenSeaTotal(FeedModel):
    floor_price: NonNeg
    floor_price_symbol: str
    market_cap: NonNeg | None = None


class OpenSeaInterval(FeedModel):
    interval: str
    sales: NonNeg
    volume: NonNeg


class OpenSeaStats(FeedModel):
    total: OpenSeaTotal
    intervals: list[OpenSeaInterval]


class Renting(FeedModel):
    rentDuration: Annotated[int, Field(ge=0)]
    rentedAt: Timestamp
    share: DecNonNeg | None = None  # of a fractional listing, the share rented


class Lending(FeedModel):
    id: str
    nftAddress: str
    lenderAddress: str
    lentAmount: DecNonNeg
    dailyRentPrice: DecNonNeg
    maxRentDuration: Annotated[int, Field(ge=0)]
    renting: Renting | None = None


class LendingsData(FeedModel):
    lendings: list[Lending]


class Lendings(FeedModel):
    data: LendingsData
    timestamp: Timestamp


__all__: list[Any] = [
    "AaveEmodeReserve",
    "AaveUser",
    "FloorRounds",
    "FundingRate",
    "Lendings",
    "OpenSeaStats",
    "PremiumIndex",
]
