"""Hedged LP math: a constant-product stable/ETH LP position whose ETH exposure is shorted on a
perpetual future and re-hedged at discrete intervals.

Pure functions, no I/O. Rates are annual decimals.

Capital split: ``x`` USD buys LP worth ``V`` and posts perp margin ``M = N / k`` for a short of
notional ``N = V / 2`` (a v2 LP holds half its value in ETH: delta ``V / 2``) at leverage ``k``:
``V + V / (2k) = x``, so ``V = a x`` with ``a = 1 / (1 + 1 / (2k))`` (:func:`lp_share`).

Annual income of the whole position (:func:`income_usd`):

``fees(V) + f N - (σ²/8) V - c_reb V``

- ``fees(V) = F V / (T + V)``: the pool's annual fees ``F`` (volume x fee x 365) shared with the
  other LPs' ``T`` (``uniswap.fee_income_after_deposit_usd``): our liquidity dilutes the fee APR.
- ``f N``: funding. On a perpetual, longs pay shorts when the funding rate is positive; the short
  hedge *receives* ``f N`` (``f`` annualised: Binance settles every 8 h, ``f = rate_8h x 3 x 365``,
  :func:`annual_funding_rate`); a negative rate (a "funding flip") makes the hedge pay.
- ``(σ²/8) V``: what the hedge cannot remove. A delta hedge cancels the LP's first-order ETH
  exposure, not its convexity: between rebalances the hedged position loses
  ``V (√r - 1 - (r - 1)/2) ≈ -V (ln r)² / 8``, whose expectation per year is ``σ²/8`` of ``V``
  whatever the rebalance interval (the LVR rate of Milionis et al. 2022, protocol_math.md §4.1).
- ``c_reb V``: re-hedging costs. The hedge quantity of a v2 LP moves as ``√r``, so a rebalance
  after a move ``r`` trades ``(V/4) |ln r|`` notional; with ``E|ln r| = σ √Δt √(2/π)`` and
  ``1/Δt`` rebalances a year, ``c_reb = taker_fee σ √(2/π) / (4 √Δt)``
  (:func:`rebalance_cost_apr`).

Residual risk (:func:`residual_std_apr`): the unhedged LP carries ``σ/2`` of ETH price risk a
year; hedged every ``Δt`` the residual is the gamma term, per interval ``-(V/8) (ln r)²`` with
standard deviation ``√2 σ² Δt / 8``, over a year ``√2 σ² √Δt / 8`` of ``V``: ETH at σ = 0.65
re-hedged daily leaves 0.39 % a year instead of 32.5 %.

Sources: Binance USD-M futures ``GET /fapi/v1/fundingRate`` (fields ``symbol``, ``fundingTime``
in ms, ``fundingRate`` as a decimal string per 8 h interval, ``markPrice``) and
``GET /fapi/v1/premiumIndex`` (``lastFundingRate``, ``nextFundingTime``, ``interestRate``), the
funding rule "positive rate: longs pay shorts" (Binance futures funding FAQ); taker fee 0.05 % at
the base tier; Uniswap v2 LP math ``protocols.uniswap`` (protocol_math.md §4.1).
"""

from __future__ import annotations

import math

import numpy as np

from protocols._checks import FloatOrArray, as_float_array, finite, non_negative, out, positive

FUNDING_INTERVALS_PER_DAY_8H = 3
DAYS_PER_YEAR = 365
BINANCE_TAKER_FEE = 0.0005  # USD-M futures, base tier (VIP 0), no BNB discount


def annual_funding_rate(rate_per_interval: float, interval_hours: float = 8.0) -> float:
    """A funding rate per settlement interval as an annual rate: ``rate x (24 / hours) x 365``.

    Binance's default 0.01 % per 8 h: 0.0001 x 3 x 365 = 10.95 % a year."""
    r = finite("rate_per_interval", rate_per_interval)
    return r * (24.0 / positive("interval_hours", interval_hours)) * DAYS_PER_YEAR


def lp_share(perp_leverage: float) -> float:
    """``a = 1 / (1 + 1/(2k))``: the part of the capital that is LP; the rest is perp margin for a
    short of half the LP's value at leverage ``k``. k = 3: 0.857."""
    k = positive("perp_leverage", perp_leverage)
    return 1.0 / (1.0 + 1.0 / (2.0 * k))


