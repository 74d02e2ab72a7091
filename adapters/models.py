"""Pydantic models of every feed payload, field for field as the live APIs send them.

Every number is type- and range-checked: NaN and infinities fail with error type
``finite_number`` (reason ``nan``), negative amounts and out-of-range ratios fail with a bound
error (reason ``out_of_range``), anything else is ``schema``. On-chain integers (RAY, base units,
1e18 factors) arrive as decimal strings and are parsed exactly to ``int``. Unknown extra fields
are ignored: the live APIs add fields over time and that is not an error.

Shapes: ``mockfeeds/README.md`` (the feed contract) and, for DefiLlama, the 28 documented
``/pools`` columns (``DefiLlama/yield-server : src/utils/enrichedColumns.js``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from adapters.errors import FeedError

_INT_RE = re.compile(r"^[+-]?\d+$")
_NONFINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _big_int(value: Any) -> Any:
    """Decimal-digit string or int -> int, exactly (RAY values exceed float precision)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        if value != int(value):
            raise PydanticCustomError(
                "int_from_float", "expected an integer, got {value}", {"value": value}
            )
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NONFINITE:
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        if _INT_RE.match(text):
            return int(text)
        try:
            as_float = float(text)
        except ValueError:
            raise PydanticCustomError(
                "int_parsing", "expected a decimal integer string, got {value!r}", {"value": value}
            ) from None
        if as_float.is_integer() and "e" in text.lower():
            return int(as_float)
        raise PydanticCustomError(
            "int_parsing", "expected a decimal integer string, got {value!r}", {"value": value}
        )
    raise PydanticCustomError("int_type", "expected an integer or a decimal integer string")


def _dec_float(value: Any) -> Any:
    """Decimal string or number -> float (Binance sends rates as strings); NaN/inf refused."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "expected a number, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "float_parsing", "expected a decimal string, got {value!r}", {"value": value}
            ) from None
    if isinstance(value, (int, float)) and not math.isfinite(float(value)):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


def _unix_or_iso(value: Any) -> Any:
    """Unix seconds (int, float or digit string) or ISO 8601 -> aware UTC datetime."""
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        if value > 1e11:  # milliseconds
            value = value / 1000.0
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise PydanticCustomError(
                "datetime_parsing", "timestamp {value} out of range", {"value": value}
            ) from None
    return value


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
BigInt = Annotated[int, BeforeValidator(_big_int)]
BigUInt = Annotated[int, BeforeValidator(_big_int), Field(ge=0)]
DecFloat = Annotated[float, BeforeValidator(_dec_float), Field(allow_inf_nan=False)]
DecNonNeg = Annotated[float, BeforeValidator(_dec_float), Field(ge=0, allow_inf_nan=False)]
Timestamp = Annotated[datetime, BeforeValidator(_unix_or_iso), AfterValidator(_aware)]
Percent = Annotated[float, Field(ge=-100, allow_inf_nan=False)]  # a %: > -100 % (a total loss)
NonNegPercent = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class FeedModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- DefiLlama yields: https://yields.llama.fi/pools and /chart/{pool} -------------------------


class Predictions(FeedModel):
    predictedClass: str | None = None
    predictedProbability: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    binnedConfidence: Annotated[int, Field(ge=1, le=3)] | None = None


class LlamaPool(FeedModel):
    """One ``/pools`` row. Required: what the curves read, ``pool``, ``tvlUsd`` and ``apyBase`` (the
    key must be there; the live API sends null for a pool without a base yield, read as 0). The other
    25 documented fields are optional: validated when present (a NaN or a negative amount is still
    an error naming the field), ``None`` when absent, because the live API adds and drops columns
    and an export may lack one the adapter never reads (``apyBaseInception``). Percentages are in %
    (``apyBase`` 3.1 = 3.1 %). ``apyReward``/``rewardTokens`` (emissions), ``ilRisk`` (LP
    volatility) and ``volumeUsd1d`` (a diagnostic) are read when present; an LP row without
    ``ilRisk`` takes its volatility from the venue's params (``sigma_annual`` or ``price_coin``)."""

    # what the curves read
    pool: str = Field(min_length=1)
    tvlUsd: NonNeg
    apyBase: Percent | None
    # read when present
    apyReward: NonNegPercent | None = None
    rewardTokens: list[str] | None = None
    ilRisk: str | None = None
    volumeUsd1d: NonNeg | None = None
    # documented, never read: checked when present
    chain: str | None = None
    project: str | None = None
    symbol: str | None = None
    apy: Percent | None = None
    apyPct1D: Finite | None = None
    apyPct7D: Finite | None = None
    apyPct30D: Finite | None = None
    stablecoin: bool | None = None
    exposure: str | None = None
    predictions: Predictions | None = None
    poolMeta: str | None = None
    mu: Finite | None = None
    sigma: NonNeg | None = None
    count: Annotated[int, Field(ge=0)] | None = None
    outlier: bool | None = None
    underlyingTokens: list[str] | None = None
    il7d: Finite | None = None
    apyBase7d: Percent | None = None
    apyMean30d: Finite | None = None
    volumeUsd7d: NonNeg | None = None
    apyBaseInception: Finite | None = None


