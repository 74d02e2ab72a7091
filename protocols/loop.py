"""Staking-lending loop math: stETH supplied to Aave v3 in E-mode, ETH borrowed against it and
staked again, until the position holds ``L`` times its equity in stETH.

Pure functions, no I/O. Rates are annual decimals; prices are stETH/ETH (1.0 at par).

Position per unit of equity ``E`` (in ETH) at leverage ``L``: collateral ``C = L E / p`` stETH
(worth ``L E`` ETH at the price ``p``), debt ``D = (L - 1) E`` ETH.

- **Health factor** (Aave v3 ``GenericLogic.calculateUserAccountData``):
  ``HF = C p LT / D = L p LT / (L - 1)``, liquidation when ``HF < 1``.
- **Leverage from a target health factor** (solve the line above for ``L``):
  ``L = h / (h - p LT)`` for ``h > p LT``, capped by the borrowing limit ``D <= C p LTV``:
  ``L <= 1 / (1 - p LTV)``.
- **Net APR on equity**: ``r = L s + L r_c - (L - 1) b`` with ``s`` the staking APR (Lido's user
  APR, already net of its 10 % fee), ``r_c`` the supply APR the stETH collateral earns on Aave
  (near 0), ``b`` the ETH variable borrow APR. ``b`` follows the WETH reserve's rate curve and our
  own debt is part of its utilization: ``U = (D_others + (L - 1) x) / S`` (see
  :func:`borrow_apr_after_borrow`), so the loop's income is concave in its size.
- **Liquidation distance**: HF hits 1 at ``p* = (L - 1) / (L LT)``; the share the price can fall
  from ``p`` is ``1 - p*/p = 1 - 1/HF``.
- **Unwinding**: at once, by selling the stETH that repays the debt through the stETH/ETH pool
  (a flash-loan deleverage): cost ``(L - 1) (d + f)`` of equity, ``d = max(0, 1 - p)`` the
  discount and ``f`` the swap fee plus impact; or without selling, through Lido's withdrawal
  queue in rounds (:func:`queue_unwind_rounds`), each waiting the queue.

Sources:

- Aave v3 E-mode "ETH correlated" (category 1) on Ethereum: ``ltv`` 93 %, ``liquidationThreshold``
  95 %, ``liquidationBonus`` 1 % (``bgd-labs/aave-proposals-v3`` listing diffs, e.g. the
  Ethereum rsETH listing report: ``eMode.label ETH correlated | eMode.ltv 93 % |
  eMode.liquidationThreshold 95 % | eMode.liquidationBonus 1 %``).
- Health factor and liquidation: ``aave-dao/aave-v3-origin : src/contracts/protocol/libraries/logic/
  GenericLogic.sol`` (``healthFactor = totalCollateral * avgLiquidationThreshold / totalDebt``)
  and ``LiquidationLogic.sol`` (close factor 50 %, 100 % below HF 0.95; the liquidator receives
  the bonus on the collateral it seizes).
- WETH rate curve: ``protocols.aave.PRESETS["ethereum-weth-2026-02"]`` (protocol_math.md §1.3).
- Lido user APR: protocol_math.md §3.1-3.2 (about 2.6-3.1 % in 2025); withdrawal queue §3.3.
- Note: Aave v3 Ethereum prices wstETH by Lido's exchange rate (a CAPO adapter), not by the
  market stETH/ETH price, so a market discount alone does not liquidate there; it does on markets
  that price stETH by a market feed, and it always sets the cost of an instant unwind. This module
  takes ``p`` as whatever price the lending market's oracle uses.
"""

from __future__ import annotations

import math

import numpy as np

from protocols import aave
from protocols._checks import FloatOrArray, as_float_array, finite, non_negative, out, positive

#: Aave v3 Ethereum E-mode category 1 "ETH correlated" (see the module docstring)
EMODE_ETH_LTV = 0.93
EMODE_ETH_LIQUIDATION_THRESHOLD = 0.95
EMODE_ETH_LIQUIDATION_BONUS = 0.01
#: Aave v3 LiquidationLogic: at most this share of the debt is repaid per liquidation call above
#: ``CLOSE_FACTOR_HF_THRESHOLD``; below it, all of it
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 0.5
CLOSE_FACTOR_HF_THRESHOLD = 0.95


