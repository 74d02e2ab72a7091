"""The ledger's audit trail of rebalance cycles: one row per cycle with its inputs, the decision,
the moves and their results, and the optimizer's memory after it (restored at start).

A mixin of :class:`vault.ledger.Ledger` (it uses the ledger's connection), kept apart so the
ledger file stays one room: these rows record decisions, they are not money.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.money import units_to_str


class RebalanceRecordError(ValueError):
    """A rebalance row the daemon cannot read back (raised as the ledger's error)."""


@dataclass(frozen=True, slots=True)
class RebalanceRecord:
    id: int
    started_at: str
    finished_at: str
    outcome: str
    solver_status: str
    reason: str
    nav_units: int
    moves: list[dict[str, Any]]
    results: list[dict[str, Any]]


class RebalanceBooks:
    """Rebalance records on the ledger's connection."""

    _db: sqlite3.Connection
    path: Path

    def record_rebalance(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        outcome: str,
        solver_status: str,
        reason: str,
        nav_units: int,
        inputs: Any,
        solution: Any,
        moves: Any,
        results: Any,
        memory: Mapping[str, Any] | None = None,
    ) -> int:
        """One rebalance row; ``memory`` is the optimizer's memory after it (``OptimizerMemory.
        to_json()``), None when the cycle made none (it did not decide)."""
        cur = self._db.execute(
            "INSERT INTO rebalances(started_at, finished_at, outcome, solver_status, reason, nav_units, "
            "inputs_json, solution_json, moves_json, results_json, memory_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                started_at.isoformat(),
                finished_at.isoformat(),
                outcome,
                solver_status,
                reason,
                nav_units,
                json.dumps(inputs, sort_keys=True, default=str),
                json.dumps(solution, sort_keys=True, default=str),
                json.dumps(moves, sort_keys=True, default=str),
                json.dumps(results, sort_keys=True, default=str),
                None if memory is None else json.dumps(memory, sort_keys=True),
            ),
        )
        return int(cur.lastrowid or 0)

    def last_memory(self) -> dict[str, Any] | None:
        """The optimizer memory of the latest rebalance that made one (None: start cold)."""
        row = self._db.execute(
            "SELECT memory_json FROM rebalances WHERE memory_json IS NOT NULL "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        out = json.loads(row[0])
        if not isinstance(out, dict):
            raise RebalanceRecordError(f"{self.path}: rebalances.memory_json is not a JSON object")
        return out

    def last_rebalance(self) -> RebalanceRecord | None:
        row = self._db.execute(
            "SELECT id, started_at, finished_at, outcome, solver_status, reason, nav_units, moves_json, results_json "
            "FROM rebalances ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return RebalanceRecord(
            id=int(row[0]),
            started_at=str(row[1]),
            finished_at=str(row[2]),
            outcome=str(row[3]),
            solver_status=str(row[4]),
            reason=str(row[5]),
            nav_units=int(row[6]),
            moves=json.loads(row[7]),
            results=json.loads(row[8]),
        )

    def rebalance_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM rebalances").fetchone()[0])

    def rebalances(self, limit: int, before_id: int | None = None) -> list[dict[str, Any]]:
        """Rebalance records, newest first, ``limit`` of them with ids below ``before_id``: the audit trail."""
        rows = self._db.execute(
            "SELECT id, started_at, finished_at, outcome, solver_status, reason, nav_units, "
            "inputs_json, solution_json, moves_json, results_json FROM rebalances "
            "WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**62, limit),
        ).fetchall()
        return [_rebalance_dict(r) for r in rows]

    def rebalance(self, rebalance_id: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT id, started_at, finished_at, outcome, solver_status, reason, nav_units, "
            "inputs_json, solution_json, moves_json, results_json FROM rebalances WHERE id = ?",
            (rebalance_id,),
        ).fetchone()
        return _rebalance_dict(row) if row else None

    def set_rebalance_results(self, rebalance_id: int, results: Any) -> None:
        """Results that arrive after the cycle (a signer's report in export mode)."""
        self._db.execute(
            "UPDATE rebalances SET results_json = ? WHERE id = ?",
            (json.dumps(results, sort_keys=True, default=str), rebalance_id),
        )


def _rebalance_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("id", "started_at", "finished_at", "outcome", "solver_status", "reason")
    out: dict[str, Any] = dict(zip(keys, row[:6], strict=True))
    out["nav_usd"] = units_to_str(row[6])
    out["inputs"] = json.loads(row[7])
    out["decision"] = json.loads(row[8])
    out["moves"] = json.loads(row[9])
    out["results"] = json.loads(row[10])
    return out
