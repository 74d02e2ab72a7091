"""Property tests (hypothesis) of the composite kinds' curves: concave and non-decreasing on
``[0, capacity]`` and flat beyond, equal to ``protocols/`` math, our own size in the math (our
borrowing raises the loop's borrow rate, our liquidity dilutes the hedged LP's fees, our
listings lower the NFTs' occupancy)."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.curves_composite import HedgedLpCurve, NftRentalCurve, loop_curve
from protocols import aave, hedged_lp, loop, nft_rental
from tests.test_adapters_curves import assert_concave_non_decreasing

PROPS = settings(
    deadline=None, max_examples=40, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
WETH = aave.PRESETS["ethereum-weth-2026-02"]


@PROPS
@given(
    hf=st.floats(1.02, 1.6),
    staking=st.floats(0.0, 0.06),
    u=st.floats(0.0, 0.97),
    supply_eth=st.floats(1e4, 5e6),
    price=st.floats(0.9, 1.02),
)
def test_loop_curve(hf: float, staking: float, u: float, supply_eth: float, price: float) -> None:
    lev = loop.leverage_for_health_factor(hf, 0.95, 0.93, price)
    kw = dict(
        leverage=lev,
        staking_apr=staking,
        strategy=WETH,
        debt_others_eth=u * supply_eth,
        supply_eth=supply_eth,
        eth_usd=2000.0,
    )
    curve = loop_curve(**kw)
    assert_concave_non_decreasing(curve, 1e8)
    xs = np.linspace(0, curve.capacity_usd, 50)
    np.testing.assert_allclose(
        curve.real_income_usd(xs), loop.income_usd(xs, **kw), rtol=1e-9, atol=1e-6
    )
    if curve.capacity_usd > 1e3:
        # our own debt raises the borrow rate: the average APR falls with size
        small, big = curve.apr(np.array([1.0, curve.capacity_usd]))
        assert big <= small + 1e-12
    pickle.loads(pickle.dumps(curve))  # snapshots persist with the optimizer memory


@PROPS
@given(
    fee_apr=st.floats(0.0, 0.5),
    tvl=st.floats(1e6, 1e9),
    funding_8h=st.floats(-0.001, 0.001),
    sigma=st.floats(0.0, 1.5),
    k=st.floats(1.0, 10.0),
)
def test_hedged_lp_curve(
    fee_apr: float, tvl: float, funding_8h: float, sigma: float, k: float
) -> None:
    funding = hedged_lp.annual_funding_rate(funding_8h)
    curve = HedgedLpCurve(
        annual_fees_usd=fee_apr * tvl,
        tvl_others_usd=tvl,
        funding_apr=funding,
        sigma_annual=sigma,
        perp_leverage=k,
        rebalance_days=1.0,
        taker_fee=0.0005,
    )
    assert_concave_non_decreasing(curve, 1e8)
    if 0 < curve.capacity_usd < 1e15:
        x = min(curve.capacity_usd, 1e9) / 2
        assert curve.real_income_usd(np.array([x]))[0] == hedged_lp.income_usd(
            x,
            annual_fees_usd=fee_apr * tvl,
            tvl_others_usd=tvl,
            funding_apr=funding,
            sigma_annual=sigma,
            perp_leverage=k,
        )
    if curve.carry <= 0 and curve.capacity_usd > 0:
        # our liquidity dilutes the fees: the average APR falls with size
        a, b = curve.apr(np.array([1.0, min(curve.capacity_usd, 1e10)]))
        assert b <= a + 1e-12


@PROPS
@given(
    floor_usd=st.floats(1e3, 1e5),
    rent=st.floats(1e-4, 0.05),
    demand=st.floats(0.0, 500.0),
    listed=st.floats(0.0, 500.0),
    nfts=st.floats(1.0, 200.0),
)
def test_nft_rental_curve(
    floor_usd: float, rent: float, demand: float, listed: float, nfts: float
) -> None:
    curve = NftRentalCurve(
        floor_usd=floor_usd,
        daily_rent_eth=rent,
        eth_usd=2000.0,
        demand_nft_days_per_day=demand,
        listed_others=listed,
        capacity_usd=nfts * floor_usd,
    )
    assert_concave_non_decreasing(curve, 1e7)
    if curve.capacity_usd > 0:
        # our listings lower the occupancy: the average APR never rises with size
        a, b = curve.apr(np.array([floor_usd * 0.01, curve.capacity_usd]))
        assert b <= a + 1e-12
        assert curve.real_income_usd(np.array([floor_usd]))[0] == nft_rental.income_usd(
            floor_usd,
            floor_usd=floor_usd,
            daily_rent_eth=rent,
            eth_usd=2000.0,
            demand_nft_days_per_day=demand,
            listed_others=listed,
        )