def _unit_open(name: str, value: float) -> float:
    v = finite(name, value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def max_leverage(ltv: float, price: float = 1.0) -> float:
    """The most leverage the borrowing limit allows: ``D <= C p LTV`` gives ``L <= 1 / (1 - p LTV)``.

    ``max_leverage(0.93) = 14.29``."""
    pl = _unit_open("ltv", ltv) * positive("price", price)
    if pl >= 1.0:
        return math.inf
    return 1.0 / (1.0 - pl)


def leverage_for_health_factor(
    target_health_factor: float, liquidation_threshold: float, ltv: float, price: float = 1.0
) -> float:
    """``L = h / (h - p LT)``, capped at :func:`max_leverage`; 1 (no loop) if ``h <= p LT`` is asked
    of a position that could not be opened at all (a health factor the threshold cannot give).

    E-mode ETH at par: HF 1.05 gives ``L = 1.05 / (1.05 - 0.95) = 10.5``; HF 1.10 gives 7.33."""
    h = positive("target_health_factor", target_health_factor)
    lt = _unit_open("liquidation_threshold", liquidation_threshold)
    p = positive("price", price)
    if h <= p * lt:
        raise ValueError(
            f"target_health_factor {h!r} must exceed price x liquidation_threshold {p * lt!r}"
        )
    return min(h / (h - p * lt), max_leverage(ltv, p))


def health_factor(
    collateral_steth: float, debt_eth: float, liquidation_threshold: float, price: float = 1.0
) -> float:
    """``HF = C p LT / D`` (``inf`` without debt)."""
    c = non_negative("collateral_steth", collateral_steth)
    d = non_negative("debt_eth", debt_eth)
    lt = _unit_open("liquidation_threshold", liquidation_threshold)
    if d <= 0.0:
        return math.inf
    return c * positive("price", price) * lt / d


def health_factor_at_leverage(
    leverage: float, liquidation_threshold: float, price: float = 1.0
) -> float:
    """``HF = L p LT / (L - 1)`` for a loop opened at leverage ``L`` (priced at ``p``)."""
    lev = finite("leverage", leverage)
    if lev < 1.0:
        raise ValueError(f"leverage must be >= 1, got {leverage!r}")
    if lev == 1.0:
        return math.inf
    return (
        lev
        * positive("price", price)
        * _unit_open("liquidation_threshold", liquidation_threshold)
        / (lev - 1.0)
    )


def liquidation_price(leverage: float, liquidation_threshold: float) -> float:
    """The stETH/ETH price at which HF = 1: ``p* = (L - 1) / (L LT)`` (0 without debt).

    At ``L = 10.5`` and LT 95 %: ``p* = 9.5 / 9.975 = 0.95238``."""
    lev = finite("leverage", leverage)
    if lev < 1.0:
        raise ValueError(f"leverage must be >= 1, got {leverage!r}")
    return (lev - 1.0) / (lev * _unit_open("liquidation_threshold", liquidation_threshold))


def liquidation_distance(health_factor_now: float) -> float:
    """The share the collateral price can fall before HF = 1: ``1 - 1/HF`` (1 without debt, 0 at
    or below HF 1). HF 1.05 -> 4.76 %."""
    hf = (
        finite("health_factor_now", health_factor_now)
        if math.isfinite(health_factor_now)
        else math.inf
    )
    if hf == math.inf:
        return 1.0
    return max(0.0, 1.0 - 1.0 / hf) if hf > 0 else 0.0


def net_apr(
    leverage: float,
    staking_apr: float,
    borrow_apr: FloatOrArray,
    collateral_supply_apr: float = 0.0,
) -> FloatOrArray:
    """``r = L (s + r_c) - (L - 1) b`` on equity (vectorised over ``borrow_apr``).

    3.0 % staking, 2.5 % borrow, L = 10.5: ``31.5 % - 23.75 % = 7.75 %``."""
    lev = finite("leverage", leverage)
    if lev < 1.0:
        raise ValueError(f"leverage must be >= 1, got {leverage!r}")
    b, scalar = as_float_array("borrow_apr", borrow_apr)
    s = finite("staking_apr", staking_apr) + finite("collateral_supply_apr", collateral_supply_apr)
    return out(lev * s - (lev - 1.0) * b, scalar)


def borrow_apr_after_borrow(
    strategy: aave.AaveRateStrategy,
    debt_others_eth: float,
    supply_eth: float,
    borrow_eth: FloatOrArray,
) -> FloatOrArray:
    """The WETH reserve's variable borrow APR once we owe ``borrow_eth`` more:
    ``U = (D_others + q) / S`` (``S`` the reserve's total supply, which our borrowing does not
    change), ``R_b(U)`` by the reserve's strategy (``aave.borrow_apr``). U is clipped at 1 (the
    reserve cannot lend more than it holds: callers cap ``q`` at the available liquidity)."""
    d = non_negative("debt_others_eth", debt_others_eth)
    s = positive("supply_eth", supply_eth)
    q, scalar = as_float_array("borrow_eth", borrow_eth)
    if np.any(q < 0):
        raise ValueError(f"borrow_eth must be >= 0, got {borrow_eth!r}")
    u = np.clip((d + q) / s, 0.0, 1.0)
    return out(np.asarray(aave.borrow_apr(strategy, u), dtype=np.float64), scalar)


def income_usd(
    x_usd: FloatOrArray,
    *,
    leverage: float,
    staking_apr: float,
    strategy: aave.AaveRateStrategy,
    debt_others_eth: float,
    supply_eth: float,
    eth_usd: float,
    collateral_supply_apr: float = 0.0,
) -> FloatOrArray:
    """Annual USD income of a loop of equity ``x`` USD: ``x (L (s + r_c) - (L - 1) b(U(x)))`` with
    our debt ``(L - 1) x / P_ETH`` ETH in the reserve's utilization. Concave in ``x``: ``b`` is a
    convex, non-decreasing function of ``U`` (slope1 <= slope2) and ``U`` is linear in ``x``, so
    ``x b(U(x))`` is convex."""
    x, scalar = as_float_array("x_usd", x_usd)
    x = np.maximum(x, 0.0)
    lev = finite("leverage", leverage)
    q = (lev - 1.0) * x / positive("eth_usd", eth_usd)
    b = np.asarray(borrow_apr_after_borrow(strategy, debt_others_eth, supply_eth, q))
    r = np.asarray(net_apr(lev, staking_apr, b, collateral_supply_apr))
    return out(x * r, scalar)


def unwind_cost_fraction(
    leverage: float, price: float = 1.0, swap_fee: float = 0.0004, impact: float = 0.0
) -> float:
    """Share of equity an instant unwind costs: the ``(L - 1)`` units of debt are repaid by selling
    stETH at ``p`` (a discount ``d = 1 - p`` below par) through a pool charging ``swap_fee`` plus
    ``impact``: ``(L - 1) (max(0, 1 - p) + swap_fee + impact)``, capped at 1.

    L = 10.5 at par through Curve's 0.01 % stETH/ETH pool: 9.5 x 0.0001 = 0.095 %; with a 1 %
    discount: 9.5 x 1.01 % = 9.6 %."""
    lev = finite("leverage", leverage)
    if lev < 1.0:
        raise ValueError(f"leverage must be >= 1, got {leverage!r}")
    d = max(0.0, 1.0 - positive("price", price))
    cost = (lev - 1.0) * (d + non_negative("swap_fee", swap_fee) + non_negative("impact", impact))
    return min(cost, 1.0)


def queue_unwind_rounds(
    leverage: float,
    liquidation_threshold: float,
    floor_health_factor: float = 1.01,
    price: float = 1.0,
    max_rounds: int = 10_000,
) -> int:
    """Rounds of an unwind through the withdrawal queue (no selling): each round withdraws the
    collateral the health-factor floor allows, ``w = C - h D / (p LT)``, waits the queue, and
    repays ``w p`` of debt with the ETH it returns; until the debt is gone.

    Per unit of equity: ``C = L/p``, ``D = L - 1``. The debt shrinks by a constant factor
    ``(h - p LT)``-driven each round, so the count grows with leverage: L = 10.5, LT 95 %, floor
    1.01 takes many rounds, which is why an instant unwind is what a loop pays for in a crisis."""
    lev = finite("leverage", leverage)
    lt = _unit_open("liquidation_threshold", liquidation_threshold)
    h = positive("floor_health_factor", floor_health_factor)
    p = positive("price", price)
    c, d = lev / p, lev - 1.0
    if d <= 0:
        return 0
    if c * p * lt / d < h:
        raise ValueError("the position is already below the health-factor floor")
    for n in range(1, max_rounds + 1):
        w = c - h * d / (p * lt)  # collateral we may take out this round
        repay = w * p
        if repay >= d:
            return n
        if w <= 1e-15:
            raise ValueError("no round can withdraw anything at this health-factor floor")
        c -= w
        d -= repay
    raise ValueError(f"more than {max_rounds} rounds")
