"""Compound v3 (Comet) rate math: worked values from reference/protocol_math.md §2.2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.compound import (
    FACTOR_SCALE,
    PRESET_CUSDCV3,
    PRESET_CUSDCV3_LAUNCH,
    SECONDS_PER_YEAR,
    CometCurve,
    comet_borrow_apr,
    comet_supply_apr,
    comet_supply_apr_after_deposit,
    comet_utilization,
    from_factor,
    onchain_per_second_factor,
    per_second,
    per_year,
    to_factor,
)


@pytest.mark.parametrize(
    ("u", "supply", "borrow"), [(0.9, 0.0486, 0.06), (0.95, 0.2003, 0.23), (0.0, 0.0, 0.015)]
)
def test_latest_curve_worked_values(u: float, supply: float, borrow: float) -> None:
    assert comet_supply_apr(PRESET_CUSDCV3, u) == pytest.approx(supply, abs=1e-9)
    assert comet_borrow_apr(PRESET_CUSDCV3, u) == pytest.approx(borrow, abs=1e-9)


def test_launch_curve() -> None:
    c = PRESET_CUSDCV3_LAUNCH
    assert comet_supply_apr(c, 0.8) == pytest.approx(0.026)
    assert comet_borrow_apr(c, 0.8) == pytest.approx(0.015 + 0.028)
    assert comet_supply_apr(c, 1.0) == pytest.approx(0.026 + 0.08)
    assert comet_borrow_apr(c, 1.0) == pytest.approx(0.043 + 0.05)


def test_vectorised() -> None:
    u = np.linspace(0, 1, 11)
    s = comet_supply_apr(PRESET_CUSDCV3, u)
    assert isinstance(s, np.ndarray) and s.shape == u.shape
    assert isinstance(comet_borrow_apr(PRESET_CUSDCV3, 0.5), float)
    assert s[9] == pytest.approx(comet_supply_apr(PRESET_CUSDCV3, 0.9))


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan])
def test_bad_utilization(bad: float) -> None:
    with pytest.raises(ValueError, match="utilization"):
        comet_supply_apr(PRESET_CUSDCV3, bad)
    with pytest.raises(ValueError, match="utilization"):
        comet_borrow_apr(PRESET_CUSDCV3, np.array([0.2, bad]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("supply_kink", 0.0),
        ("borrow_kink", 1.5),
        ("supply_slope_low", -0.01),
        ("borrow_base", math.inf),
    ],
)
def test_curve_validation(field: str, value: float) -> None:
    kwargs = {name: getattr(PRESET_CUSDCV3, name) for name in CometCurve.__slots__}
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        CometCurve(**kwargs)


def test_utilization() -> None:
    assert comet_utilization(0.0, 0.0) == 0.0
    assert comet_utilization(90.0, 100.0) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="total_borrow"):
        comet_utilization(-1.0, 10.0)
    with pytest.raises(ValueError, match="total_borrow"):
        comet_utilization(11.0, 10.0)


def test_supply_after_deposit() -> None:
    assert comet_supply_apr_after_deposit(PRESET_CUSDCV3, 90.0, 100.0, 0.0) == pytest.approx(0.0486)
    assert comet_supply_apr_after_deposit(PRESET_CUSDCV3, 90.0, 100.0, 50.0) == pytest.approx(
        0.054 * 0.6
    )
    with pytest.raises(ValueError, match="deposit"):
        comet_supply_apr_after_deposit(PRESET_CUSDCV3, 90.0, 100.0, -1.0)


def test_per_second_conversions() -> None:
    assert per_second(0.0315360) == pytest.approx(1e-9)
    assert per_year(per_second(0.054)) == pytest.approx(0.054)
    assert to_factor(0.9) == 9 * 10**17
    assert from_factor(FACTOR_SCALE) == 1.0
    # Comet truncates on construction: 5 % / SPY = 1585489599 per second in 1e18 units
    assert onchain_per_second_factor(0.05) == 5 * 10**16 // SECONDS_PER_YEAR == 1585489599
    rebuilt = CometCurve.from_per_second_factors(
        to_factor(0.9),
        *(onchain_per_second_factor(x) for x in (0.054, 3.034, 0.0)),
        to_factor(0.9),
        *(onchain_per_second_factor(x) for x in (0.05, 3.4, 0.015)),
    )
    assert comet_borrow_apr(rebuilt, 0.9) == pytest.approx(0.06, abs=1e-9)


@settings(deadline=None, max_examples=40)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_monotone(u1: float, u2: float) -> None:
    lo, hi = min(u1, u2), max(u1, u2)
    for c in (PRESET_CUSDCV3, PRESET_CUSDCV3_LAUNCH):
        assert comet_supply_apr(c, lo) <= comet_supply_apr(c, hi) + 1e-12
        assert comet_borrow_apr(c, lo) <= comet_borrow_apr(c, hi) + 1e-12


@settings(deadline=None, max_examples=40)
@given(st.floats(0.0, 1e9), st.floats(0.0, 1e9), st.floats(0.0, 1e9), st.floats(0.0, 1e9))
def test_after_deposit_decreasing(borrow: float, extra: float, d1: float, d2: float) -> None:
    lo, hi = min(d1, d2), max(d1, d2)
    r = comet_supply_apr_after_deposit(PRESET_CUSDCV3, borrow, borrow + extra, np.array([lo, hi]))
    assert r[1] <= r[0] + 1e-12
