"""Uniswap v2/v3 math: constant-product swaps, LP fee APR, impermanent loss, LVR, v3 capital efficiency.

Pure functions, no I/O. Rates are annual decimals. Sources (``reference/protocol_math.md`` §4):

- swap and 0.30 % fee: ``Uniswap/v2-core : contracts/UniswapV2Pair.sol`` (``swap`` invariant),
  ``Uniswap/v2-periphery : contracts/libraries/UniswapV2Library.sol`` (``getAmountOut``)
- fee APR: ``DefiLlama/yield-server : src/adaptors/utils.js`` (``exports.apy``)
- IL and its GBM expectation: derived in §4.1 (checked by Monte Carlo there and in the tests)
- LVR: Milionis, Moallemi, Roughgarden, Zhang, arXiv:2208.06046
- v3 amounts and capital efficiency: ``Uniswap/v3-periphery : contracts/libraries/LiquidityAmounts.sol``, §4.2
"""

from __future__ import annotations

import math

import numpy as np

from protocols._checks import finite as _finite
from protocols._checks import non_negative as _non_negative
from protocols._checks import positive as _positive

V2_FEE = 0.003  # 0.30 % of the input, all to LPs while the protocol fee switch is off
DAYS_PER_YEAR = 365


def _fee(fee: float) -> float:
    f = _finite("fee", fee)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"fee must be in [0, 1), got {fee!r}")
    return f


def get_amount_out(
    amount_in: float, reserve_in: float, reserve_out: float, fee: float = V2_FEE
) -> float:
    """Output of a constant-product swap with the input fee (UniswapV2Library.getAmountOut):

    ``out = in*(1-fee) * R_out / (R_in + in*(1-fee))``; with fee 0.003 this is the contract's
    ``(x*1000 - 3*dx) * y ... >= x*y*1000^2`` invariant solved for the output (real numbers,
    no integer truncation). ValueError on non-positive reserves or a negative input.
    """
    a = _non_negative("amount_in", amount_in)
    rin = _positive("reserve_in", reserve_in)
    rout = _positive("reserve_out", reserve_out)
    a_fee = a * (1.0 - _fee(fee))
    return a_fee * rout / (rin + a_fee)


def get_amount_in(
    amount_out: float, reserve_in: float, reserve_out: float, fee: float = V2_FEE
) -> float:
    """Input needed for ``amount_out`` (UniswapV2Library.getAmountIn, real-valued):

    ``in = R_in * out / ((R_out - out) * (1 - fee))``. ValueError if ``amount_out >= reserve_out``.
    """
    out = _non_negative("amount_out", amount_out)
    rin = _positive("reserve_in", reserve_in)
    rout = _positive("reserve_out", reserve_out)
    if out >= rout:
        raise ValueError(f"amount_out {out!r} must be below reserve_out {rout!r}")
    return rin * out / ((rout - out) * (1.0 - _fee(fee)))


def single_sided_entry_cost_fraction(
    amount_usd: float, pool_tvl_usd: float, fee: float = V2_FEE
) -> float:
    """Share of a one-token deposit lost to swapping half into the other token first (a "zap").

    Half of ``amount`` is swapped through the pool, whose input-side reserve is ``TVL/2``; the
    loss is the fee plus price impact against the spot value:
    ``cost = (a/2 - out_value) / a`` with ``out_value = getAmountOut(a/2, TVL/2, TVL/2)`` in USD.
    Tends to ``fee/2`` (15 bp for v2) for small deposits. **(derived)**
    """
    a = _positive("amount_usd", amount_usd)
    tvl = _positive("pool_tvl_usd", pool_tvl_usd)
    half = a / 2.0
    out_value = get_amount_out(half, tvl / 2.0, tvl / 2.0, fee)
    return (half - out_value) / a


