"""Operator state and records, in ``data_dir/operator.sqlite3``: what a person has imposed, and who.

* **Directives** — a pause (``all`` moves, or new ``deposits`` only), frozen venues, venues to exit —
  are kept as rows and become one :class:`core.types.Directives` the daemon passes into each cycle.
  They survive a restart: the rows are the truth, read at start.
* **Actions** — every operator request (who: a token's label, never the token; what; when; the
  result, ``ok`` or ``refused``, with the detail) is one row of ``operator_actions``.
* **Plans** — a plan waiting for approval (``pending`` → ``approved`` → ``executing`` →
  ``executed``; or ``rejected``, ``expired``, ``superseded``) or handed to a signer in export mode
  (``exported`` → ``reported``). The status changes by compare-and-set, so a plan executes once.

Same discipline as the ledger: synchronous SQLite from the event-loop thread only, WAL,
``synchronous=FULL``, no transaction held across an ``await``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from core.types import Directives

PauseScope = Literal["all", "deposits"]
PlanStatus = Literal[
    "pending",
    "approved",
    "executing",
    "executed",
    "rejected",
    "expired",
    "superseded",
    "exported",
    "reported",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS directives (
    kind TEXT NOT NULL,             -- pause | freeze | exit
    target TEXT NOT NULL,           -- pause: all | deposits; freeze/exit: a venue id
    since TEXT NOT NULL,
    who TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, target)
);
CREATE TABLE IF NOT EXISTS operator_actions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    params_json TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL,           -- ok | refused
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,       -- approval expiry, or the signer's deadline in export mode
    status TEXT NOT NULL,
    kind TEXT NOT NULL,             -- approval | export
    rebalance_id INTEGER,
    decided_at TEXT,
    decided_by TEXT,
    detail TEXT NOT NULL DEFAULT '',
    plan_json TEXT NOT NULL,        -- moves, gain, cost, reason
    context_json TEXT NOT NULL,     -- the books when it was decided (for the drift re-check)
    results_json TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS plans_status ON plans(status);
"""

OPEN_STATUSES: tuple[PlanStatus, ...] = ("pending", "approved", "executing", "exported")


@dataclass(frozen=True, slots=True)
class StoredPlan:
    id: int
    created_at: str
    expires_at: str
    status: PlanStatus
    kind: str
    rebalance_id: int | None
    decided_at: str | None
    decided_by: str | None
    detail: str
    plan: dict[str, Any]
    context: dict[str, Any]
    results: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "kind": self.kind,
            "rebalance_id": self.rebalance_id,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "detail": self.detail,
            **self.plan,
            "results": self.results,
        }


_PLAN_COLUMNS = (
    "id, created_at, expires_at, status, kind, rebalance_id, decided_at, decided_by, detail, "
    "plan_json, context_json, results_json"
)


def _plan(row: tuple[Any, ...]) -> StoredPlan:
    return StoredPlan(
        id=row[0],
        created_at=row[1],
        expires_at=row[2],
        status=row[3],
        kind=row[4],
        rebalance_id=row[5],
        decided_at=row[6],
        decided_by=row[7],
        detail=row[8],
        plan=json.loads(row[9]),
        context=json.loads(row[10]),
        results=json.loads(row[11]),
    )


class OperatorStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def changes(self) -> int:
        """Rows changed through this store since it opened (the status cache's key)."""
        return self._db.total_changes

    # -- directives ------------------------------------------------------------------------

    def set_directive(self, at: datetime, kind: str, target: str, who: str, reason: str) -> bool:
        """Impose one directive; False when it was already in force (nothing changed)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO directives(kind, target, since, who, reason) VALUES (?,?,?,?,?)",
            (kind, target, at.isoformat(), who, reason),
        )
        return cur.rowcount == 1

    def clear_directive(self, kind: str, target: str | None = None) -> int:
        """Lift one directive (or every one of ``kind`` when ``target`` is None); how many were lifted."""
        if target is None:
            cur = self._db.execute("DELETE FROM directives WHERE kind = ?", (kind,))
        else:
            cur = self._db.execute(
                "DELETE FROM directives WHERE kind = ? AND target = ?", (kind, target)
            )
        return cur.rowcount

    def directive_rows(self) -> list[dict[str, str]]:
        rows = self._db.execute(
            "SELECT kind, target, since, who, reason FROM directives ORDER BY kind, target"
        )
        return [
            dict(zip(("kind", "target", "since", "who", "reason"), r, strict=True)) for r in rows
        ]

    def directives(self) -> Directives:
        """The operator's directives as one value for the cycle.

        pause all -> ``hold_all``; pause deposits -> ``no_new_deposits``; freeze/exit -> the venue
        sets. ``reasons`` names who imposed each and why (``"*"`` for a pause).
        """
        freeze: set[str] = set()
        exits: set[str] = set()
        hold_all = no_new = False
        reasons: dict[str, str] = {}
        for row in self.directive_rows():
            why = f"operator {row['who']}: {row['kind']}" + (
                f" ({row['reason']})" if row["reason"] else ""
            )
            if row["kind"] == "pause":
                hold_all = hold_all or row["target"] == "all"
                no_new = no_new or row["target"] == "deposits"
                reasons["*"] = why
            elif row["kind"] == "freeze":
                freeze.add(row["target"])
                reasons.setdefault(row["target"], why)
            elif row["kind"] == "exit":
                exits.add(row["target"])
                reasons[row["target"]] = why
        return Directives(
            freeze=frozenset(freeze),
            exit=frozenset(exits),
            no_new_deposits=no_new,
            hold_all=hold_all,
            reasons=reasons,
        )

    # -- actions ---------------------------------------------------------------------------

    def record_action(
        self,
        at: datetime,
        who: str,
        action: str,
        *,
        target: str = "",
        params: dict[str, Any] | None = None,
        result: Literal["ok", "refused"],
        detail: str = "",
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO operator_actions(at, who, action, target, params_json, result, detail) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                at.isoformat(),
                who,
                action,
                target,
                json.dumps(params or {}, sort_keys=True, default=str),
                result,
                detail,
            ),
        )
        return int(cur.lastrowid or 0)

    def actions(self, limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, at, who, action, target, params_json, result, detail FROM operator_actions "
            "WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**62, limit),
        )
        keys = ("id", "at", "who", "action", "target", "params", "result", "detail")
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["params"] = json.loads(d["params"])
            out.append(d)
        return out

    # -- plans -----------------------------------------------------------------------------

    def add_plan(
        self,
        *,
        created_at: datetime,
        expires_at: datetime,
        status: PlanStatus,
        kind: str,
        plan: dict[str, Any],
        context: dict[str, Any],
        rebalance_id: int | None = None,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO plans(created_at, expires_at, status, kind, rebalance_id, plan_json, "
            "context_json) VALUES (?,?,?,?,?,?,?)",
            (
                created_at.isoformat(),
                expires_at.isoformat(),
                status,
                kind,
                rebalance_id,
                json.dumps(plan, sort_keys=True, default=str),
                json.dumps(context, sort_keys=True, default=str),
            ),
        )
        return int(cur.lastrowid or 0)

    def plan(self, plan_id: int) -> StoredPlan | None:
        row = self._db.execute(
            f"SELECT {_PLAN_COLUMNS} FROM plans WHERE id = ?", (plan_id,)
        ).fetchone()
        return _plan(row) if row else None

    def plans(self, statuses: tuple[PlanStatus, ...], kind: str | None = None) -> list[StoredPlan]:
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT {_PLAN_COLUMNS} FROM plans WHERE status IN ({marks})"
        args: list[Any] = list(statuses)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        return [_plan(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def transition(
        self,
        plan_id: int,
        from_statuses: tuple[PlanStatus, ...],
        to: PlanStatus,
        *,
        at: datetime,
        who: str | None = None,
        detail: str = "",
    ) -> bool:
        """Move a plan to ``to`` only if it is in one of ``from_statuses`` now (compare-and-set)."""
        marks = ",".join("?" * len(from_statuses))
        cur = self._db.execute(
            f"UPDATE plans SET status = ?, decided_at = ?, decided_by = COALESCE(?, decided_by), "
            f"detail = ? WHERE id = ? AND status IN ({marks})",
            (to, at.isoformat(), who, detail, plan_id, *from_statuses),
        )
        return cur.rowcount == 1

    def set_plan_results(self, plan_id: int, results: list[dict[str, Any]]) -> None:
        self._db.execute(
            "UPDATE plans SET results_json = ? WHERE id = ?",
            (json.dumps(results, sort_keys=True, default=str), plan_id),
        )

    def set_plan_rebalance(self, plan_id: int, rebalance_id: int) -> None:
        self._db.execute("UPDATE plans SET rebalance_id = ? WHERE id = ?", (rebalance_id, plan_id))

    def update_plan_json(self, plan_id: int, plan: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE plans SET plan_json = ? WHERE id = ?",
            (json.dumps(plan, sort_keys=True, default=str), plan_id),
        )
