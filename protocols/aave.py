"""Aave v3 interest-rate math: the kinked borrow curve, supply rate, APR/APY, incentives, RAY.

Pure functions, no I/O. Rates are annual decimals (0.05 is 5 %). Rate functions are vectorised:
they accept a float or a numpy array and return the same kind.

Sources (see ``reference/protocol_math.md`` §1):

- curve: ``aave-dao/aave-v3-origin : src/contracts/misc/DefaultReserveInterestRateStrategyV2.sol``
- compounding: ``aave/aave-v3-core : contracts/protocol/libraries/math/MathUtils.sol``
- UI APY: ``aave/aave-utilities : packages/math-utils/src/formatters/reserve/index.ts``
- incentives: ``aave/aave-utilities : packages/math-utils/src/formatters/incentive/calculate-incentive-apr.ts``
- presets: ``bgd-labs/protocol-v3.5-upgrade`` (Jul 2025) and ``bgd-labs/protocol-v3.7-upgrade``
  (~Feb 2026) reports ``1_0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2_before.json``
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
from numpy.typing import NDArray

from protocols._checks import FloatOrArray
from protocols._checks import as_float_array as _as_float_array
from protocols._checks import out as _out

SECONDS_PER_YEAR = 31_536_000  # 365 days; Aave ignores leap years
RAY = 10**27
MIN_OPTIMAL_USAGE_RATIO = 0.01  # DefaultReserveInterestRateStrategyV2.MIN_OPTIMAL_POINT
MAX_OPTIMAL_USAGE_RATIO = 0.99  # ... MAX_OPTIMAL_POINT
MAX_BORROW_APR = 10.0  # ... MAX_BORROW_RATE = 1000_00 bps = 1000 %


def _check_unit_interval(name: str, arr: NDArray[np.float64]) -> None:
    if np.any((arr < 0.0) | (arr > 1.0)):
        bad = arr[(arr < 0.0) | (arr > 1.0)].ravel()[0]
        raise ValueError(f"{name} must be in [0, 1], got {bad!r}")


def _check_finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class AaveRateStrategy:
    """One reserve's ``DefaultReserveInterestRateStrategyV2`` parameters plus its reserve factor.

    All fields are annual decimals (the contract stores them in bps and converts with
    ``_bpsToRay(n) = n * 1e23``). The contract enforces Uopt in [1 %, 99 %], slope1 <= slope2 and
    base + slope1 + slope2 <= MAX_BORROW_RATE (1000 %); the reserve factor is a bps share < 100 %.
    """

    base_variable_borrow_apr: float
    slope1_apr: float
    slope2_apr: float
    optimal_usage_ratio: float
    reserve_factor: float

    def __post_init__(self) -> None:
        for name in (
            "base_variable_borrow_apr",
            "slope1_apr",
            "slope2_apr",
            "optimal_usage_ratio",
            "reserve_factor",
        ):
            _check_finite(name, getattr(self, name))
        for name in ("base_variable_borrow_apr", "slope1_apr", "slope2_apr"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not MIN_OPTIMAL_USAGE_RATIO <= self.optimal_usage_ratio <= MAX_OPTIMAL_USAGE_RATIO:
            raise ValueError(
                f"optimal_usage_ratio must be in [{MIN_OPTIMAL_USAGE_RATIO}, {MAX_OPTIMAL_USAGE_RATIO}],"
                f" got {self.optimal_usage_ratio!r}"
            )
        if self.slope1_apr > self.slope2_apr:
            raise ValueError(
                f"slope1_apr ({self.slope1_apr!r}) must be <= slope2_apr ({self.slope2_apr!r})"
            )
        if not 0.0 <= self.reserve_factor < 1.0:
            raise ValueError(f"reserve_factor must be in [0, 1), got {self.reserve_factor!r}")
        if self.max_borrow_apr > MAX_BORROW_APR:
            raise ValueError(
                f"base_variable_borrow_apr + slope1_apr + slope2_apr must be <= {MAX_BORROW_APR}"
                f" (MAX_BORROW_RATE), got {self.max_borrow_apr!r}"
            )

    @property
    def kink_borrow_apr(self) -> float:
        """Borrow APR at U = Uopt: base + slope1."""
        return self.base_variable_borrow_apr + self.slope1_apr

    @property
    def max_borrow_apr(self) -> float:
        """Borrow APR at U = 1: base + slope1 + slope2."""
        return self.base_variable_borrow_apr + self.slope1_apr + self.slope2_apr

    @classmethod
    def from_bps(
        cls,
        base_variable_borrow_bps: int,
        slope1_bps: int,
        slope2_bps: int,
        optimal_usage_ratio_bps: int,
        reserve_factor_bps: int,
    ) -> AaveRateStrategy:
        """Build from the contract's uint16 bps fields (``getInterestRateDataBps``)."""
        return cls(
            base_variable_borrow_bps / 10_000,
            slope1_bps / 10_000,
            slope2_bps / 10_000,
            optimal_usage_ratio_bps / 10_000,
            reserve_factor_bps / 10_000,
        )


