"""From a target allocation to ordered moves, and the gate that decides whether they pay.

Moves: for each venue ``δ_i = target_i - x0_i``; ``|δ_i| < min_trade_usd`` is dropped (the
target falls back to ``x0_i``). Idle is booked per chain: a withdrawal's capital stays on its
chain and funds deposits there; only what a chain lacks is bridged, through home
(:func:`bridge_legs`, README §4c). Order: all withdrawals, then bridge legs (to home first, then
out of home), then deposits, so every deposit is funded by idle that is already on its chain.

Costs (USD): withdraw ``gas_out + fee_bps·|δ|``; deposit ``gas_in + fee_bps·δ``; a venue priced by
its pool's reserves pays its zap's convex cost instead of ``fee_bps`` (:mod:`optimizer.costs`);
each bridge leg ``κ(amount) + gas(destination)`` (the Across fee curve; ``bridge_fee_bps·amount +
bridge_gas_usd`` under ``cost_model: linear``).
Gain over the holding horizon ``H`` days (true curves, emission haircut applied):
``G = Σ_i (f_i(target_i) - f_i(x0_i)) · H/365``.

Gate: execute iff ``G >= min_benefit_cost_ratio · C`` and the net APR gain
``(G - C)/NAV · 365/H >= hysteresis_apr`` (and never with ``G - C <= 0``): a plan must pay for
itself with margin, and a small wobble in rates (which moves ``G`` by little) never churns capital.
A plan that restores a limit the current holdings break by more than the drift band
(``drift_tolerance_ratio`` of the limit) executes without the gate (it passed the checker); a
smaller breach came from drift or costs and forces nothing (README §7a). :func:`after_costs`
books a plan ahead the way the executor does, so that its own gas and fees are budgeted.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from core.types import Move, MoveAction, Plan, VenueSnapshot
from optimizer.config import OptimizerSettings
from optimizer.pricing import AfterCosts, PlanContext, after_costs
from optimizer.sums import total

if TYPE_CHECKING:
    from optimizer.checker_rules import CheckReport

FloatArray = NDArray[np.float64]

__all__ = [
    "AfterCosts",
    "PlanContext",
    "PlanEconomics",
    "after_costs",
    "gate",
    "idempotency_key",
    "make_moves",
    "move_values_usd",
    "prune_unprofitable",
    "round_small_trades",
]


def idempotency_key(
    now: datetime | str,
    venue_id: str,
    action: MoveAction,
    amount_usd: float,
    from_chain: str,
    to_chain: str,
) -> str:
    """Deterministic: the same decision time, venue, action, route and amount give the same key.
    ``now`` may be given as its ``isoformat()`` already (a plan computes it once)."""
    at = now if isinstance(now, str) else now.isoformat()
    # a StrEnum formats as its value (``action.value``, without the enum descriptor's cost)
    raw = f"{at}|{venue_id}|{action}|{from_chain}|{to_chain}|{round(amount_usd, 2):.2f}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def round_small_trades(
    x0_usd: FloatArray, target_usd: FloatArray, min_trade_usd: float
) -> FloatArray:
    """Targets whose move is below ``min_trade_usd`` stay where they are."""
    small = np.abs(target_usd - x0_usd) < min_trade_usd
    return np.where(small, x0_usd, target_usd)


def move_values_usd(
    snaps: Sequence[VenueSnapshot],
    x0_usd: FloatArray,
    target_usd: FloatArray,
    settings: OptimizerSettings,
    home_chain: str,
    ctx: PlanContext | None = None,
) -> FloatArray:
    """Exact value of each venue's move on its own over the horizon: gain on the true curve minus
    its exact cost (gas, fees); capital that is not moved stays idle and earns 0. The bridge legs
    are the plan's (:meth:`PlanContext.legs_cost_usd`)."""
    ctx = ctx or PlanContext(snaps, x0_usd, settings, home_chain)
    return ctx.values_usd(target_usd)


