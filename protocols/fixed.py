"""A fixed-rate custodial "earn" product: flat APR, counterparty risk score, redemption delay.

Modelled on Binance Simple Earn flexible products (``GET /sapi/v1/simple-earn/flexible/list``:
``latestAnnualPercentageRate``, ``minPurchaseAmount``, ``canRedeem``; interest accrues per
minute and is paid daily, redemptions of flexible products settle within a day). The risk score
is ours (0 = cash-like, 10 = worst), not the custodian's. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocols._checks import finite as _finite
from protocols._checks import non_negative as _non_negative

SECONDS_PER_YEAR = 31_536_000
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class FixedRateProduct:
    """A custodial product: ``apr`` (decimal, simple), ``risk_score`` in [0, 10],
    ``redemption_delay_seconds`` from redeem request to cash, ``min_purchase_usd``, and
    ``quota_usd`` (the product's remaining capacity; ``inf`` when unlimited)."""

    product_id: str
    asset: str
    apr: float
    risk_score: float
    redemption_delay_seconds: float
    min_purchase_usd: float = 0.1
    quota_usd: float = math.inf

    def __post_init__(self) -> None:
        if not self.product_id:
            raise ValueError("product_id must not be empty")
        if not self.asset:
            raise ValueError("asset must not be empty")
        apr = _finite("apr", self.apr)
        if not 0.0 <= apr <= 10.0:
            raise ValueError(f"apr must be in [0, 10], got {self.apr!r}")
        score = _finite("risk_score", self.risk_score)
        if not 0.0 <= score <= 10.0:
            raise ValueError(f"risk_score must be in [0, 10], got {self.risk_score!r}")
        _non_negative("redemption_delay_seconds", self.redemption_delay_seconds)
        _non_negative("min_purchase_usd", self.min_purchase_usd)
        q = self.quota_usd
        if isinstance(q, bool) or not isinstance(q, (int, float)) or math.isnan(q) or q < 0.0:
            raise ValueError(f"quota_usd must be >= 0 (inf allowed), got {q!r}")


def accrued_interest_usd(principal_usd: float, apr: float, seconds: float) -> float:
    """Simple interest over ``seconds``: ``principal * apr * seconds / SECONDS_PER_YEAR``.

    Flexible earn products quote a simple annual rate and accrue it linearly (paid daily).
    ValueError on negative principal, apr or time.
    """
    return (
        _non_negative("principal_usd", principal_usd)
        * _non_negative("apr", apr)
        * _non_negative("seconds", seconds)
        / SECONDS_PER_YEAR
    )


def daily_interest_usd(principal_usd: float, apr: float) -> float:
    """The day's interest credit: ``principal * apr / 365``."""
    return accrued_interest_usd(principal_usd, apr, SECONDS_PER_DAY)


def redemption_settles_at(request_time_seconds: float, product: FixedRateProduct) -> float:
    """When a redemption requested at ``request_time_seconds`` (epoch) pays out: ``t + delay``."""
    return _finite("request_time_seconds", request_time_seconds) + product.redemption_delay_seconds


def expected_loss_apr(annual_default_probability: float, loss_given_default: float) -> float:
    """Counterparty expected loss per year: ``p_default * LGD`` (both in [0, 1])."""
    p = _finite("annual_default_probability", annual_default_probability)
    lgd = _finite("loss_given_default", loss_given_default)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"annual_default_probability must be in [0, 1], got {p!r}")
    if not 0.0 <= lgd <= 1.0:
        raise ValueError(f"loss_given_default must be in [0, 1], got {lgd!r}")
    return p * lgd


def risk_adjusted_apr(
    apr: float, annual_default_probability: float, loss_given_default: float
) -> float:
    """``apr - p_default * LGD``: the flat rate net of the counterparty's expected loss."""
    return _finite("apr", apr) - expected_loss_apr(annual_default_probability, loss_given_default)