def single_sided_exit_cost_fraction(
    amount_usd: float, pool_tvl_usd: float, fee: float = V2_FEE
) -> float:
    """Share of a withdrawal of ``amount`` USD of LP value lost to swapping the volatile half back
    into the stablecoin (a "zap out"). Burning the LP share returns ``a/2`` of each token and leaves
    reserves of ``(TVL - a)/2`` each; the volatile half is then swapped through that pool:
    ``cost = (a/2 - getAmountOut(a/2, (TVL-a)/2, (TVL-a)/2)) / a``. Tends to ``fee/2`` for small
    withdrawals; ValueError unless ``0 < amount < TVL``. **(derived)** from :func:`get_amount_out`.
    """
    a = _positive("amount_usd", amount_usd)
    tvl = _positive("pool_tvl_usd", pool_tvl_usd)
    if a >= tvl:
        raise ValueError(f"amount_usd {a!r} must be below pool_tvl_usd {tvl!r}")
    half = a / 2.0
    left = (tvl - a) / 2.0
    return (half - get_amount_out(half, left, left, fee)) / a


def zap_cost_usd(
    amount_usd: np.ndarray, pool_tvl_usd: np.ndarray, fee: np.ndarray, *, exit: bool
) -> np.ndarray:
    """USD lost by zaps of ``amount`` into (``exit=False``) or out of (``exit=True``) pools, element
    by element: ``amount * single_sided_entry_cost_fraction`` or
    ``amount * single_sided_exit_cost_fraction`` in NumPy (the same formulas, no validation per
    element: an amount <= 0 costs 0; an exit of the whole pool or more costs half of it, the
    limit of the formula). Convex in the amount: ``a/2 - out(a/2)`` with ``out`` concave in its
    input (and, out of the pool, reserves that shrink with ``a``)."""
    a = np.maximum(np.asarray(amount_usd, dtype=np.float64), 0.0)
    tvl = np.maximum(np.asarray(pool_tvl_usd, dtype=np.float64), 0.0)
    f = np.asarray(fee, dtype=np.float64)
    half = a / 2.0
    reserve = np.maximum(tvl - a, 0.0) / 2.0 if exit else tvl / 2.0
    a_fee = half * (1.0 - f)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(reserve + a_fee > 0, a_fee * reserve / (reserve + a_fee), 0.0)
    return np.where(a > 0, half - out, 0.0)


def fee_apr(volume_usd_1d: float, tvl_usd: float, fee: float = V2_FEE) -> float:
    """LP fee APR as DefiLlama computes ``apyBase`` (a simple APR): ``volume_24h * fee * 365 / TVL``.

    Source: ``DefiLlama/yield-server : src/adaptors/utils.js`` (feeTier 3000 ppm for v2 forks).
    """
    v = _non_negative("volume_usd_1d", volume_usd_1d)
    tvl = _positive("tvl_usd", tvl_usd)
    return v * _fee(fee) * DAYS_PER_YEAR / tvl


def fee_apr_7d(volume_usd_7d: float, tvl_usd: float, fee: float = V2_FEE) -> float:
    """DefiLlama ``apyBase7d``: ``volume_7d * fee * 52 / TVL``. Source: as :func:`fee_apr`."""
    v = _non_negative("volume_usd_7d", volume_usd_7d)
    tvl = _positive("tvl_usd", tvl_usd)
    return v * _fee(fee) * 52 / tvl


def fee_income_after_deposit_usd(
    deposit_usd: float, volume_usd_1d: float, tvl_usd: float, fee: float = V2_FEE
) -> float:
    """Annual fee income of a new ``x`` USD position, which dilutes everyone's share of the fees:

    ``income(x) = x * volume * fee * 365 / (TVL + x)`` (concave, increasing, -> volume*fee*365).
    **(derived)** from :func:`fee_apr` with the position's share ``x / (TVL + x)``.
    """
    x = _non_negative("deposit_usd", deposit_usd)
    v = _non_negative("volume_usd_1d", volume_usd_1d)
    tvl = _non_negative("tvl_usd", tvl_usd)
    if tvl + x == 0.0:
        return 0.0
    return x * v * _fee(fee) * DAYS_PER_YEAR / (tvl + x)


def impermanent_loss(price_ratio: float) -> float:
    """IL of a 50/50 constant-product position against holding, for ``r = P1/P0``:

    ``IL(r) = 2*sqrt(r)/(1+r) - 1`` (``V_LP/V_HODL - 1``; -20 % at r = 4, -5.72 % at r = 2).
    Source: protocol_math.md §4.1. ValueError unless r > 0.
    """
    r = _positive("price_ratio", price_ratio)
    return 2.0 * math.sqrt(r) / (1.0 + r) - 1.0


