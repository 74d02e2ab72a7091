"""Across fee math against the SDK and UMIP examples (protocol_math.md §5)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import across as a


def test_sdk_readme_example() -> None:
    # SDK README: U 0 -> 0.01 gives apy 615384615384615 (1e18 scale) = 0.0615 %, weekly 0.118 bp
    # (protocol_math.md §5.1 quotes these as 0.615 % and 1.18 bp: a factor-10 unit slip there)
    m = a.RateModel(ubar=0.65, r0=0.0, r1=0.08, r2=1.0)
    assert a.average_rate(m, 0.0, 0.01) == pytest.approx(0.000615384615, rel=1e-9)
    assert a.lp_fee_pct(m, 0.0, 0.01) == pytest.approx(
        (1 + 0.000615384615) ** (1 / 52) - 1, rel=1e-9
    )


def test_umip_and_realistic_weekly_fees() -> None:
    assert a.lp_fee_pct(a.RateModel(0.75, 0.05, 0.0, 0.6), 0.0, 0.0) * 1e4 == pytest.approx(
        9.4, abs=0.05
    )
    assert a.lp_fee_pct(a.RateModel(0.75, 0.021, 0.0, 0.6), 0.0, 0.0) * 1e4 == pytest.approx(
        4.0, abs=0.05
    )


def test_average_rate_across_the_kink_matches_numeric_integral() -> None:
    m = a.RateModel(0.75, 0.021, 0.04, 0.6)
    grid = np.linspace(0.5, 0.9, 200_001)
    numeric = np.trapezoid([a.rate_at(m, float(x)) for x in grid[::100]], grid[::100]) / 0.4
    assert a.average_rate(m, 0.5, 0.9) == pytest.approx(numeric, rel=1e-6)
    assert a.rate_at(m, 1.0) == pytest.approx(0.021 + 0.04 + 0.6)


@settings(deadline=None, max_examples=50)
@given(st.floats(0, 1), st.floats(0, 1))
def test_average_rate_lies_between_the_endpoint_rates(x: float, y: float) -> None:
    lo, hi = min(x, y), max(x, y)
    m = a.RateModel(0.65, 0.01, 0.08, 1.0)
    avg = a.average_rate(m, lo, hi)
    assert a.rate_at(m, lo) - 1e-12 <= avg <= a.rate_at(m, hi) + 1e-12


def test_capital_fee() -> None:
    assert a.capital_fee_pct(50_000) == pytest.approx(0.0001)  # USDC default: flat 1 bp
    old = a.CapitalFeeConfig(0.0003, 0.00075, 1_500_000)
    assert a.capital_fee_pct(1_500_000, old) == pytest.approx(0.0003 + 0.5 * 0.00045)
    assert a.capital_fee_pct(100, old) == pytest.approx(0.0003, abs=1e-7)
    assert a.capital_fee_pct(1e12, old) == pytest.approx(0.00075, abs=1e-6)
    with pytest.raises(ValueError, match="amount"):
        a.capital_fee_pct(0.0)


def test_utilization_gas_and_fill_time() -> None:
    assert a.utilization_after(70.0, 30.0, 10.0) == pytest.approx(0.4)
    assert a.utilization_after(1.0, 0.0, 10.0) == 1.0
    assert a.gas_fee_pct(0.5, 10_000) == pytest.approx(5e-5)
    assert a.fill_time_seconds(1_000, 10, 500_000, 5_000_000) == 10
    assert a.fill_time_seconds(1_000_000, 10, 500_000, 5_000_000) == 10 + 1_800
    assert a.fill_time_seconds(9_000_000, 10, 500_000, 5_000_000) == a.SLOW_FILL_SECONDS
    with pytest.raises(ValueError, match="max_deposit_short_delay_usd"):
        a.fill_time_seconds(1, 10, 5, 1)
    with pytest.raises(ValueError, match="ubar"):
        a.RateModel(0.0, 0, 0, 0)


def test_bridge_arb_income_is_concave_and_capped() -> None:
    xs = np.linspace(0, 1_000_000, 101)
    inc = np.array([a.arb_income_per_year_usd(x, 0.0004, 0.0001, 0.0, 500_000, 730) for x in xs])
    assert inc[0] == 0.0
    assert np.all(np.diff(inc) >= -1e-9)
    assert np.all(np.diff(inc, 2) <= 1e-6)  # concave
    # the arbitrageur stops at q* = C (1 - fee/s) = 375k; more inventory earns the same
    assert a.arb_optimal_trade_usd(0.0004, 0.0001, 500_000) == pytest.approx(375_000)
    assert (
        inc[-1] == inc[38] == pytest.approx(730 * 375_000 * (0.0004 * (1 - 375_000 / 1e6) - 0.0001))
    )
    assert inc[37] < inc[38]
    assert a.arb_round_trip_profit_usd(100_000, 0.0004, 0.0001, 1.0, 500_000) == pytest.approx(
        100_000 * (0.0004 * 0.9 - 0.0001) - 1.0
    )
    # a gap below the fee never pays
    assert a.arb_income_per_year_usd(10_000, 0.00005, 0.0001, 0.0, 500_000, 730) == 0.0