def borrow_apr(strategy: AaveRateStrategy, utilization: FloatOrArray) -> FloatOrArray:
    """Variable borrow APR at utilization ``U`` (DefaultReserveInterestRateStrategyV2).

    ``U <= Uopt``: ``R_b = base + slope1 * U / Uopt``;
    ``U >  Uopt``: ``R_b = base + slope1 + slope2 * (U - Uopt) / (1 - Uopt)``.
    At U = 0 (no debt) the contract returns ``base``, which is the same value.

    Source: ``aave-dao/aave-v3-origin : src/contracts/misc/DefaultReserveInterestRateStrategyV2.sol``
    (``calculateInterestRates``). ValueError if U is outside [0, 1].
    """
    u, scalar = _as_float_array("utilization", utilization)
    _check_unit_interval("utilization", u)
    s = strategy
    below = s.base_variable_borrow_apr + s.slope1_apr * u / s.optimal_usage_ratio
    excess = (u - s.optimal_usage_ratio) / (1.0 - s.optimal_usage_ratio)
    above = s.base_variable_borrow_apr + s.slope1_apr + s.slope2_apr * excess
    return _out(np.where(u <= s.optimal_usage_ratio, below, above), scalar)


def supply_apr(strategy: AaveRateStrategy, utilization: FloatOrArray) -> FloatOrArray:
    """Supply APR (``liquidityRate``) at utilization ``U``: ``R_s = R_b(U) * U * (1 - RF)``.

    Assumes no unbacked aTokens, so the supply usage ratio equals the borrow usage ratio
    (``unbacked`` is ~0 on mainnet). Source: as :func:`borrow_apr`; the reserve factor's
    treasury cut is ``ReserveLogic._accrueToTreasury``. ValueError if U is outside [0, 1].
    """
    u, scalar = _as_float_array("utilization", utilization)
    rb = np.asarray(borrow_apr(strategy, u), dtype=np.float64)
    return _out(rb * u * (1.0 - strategy.reserve_factor), scalar)


def utilization(total_debt: float, available_liquidity: float) -> float:
    """Borrow usage ratio ``U = totalDebt / (availableLiquidity + totalDebt)``; 0 when both are 0.

    Amounts in the same unit (whole tokens or USD). ValueError on negative or non-finite input.
    Source: ``DefaultReserveInterestRateStrategyV2.calculateInterestRates``.
    """
    _check_finite("total_debt", total_debt)
    _check_finite("available_liquidity", available_liquidity)
    if total_debt < 0.0:
        raise ValueError(f"total_debt must be >= 0, got {total_debt!r}")
    if available_liquidity < 0.0:
        raise ValueError(f"available_liquidity must be >= 0, got {available_liquidity!r}")
    total = total_debt + available_liquidity
    return 0.0 if total == 0.0 else total_debt / total


