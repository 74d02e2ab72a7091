"""Compound v3 (Comet) interest-rate math: independent kinked supply and borrow curves.

Pure functions, no I/O. Rates are annual decimals; rate functions are vectorised (float or numpy
array in, same kind out).

Source (see ``reference/protocol_math.md`` §2.2): ``compound-finance/comet : contracts/Comet.sol``
(``getSupplyRate``, ``getBorrowRate``, ``getUtilization``) and ``contracts/CometCore.sol``.
Comet stores each parameter per second as 1e18 fixed point, set in its constructor as
``config.xPerYearInterestRateY / SECONDS_PER_YEAR`` (integer division).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from protocols._checks import FloatOrArray
from protocols._checks import as_float_array as _as_float_array
from protocols._checks import out as _out

SECONDS_PER_YEAR = 31_536_000  # CometCore.SECONDS_PER_YEAR
FACTOR_SCALE = 10**18  # CometCore.FACTOR_SCALE


def _check_amount(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_utilization(u: NDArray[np.float64]) -> None:
    if np.any((u < 0.0) | (u > 1.0)):
        raise ValueError(
            f"utilization must be in [0, 1], got {u[(u < 0.0) | (u > 1.0)].ravel()[0]!r}"
        )


@dataclass(frozen=True, slots=True)
class CometCurve:
    """A Comet market's two rate curves, annual decimals (``configuration.json`` ``rates``).

    Supply and borrow have their own kink, slopes and base; there is no reserve factor — the
    protocol keeps ``U * borrow - supply`` (which may be negative). Kinks must be in (0, 1]; all
    slopes and bases >= 0.
    """

    supply_kink: float
    supply_slope_low: float
    supply_slope_high: float
    supply_base: float
    borrow_kink: float
    borrow_slope_low: float
    borrow_slope_high: float
    borrow_base: float

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if name.endswith("_kink"):
                if not 0.0 < value <= 1.0:
                    raise ValueError(f"{name} must be in (0, 1], got {value!r}")
            elif value < 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")

    @classmethod
    def from_per_second_factors(
        cls,
        supply_kink: int,
        supply_slope_low_per_second: int,
        supply_slope_high_per_second: int,
        supply_base_per_second: int,
        borrow_kink: int,
        borrow_slope_low_per_second: int,
        borrow_slope_high_per_second: int,
        borrow_base_per_second: int,
    ) -> CometCurve:
        """Build from the on-chain getters (kinks as 1e18 factors, rates as 1e18 per-second factors)."""

        def year(raw: int) -> float:
            return float(per_year(from_factor(raw)))

        return cls(
            from_factor(supply_kink),
            year(supply_slope_low_per_second),
            year(supply_slope_high_per_second),
            year(supply_base_per_second),
            from_factor(borrow_kink),
            year(borrow_slope_low_per_second),
            year(borrow_slope_high_per_second),
            year(borrow_base_per_second),
        )


def _kinked(
    base: float, slope_low: float, slope_high: float, kink: float, u: NDArray[np.float64]
) -> NDArray[np.float64]:
    # Comet does not divide the slope by the kink (unlike Aave and Compound v2).
    return np.where(
        u <= kink, base + slope_low * u, base + slope_low * kink + slope_high * (u - kink)
    )


def comet_supply_apr(curve: CometCurve, u: FloatOrArray) -> FloatOrArray:
    """Supply APR at utilization ``U`` (``Comet.getSupplyRate``):

    ``U <= kink``: ``base + slopeLow * U``; ``U > kink``: ``base + slopeLow * kink + slopeHigh * (U - kink)``.
    ValueError if U is outside [0, 1].
    """
    arr, scalar = _as_float_array("utilization", u)
    _check_utilization(arr)
    c = curve
    return _out(
        _kinked(c.supply_base, c.supply_slope_low, c.supply_slope_high, c.supply_kink, arr), scalar
    )


def comet_borrow_apr(curve: CometCurve, u: FloatOrArray) -> FloatOrArray:
    """Borrow APR at utilization ``U`` (``Comet.getBorrowRate``), same shape as the supply curve
    with the borrow parameters. ValueError if U is outside [0, 1]."""
    arr, scalar = _as_float_array("utilization", u)
    _check_utilization(arr)
    c = curve
    return _out(
        _kinked(c.borrow_base, c.borrow_slope_low, c.borrow_slope_high, c.borrow_kink, arr), scalar
    )


def comet_utilization(total_borrow: float, total_supply: float) -> float:
    """``U = totalBorrow / totalSupply`` (present values); 0 when nothing is supplied
    (``Comet.getUtilization``). ValueError on negative input or borrow > supply."""
    _check_amount("total_borrow", total_borrow)
    _check_amount("total_supply", total_supply)
    if total_supply == 0.0:
        return 0.0
    if total_borrow > total_supply:
        raise ValueError(
            f"total_borrow ({total_borrow!r}) must be <= total_supply ({total_supply!r})"
        )
    return total_borrow / total_supply


def comet_supply_apr_after_deposit(
    curve: CometCurve, total_borrow: float, total_supply: float, deposit: FloatOrArray
) -> FloatOrArray:
    """Supply APR once ``deposit`` more is supplied: ``supplyRate(B / (S + deposit))``.

    Same units for all amounts; ``deposit`` >= 0, float or array (vectorised). **(derived)**
    """
    u0 = comet_utilization(total_borrow, total_supply)  # validates the pool amounts
    del u0
    d, scalar = _as_float_array("deposit", deposit)
    if np.any(d < 0.0):
        raise ValueError(f"deposit must be >= 0, got {d[d < 0.0].ravel()[0]!r}")
    total = total_supply + d
    u = np.where(total > 0.0, total_borrow / np.where(total > 0.0, total, 1.0), 0.0)
    return _out(np.asarray(comet_supply_apr(curve, u), dtype=np.float64), scalar)


def per_second(apr: FloatOrArray) -> FloatOrArray:
    """Annual rate -> per-second rate: ``apr / SECONDS_PER_YEAR`` (Comet constructor)."""
    arr, scalar = _as_float_array("apr", apr)
    return _out(arr / SECONDS_PER_YEAR, scalar)


def per_year(rate_per_second: FloatOrArray) -> FloatOrArray:
    """Per-second rate -> annual rate: ``rate * SECONDS_PER_YEAR`` (how Comet's UI annualises)."""
    arr, scalar = _as_float_array("rate_per_second", rate_per_second)
    return _out(arr * SECONDS_PER_YEAR, scalar)


def to_factor(x: float) -> int:
    """Decimal -> 1e18 fixed point integer (rounded to nearest), as Comet stores rates and kinks."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        raise ValueError(f"x must be a finite number, got {x!r}")
    return round(x * FACTOR_SCALE)


def from_factor(raw: int) -> float:
    """1e18 fixed point integer -> float."""
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError(f"factor must be an int, got {raw!r}")
    return raw / FACTOR_SCALE


def onchain_per_second_factor(apr: float) -> int:
    """The per-second 1e18 factor Comet's constructor stores for an annual ``apr``:
    ``floor(apr_factor / SECONDS_PER_YEAR)`` (Solidity integer division truncates)."""
    return to_factor(apr) // SECONDS_PER_YEAR


# cUSDCv3 on Ethereum mainnet (reference/protocol_math.md §2.2).
# Launch: compound-finance/comet : deployments/mainnet/usdc/configuration.json (Aug 2022).
PRESET_CUSDCV3_LAUNCH = CometCurve(
    supply_kink=0.80,
    supply_slope_low=0.0325,
    supply_slope_high=0.40,
    supply_base=0.0,
    borrow_kink=0.80,
    borrow_slope_low=0.035,
    borrow_slope_high=0.25,
    borrow_base=0.015,
)
# Latest known: Gauntlet ~Dec 2024 / early 2025 stablecoin-comet curve
# (comp.xyz/t/gauntlet-ir-curve-and-incentive-recommendations-for-stablecoin-and-weth-comets/6038).
PRESET_CUSDCV3 = CometCurve(
    supply_kink=0.90,
    supply_slope_low=0.054,
    supply_slope_high=3.034,
    supply_base=0.0,
    borrow_kink=0.90,
    borrow_slope_low=0.05,
    borrow_slope_high=3.4,
    borrow_base=0.015,
)
