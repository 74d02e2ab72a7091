"""Yield curves by venue kind, built with ``protocols/`` math from a venue's state *without us*.

Every curve answers "expected annual USD income if we held ``x`` USD there in total", so the
pool amounts it is built from must exclude our current position (the adapters subtract it).
All curves are concave and non-decreasing on ``[0, capacity_usd]`` and flat beyond it
(``income(x) = income(min(x, capacity_usd))``), real yield and emission yield kept apart.

Where the exact income is not concave the curve is its concave envelope
(:class:`adapters.envelope.EnvelopeCurve`, re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from adapters.envelope import (
    SECONDS_PER_YEAR,
    EnvelopeCurve,
    Vector,
    _as_array,
    diluted_income_usd,
)
from core.types import YieldCurve
from protocols import aave, compound, uniswap

__all__ = [
    "SECONDS_PER_YEAR",
    "AaveSupplyIncome",
    "BridgeArbIncome",
    "CometSupplyIncome",
    "DilutedCurve",
    "DilutedFlow",
    "EnvelopeCurve",
    "FlatCurve",
    "LpCurve",
    "aave_lending_curve",
    "bridge_arb_curve",
    "comet_lending_curve",
    "diluted_income_usd",
]


@dataclass(frozen=True, slots=True)
class DilutedFlow:
    """``flow * x / (others + x)``: a pool-wide annual flow split pro rata."""

    flow_usd_per_year: float
    others_usd: float

    def __call__(self, x: Vector) -> Vector:
        return diluted_income_usd(x, self.flow_usd_per_year, self.others_usd)


@dataclass(frozen=True, slots=True)
class AaveSupplyIncome:
    """``x * aave.supply_apr_after_deposit(strategy, debt, liquidity, x)``."""

    strategy: aave.AaveRateStrategy
    debt_usd: float
    liquidity_usd: float

    def __call__(self, x: Vector) -> Vector:
        apr = aave.supply_apr_after_deposit(self.strategy, self.debt_usd, self.liquidity_usd, x)
        return x * np.asarray(apr, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CometSupplyIncome:
    """``x * compound.comet_supply_apr_after_deposit(curve, borrow, supply, x)``."""

    curve: compound.CometCurve
    borrow_usd: float
    supply_usd: float

    def __call__(self, x: Vector) -> Vector:
        apr = compound.comet_supply_apr_after_deposit(
            self.curve, self.borrow_usd, self.supply_usd, x
        )
        return x * np.asarray(apr, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class BridgeArbIncome:
    """``N * sum_j w_j max(0, q_j (s_j (1 - q_j/2C) - fee) - gas) / n``, ``q_j = min(x, q*_j)``,
    ``q*_j = C (1 - fee/s_j)``: the mean over ``n`` gaps a round may meet, of which the paying ones
    are ``s_j`` with multiplicity ``w_j``; vectorised over positions
    (``protocols.across.arb_income_per_year_usd`` is the scalar original for one gap)."""

    spreads: tuple[float, ...]
    weights: tuple[float, ...]
    samples: float
    fee_pct: float
    gas_usd: float
    capacity_usd: float
    round_trips_per_year: float

    def __call__(self, x: Vector) -> Vector:
        c = self.capacity_usd
        s = np.asarray(self.spreads, dtype=np.float64)
        xs = np.asarray(x, dtype=np.float64)
        if s.size == 0:
            return np.zeros_like(xs)
        # the arbitrageur stops where the marginal gap meets the fee
        q_star = c * (1.0 - self.fee_pct / s)
        q = np.minimum(np.maximum(xs, 0.0)[..., None], q_star)
        profit = q * (s * (1.0 - q / (2.0 * c)) - self.fee_pct) - self.gas_usd
        paid = np.where(q > 0.0, np.maximum(profit, 0.0), 0.0)
        return self.round_trips_per_year * (paid @ np.asarray(self.weights)) / self.samples


def _paying_gaps(
    spreads: tuple[float, ...], fee_pct: float, bins: int = 24
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The gaps above the fee, compressed to at most ``bins`` equal-count bins at their means.

    Below each ``q*`` a round's profit is linear in the gap, so a bin's mean gap earns its members'
    mean income there; gaps at or below the fee earn nothing and only count in the denominator."""
    paying = np.sort(np.asarray([v for v in spreads if v > fee_pct], dtype=np.float64))
    if paying.size <= bins:
        return tuple(paying.tolist()), (1.0,) * int(paying.size)
    groups = np.array_split(paying, bins)
    return tuple(float(g.mean()) for g in groups), tuple(float(g.size) for g in groups)


def _zero(x: Vector) -> Vector:
    return np.zeros_like(np.asarray(x, dtype=np.float64))


# --- lending -----------------------------------------------------------------------------------------


