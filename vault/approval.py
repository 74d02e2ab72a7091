"""Manual approval of plans: which plans wait for a person, and whether an approved one is stale.

``vault.approval``:

* ``auto`` — a plan that passes the gate and the checker executes at once (the default);
* ``manual`` — every such plan is stored ``pending`` and waits for ``POST /api/v1/plans/{id}/approve``;
* ``above_usd`` — only plans whose turnover (Σ |amount| of deposits and withdrawals; bridge legs
  are transport, not turnover) exceeds ``vault.approval_threshold_usd`` wait.

A pending plan expires after ``vault.approval_expiry_seconds`` (wall time). One plan waits at a
time: while one is open, later cycles still decide (and record it) but add no second one.

An approved plan executes at the next cycle, once (its status moves ``approved`` → ``executing``
→ ``executed`` by compare-and-set), and only if the books have not moved beyond the optimizer's
drift band since it was decided:

    |x_i(now) - x_i(then)| <= drift_tolerance_ratio x NAV(now)   for every venue i and for idle,

and no venue it deposits into is frozen or exiting now (nor any, while new deposits are paused). Otherwise it is ``superseded`` and the cycle
decides afresh from the current state (a new plan, which waits for approval in its turn), so a
stale plan never executes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.money import units_to_str
from core.types import Move, MoveAction, Plan
from vault.executor import move_from_dict, move_to_dict
from vault.ledger import Balances


def plan_turnover_usd(plan: Plan) -> float:
    """Σ amount of the plan's deposits and withdrawals (bridge legs excluded), in USD."""
    return sum(m.amount_usd for m in plan.moves if m.action is not MoveAction.BRIDGE)


def needs_approval(plan: Plan, approval: str, threshold_usd: float) -> bool:
    if approval == "manual":
        return True
    if approval == "above_usd":
        return plan_turnover_usd(plan) > threshold_usd
    return False


def plan_record(plan: Plan) -> dict[str, Any]:
    """What the plans table keeps of a plan: its moves in order, gain, cost and the gate's reason."""
    return {
        "moves": [move_to_dict(m) for m in plan.moves],
        "expected_gain_usd": plan.expected_gain_usd,
        "cost_usd": plan.cost_usd,
        "turnover_usd": plan_turnover_usd(plan),
        "reason": plan.reason,
    }


def plan_from_record(record: Mapping[str, Any]) -> Plan:
    moves: tuple[Move, ...] = tuple(move_from_dict(m) for m in record["moves"])
    return Plan(
        moves=moves,
        expected_gain_usd=float(record["expected_gain_usd"]),
        cost_usd=float(record["cost_usd"]),
        execute=True,
        reason=str(record["reason"]),
    )


def books_context(b: Balances) -> dict[str, Any]:
    """The books a plan was decided on, in base units (for the drift re-check)."""
    return {
        "nav_units": b.nav_units,
        "idle_units": b.total_idle_units,
        "positions_units": {v: u for v, u in b.positions_units.items() if u},
    }


def drift_reason(
    context: Mapping[str, Any],
    now: Balances,
    tolerance_ratio: float,
    deposit_venues: Iterable[str],
    blocked_venues: Iterable[str],
) -> str | None:
    """None when an approved plan may still execute; else why it is stale (see module docstring)."""
    band = int(tolerance_ratio * now.nav_units)
    then_pos: Mapping[str, int] = context.get("positions_units", {})
    venues = set(then_pos) | {v for v, u in now.positions_units.items() if u}
    for venue in sorted(venues):
        moved = now.positions_units.get(venue, 0) - int(then_pos.get(venue, 0))
        if abs(moved) > band:
            return (
                f"position {venue} moved {units_to_str(moved)} USD since the plan was decided, "
                f"beyond the drift band {units_to_str(band)} USD"
            )
    idle_moved = now.total_idle_units - int(context.get("idle_units", 0))
    if abs(idle_moved) > band:
        return (
            f"idle moved {units_to_str(idle_moved)} USD since the plan was decided, "
            f"beyond the drift band {units_to_str(band)} USD"
        )
    blocked = sorted(set(deposit_venues) & set(blocked_venues))
    if blocked:
        return f"venue {blocked[0]} is frozen or exiting now; the plan deposits into it"
    return None