class LlamaPoolsEnvelope(FeedModel):
    status: str
    data: list[Any]  # rows are validated one by one, only those a venue reads (live: ~15k rows)


class LlamaChartPoint(FeedModel):
    timestamp: Timestamp
    tvlUsd: NonNeg
    apy: Percent | None = None
    apyBase: Percent | None = None
    apyReward: NonNegPercent | None = None
    il7d: Finite | None = None
    apyBase7d: Percent | None = None


class LlamaChart(FeedModel):
    status: str
    data: list[LlamaChartPoint] = Field(min_length=1)


# --- DefiLlama coins: https://coins.llama.fi/prices/current/{coins} and /chart/{coins} ----------


class CoinPrice(FeedModel):
    price: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    timestamp: Timestamp
    symbol: str | None = None
    decimals: Annotated[int, Field(ge=0, le=77)] | None = None
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class CoinPrices(FeedModel):
    coins: dict[str, Any]  # validated per coin, so one bad coin spoils only its venues


class CoinPricePoint(FeedModel):
    timestamp: Timestamp
    price: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class CoinChart(FeedModel):
    prices: list[CoinPricePoint]
    symbol: str | None = None
    decimals: Annotated[int, Field(ge=0, le=77)] | None = None
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


# --- Lido: eth-api.lido.fi and wq-api.lido.fi ----------------------------------------------------


class LidoAprPoint(FeedModel):
    timeUnix: Timestamp
    apr: Percent


class LidoAprData(FeedModel):
    aprs: list[LidoAprPoint] = Field(min_length=1)
    smaApr: Percent


class LidoMeta(FeedModel):
    symbol: str
    address: str | None = None
    chainId: int | None = None


class LidoAprSma(FeedModel):
    data: LidoAprData
    meta: LidoMeta


class LidoRequestInfo(FeedModel):
    finalizationIn: Annotated[int, Field(ge=0)]  # milliseconds
    finalizationAt: Timestamp
    type: str


class LidoRequestTime(FeedModel):
    requestInfo: LidoRequestInfo
    status: str
    nextCalculationAt: Timestamp | None = None


# --- Aave v3: UiPoolDataProviderV3.getReservesHumanized / UiIncentiveDataProviderV3 ---------------


class AaveReserve(FeedModel):
    underlyingAsset: str
    name: str
    symbol: str
    decimals: Annotated[int, Field(ge=0, le=36)]
    reserveFactor: Annotated[int, BeforeValidator(_big_int), Field(ge=0, lt=10_000)]  # bps
    liquidityRate: BigUInt  # RAY, annual
    variableBorrowRate: BigUInt
    liquidityIndex: BigUInt
    variableBorrowIndex: BigUInt
    baseVariableBorrowRate: BigUInt
    variableRateSlope1: BigUInt
    variableRateSlope2: BigUInt
    optimalUsageRatio: BigUInt
    availableLiquidity: BigUInt  # base units
    totalScaledVariableDebt: BigUInt  # base units / variableBorrowIndex
    supplyCap: BigUInt  # whole tokens, 0 = no cap
    borrowCap: BigUInt
    priceInMarketReferenceCurrency: BigUInt
    lastUpdateTimestamp: Timestamp
    isActive: bool
    isFrozen: bool
    isPaused: bool = False
    borrowingEnabled: bool


class AaveBaseCurrency(FeedModel):
    marketReferenceCurrencyDecimals: Annotated[int, Field(ge=0, le=36)]
    marketReferenceCurrencyPriceInUsd: BigUInt  # 8 decimals
    networkBaseTokenPriceInUsd: BigUInt
    networkBaseTokenPriceDecimals: Annotated[int, Field(ge=0, le=36)]


class AaveReserves(FeedModel):
    reservesData: list[Any]  # validated per reserve
    baseCurrencyData: AaveBaseCurrency


class AaveRewardInfo(FeedModel):
    rewardTokenSymbol: str
    rewardTokenDecimals: Annotated[int, Field(ge=0, le=36)]
    emissionPerSecond: BigUInt
    emissionEndTimestamp: Timestamp
    rewardPriceFeed: BigUInt
    priceFeedDecimals: Annotated[int, Field(ge=0, le=36)]