def aave_lending_curve(
    strategy: aave.AaveRateStrategy,
    total_debt_usd: float,
    available_liquidity_usd: float,
    *,
    supply_room_usd: float = math.inf,
    emission_usd_per_year: float = 0.0,
) -> EnvelopeCurve:
    """Aave v3 supply: ``real(x) = x * supply_apr_after_deposit(strategy, D, L, x)`` where ``D`` is
    the debt and ``L`` the available liquidity *without us*: our deposit adds liquidity, lowers
    ``U = D / (L + D + x)`` and with it the rate ``R_s = R_b(U) U (1 - RF)`` every supplier earns
    (protocol_math.md §1.1). Emissions: ``E * x / (D + L + x)``, the incentive APR
    ``emission * P_reward * SPY / (supply * P_asset)`` diluted by our share of supply (§1.4).
    ``supply_room_usd`` is what the supply cap leaves for us (total supply cap minus others).
    """
    debt, liquidity = float(total_debt_usd), float(available_liquidity_usd)
    others = debt + liquidity
    kink = debt / strategy.optimal_usage_ratio - others if debt > 0 else 0.0
    return EnvelopeCurve(
        AaveSupplyIncome(strategy, debt, liquidity),
        domain_usd=max(8.0 * others, 1.0),
        cap_usd=supply_room_usd,
        breakpoints=(kink,),
        exact_emission=DilutedFlow(emission_usd_per_year, others)
        if emission_usd_per_year > 0
        else None,
    )


def comet_lending_curve(
    curve: compound.CometCurve,
    total_borrow_usd: float,
    total_supply_usd: float,
    *,
    supply_room_usd: float = math.inf,
    emission_usd_per_year: float = 0.0,
) -> EnvelopeCurve:
    """Compound v3 supply: ``real(x) = x * supplyRate(B / (S + x))`` with ``B``, ``S`` the borrow
    and supply *without us* (``comet_supply_apr_after_deposit``, protocol_math.md §2.2).
    Emissions: ``COMP/s * SPY * P_COMP * x / (S + x)`` (``baseTrackingSupplySpeed`` split pro rata)."""
    borrow, supply = float(total_borrow_usd), float(total_supply_usd)
    kink = borrow / curve.supply_kink - supply if borrow > 0 else 0.0
    return EnvelopeCurve(
        CometSupplyIncome(curve, borrow, supply),
        domain_usd=max(8.0 * supply, 1.0),
        cap_usd=supply_room_usd,
        breakpoints=(kink,),
        exact_emission=DilutedFlow(emission_usd_per_year, supply)
        if emission_usd_per_year > 0
        else None,
    )


# --- flat: staking and fixed products ----------------------------------------------------------------


class FlatCurve(YieldCurve):
    """``real(x) = apr * min(x, capacity)``: a rate that does not depend on our size (Lido's
    staking APR net of the protocol fee; a custodial product's flat APR up to its quota; an LST
    whose rewards are pro rata to stake). ``emission_apr`` likewise, kept apart."""

    def __init__(
        self, apr: float, capacity_usd: float = math.inf, emission_apr: float = 0.0
    ) -> None:
        if not math.isfinite(apr) or not math.isfinite(emission_apr):
            raise ValueError(f"apr and emission_apr must be finite, got {apr!r}, {emission_apr!r}")
        self.apr_value = max(apr, 0.0)
        self.emission_apr = max(emission_apr, 0.0)
        self.capacity_usd = capacity_usd if self.apr_value > 0 or self.emission_apr > 0 else 0.0

    def real_income_usd(self, x_usd: Vector) -> Vector:
        return self.apr_value * np.clip(_as_array(x_usd), 0.0, self.capacity_usd)

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        return self.emission_apr * np.clip(_as_array(x_usd), 0.0, self.capacity_usd)


# --- LP -------------------------------------------------------------------------------------------------


class LpCurve(YieldCurve):
    """Constant-product LP: fees diluted by our share of TVL minus expected impermanent loss.

    ``real(x) = fee_income_after_deposit(x, volume, TVL_others, fee) - sigma^2/8 * x``: fee APR
    ``volume * fee * 365 / TVL`` (DefiLlama ``apyBase``) with our share ``x / (TVL + x)``
    (``uniswap.fee_income_after_deposit_usd``), minus the LVR / expected-IL rate ``sigma^2 / 8``
    (``uniswap.lvr_apr``, Milionis et al. 2022). Emissions ``E * x / (TVL + x)``.
    Concave; it peaks where the diluted marginal fee APR ``A T / (T + x)^2`` equals ``sigma^2/8``,
    at ``x* = sqrt(A T / il) - T``, which is the capacity (0 when fees never beat the loss).
    """

    def __init__(
        self,
        volume_usd_1d: float,
        fee: float,
        tvl_others_usd: float,
        sigma_annual: float,
        emission_usd_per_year: float = 0.0,
    ) -> None:
        self.volume_usd_1d = volume_usd_1d
        self.fee = fee
        self.tvl_others_usd = max(tvl_others_usd, 1.0)  # an empty pool: we would be all of it
        self.il_apr = uniswap.lvr_apr(sigma_annual)
        self.emission_usd_per_year = emission_usd_per_year
        annual_fees = volume_usd_1d * fee * uniswap.DAYS_PER_YEAR
        t = self.tvl_others_usd
        if self.il_apr <= 0.0:
            self.capacity_usd = math.inf if annual_fees > 0 else 0.0
        elif annual_fees / t <= self.il_apr:
            self.capacity_usd = 0.0
        else:
            self.capacity_usd = math.sqrt(annual_fees * t / self.il_apr) - t
        self._annual_fees = annual_fees

    def exact_real_income_usd(self, x_usd: ArrayLike) -> Vector:
        x = np.maximum(_as_array(x_usd), 0.0)
        return diluted_income_usd(x, self._annual_fees, self.tvl_others_usd) - self.il_apr * x

    def real_income_usd(self, x_usd: Vector) -> Vector:
        return self.exact_real_income_usd(np.clip(_as_array(x_usd), 0.0, self.capacity_usd))

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(_as_array(x_usd), 0.0, self.capacity_usd)
        return diluted_income_usd(x, self.emission_usd_per_year, self.tvl_others_usd)


