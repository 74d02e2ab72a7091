"""What a move is to an executor and what became of it (the values every executor shares).

* :class:`MoveStatus` / :class:`MoveResult`: a move's outcome, with the plan's predicted cost and
  the cost as booked side by side (issue 13's move-cost metric reads both);
* :class:`Executor`: what the shared cycle (``vault/cycle.py``) asks of any executor;
* :class:`DryRunExecutor`: books nothing, moves nothing;
* the write-ahead form of a move (:func:`move_to_dict` / :func:`move_from_dict`) and the name of
  an in-flight account (:func:`in_flight_account`).

The booking executor itself is ``vault/executor.py`` (``PaperExecutor``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from core.money import usd_to_units
from core.types import Move, MoveAction, Plan

__all__ = [
    "DryRunExecutor",
    "Executor",
    "MoveResult",
    "MoveStatus",
    "in_flight_account",
    "move_from_dict",
    "move_to_dict",
]


class MoveStatus(enum.StrEnum):
    DONE = "done"
    REFUSED = "refused"  # the venue said no (e.g. beyond available liquidity); nothing moved
    # the call failed in a way that may or may not have moved money; replayed later
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # dry-run, or nothing left to move


@dataclass(frozen=True, slots=True)
class MoveResult:
    idempotency_key: str
    action: str
    venue_id: str
    status: MoveStatus
    requested_units: int
    applied_units: int = 0
    detail: str = ""
    # the plan's predicted cost of the move (Move.cost_usd) and what it cost as booked (its fees and
    # gas postings), side by side in the rebalance record and the move-cost metric (issue 13)
    predicted_cost_units: int = 0
    cost_units: int = 0

    @classmethod
    def of(
        cls,
        move: Move,
        status: MoveStatus,
        applied_units: int = 0,
        detail: str = "",
        cost_units: int = 0,
    ) -> MoveResult:
        """The result of ``move``: requested and predicted cost read from the move itself (a
        non-finite or negative predicted cost counts as 0), so every path that ends a move (run,
        replay, ask-first recovery, dry run) reports the same fields."""
        predicted = move.cost_usd
        return cls(
            move.idempotency_key,
            str(move.action),
            move.venue_id,
            status,
            usd_to_units(move.amount_usd),
            applied_units,
            detail,
            predicted_cost_units=(
                usd_to_units(max(float(predicted), 0.0)) if math.isfinite(predicted) else 0
            ),
            cost_units=cost_units,
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d


class Executor(Protocol):
    """What the cycle (``vault/cycle.py``) asks of an executor, in this order each rebalance."""

    async def recover(self) -> list[MoveResult]:
        """Replay the moves written ahead but never booked (the process stopped mid-move)."""
        ...

    async def settle_in_flight(self) -> None:
        """Land what has arrived: filled bridge transfers, settled queued withdrawals."""
        ...

    async def venue_positions(self) -> dict[str, int] | None:
        """What the venues report holding for this vault (venue -> units); None: nothing anywhere.

        Never booked by the executor: the cycle reconciles it with the books (vault/reconcile.py).
        """
        ...

    async def execute(
        self, plan: Plan, should_stop: Callable[[], bool] = lambda: False
    ) -> list[MoveResult]:
        """Run the plan's moves in order; stop cleanly between moves when ``should_stop()``."""
        ...


def in_flight_account(chain: str, kind: str, ref: str) -> str:
    """``in_flight:<chain it lands on>/bridge/<transfer id>`` or ``…/withdrawal/<venue>/<withdrawal id>``."""
    return f"in_flight:{chain}/{kind}/{ref}"


def move_to_dict(move: Move) -> dict[str, Any]:
    d = asdict(move)
    d["action"] = str(move.action)
    return d


def move_from_dict(d: Mapping[str, Any]) -> Move:
    return Move(**{**d, "action": MoveAction(d["action"])})


class DryRunExecutor:
    """Plans are recorded, nothing moves."""

    async def venue_positions(self) -> dict[str, int] | None:
        return None  # nothing is held anywhere

    async def recover(self) -> list[MoveResult]:
        return []

    async def settle_in_flight(self) -> None:
        return None

    async def execute(
        self, plan: Plan, should_stop: Callable[[], bool] = lambda: False
    ) -> list[MoveResult]:
        return [MoveResult.of(m, MoveStatus.SKIPPED, detail="dry-run") for m in plan.moves]