class AaveIncentiveData(FeedModel):
    tokenAddress: str
    rewardsTokenInformation: list[AaveRewardInfo]


class AaveReserveIncentives(FeedModel):
    underlyingAsset: str
    aIncentiveData: AaveIncentiveData


# --- Compound v3 (Comet getters as JSON) ------------------------------------------------------------


class Comet(FeedModel):
    comet: str
    baseToken: str
    baseTokenSymbol: str
    decimals: Annotated[int, Field(ge=0, le=36)]
    totalSupply: BigUInt  # base units, present value
    totalBorrow: BigUInt
    utilization: BigUInt  # 1e18
    supplyRate: BigUInt  # per second, 1e18
    borrowRate: BigUInt
    supplyKink: BigUInt
    supplyPerSecondInterestRateSlopeLow: BigUInt
    supplyPerSecondInterestRateSlopeHigh: BigUInt
    supplyPerSecondInterestRateBase: BigUInt
    borrowKink: BigUInt
    borrowPerSecondInterestRateSlopeLow: BigUInt
    borrowPerSecondInterestRateSlopeHigh: BigUInt
    borrowPerSecondInterestRateBase: BigUInt
    baseTrackingSupplySpeed: BigUInt  # reward token per second * trackingIndexScale
    trackingIndexScale: Annotated[int, BeforeValidator(_big_int), Field(gt=0)]
    baseMinForRewards: BigUInt
    timestamp: Timestamp
    isPaused: bool = False  # Comet.isSupplyPaused() / isWithdrawPaused(), when the gateway sends it
    # gateway's COMP price
    rewardTokenPriceUsd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


# --- Across: app.across.to/api ----------------------------------------------------------------------


class AcrossFee(FeedModel):
    pct: BigUInt  # 1e18 = 100 %
    total: BigUInt  # base units of the input token


class AcrossLimits(FeedModel):
    minDeposit: BigUInt
    maxDeposit: BigUInt
    maxDepositInstant: BigUInt
    maxDepositShortDelay: BigUInt
    recommendedDepositInstant: BigUInt


class AcrossSuggestedFees(FeedModel):
    totalRelayFee: AcrossFee
    relayerCapitalFee: AcrossFee
    relayerGasFee: AcrossFee
    lpFee: AcrossFee
    timestamp: Timestamp
    isAmountTooLow: bool
    quoteBlock: BigUInt | None = None
    # the API has sent the fill estimate under both names over time; one of them must be there
    expectedFillTimeSec: Annotated[int, BeforeValidator(_big_int), Field(ge=0)] | None = None
    estimatedFillTimeSec: Annotated[int, BeforeValidator(_big_int), Field(ge=0)] | None = None
    limits: AcrossLimits | None = None

    @model_validator(mode="after")
    def _fill_time(self) -> AcrossSuggestedFees:
        if self.expectedFillTimeSec is None and self.estimatedFillTimeSec is None:
            raise ValueError("expectedFillTimeSec (or estimatedFillTimeSec) is missing")
        return self

    @property
    def fill_seconds(self) -> int:
        value = (
            self.expectedFillTimeSec
            if self.expectedFillTimeSec is not None
            else self.estimatedFillTimeSec
        )
        assert value is not None
        return value


# --- Binance Simple Earn flexible products ---------------------------------------------------------


class EarnProduct(FeedModel):
    asset: str
    latestAnnualPercentageRate: DecNonNeg  # decimal string, 0.05 = 5 %
    canPurchase: bool
    canRedeem: bool
    isSoldOut: bool
    minPurchaseAmount: DecNonNeg
    productId: str
    status: str
    tierAnnualPercentageRate: dict[str, DecNonNeg] | None = None
    # the product cap, when the feed states it (Binance reports the user quota separately)
    maxPurchaseAmountPerUser: DecNonNeg | None = None


class EarnList(FeedModel):
    rows: list[Any]  # validated per product
    total: Annotated[int, Field(ge=0)]


# --- errors -------------------------------------------------------------------------------------------

_RANGE_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "too_short",
        "too_long",
        "string_too_short",
    }
)


def feed_error_from_validation(exc: ValidationError, where: str) -> FeedError:
    """Turn the first pydantic error into a FeedError naming the field: nan / out_of_range / schema."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    kind = first["type"]
    if kind == "finite_number":
        reason = "nan"
    elif kind in _RANGE_ERRORS:
        reason = "out_of_range"
    else:
        reason = "schema"
    value = first.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return FeedError(reason, f"{where}: field {loc}: {first['msg']}, got {shown[:80]}{more}")


def parse(model: type[FeedModel], payload: Any, where: str) -> Any:
    """Validate ``payload`` as ``model`` or raise FeedError naming ``where`` and the field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise feed_error_from_validation(exc, where) from None