def prune_unprofitable(
    snaps,
    x0_usd,
    target_usd,
    report,
    settings: OptimizerSettings,
    home_chain: str,
    check,
    investable_usd: float,
    min_idle_usd: float,
    queued: NDArray[np.bool_] | None = None,
    ctx: PlanContext | None = None,
):
    """Undo moves that lose money on their own, while the checker still passes.

    The convex model can only amortise the fixed gas charge (README §3), so it may propose a small
    deposit whose exact cost exceeds its gain, or a withdrawal that idle capital could fund.
    Deposits with a negative value are undone together: less deposited never breaks a limit
    (exposures, turnover and risk fall; idle and liquidity rise). Withdrawals with a negative value
    are undone only when the idle above the reserve could cover them and the checker passes: first
    as many as the spare idle covers, smallest first, in one check; then one at a time, most
    negative first, at most ``prune_max_tries`` of them. A losing withdrawal that could not be undone
    alone (it funds a deposit under a binding cap) is then undone together with the deposit of closest
    amount when the pair's value is negative (single and paired undos share the ``prune_max_tries`` checks). Last, if what is left
    has a non-positive exact value in total and holding passes the checker, the target is the holding.
    Each accepted undo raises the exact net of the plan and keeps every limit.

    ``queued``: venues whose withdrawals go in flight (not into idle); idle is then ``investable -
    Σ target - Σ_queued (x0 - target)⁺``, and undoing such a withdrawal takes nothing from idle.
    """
    target = np.array(target_usd, dtype=float)
    if np.array_equal(target, x0_usd):
        return target, report  # (nothing moves: no move to undo, and holding is the target)
    ctx = ctx or PlanContext(snaps, x0_usd, settings, home_chain)
    values = ctx.values_usd(target_usd)
    if not (values >= 0).all():  # (every move pays its own way: nothing to undo one by one)
        q = np.zeros(len(target), dtype=bool) if queued is None else np.asarray(queued, dtype=bool)
        target, report, values = _undo_losing(
            x0_usd, target, report, values, settings, check, investable_usd, min_idle_usd, q, ctx
        )
    # the moves left may still lose money together (each pays its own gas): if holding passes the checker,
    # a plan whose exact net is not positive is worse than holding (and the gate would hold it anyway)
    moved = target != x0_usd
    if moved.any() and total(values[moved]) - ctx.legs_cost_usd(target) <= 0.0:
        rep = check(np.array(x0_usd, dtype=float))
        if rep.ok:
            target, report = np.array(x0_usd, dtype=float), rep
    return target, report