def lp_value_ratio(price_ratio: float) -> float:
    """``V_LP(t) / V_LP(0) = sqrt(r)`` for a constant-product position (no fees). Source: §4.1."""
    return math.sqrt(_positive("price_ratio", price_ratio))


def expected_lp_to_hodl_ratio(sigma_annual: float, t_years: float) -> float:
    """``E[V_LP]/E[V_HODL] = E[sqrt r] = exp(-sigma^2 t / 8)`` for a martingale GBM price
    (``ln r ~ N(-sigma^2 t/2, sigma^2 t)``). Exact under that model; derived in §4.1 and checked
    there by a 2M-path Monte Carlo (0.92312 at sigma 0.8, t 1)."""
    s = _non_negative("sigma_annual", sigma_annual)
    t = _non_negative("t_years", t_years)
    return math.exp(-s * s * t / 8.0)


def expected_impermanent_loss(sigma_annual: float, t_years: float) -> float:
    """Expected relative loss of the LP against holding: ``exp(-sigma^2 t/8) - 1 ~= -sigma^2 t / 8``."""
    return expected_lp_to_hodl_ratio(sigma_annual, t_years) - 1.0


def lvr_apr(sigma_annual: float) -> float:
    """Loss-versus-rebalancing rate of a constant-product pool: ``sigma^2 / 8`` of pool value per year.

    Source: Milionis et al., arXiv:2208.06046 (protocol_math.md §4.1). Net LP drift ~ feeAPR - LVR.
    """
    s = _non_negative("sigma_annual", sigma_annual)
    return s * s / 8.0


def v3_capital_efficiency(price: float, lower_price: float, upper_price: float) -> float:
    """Capital needed by a v2 position over that of a v3 position in ``[pa, pb]`` with the same L:

    ``CE = 1 / (1 - (sqrt(pa/P) + sqrt(P/pb)) / 2)``, valid for ``pa < P < pb``. Fees and, in range,
    IL scale by CE. Source: ``Uniswap/v3-periphery : LiquidityAmounts.sol`` amounts, derived in §4.2.
    ValueError unless 0 < pa < P < pb.
    """
    p = _positive("price", price)
    pa = _positive("lower_price", lower_price)
    pb = _positive("upper_price", upper_price)
    if not pa < p < pb:
        raise ValueError(
            f"price must lie strictly inside (lower_price, upper_price), got {pa} < {p} < {pb} false"
        )
    return 1.0 / (1.0 - (math.sqrt(pa / p) + math.sqrt(p / pb)) / 2.0)


def v3_capital_efficiency_symmetric(k: float) -> float:
    """CE for the symmetric range ``[P/k, P*k]``: ``1 / (1 - k^(-1/2))`` (k=2 -> 3.41, k=4 -> 2.0).

    Source: §4.2 (derived). ValueError unless k > 1.
    """
    kk = _finite("k", k)
    if kk <= 1.0:
        raise ValueError(f"k must be > 1, got {k!r}")
    return 1.0 / (1.0 - kk**-0.5)


def v3_position_value(
    liquidity: float, price: float, lower_price: float, upper_price: float
) -> float:
    """Value in token1 of a v3 position with liquidity ``L`` on ``[pa, pb]`` at price ``P``
    (LiquidityAmounts.sol; whitepaper eqs. 6.29–6.30)::

        P < pa:        x = L (1/sqrt(pa) - 1/sqrt(pb)),  y = 0
        pa <= P <= pb: x = L (1/sqrt(P) - 1/sqrt(pb)),   y = L (sqrt(P) - sqrt(pa))
        P > pb:        x = 0,                             y = L (sqrt(pb) - sqrt(pa))
        V = x P + y
    """
    liq = _non_negative("liquidity", liquidity)
    p = _positive("price", price)
    pa = _positive("lower_price", lower_price)
    pb = _positive("upper_price", upper_price)
    if not pa < pb:
        raise ValueError(f"lower_price must be < upper_price, got {pa} >= {pb}")
    sp = math.sqrt(min(max(p, pa), pb))
    x = liq * (1.0 / sp - 1.0 / math.sqrt(pb))
    y = liq * (sp - math.sqrt(pa))
    return x * p + y
