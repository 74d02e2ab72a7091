"""Aave v3 rate math: worked values from reference/protocol_math.md §1.3, conversions, errors, properties."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.aave import (
    PRESETS,
    RAY,
    SECONDS_PER_YEAR,
    AaveRateStrategy,
    apr_to_apy,
    apy_to_apr,
    borrow_apr,
    from_ray,
    implied_utilization,
    incentive_apr,
    supply_apr,
    supply_apr_after_deposit,
    to_ray,
    utilization,
)

USDC_2026 = PRESETS["ethereum-usdc-2026-02"]
USDC_2025 = PRESETS["ethereum-usdc-2025-07"]


@pytest.mark.parametrize(
    ("strategy", "u", "borrow", "supply"),
    [
        (USDC_2026, 0.80, 0.04348, 0.03130),
        (USDC_2026, 0.92, 0.05000, 0.04140),
        (USDC_2026, 0.96, 0.10000, 0.08640),
        (USDC_2025, 0.96, 0.23000, 0.19872),
    ],
)
def test_worked_values(strategy: AaveRateStrategy, u: float, borrow: float, supply: float) -> None:
    assert borrow_apr(strategy, u) == pytest.approx(borrow, abs=5e-6)
    assert supply_apr(strategy, u) == pytest.approx(supply, abs=5e-6)


def test_worked_values_exact_algebra() -> None:
    assert borrow_apr(USDC_2026, 0.80) == pytest.approx(0.05 * 0.80 / 0.92, rel=1e-12)
    assert supply_apr(USDC_2026, 0.80) == pytest.approx(0.05 * 0.80 / 0.92 * 0.80 * 0.9, rel=1e-12)
    assert borrow_apr(USDC_2026, 0.96) == pytest.approx(0.10, rel=1e-12)
    assert supply_apr(USDC_2026, 0.96) == pytest.approx(0.0864, rel=1e-12)


def test_endpoints_and_kink() -> None:
    s = AaveRateStrategy(0.01, 0.04, 0.6, 0.9, 0.2)
    assert borrow_apr(s, 0.0) == pytest.approx(0.01)
    assert supply_apr(s, 0.0) == 0.0
    assert borrow_apr(s, 0.9) == pytest.approx(s.kink_borrow_apr)
    assert borrow_apr(s, 1.0) == pytest.approx(s.max_borrow_apr) == pytest.approx(0.65)
    assert supply_apr(s, 1.0) == pytest.approx(0.65 * 0.8)


def test_vectorised_returns_same_kind() -> None:
    u = np.array([0.0, 0.5, 0.92, 0.96, 1.0])
    b = borrow_apr(USDC_2026, u)
    s = supply_apr(USDC_2026, u)
    assert isinstance(b, np.ndarray) and b.shape == u.shape
    assert isinstance(s, np.ndarray) and s.shape == u.shape
    assert [borrow_apr(USDC_2026, float(x)) for x in u] == pytest.approx(list(b))
    assert isinstance(borrow_apr(USDC_2026, 0.5), float)
    assert isinstance(supply_apr(USDC_2026, 1), float)


@pytest.mark.parametrize("bad_u", [-0.01, 1.0001, math.nan, math.inf])
def test_utilization_out_of_range_raises(bad_u: float) -> None:
    with pytest.raises(ValueError, match="utilization"):
        borrow_apr(USDC_2026, bad_u)
    with pytest.raises(ValueError, match="utilization"):
        supply_apr(USDC_2026, np.array([0.5, bad_u]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"optimal_usage_ratio": 0.005}, "optimal_usage_ratio"),
        ({"optimal_usage_ratio": 0.995}, "optimal_usage_ratio"),
        ({"slope1_apr": 0.2, "slope2_apr": 0.1}, "slope1_apr"),
        ({"reserve_factor": 1.0}, "reserve_factor"),
        ({"reserve_factor": -0.1}, "reserve_factor"),
        ({"base_variable_borrow_apr": -0.01}, "base_variable_borrow_apr"),
        ({"slope1_apr": -0.01}, "slope1_apr"),
        ({"slope2_apr": math.nan}, "slope2_apr"),
        ({"slope2_apr": 20.0}, "MAX_BORROW_RATE"),
    ],
)
def test_strategy_validation_names_field(kwargs: dict[str, float], field: str) -> None:
    base = {
        "base_variable_borrow_apr": 0.0,
        "slope1_apr": 0.05,
        "slope2_apr": 0.10,
        "optimal_usage_ratio": 0.92,
        "reserve_factor": 0.10,
    }
    with pytest.raises(ValueError, match=field):
        AaveRateStrategy(**(base | kwargs))


def test_strategy_is_frozen_and_from_bps() -> None:
    with pytest.raises(AttributeError):
        USDC_2026.slope1_apr = 0.1  # type: ignore[misc]
    assert AaveRateStrategy.from_bps(0, 500, 1000, 9200, 1000) == USDC_2026


def test_presets_present() -> None:
    for asset in ("usdc", "usdt", "dai", "weth"):
        for date in ("2025-07", "2026-02"):
            assert isinstance(PRESETS[f"ethereum-{asset}-{date}"], AaveRateStrategy)
    assert PRESETS["ethereum-weth-2026-02"].optimal_usage_ratio == 0.94
    assert PRESETS["ethereum-dai-2025-07"].reserve_factor == 0.25


def test_utilization() -> None:
    assert utilization(0.0, 0.0) == 0.0
    assert utilization(80.0, 20.0) == pytest.approx(0.8)
    assert utilization(0.0, 5.0) == 0.0
    assert utilization(5.0, 0.0) == 1.0
    with pytest.raises(ValueError, match="total_debt"):
        utilization(-1.0, 1.0)
    with pytest.raises(ValueError, match="available_liquidity"):
        utilization(1.0, -1.0)


def test_supply_apr_after_deposit() -> None:
    # debt 80, liquidity 20: U 0.8 before; +100 deposit -> U 0.4
    assert supply_apr_after_deposit(USDC_2026, 80.0, 20.0, 0.0) == pytest.approx(
        supply_apr(USDC_2026, 0.8)
    )
    assert supply_apr_after_deposit(USDC_2026, 80.0, 20.0, 100.0) == pytest.approx(
        supply_apr(USDC_2026, 0.4)
    )
    curve = supply_apr_after_deposit(USDC_2026, 80.0, 20.0, np.array([0.0, 100.0]))
    assert isinstance(curve, np.ndarray) and curve[1] < curve[0]
    assert supply_apr_after_deposit(USDC_2026, 0.0, 0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="deposit"):
        supply_apr_after_deposit(USDC_2026, 80.0, 20.0, -1.0)


def test_implied_utilization_inverts_supply_apr() -> None:
    u = np.array([0.1, 0.5, 0.8, 0.92, 0.97])
    rs = supply_apr(USDC_2026, u)
    rb = borrow_apr(USDC_2026, u)
    assert implied_utilization(rs, rb, 0.10) == pytest.approx(u)
    # protocol_math.md §1.3: USDC Ethereum 2026-08-22
    assert implied_utilization(0.032774, 0.039791, 0.10) == pytest.approx(0.9152, abs=1e-4)
    with pytest.raises(ValueError, match="borrow_apr"):
        implied_utilization(0.01, 0.0, 0.1)
    with pytest.raises(ValueError, match="reserve_factor"):
        implied_utilization(0.01, 0.02, 1.0)


def test_apr_apy() -> None:
    assert apr_to_apy(0.0) == 0.0
    assert apr_to_apy(0.05) == pytest.approx(math.expm1(0.05), rel=1e-7)
    # reference in 50-digit Decimal: naive float (1 + apr/SPY)**SPY loses ~5e-8 relative to rounding
    with localcontext() as ctx:
        ctx.prec = 50
        exact = (1 + Decimal("0.05") / SECONDS_PER_YEAR) ** SECONDS_PER_YEAR - 1
    assert apr_to_apy(0.05) == pytest.approx(float(exact), rel=1e-13)
    a = np.array([0.0, 0.01, 0.1, 1.0])
    assert apy_to_apr(apr_to_apy(a)) == pytest.approx(a, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="apy"):
        apy_to_apr(-1.0)


@settings(deadline=None, max_examples=50)
@given(st.floats(min_value=-0.5, max_value=5.0, allow_nan=False))
def test_apr_apy_round_trip(apr: float) -> None:
    assert apy_to_apr(apr_to_apy(apr)) == pytest.approx(apr, rel=1e-10, abs=1e-14)


def test_incentive_apr() -> None:
    # 1 reward token/s at $2 on 100M supplied at $1: 2 * SPY / 1e8 = 0.63072
    assert incentive_apr(1.0, 2.0, 1e8, 1.0) == pytest.approx(2 * SECONDS_PER_YEAR / 1e8)
    assert incentive_apr(1.0, 2.0, 0.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="emission_per_second"):
        incentive_apr(-1.0, 2.0, 1e8, 1.0)
    with pytest.raises(ValueError, match="asset_price_usd"):
        incentive_apr(1.0, 2.0, 1e8, 0.0)


def test_ray_round_trip() -> None:
    assert to_ray(0.055) == "55000000000000000000000000"
    assert to_ray(1.0) == str(RAY)
    assert from_ray("55000000000000000000000000") == 0.055
    assert from_ray(RAY) == 1.0
    for x in (0.0, 0.03979, 0.123456789, 4.3):
        assert from_ray(to_ray(x)) == x
    for bad in ("abc", "1.5", -1, "-5", True):
        with pytest.raises(ValueError):
            from_ray(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_ray(-0.1)


strategies = st.builds(
    lambda base, s1, extra, uopt, rf: AaveRateStrategy(base, s1, s1 + extra, uopt, rf),
    st.floats(0.0, 0.05),
    st.floats(0.0, 0.2),
    st.floats(0.0, 3.0),
    st.floats(0.01, 0.99),
    st.floats(0.0, 0.5),
)


@settings(deadline=None, max_examples=40)
@given(strategies, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_rates_monotone_in_utilization(s: AaveRateStrategy, u1: float, u2: float) -> None:
    lo, hi = min(u1, u2), max(u1, u2)
    assert borrow_apr(s, lo) <= borrow_apr(s, hi) + 1e-12
    assert supply_apr(s, lo) <= supply_apr(s, hi) + 1e-12


@settings(deadline=None, max_examples=40)
@given(
    strategies,
    st.floats(0.0, 1e9),
    st.floats(0.0, 1e9),
    st.floats(0.0, 1e9),
    st.floats(0.0, 1e9),
)
def test_supply_apr_after_deposit_decreasing(
    s: AaveRateStrategy, debt: float, liquidity: float, d1: float, d2: float
) -> None:
    lo, hi = min(d1, d2), max(d1, d2)
    r = supply_apr_after_deposit(s, debt, liquidity, np.array([lo, hi]))
    assert r[1] <= r[0] + 1e-12