def _undo_losing(
    x0_usd: FloatArray,
    target: FloatArray,
    report: CheckReport,
    values: FloatArray,
    settings: OptimizerSettings,
    check: Callable[[FloatArray], CheckReport],
    investable_usd: float,
    min_idle_usd: float,
    q: NDArray[np.bool_],
    ctx: PlanContext,
) -> tuple[FloatArray, CheckReport, FloatArray]:
    """:func:`prune_unprofitable`'s undos of losing moves (deposits together, withdrawals the spare
    idle covers, single withdrawals, withdrawal-deposit pairs): the target, its report and the
    values of the moves left (0 where a venue no longer moves)."""

    def idle_of(t: FloatArray) -> float:
        return investable_usd - float(t.sum()) - float(np.maximum(x0_usd - t, 0.0)[q].sum())

    losing_deposits = (values < 0) & (target > x0_usd)
    if losing_deposits.any():
        trial = np.where(losing_deposits, x0_usd, target)
        rep = check(trial)
        if rep.ok:
            target, report = trial, rep
    spare = idle_of(target) - min_idle_usd
    # first all losing withdrawals that the spare idle covers, smallest first, in one check
    # (undoing a queued withdrawal takes nothing from idle: that capital was never going to land there)
    losing = np.nonzero((values < 0) & (target < x0_usd))[0]
    need = np.where(q[losing], 0.0, x0_usd[losing] - target[losing])
    order = np.argsort(need)
    losing, need = losing[order], need[order]
    fits = losing[np.cumsum(need) <= spare]
    if len(fits):
        trial = target.copy()
        trial[fits] = x0_usd[fits]
        rep = check(trial)
        if rep.ok:
            spare = idle_of(trial) - min_idle_usd
            target, report = trial, rep
            values = ctx.values_usd(target)
    tries = 0
    for i in np.argsort(values):
        if values[i] >= 0 or tries >= settings.prune_max_tries:
            break
        amount = x0_usd[i] - target[i]
        if amount <= 0 or (not q[i] and amount > spare):
            continue
        tries += 1
        trial = target.copy()
        trial[i] = x0_usd[i]
        rep = check(trial)
        if rep.ok:
            target, report = trial, rep
            spare = idle_of(target) - min_idle_usd
    # a losing withdrawal that funds a deposit under a binding cap (a swap inside a kind or protocol cap,
    # or under turnover) cannot be undone alone; undo it with the deposit it funds when the pair loses
    # money on exact costs: the one of closest amount among the deposits whose value does not make up for it.
    # A venue's value depends on its own move only, so `values` stays right for every venue still moved
    values = np.where(target != x0_usd, values, 0.0)
    # (one budget of prune_max_tries checks for the single and the paired undos: the checker is ~5 ms at 1k venues)
    order = np.argsort(values)
    for i in order[values[order] < 0]:
        if tries >= settings.prune_max_tries:
            break
        if values[i] >= 0 or target[i] >= x0_usd[i]:
            continue
        amount = x0_usd[i] - target[i]
        partners = np.nonzero((target > x0_usd) & (values + values[i] < 0))[0]
        if len(partners) == 0:
            continue
        j = int(partners[np.argmin(np.abs((target[partners] - x0_usd[partners]) - amount))])
        trial = target.copy()
        trial[[i, j]] = x0_usd[[i, j]]
        if idle_of(trial) < min(min_idle_usd, idle_of(target)):
            continue
        tries += 1
        rep = check(trial)
        if rep.ok:
            target, report = trial, rep
            values[[i, j]] = 0.0
    return target, report, values


@dataclass(frozen=True, slots=True)
class PlanEconomics:
    moves: tuple[Move, ...]
    gain_usd: float  # over the horizon
    cost_usd: float


def make_moves(
    snaps: Sequence[VenueSnapshot],
    x0_usd: FloatArray,
    target_usd: FloatArray,
    settings: OptimizerSettings,
    home_chain: str,
    now: datetime,
    ctx: PlanContext | None = None,
) -> PlanEconomics:
    """The moves of a target, priced exactly (gains and costs in NumPy over all venues): one
    WITHDRAW or DEPOSIT per venue that moves, and the bridge legs the chains need
    (:meth:`PlanContext.legs`; ``venue_id`` of a leg is ``bridge:<from>-><to>``). Order: withdrawals,
    legs to home, legs out of home, deposits, so every deposit is funded by idle on its chain."""
    ctx = ctx or PlanContext(snaps, x0_usd, settings, home_chain)
    target = np.asarray(target_usd, dtype=float)
    delta = target - ctx.x0
    if not delta.any() and not ctx.legs(target):
        return PlanEconomics((), 0.0, 0.0)  # (what the general path gives when nothing moves)
    gains = ctx.gains_usd(target)
    venue_cost = ctx.costs_usd(target)
    withdrawals: list[Move] = []
    deposits: list[Move] = []
    idx = np.nonzero(delta != 0.0)[0]
    legs = ctx.legs(target)
    at = now.isoformat() if len(idx) or legs else ""  # (the keys' time: only a move needs it)
    # plain floats once, not a NumPy scalar per venue and field
    rows = zip(
        idx.tolist(),
        delta[idx].tolist(),
        gains[idx].tolist(),
        venue_cost[idx].tolist(),
        strict=True,
    )
    for i, d, g, c in rows:
        v = snaps[i].venue
        amount = abs(d)
        action = MoveAction.WITHDRAW if d < 0 else MoveAction.DEPOSIT
        move = Move(
            action,
            v.id,
            amount,
            idempotency_key(at, v.id, action, amount, v.chain, v.chain),
            from_chain=v.chain,
            to_chain=v.chain,
            expected_gain_usd=g,
            cost_usd=c,
        )
        (withdrawals if d < 0 else deposits).append(move)
    to_home: list[Move] = []
    from_home: list[Move] = []
    legs_cost = 0.0
    for origin, dest, amount in legs:
        label = f"bridge:{origin}->{dest}"
        cost = ctx.leg_cost_usd(amount, dest)
        legs_cost += cost
        (from_home if origin == home_chain else to_home).append(
            Move(
                MoveAction.BRIDGE,
                label,
                amount,
                idempotency_key(at, label, MoveAction.BRIDGE, amount, origin, dest),
                from_chain=origin,
                to_chain=dest,
                cost_usd=cost,
            )
        )
    moved = delta != 0.0
    return PlanEconomics(
        tuple(withdrawals + to_home + from_home + deposits),
        total(gains[moved]),
        total(venue_cost[moved]) + legs_cost,
    )