def rebalance_cost_apr(sigma_annual: float, rebalance_days: float, taker_fee: float) -> float:
    """``c_reb = taker_fee σ √(2/π) / (4 √Δt)`` (Δt in years), per unit of LP value.

    σ = 0.65, daily, 0.05 % taker: 0.0005 x 0.65 x 0.798 / (4 x 0.0523) = 0.124 % a year."""
    s = non_negative("sigma_annual", sigma_annual)
    dt = positive("rebalance_days", rebalance_days) / DAYS_PER_YEAR
    return (
        non_negative("taker_fee", taker_fee) * s * math.sqrt(2.0 / math.pi) / (4.0 * math.sqrt(dt))
    )


def residual_std_apr(sigma_annual: float, rebalance_days: float) -> float:
    """Annual standard deviation of the hedged LP's residual P&L per unit of LP value:
    ``√2 σ² √Δt / 8``. σ = 0.65, daily: 0.39 %."""
    s = non_negative("sigma_annual", sigma_annual)
    dt = positive("rebalance_days", rebalance_days) / DAYS_PER_YEAR
    return math.sqrt(2.0) * s * s * math.sqrt(dt) / 8.0


def unhedged_std_apr(sigma_annual: float) -> float:
    """Annual ETH price risk of an unhedged v2 LP per unit of value: its delta is half, ``σ/2``."""
    return non_negative("sigma_annual", sigma_annual) / 2.0


def carry_apr(
    funding_apr: float, sigma_annual: float, rebalance_days: float, taker_fee: float
) -> float:
    """The part of the hedged LP's return per unit of LP value that does not depend on our size:
    ``f / 2 - σ²/8 - c_reb`` (funding on a short of half the LP, minus LVR, minus re-hedging)."""
    s = non_negative("sigma_annual", sigma_annual)
    return (
        finite("funding_apr", funding_apr) / 2.0
        - s * s / 8.0
        - rebalance_cost_apr(s, rebalance_days, taker_fee)
    )


def income_usd(
    x_usd: FloatOrArray,
    *,
    annual_fees_usd: float,
    tvl_others_usd: float,
    funding_apr: float,
    sigma_annual: float,
    perp_leverage: float,
    rebalance_days: float = 1.0,
    taker_fee: float = BINANCE_TAKER_FEE,
) -> FloatOrArray:
    """Annual USD income of ``x`` USD in the hedged LP: ``F V / (T + V) + carry V`` with
    ``V = a x`` (:func:`lp_share`, :func:`carry_apr`). Concave in ``x`` (a diluted flow plus a
    linear term); non-decreasing up to its peak ``V* = sqrt(F T / -carry) - T`` when carry < 0.

    Example: a $200M pool earning $36.5M of fees a year (fee APR 18.25 %), σ = 0.65 (LVR 5.28 %),
    funding 10.95 % (0.01 % / 8 h), k = 3, daily re-hedge: $1M earns
    0.857 x (18.25 % x 200/200.857 + 5.475 % - 5.28 % - 0.124 %) ≈ 15.6 % a year."""
    x, scalar = as_float_array("x_usd", x_usd)
    v = np.maximum(x, 0.0) * lp_share(perp_leverage)
    f = non_negative("annual_fees_usd", annual_fees_usd)
    t = max(non_negative("tvl_others_usd", tvl_others_usd), 1.0)
    carry = carry_apr(funding_apr, sigma_annual, rebalance_days, taker_fee)
    return out(f * v / (t + v) + carry * v, scalar)


def peak_lp_value_usd(annual_fees_usd: float, tvl_others_usd: float, carry: float) -> float:
    """Where the income stops growing: ``d/dV [F V/(T+V)] = F T/(T+V)² = -carry``, so
    ``V* = sqrt(F T / -carry) - T``; ``inf`` for a non-negative carry, 0 if fees never beat it."""
    f = non_negative("annual_fees_usd", annual_fees_usd)
    t = max(non_negative("tvl_others_usd", tvl_others_usd), 1.0)
    c = finite("carry", carry)
    if c >= 0:
        return math.inf if f > 0 or c > 0 else 0.0
    if f / t <= -c:
        return 0.0
    return math.sqrt(f * t / -c) - t


def perp_liquidation_move(perp_leverage: float, maintenance_margin: float = 0.005) -> float:
    """How far ETH may rise before an un-rebalanced short's margin is gone: the short of notional
    ``N`` with margin ``N / k`` is liquidated when ``N (r - 1) >= N/k - mm N r``, i.e. at
    ``r* = (1 + 1/k) / (1 + mm)``; the move is ``r* - 1`` (k = 3: +32.7 %). The LP gains as ETH
    rises, so re-hedging moves that gain to the margin before this is reached."""
    k = positive("perp_leverage", perp_leverage)
    mm = non_negative("maintenance_margin", maintenance_margin)
    return (1.0 + 1.0 / k) / (1.0 + mm) - 1.0