def supply_apr_after_deposit(
    strategy: AaveRateStrategy,
    total_debt: float,
    available_liquidity: float,
    deposit: FloatOrArray,
) -> FloatOrArray:
    """Supply APR once ``deposit`` more is supplied: ``R_s(D / (L + D + deposit))``.

    A deposit adds to available liquidity and leaves debt unchanged, so utilization falls and so
    does the rate every supplier (us included) earns. ``deposit`` is in the same unit as the pool
    amounts, >= 0, float or array (vectorised, for sampling a yield curve). Derived from
    :func:`supply_apr` and :func:`utilization`.
    """
    _check_finite("total_debt", total_debt)
    _check_finite("available_liquidity", available_liquidity)
    if total_debt < 0.0:
        raise ValueError(f"total_debt must be >= 0, got {total_debt!r}")
    if available_liquidity < 0.0:
        raise ValueError(f"available_liquidity must be >= 0, got {available_liquidity!r}")
    d, scalar = _as_float_array("deposit", deposit)
    if np.any(d < 0.0):
        raise ValueError(f"deposit must be >= 0, got {d[d < 0.0].ravel()[0]!r}")
    total = total_debt + available_liquidity + d
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(total > 0.0, total_debt / np.where(total > 0.0, total, 1.0), 0.0)
    return _out(np.asarray(supply_apr(strategy, u), dtype=np.float64), scalar)


def implied_utilization(
    supply_apr: FloatOrArray, borrow_apr: FloatOrArray, reserve_factor: FloatOrArray
) -> FloatOrArray:
    """Invert ``R_s = R_b * U * (1 - RF)`` for ``U = R_s / (R_b * (1 - RF))``. **(derived)**

    Vectorised. ValueError unless borrow_apr > 0, supply_apr >= 0 and reserve_factor in [0, 1).
    The result is not clipped: observed rates are rounded, so U can come out slightly above 1.
    """
    rs, s1 = _as_float_array("supply_apr", supply_apr)
    rb, s2 = _as_float_array("borrow_apr", borrow_apr)
    rf, s3 = _as_float_array("reserve_factor", reserve_factor)
    if np.any(rs < 0.0):
        raise ValueError("supply_apr must be >= 0")
    if np.any(rb <= 0.0):
        raise ValueError("borrow_apr must be > 0 to recover utilization")
    if np.any((rf < 0.0) | (rf >= 1.0)):
        raise ValueError("reserve_factor must be in [0, 1)")
    return _out(rs / (rb * (1.0 - rf)), s1 and s2 and s3)


def apr_to_apy(apr: FloatOrArray) -> FloatOrArray:
    """APY shown by the Aave UI: ``(1 + APR/SPY)^SPY - 1`` (per-second compounding, ~ e^APR - 1).

    Source: ``aave/aave-utilities : packages/math-utils/src/formatters/reserve/index.ts``
    (``calculateCompoundedRate`` with duration = SPY). Computed as expm1(SPY*log1p(APR/SPY)) for
    accuracy at small rates. ValueError if APR <= -SPY.
    """
    r, scalar = _as_float_array("apr", apr)
    if np.any(r <= -SECONDS_PER_YEAR):
        raise ValueError(f"apr must be > -{SECONDS_PER_YEAR}")
    return _out(np.expm1(SECONDS_PER_YEAR * np.log1p(r / SECONDS_PER_YEAR)), scalar)


def apy_to_apr(apy: FloatOrArray) -> FloatOrArray:
    """Inverse of :func:`apr_to_apy`: ``APR = SPY * ((1 + APY)^(1/SPY) - 1)``. ValueError if APY <= -1."""
    y, scalar = _as_float_array("apy", apy)
    if np.any(y <= -1.0):
        raise ValueError("apy must be > -1")
    return _out(SECONDS_PER_YEAR * np.expm1(np.log1p(y) / SECONDS_PER_YEAR), scalar)