def gate(
    econ: PlanEconomics,
    nav_usd: float,
    settings: OptimizerSettings,
    forced_by: Sequence[str] = (),
    drifted: Sequence[str] = (),
) -> Plan:
    """Execute the moves only if they pay, or if they restore a limit the holdings break by more
    than the drift band (``forced_by``); holding returns no moves.

    ``drifted``: limits the holdings break by less than ``drift_tolerance_ratio`` of the limit (market
    drift, accrual, costs). They force nothing: a plan must pay for itself, and one with a
    non-positive net gain never executes on their account (README §7).
    """
    g, c = econ.gain_usd, econ.cost_usd
    if not econ.moves:
        return Plan(
            moves=(),
            expected_gain_usd=0.0,
            cost_usd=0.0,
            execute=False,
            reason="no moves: already at target",
        )
    if not (math.isfinite(g) and math.isfinite(c)):
        return Plan((), 0.0, 0.0, False, f"hold: non-finite gain {g} or cost {c}")
    net_apr = (g - c) / nav_usd * 365.0 / settings.holding_horizon_days
    if forced_by:
        return Plan(
            econ.moves,
            g,
            c,
            True,
            f"restores broken limits ({'; '.join(forced_by[:3])}); gain {g:,.2f} vs cost {c:,.2f} USD",
        )
    band = (
        f" (holdings within the drift band of {len(drifted)} limit(s): {drifted[0]})"
        if drifted
        else ""
    )
    if g - c <= 0:
        return Plan(
            (),
            g,
            c,
            False,
            f"hold: net gain {g - c:,.2f} USD is not positive (gain {g:,.2f}, cost {c:,.2f}){band}",
        )
    if g < settings.min_benefit_cost_ratio * c:
        return Plan(
            (),
            g,
            c,
            False,
            f"hold: gain {g:,.2f} < {settings.min_benefit_cost_ratio:g} x cost {c:,.2f} USD over {settings.holding_horizon_days:g} d{band}",
        )
    if net_apr < settings.hysteresis_apr:
        return Plan(
            (),
            g,
            c,
            False,
            f"hold: net APR gain {net_apr:.6f} below hysteresis {settings.hysteresis_apr:g}{band}",
        )
    return Plan(
        econ.moves,
        g,
        c,
        True,
        f"gain {g:,.2f} >= {settings.min_benefit_cost_ratio:g} x cost {c:,.2f} USD, net APR gain {net_apr:.5f}",
    )