class DilutedCurve(YieldCurve):
    """A pool-wide annual flow split pro rata (DefiLlama lending rows, where the borrow curve is
    unknown: borrowers' interest stays what it is, our deposit dilutes everyone's share):
    ``real(x) = I * x / (T + x)`` with ``I`` the pool's annual interest (its APR times its TVL as
    the feed shows it, our position included) and ``T`` the TVL without us; emissions likewise.
    Concave, increasing; at ``x`` = our current position it pays the feed's APR."""

    def __init__(
        self,
        real_usd_per_year: float,
        tvl_others_usd: float,
        emission_usd_per_year: float = 0.0,
        capacity_usd: float = math.inf,
    ) -> None:
        self.tvl_others_usd = max(tvl_others_usd, 1.0)
        self.real_usd_per_year = max(real_usd_per_year, 0.0)
        self.emission_usd_per_year = max(emission_usd_per_year, 0.0)
        self.capacity_usd = capacity_usd

    def real_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(_as_array(x_usd), 0.0, self.capacity_usd)
        return diluted_income_usd(x, self.real_usd_per_year, self.tvl_others_usd)

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(_as_array(x_usd), 0.0, self.capacity_usd)
        return diluted_income_usd(x, self.emission_usd_per_year, self.tvl_others_usd)


# --- bridge arbitrage -----------------------------------------------------------------------------------


def bridge_arb_curve(
    spread: float | tuple[float, ...],
    fee_pct: float,
    gas_usd: float,
    route_capacity_usd: float,
    round_trips_per_year: float,
) -> EnvelopeCurve:
    """Bridge arbitrage inventory: ``real(x) = N * mean_j max(0, q_j (s_j (1 - q_j / 2C) - fee) - gas)``
    with ``q_j = min(x, q*_j)`` (``across.arb_income_per_year_usd``): the price gap ``s`` shrinks
    linearly as the trade closes it and the trade stops at ``q* = C (1 - fee/s)``; fees ``fee``
    (LP + capital, ``totalRelayFee`` minus gas) are proportional, ``gas`` is per round, ``C`` is the
    route's instant limit and ``N`` the round trips per year.

    ``spread`` is one gap, or the gaps the rounds are expected to meet (e.g. the recent hourly
    history): a gap mean-reverts within hours while a position is held for weeks, so the expected
    income is the mean over the gap's distribution, not the income at today's gap. Its concave
    envelope bridges, with a chord, the start where a round does not yet pay its gas.

    ``real`` is the vectorised form of ``protocols.across.arb_income_per_year_usd`` (a scalar
    function; the grid and refinements evaluate thousands of points per curve). The property
    tests check the two agree at sampled points."""
    spreads = (
        (float(spread),) if isinstance(spread, (int, float)) else tuple(float(v) for v in spread)
    )
    c = float(route_capacity_usd)
    paying, weights = _paying_gaps(spreads, fee_pct)
    if c <= 0.0 or not paying or round_trips_per_year <= 0.0:
        return EnvelopeCurve(_zero, domain_usd=0.0)
    real = BridgeArbIncome(
        paying, weights, float(len(spreads)), fee_pct, gas_usd, c, round_trips_per_year
    )
    bends = set()
    for s in paying:
        bends.add(c * (1.0 - fee_pct / s))  # where this gap's round stops growing
        # where its round's profit crosses zero: q^2 s/2C - q (s - fee) + gas = 0
        a, b = s / (2.0 * c), -(s - fee_pct)
        disc = b * b - 4.0 * a * gas_usd
        if disc > 0:
            bends.add((-b - math.sqrt(disc)) / (2.0 * a))
    return EnvelopeCurve(
        real, domain_usd=c, breakpoints=tuple(sorted(v for v in bends if 0.0 < v < c))
    )
