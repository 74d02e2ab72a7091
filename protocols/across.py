"""Across bridge math: LP fee from the utilization curve, relayer capital and gas fees, fill time,
and the stablecoin bridge-arbitrage income model the simulated market and the adapters share.

Pure functions, no I/O. Fee percentages are decimals (0.0001 is 1 bp). Sources
(``reference/protocol_math.md`` §5):

- LP fee: ``across-protocol/dev-docs : how-across-works/overview/fee-model.md``,
  ``across-protocol/sdk : src/lpFeeCalculator/lpFeeCalculator.ts``
- capital fee: ``across-protocol/sdk : src/relayFeeCalculator/relayFeeCalculator.ts``;
  defaults ``across-protocol/frontend : api/_constants.ts`` (Feb 2026)
- fill time: ``across-protocol/user-docs : how-across-works/speed.md``
- arbitrage profit: §5.4 (Öz et al., arXiv:2501.17335)
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols._checks import finite as _finite
from protocols._checks import non_negative as _non_negative
from protocols._checks import positive as _positive
from protocols._checks import unit as _unit

SECONDS_PER_YEAR = 31_536_000
WEEKS_PER_YEAR = 52
SLOW_FILL_SECONDS = 7_200.0  # optimistic challenge window (~2 h) after which a slow fill pays out


@dataclass(frozen=True, slots=True)
class RateModel:
    """``AcrossConfigStore`` ``rateModel`` for an L1 token: annual rates and the kink ``UBar``.

    Examples (§5.1): UMIP WETH ``UBar .75, R0 .05, R1 0, R2 .6``; SDK realistic
    ``UBar .75, R0 .021, R1 0, R2 .6``. ``UBar`` in (0, 1]; rates >= 0.
    """

    ubar: float
    r0: float
    r1: float
    r2: float

    def __post_init__(self) -> None:
        ub = _finite("ubar", self.ubar)
        if not 0.0 < ub <= 1.0:
            raise ValueError(f"ubar must be in (0, 1], got {self.ubar!r}")
        for name in ("r0", "r1", "r2"):
            _non_negative(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class CapitalFeeConfig:
    """Relayer capital-cost config (``lowerBound``, ``upperBound``, ``cutoff`` in whole tokens).

    USDC default (frontend ``api/_constants.ts``, Feb 2026): 0.0001 / 0.0001 / 100,000 — a flat 1 bp.
    """

    lower_bound: float
    upper_bound: float
    cutoff: float

    def __post_init__(self) -> None:
        _non_negative("lower_bound", self.lower_bound)
        _non_negative("upper_bound", self.upper_bound)
        _positive("cutoff", self.cutoff)


USDC_CAPITAL_FEE = CapitalFeeConfig(0.0001, 0.0001, 100_000.0)


def rate_at(model: RateModel, utilization: float) -> float:
    """Annualised LP rate at utilization U:

    ``R(U) = R0 + min(U, UBar)/UBar * R1 + max(0, U - UBar)/(1 - UBar) * R2``

    Source: ``across-protocol/sdk : src/lpFeeCalculator/lpFeeCalculator.ts``. ValueError unless U in [0, 1].
    """
    u = _unit("utilization", utilization)
    r = model.r0 + min(u, model.ubar) / model.ubar * model.r1
    if u > model.ubar:  # ubar == 1 never reaches here, so no division by zero
        r += (u - model.ubar) / (1.0 - model.ubar) * model.r2
    return r


def _integral(model: RateModel, u: float) -> float:
    """``∫_0^u R(v) dv`` in closed form (piecewise linear integrand)."""
    below = min(u, model.ubar)
    total = model.r0 * u + model.r1 * below * below / (2.0 * model.ubar)
    if u > model.ubar:
        excess = u - model.ubar
        total += model.r1 * excess + model.r2 * excess * excess / (2.0 * (1.0 - model.ubar))
    return total


def average_rate(model: RateModel, utilization_before: float, utilization_after: float) -> float:
    """Average annual rate over the deposit's utilization move:
    ``R_a = 1/(Û - U) * ∫_U^Û R(u) du`` (``R(U)`` when Û == U). Source: as :func:`rate_at`.
    ValueError unless both are in [0, 1] and ``after >= before``.
    """
    u0 = _unit("utilization_before", utilization_before)
    u1 = _unit("utilization_after", utilization_after)
    if u1 < u0:
        raise ValueError(f"utilization_after ({u1}) must be >= utilization_before ({u0})")
    if u1 - u0 < 1e-12:
        return rate_at(model, u0)
    return (_integral(model, u1) - _integral(model, u0)) / (u1 - u0)


def lp_fee_pct(model: RateModel, utilization_before: float, utilization_after: float) -> float:
    """LP fee as a fraction of the amount: the average rate charged for a one-week loan,
    ``R_w = (1 + R_a)^(1/52) - 1``. Source: ``dev-docs : fee-model.md``, SDK lpFeeCalculator."""
    ra = average_rate(model, utilization_before, utilization_after)
    return (1.0 + ra) ** (1.0 / WEEKS_PER_YEAR) - 1.0


def utilization_after(liquid_reserves: float, utilized_reserves: float, amount: float) -> float:
    """Hub-pool utilization once ``amount`` more is lent to the relayer:
    ``(utilized + amount) / (liquid + utilized)`` (HubPool ``liquidityUtilizationPostRelay``, with
    no pending bundle or undistributed fees). Capped at 1. ValueError on a pool with no reserves."""
    liquid = _non_negative("liquid_reserves", liquid_reserves)
    utilized = _non_negative("utilized_reserves", utilized_reserves)
    a = _non_negative("amount", amount)
    total = liquid + utilized
    if total <= 0.0:
        raise ValueError("liquid_reserves + utilized_reserves must be > 0")
    return min((utilized + a) / total, 1.0)


def capital_fee_pct(amount: float, config: CapitalFeeConfig = USDC_CAPITAL_FEE) -> float:
    """Relayer capital cost as a fraction of ``amount`` (whole tokens, same unit as ``cutoff``)::

        slope  = (upper - lower) / cutoff
        charge = lower*y + 0.5*slope*min(y, cutoff)^2 + max(0, y - cutoff)*(upper - lower)
        pct    = charge / y

    Source: ``across-protocol/sdk : src/relayFeeCalculator/relayFeeCalculator.ts``. ValueError unless amount > 0.
    """
    y = _positive("amount", amount)
    lo, hi, cut = config.lower_bound, config.upper_bound, config.cutoff
    slope = (hi - lo) / cut
    charge = lo * y + 0.5 * slope * min(y, cut) ** 2 + max(0.0, y - cut) * (hi - lo)
    return charge / y


def gas_fee_pct(gas_usd: float, amount_usd: float) -> float:
    """Destination fill gas as a fraction of the amount: ``gas_usd / amount_usd`` (SDK gasFeePct)."""
    return _non_negative("gas_usd", gas_usd) / _positive("amount_usd", amount_usd)


def total_relay_fee_pct(lp_fee: float, capital_fee: float, gas_fee: float) -> float:
    """``totalRelayFeePct = capitalFeePct + gasFeePct + lpFeePct`` (API ``totalRelayFee.pct``)."""
    return (
        _non_negative("lp_fee", lp_fee)
        + _non_negative("capital_fee", capital_fee)
        + _non_negative("gas_fee", gas_fee)
    )


def fill_time_seconds(
    amount_usd: float,
    instant_fill_seconds: float,
    max_deposit_instant_usd: float,
    max_deposit_short_delay_usd: float,
    *,
    short_delay_seconds: float = 1_800.0,
    slow_fill_seconds: float = SLOW_FILL_SECONDS,
) -> float:
    """Expected fill time: relayers fill instantly (typically seconds to a few minutes, by origin
    chain) up to ``maxDepositInstant``; up to ``maxDepositShortDelay`` they need to rebalance
    (``short_delay_seconds``); larger deposits are slow-filled after the ~2 h challenge window.
    Source: ``across-protocol/user-docs : how-across-works/speed.md`` (§5.3).
    """
    a = _positive("amount_usd", amount_usd)
    base = _non_negative("instant_fill_seconds", instant_fill_seconds)
    instant = _non_negative("max_deposit_instant_usd", max_deposit_instant_usd)
    short = _non_negative("max_deposit_short_delay_usd", max_deposit_short_delay_usd)
    if short < instant:
        raise ValueError(
            f"max_deposit_short_delay_usd ({short}) must be >= max_deposit_instant_usd ({instant})"
        )
    if a <= instant:
        return base
    if a <= short:
        return base + _non_negative("short_delay_seconds", short_delay_seconds)
    return max(base, _non_negative("slow_fill_seconds", slow_fill_seconds))


def captured_spread(size_usd: float, spread: float, capacity_usd: float) -> float:
    """Average spread captured on a trade of ``q`` USD when the gap closes linearly as it is traded:
    ``s_eff(q) = s * (1 - q / (2 C))`` for ``q <= C`` (the route's capacity ``C`` closes the gap).
    **(derived)**: the area under a linearly shrinking spread, divided by q."""
    q = _non_negative("size_usd", size_usd)
    s = _finite("spread", spread)
    c = _positive("capacity_usd", capacity_usd)
    if q > c:
        raise ValueError(f"size_usd ({q}) must be <= capacity_usd ({c})")
    return s * (1.0 - q / (2.0 * c))


def arb_optimal_trade_usd(spread: float, fee_pct: float, capacity_usd: float) -> float:
    """The trade size an arbitrageur stops at: the marginal captured spread ``s (1 - q/C)`` falls to
    the proportional fee, ``q* = C * max(0, 1 - fee_pct / s)`` (0 when the gap is below the fee).
    **(derived)** from :func:`captured_spread`; trading beyond ``q*`` would lower the profit."""
    s = _finite("spread", spread)
    fee = _non_negative("fee_pct", fee_pct)
    c = _positive("capacity_usd", capacity_usd)
    if s <= fee:
        return 0.0
    return c * (1.0 - fee / s)


def arb_round_trip_profit_usd(
    size_usd: float, spread: float, fee_pct: float, gas_usd: float, capacity_usd: float
) -> float:
    """Profit of one arbitrage round on a route (protocol_math.md §5.4, linear gap closure):

    ``q = min(size, q*)``; ``profit = q * (s * (1 - q/(2C)) - fee_pct) - gas_usd``

    where ``s = P_dst/P_src - 1`` is the price gap, ``fee_pct`` the Across ``totalRelayFee.pct``
    excluding gas (LP + capital), ``gas_usd`` the relayer gas per fill, ``C`` the size that closes
    the gap (the route's ``maxDepositInstant``) and ``q*`` the profit-maximising size
    (:func:`arb_optimal_trade_usd`), so more inventory never earns less. Ignores the fill delay's
    time value. Negative when the gas is not covered (the round does not pay); 0 for no trade.
    """
    size = _non_negative("size_usd", size_usd)
    c = _positive("capacity_usd", capacity_usd)
    fee = _non_negative("fee_pct", fee_pct)
    gas = _non_negative("gas_usd", gas_usd)
    q = min(size, arb_optimal_trade_usd(spread, fee, c))
    if q == 0.0:
        return 0.0
    return q * (captured_spread(q, spread, c) - fee) - gas


def arb_income_per_year_usd(
    position_usd: float,
    spread: float,
    fee_pct: float,
    gas_usd: float,
    capacity_usd: float,
    round_trips_per_year: float,
) -> float:
    """Annual income of ``position_usd`` of inventory on a bridge-arbitrage route:

    ``income = N * max(0, q * (s * (1 - q/(2C)) - fee_pct) - gas)`` with ``q = min(position, q*)``,
    ``q* = C (1 - fee_pct / s)``, and ``N`` the number of times a year the gap reopens and is
    traded. Non-decreasing in the position; concave where it is positive. The inventory earns only
    when a round pays; it never loses in this model (losses come from depeg and halt scenarios).
    **(derived)** from :func:`arb_round_trip_profit_usd`.
    """
    n = _non_negative("round_trips_per_year", round_trips_per_year)
    return n * max(
        0.0, arb_round_trip_profit_usd(position_usd, spread, fee_pct, gas_usd, capacity_usd)
    )
