"""The fixed-rate custodial product."""

from __future__ import annotations

import math

import pytest

from protocols import fixed


def test_simple_interest_and_redemption() -> None:
    assert fixed.accrued_interest_usd(1_000_000, 0.05, fixed.SECONDS_PER_YEAR) == pytest.approx(
        50_000
    )
    assert fixed.daily_interest_usd(365_000, 0.05) == pytest.approx(50.0)
    p = fixed.FixedRateProduct("USDT001", "USDT", 0.045, 5.0, 86_400)
    assert fixed.redemption_settles_at(1_000.0, p) == 87_400.0
    assert p.quota_usd == math.inf


def test_risk_adjusted_apr() -> None:
    assert fixed.risk_adjusted_apr(0.05, 0.02, 0.6) == pytest.approx(0.038)
    with pytest.raises(ValueError, match="annual_default_probability"):
        fixed.expected_loss_apr(1.5, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"apr": -0.01}, "apr"),
        ({"risk_score": 11}, "risk_score"),
        ({"redemption_delay_seconds": -1}, "redemption_delay_seconds"),
        ({"quota_usd": math.nan}, "quota_usd"),
        ({"product_id": ""}, "product_id"),
    ],
)
def test_product_rejects_impossible_fields(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "product_id": "X1",
        "asset": "USDT",
        "apr": 0.05,
        "risk_score": 5.0,
        "redemption_delay_seconds": 86_400,
    }
    base.update(kwargs)
    with pytest.raises(ValueError, match=field):
        fixed.FixedRateProduct(**base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        fixed.accrued_interest_usd(1.0, 0.05, -1.0)
