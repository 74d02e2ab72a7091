"""Yield curves of the composite kinds, built with ``protocols/`` math from the venue's state
*without us* (same contract as :mod:`adapters.curves`: concave, non-decreasing on
``[0, capacity_usd]``, flat beyond, income at 0 is 0, our own size in the math).

- loop: ``x (L (s + r_c) - (L - 1) b(U(x)))`` with our debt in the WETH reserve's utilization
  (``protocols.loop.income_usd``); capacity where the reserve runs out of ETH to lend or where
  the income peaks (the borrow rate rising past the staking rate).
- hedged LP: ``F V/(T+V) + carry V``, ``V = a x`` (``protocols.hedged_lp.income_usd``): our
  liquidity dilutes the fee APR; capacity at the peak ``V*/a`` when the carry is negative.
- NFT rental: ``P_ETH 365 R n min(1, D/(S+n))``, ``n = x / P_floor``
  (``protocols.nft_rental.income_usd``): our listings lower the occupancy; capacity is what the
  collection's floor listings let us buy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adapters.curves import EnvelopeCurve
from core.types import YieldCurve
from protocols import aave, hedged_lp, loop, nft_rental

Vector = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoopIncome:
    """``protocols.loop.income_usd`` with its parameters bound (a picklable callable: snapshots,
    curves included, are persisted with the optimizer's memory)."""

    leverage: float
    staking_apr: float
    strategy: aave.AaveRateStrategy
    debt_others_eth: float
    supply_eth: float
    eth_usd: float
    collateral_supply_apr: float

    def __call__(self, x: Vector) -> Vector:
        return np.asarray(
            loop.income_usd(
                x,
                leverage=self.leverage,
                staking_apr=self.staking_apr,
                strategy=self.strategy,
                debt_others_eth=self.debt_others_eth,
                supply_eth=self.supply_eth,
                eth_usd=self.eth_usd,
                collateral_supply_apr=self.collateral_supply_apr,
            ),
            dtype=np.float64,
        )


def loop_curve(
    *,
    leverage: float,
    staking_apr: float,
    strategy: aave.AaveRateStrategy,
    debt_others_eth: float,
    supply_eth: float,
    eth_usd: float,
    collateral_supply_apr: float = 0.0,
    cap_usd: float = math.inf,
) -> EnvelopeCurve:
    """The loop's income as an :class:`EnvelopeCurve` (exact: it is concave); its domain ends where
    our debt would lift the reserve's utilization to 99 %."""
    room_eth = max(0.99 * supply_eth - debt_others_eth, 0.0)
    domain = room_eth * eth_usd / (leverage - 1.0) if leverage > 1.0 else cap_usd
    real = LoopIncome(
        leverage, staking_apr, strategy, debt_others_eth, supply_eth, eth_usd, collateral_supply_apr
    )
    kink_eth = strategy.optimal_usage_ratio * supply_eth - debt_others_eth
    kink = kink_eth * eth_usd / (leverage - 1.0) if leverage > 1.0 else math.inf
    top = min(domain, cap_usd)
    if not math.isfinite(top):
        top = 1e12
    return EnvelopeCurve(real, domain_usd=top, breakpoints=(kink,) if 0 < kink < top else ())


class HedgedLpCurve(YieldCurve):
    """``real(x) = F a x / (T + a x) + carry a x``; capacity at the income's peak
    (``hedged_lp.peak_lp_value_usd / a``), 0 when no size earns anything."""

    def __init__(
        self,
        *,
        annual_fees_usd: float,
        tvl_others_usd: float,
        funding_apr: float,
        sigma_annual: float,
        perp_leverage: float,
        rebalance_days: float,
        taker_fee: float,
        cap_usd: float = math.inf,
    ) -> None:
        self.kw = dict(
            annual_fees_usd=max(annual_fees_usd, 0.0),
            tvl_others_usd=max(tvl_others_usd, 1.0),
            funding_apr=funding_apr,
            sigma_annual=sigma_annual,
            perp_leverage=perp_leverage,
            rebalance_days=rebalance_days,
            taker_fee=taker_fee,
        )
        self.a = hedged_lp.lp_share(perp_leverage)
        self.carry = hedged_lp.carry_apr(funding_apr, sigma_annual, rebalance_days, taker_fee)
        peak_v = hedged_lp.peak_lp_value_usd(
            self.kw["annual_fees_usd"], self.kw["tvl_others_usd"], self.carry
        )
        self.capacity_usd = min(peak_v / self.a, cap_usd)

    def exact_real_income_usd(self, x_usd: ArrayLike) -> Vector:
        x = np.maximum(np.asarray(x_usd, dtype=np.float64), 0.0)
        return np.asarray(hedged_lp.income_usd(x, **self.kw), dtype=np.float64)

    def real_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(np.asarray(x_usd, dtype=np.float64), 0.0, self.capacity_usd)
        return self.exact_real_income_usd(x)


class NftRentalCurve(YieldCurve):
    """``real(x) = nft_rental.income_usd(x)`` up to ``capacity_usd`` (what can be bought)."""

    def __init__(
        self,
        *,
        floor_usd: float,
        daily_rent_eth: float,
        eth_usd: float,
        demand_nft_days_per_day: float,
        listed_others: float,
        capacity_usd: float,
    ) -> None:
        self.kw = dict(
            floor_usd=floor_usd,
            daily_rent_eth=daily_rent_eth,
            eth_usd=eth_usd,
            demand_nft_days_per_day=max(demand_nft_days_per_day, 0.0),
            listed_others=max(listed_others, 0.0),
        )
        earns = daily_rent_eth > 0 and demand_nft_days_per_day > 0
        self.capacity_usd = capacity_usd if earns else 0.0

    def exact_real_income_usd(self, x_usd: ArrayLike) -> Vector:
        x = np.maximum(np.asarray(x_usd, dtype=np.float64), 0.0)
        return np.asarray(nft_rental.income_usd(x, **self.kw), dtype=np.float64)

    def real_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(np.asarray(x_usd, dtype=np.float64), 0.0, self.capacity_usd)
        return self.exact_real_income_usd(x)