def incentive_apr(
    emission_per_second: float,
    reward_price_usd: float,
    total_supply_tokens: float,
    asset_price_usd: float,
) -> float:
    """Incentive APR as the Aave UI computes it (simple APR, shown next to the supply APY):

    ``emissionPerSecond * P_reward * SPY / (totalSupply * P_asset)``, amounts in whole tokens.
    For aToken rewards ``total_supply_tokens`` is the aToken supply; for debt-token rewards, the
    total variable debt. Returns 0 when nothing is supplied (the UI shows no APR then).

    Source: ``aave/aave-utilities : packages/math-utils/src/formatters/incentive/calculate-incentive-apr.ts``.
    ValueError on negative or non-finite input, or a zero asset price with non-zero supply.
    """
    for name, value in (
        ("emission_per_second", emission_per_second),
        ("reward_price_usd", reward_price_usd),
        ("total_supply_tokens", total_supply_tokens),
        ("asset_price_usd", asset_price_usd),
    ):
        _check_finite(name, value)
        if value < 0.0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if total_supply_tokens == 0.0:
        return 0.0
    if asset_price_usd == 0.0:
        raise ValueError("asset_price_usd must be > 0 when total_supply_tokens > 0")
    return (
        emission_per_second
        * reward_price_usd
        * SECONDS_PER_YEAR
        / (total_supply_tokens * asset_price_usd)
    )


def to_ray(x: float) -> str:
    """Decimal -> RAY (1e27 fixed point) as an integer string, from the float's shortest decimal
    repr so 0.055 -> "55000000000000000000000000" exactly. Rounds half-even to the nearest unit.
    ValueError on negative or non-finite input (on-chain rates are uint256)."""
    _check_finite("x", x)
    if x < 0.0:
        raise ValueError(f"x must be >= 0 (RAY values are unsigned), got {x!r}")
    return str(int((Decimal(repr(float(x))) * RAY).to_integral_value()))


def from_ray(s: str | int) -> float:
    """RAY integer (int or decimal-digit string, as in Aave reports and RPC results) -> float."""
    if isinstance(s, bool):
        raise ValueError(f"not a RAY integer: {s!r}")
    if isinstance(s, int):
        n = s
    elif isinstance(s, str):
        text = s.strip()
        try:
            d = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"not a RAY integer: {s!r}") from exc
        if not d.is_finite() or d != d.to_integral_value():
            raise ValueError(f"not a RAY integer: {s!r}")
        n = int(d)
    else:
        raise ValueError(f"not a RAY integer: {s!r}")
    if n < 0:
        raise ValueError(f"RAY values are unsigned, got {s!r}")
    return n / RAY  # int / int true division is correctly rounded


# Aave v3 Ethereum Core market (Pool 0x87870Bca...). Parameters change often (governance, risk
# stewards, since Oct 2025 a slope2 risk oracle): treat these as dated snapshots, not constants.
PRESETS: dict[str, AaveRateStrategy] = {
    # bgd-labs/protocol-v3.5-upgrade : reports/1_0x8787..._before.json (commit 609c4f20, 2025-07-31)
    "ethereum-usdc-2025-07": AaveRateStrategy(0.0, 0.055, 0.35, 0.92, 0.10),
    "ethereum-usdt-2025-07": AaveRateStrategy(0.0, 0.055, 0.14, 0.92, 0.10),
    "ethereum-dai-2025-07": AaveRateStrategy(0.0, 0.055, 0.35, 0.92, 0.25),
    "ethereum-weth-2025-07": AaveRateStrategy(0.0, 0.027, 0.40, 0.94, 0.15),
    # bgd-labs/protocol-v3.7-upgrade : reports/1_0x8787..._before.json (commit 2fcb8ad9, ~Feb 2026)
    "ethereum-usdc-2026-02": AaveRateStrategy(0.0, 0.05, 0.10, 0.92, 0.10),
    "ethereum-usdt-2026-02": AaveRateStrategy(0.0, 0.05, 0.10, 0.92, 0.10),
    "ethereum-dai-2026-02": AaveRateStrategy(0.0, 0.05, 0.35, 0.92, 0.25),
    "ethereum-weth-2026-02": AaveRateStrategy(0.0, 0.0245, 0.06, 0.94, 0.15),
}
