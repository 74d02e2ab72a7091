"""Uniswap v2/v3 math against the values in reference/protocol_math.md §4 and a Monte Carlo check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import uniswap as u


def test_impermanent_loss_at_r4_is_minus_20_percent() -> None:
    assert u.impermanent_loss(4.0) == pytest.approx(-0.20, abs=1e-12)


def test_impermanent_loss_known_points_and_symmetry() -> None:
    assert u.impermanent_loss(1.0) == 0.0
    assert u.impermanent_loss(2.0) == pytest.approx(-0.05719, abs=1e-5)
    assert u.impermanent_loss(0.25) == pytest.approx(u.impermanent_loss(4.0), abs=1e-12)


@settings(deadline=None, max_examples=60)
@given(st.floats(min_value=1e-6, max_value=1e6))
def test_impermanent_loss_is_never_a_gain(r: float) -> None:
    il = u.impermanent_loss(r)
    assert -1.0 < il <= 1e-15


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_impermanent_loss_rejects_impossible_ratio(bad: float) -> None:
    with pytest.raises(ValueError, match="price_ratio"):
        u.impermanent_loss(bad)


def test_swap_keeps_the_fee_adjusted_invariant() -> None:
    x, y, dx = 1_000_000.0, 500.0, 10_000.0
    dy = u.get_amount_out(dx, x, y)
    # UniswapV2Pair: (x*1000 - 3*dx_in) ... balance0Adjusted * balance1Adjusted >= x*y*1000^2
    assert (x + dx) * 1000 - 3 * dx == pytest.approx(x * 1000 + 997 * dx)
    assert ((x + dx) * 1000 - 3 * dx) * (y - dy) * 1000 == pytest.approx(x * y * 1000**2, rel=1e-12)
    assert u.get_amount_in(dy, x, y) == pytest.approx(dx, rel=1e-12)
    with pytest.raises(ValueError, match="amount_out"):
        u.get_amount_in(y, x, y)


def test_fee_apr_as_defillama_computes_it() -> None:
    # 25M volume, 0.30 %, 200M TVL -> 13.6875 %
    assert u.fee_apr(25e6, 200e6) == pytest.approx(25e6 * 0.003 * 365 / 200e6)
    assert u.fee_apr_7d(175e6, 200e6) == pytest.approx(175e6 * 0.003 * 52 / 200e6)
    with pytest.raises(ValueError, match="tvl_usd"):
        u.fee_apr(1.0, 0.0)


def test_our_deposit_dilutes_the_fee_share() -> None:
    small = u.fee_income_after_deposit_usd(1_000.0, 25e6, 200e6) / 1_000.0
    big = u.fee_income_after_deposit_usd(50e6, 25e6, 200e6) / 50e6
    assert small == pytest.approx(u.fee_apr(25e6, 200e6), rel=1e-5)
    assert big == pytest.approx(25e6 * 0.003 * 365 / 250e6)


def test_zap_in_costs_half_the_fee_for_small_deposits() -> None:
    assert u.single_sided_entry_cost_fraction(100.0, 200e6) == pytest.approx(0.0015, abs=1e-6)
    assert u.single_sided_entry_cost_fraction(10e6, 200e6) > 0.0015 + 0.01  # price impact


def test_expected_lp_to_hodl_ratio_matches_monte_carlo() -> None:
    """E[sqrt r] for a martingale GBM price equals exp(-sigma^2 t / 8) (protocol_math.md §4.1)."""
    rng = np.random.default_rng(2026)
    sigma, t, n = 0.8, 1.0, 400_000
    log_r = rng.normal(-0.5 * sigma**2 * t, sigma * math.sqrt(t), n)
    ratio = np.sqrt(np.exp(log_r))
    se = ratio.std() / math.sqrt(n)
    assert abs(ratio.mean() - u.expected_lp_to_hodl_ratio(sigma, t)) < 4 * se
    assert u.expected_lp_to_hodl_ratio(sigma, t) == pytest.approx(0.92312, abs=1e-5)
    # E[IL] is close to -sigma^2 t / 8 for small sigma^2 t (-0.0050 at sigma 0.2, §4.1 table)
    small = rng.normal(-0.5 * 0.2**2, 0.2, n)
    r = np.exp(small)
    il = 2 * np.sqrt(r) / (1 + r) - 1
    assert il.mean() == pytest.approx(-(0.2**2) / 8, rel=0.03)


def test_tickwise_hedged_lp_loses_lvr_sigma_squared_over_8() -> None:
    """The mock's hedged LP value, a product of (1 + IL(r_i)) over daily ticks, decays at sigma^2/8."""
    rng = np.random.default_rng(7)
    sigma, days, paths = 0.65, 365, 2_000
    dt = 1 / 365
    x = rng.normal(-0.5 * sigma**2 * dt, sigma * math.sqrt(dt), (paths, days))
    r = np.exp(x)
    value = np.prod(2 * np.sqrt(r) / (1 + r), axis=1)
    assert value.mean() == pytest.approx(math.exp(-u.lvr_apr(sigma)), rel=2e-3)


def test_v3_capital_efficiency() -> None:
    assert u.v3_capital_efficiency_symmetric(1.1) == pytest.approx(21.5, abs=0.05)
    assert u.v3_capital_efficiency_symmetric(1.5) == pytest.approx(5.45, abs=0.01)
    assert u.v3_capital_efficiency_symmetric(2.0) == pytest.approx(3.414, abs=1e-3)
    assert u.v3_capital_efficiency_symmetric(4.0) == pytest.approx(2.0)
    assert u.v3_capital_efficiency(2000.0, 1000.0, 4000.0) == pytest.approx(
        u.v3_capital_efficiency_symmetric(2.0)
    )
    with pytest.raises(ValueError, match="strictly inside"):
        u.v3_capital_efficiency(5000.0, 1000.0, 4000.0)
    with pytest.raises(ValueError, match="k must be > 1"):
        u.v3_capital_efficiency_symmetric(1.0)


def test_v3_position_value_matches_v2_times_ce_in_range() -> None:
    p0, pa, pb, liq = 2000.0, 1000.0, 4000.0, 1000.0
    ce = u.v3_capital_efficiency(p0, pa, pb)
    v2 = liq * 2 * math.sqrt(p0)
    assert v2 / u.v3_position_value(liq, p0, pa, pb) == pytest.approx(ce)
    # out of range: all in one asset, linear in price below pa
    low = u.v3_position_value(liq, 500.0, pa, pb)
    assert u.v3_position_value(liq, 250.0, pa, pb) == pytest.approx(low / 2)
