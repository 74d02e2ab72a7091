"""Worked values of the loop, hedged-LP and NFT-rental math from real parameters (sources in the
modules' docstrings): Aave v3 E-mode ETH (LTV 93 %, LT 95 %), a 3.0 % stETH APR, a 2.5 % ETH
borrow, Binance's 0.01 % / 8 h funding, ETH at σ = 0.65."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import aave, hedged_lp, loop, nft_rental

LT, LTV = loop.EMODE_ETH_LIQUIDATION_THRESHOLD, loop.EMODE_ETH_LTV
WETH = aave.PRESETS["ethereum-weth-2026-02"]


def test_emode_parameters_are_the_real_ones() -> None:
    assert (LTV, LT, loop.EMODE_ETH_LIQUIDATION_BONUS) == (0.93, 0.95, 0.01)
    assert loop.max_leverage(LTV) == pytest.approx(1 / 0.07)  # 14.29x


def test_leverage_from_target_health_factor() -> None:
    assert loop.leverage_for_health_factor(1.05, LT, LTV) == pytest.approx(10.5)
    assert loop.leverage_for_health_factor(1.10, LT, LTV) == pytest.approx(1.10 / 0.15)
    # a target HF the borrowing limit cannot reach is capped by LTV: HF 0.96 would ask L = 96
    assert loop.leverage_for_health_factor(0.96, LT, LTV) == pytest.approx(1 / 0.07)
    # and the HF of the loop it opens is the target
    lev = loop.leverage_for_health_factor(1.08, LT, LTV)
    assert loop.health_factor_at_leverage(lev, LT) == pytest.approx(1.08)
    with pytest.raises(ValueError, match="target_health_factor"):
        loop.leverage_for_health_factor(0.9, LT, LTV)


def test_net_apr_worked_values() -> None:
    # L = 10.5: 10.5 x 3.0 % - 9.5 x 2.5 % = 7.75 %
    assert loop.net_apr(10.5, 0.03, 0.025) == pytest.approx(0.0775)
    assert loop.net_apr(1.10 / 0.15, 0.03, 0.025) == pytest.approx(0.0616667, rel=1e-5)
    # the loop loses money when the borrow rate passes the staking rate
    assert loop.net_apr(10.5, 0.03, 0.035) < 0.03 - 0.035 + 1e-12 < 0


def test_liquidation_distance() -> None:
    assert loop.liquidation_price(10.5, LT) == pytest.approx(9.5 / 9.975)
    assert loop.liquidation_distance(1.05) == pytest.approx(1 - 1 / 1.05)  # 4.76 %
    hf = loop.health_factor(10.5, 9.5, LT, price=1.0)
    assert hf == pytest.approx(1.05)
    # a 3 % stETH discount walks HF 1.05 to 1.0185, 1.8 % from liquidation
    hf_disc = loop.health_factor(10.5, 9.5, LT, price=0.97)
    assert hf_disc == pytest.approx(1.05 * 0.97)
    assert loop.health_factor(10.5, 9.5, LT, price=9.5 / 9.975) == pytest.approx(1.0)


def test_borrow_rate_moves_with_our_borrowing() -> None:
    supply, debt = 3_000_000.0, 2_400_000.0  # WETH reserve at U = 80 %
    b0 = loop.borrow_apr_after_borrow(WETH, debt, supply, 0.0)
    assert b0 == pytest.approx(0.0245 * 0.8 / 0.94)
    b1 = loop.borrow_apr_after_borrow(WETH, debt, supply, 300_000.0)  # U = 90 %
    assert b1 == pytest.approx(0.0245 * 0.9 / 0.94)
    b2 = loop.borrow_apr_after_borrow(WETH, debt, supply, 480_000.0)  # U = 96 %: past the kink
    assert b2 == pytest.approx(0.0245 + 0.06 * (0.96 - 0.94) / 0.06)


def test_loop_income_is_concave() -> None:
    x = np.linspace(0, 1.2e8, 401)  # up to U = 1 (our debt fills the reserve at ~130M)
    f = loop.income_usd(
        x,
        leverage=10.5,
        staking_apr=0.03,
        strategy=WETH,
        debt_others_eth=2.4e6,
        supply_eth=3e6,
        eth_usd=2069.0,
    )
    assert f[0] == 0
    assert np.all(np.diff(f, 2) <= 1e-6 * np.max(np.abs(f)))
    # small: the marginal rate is L s - (L-1) b(U0)
    b0 = 0.0245 * 0.8 / 0.94
    assert f[1] / x[1] == pytest.approx(10.5 * 0.03 - 9.5 * b0, rel=1e-3)


def test_unwind() -> None:
    assert loop.unwind_cost_fraction(10.5, 1.0, swap_fee=0.0001) == pytest.approx(0.00095)
    assert loop.unwind_cost_fraction(10.5, 0.99, swap_fee=0.0001) == pytest.approx(9.5 * 0.0101)
    n = loop.queue_unwind_rounds(10.5, LT, floor_health_factor=1.01)
    assert 10 < n < 200
    assert loop.queue_unwind_rounds(3.0, LT) < n  # less leverage, fewer rounds


def test_funding_and_hedge_math() -> None:
    assert hedged_lp.annual_funding_rate(0.0001) == pytest.approx(0.1095)
    assert hedged_lp.lp_share(3.0) == pytest.approx(1 / (1 + 1 / 6))
    assert hedged_lp.rebalance_cost_apr(0.65, 1.0, 0.0005) == pytest.approx(
        0.0005 * 0.65 * math.sqrt(2 / math.pi) / (4 * math.sqrt(1 / 365))
    )
    assert hedged_lp.residual_std_apr(0.65, 1.0) == pytest.approx(0.00391, abs=2e-5)
    assert hedged_lp.unhedged_std_apr(0.65) == 0.325
    # weekly re-hedging is cheaper to run but leaves more residual risk
    assert hedged_lp.residual_std_apr(0.65, 7.0) > hedged_lp.residual_std_apr(0.65, 1.0)
    assert hedged_lp.rebalance_cost_apr(0.65, 7.0, 0.0005) < hedged_lp.rebalance_cost_apr(
        0.65, 1.0, 0.0005
    )
    assert hedged_lp.perp_liquidation_move(3.0, 0.005) == pytest.approx((4 / 3) / 1.005 - 1)


def test_hedged_lp_worked_value_and_funding_flip() -> None:
    kw = dict(annual_fees_usd=36.5e6, tvl_others_usd=200e6, sigma_annual=0.65, perp_leverage=3.0)
    y = hedged_lp.income_usd(1e6, funding_apr=0.1095, **kw) / 1e6
    assert y == pytest.approx(0.156, abs=0.001)
    # funding flips to -0.03 % / 8 h: the short pays 32.85 % a year on half the LP
    flipped = hedged_lp.annual_funding_rate(-0.0003)
    carry = hedged_lp.carry_apr(flipped, 0.65, 1.0, hedged_lp.BINANCE_TAKER_FEE)
    assert carry < -0.18  # costs more than the pool's 18.25 % fee APR
    assert hedged_lp.peak_lp_value_usd(36.5e6, 200e6, carry) == 0.0
    assert hedged_lp.income_usd(1e6, funding_apr=flipped, **kw) < 0


def test_nft_rental_worked_values() -> None:
    assert nft_rental.rental_yield_apr(0.003, 10.0, 0.8) == pytest.approx(0.0876)
    assert nft_rental.rent_income_eth(1.0, 0.003, 80.0, 100.0) == pytest.approx(
        365 * 0.003 * 80 / 101
    )
    # unmet demand: every listing rents
    assert nft_rental.occupancy(80.0, 50.0, 10.0) == 1.0
    assert nft_rental.occupancy(80.0, 100.0, 60.0) == pytest.approx(0.5)
    assert nft_rental.days_to_sell(10.0, 8.0, 0.25) == pytest.approx(5.0)
    assert nft_rental.days_to_sell(1.0, 0.0) == math.inf
    assert nft_rental.exit_proceeds_usd(100_000.0, 0.07) == pytest.approx(93_000.0)
    # a floor that halves and doubles on alternate days is very volatile
    assert nft_rental.realized_volatility([10, 10.1, 10.0, 10.1]) == pytest.approx(
        math.sqrt(np.mean(np.diff(np.log([10, 10.1, 10.0, 10.1])) ** 2) * 365)
    )


@settings(max_examples=60, deadline=None)
@given(
    d=st.floats(0, 500),
    s=st.floats(0, 500),
    r=st.floats(1e-4, 0.05),
    a=st.floats(0, 1e7),
    b=st.floats(0, 1e7),
    floor=st.floats(1e3, 1e5),
)
def test_rent_income_concave_non_decreasing(
    d: float, s: float, r: float, a: float, b: float, floor: float
) -> None:
    lo, hi = min(a, b), max(a, b)
    mid = (lo + hi) / 2
    kw = dict(
        floor_usd=floor,
        daily_rent_eth=r,
        eth_usd=2000.0,
        demand_nft_days_per_day=d,
        listed_others=s,
    )
    f_lo, f_mid, f_hi = (nft_rental.income_usd(v, **kw) for v in (lo, mid, hi))
    assert f_lo <= f_mid + 1e-9 and f_mid <= f_hi + 1e-9
    assert f_mid >= (f_lo + f_hi) / 2 - 1e-7 * max(1.0, f_hi)
