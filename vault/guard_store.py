"""The guards' state on disk: one JSON value in SQLite, and the operators' resume requests.

``data_dir/guards.sqlite3`` holds two tables:

* ``guard_state`` (one row): the whole :class:`guard.GuardState` as JSON (``guard.codec``),
  written in the same transaction that marks the resumes it applied, after every guard step;
* ``guard_resumes``: ``yieldvault guards resume`` (and the operator API) append a request; the
  daemon applies the pending ones at its next guard step (``applied_at`` set, ``result`` = the
  breakers it resumed), so a request made while the daemon runs is never overwritten by the
  daemon's next save, and one made while it is down is applied when it starts.

``synchronous=FULL`` and WAL, as the ledger; a separate file so the ledger's schema stays its own.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from guard import EMPTY, GUARDS, PORTFOLIO, GuardSettings, GuardState, apply_resume, codec

FILENAME = "guards.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS guard_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state_json TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guard_resumes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    venue TEXT,
    guard TEXT,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    applied_at TEXT,
    result TEXT
);
"""


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    id: int
    venue: str | None
    guard: str | None
    requested_at: str
    requested_by: str
    applied_at: str | None = None
    result: str | None = None


def _connect(path: Path) -> sqlite3.Connection:
    # the cycle's guard step runs in a worker thread; one cycle at a time uses the connection
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    return conn


class GuardStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / FILENAME
        self._conn = _connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def load(self) -> GuardState:
        """The last saved state (empty on a first start); ``ValueError`` naming the file if bad."""
        row = self._conn.execute("SELECT state_json FROM guard_state WHERE id = 1").fetchone()
        if row is None:
            return EMPTY
        try:
            return codec.load(json.loads(row[0]))
        except ValueError as exc:
            raise ValueError(f"{self.path}: table guard_state: {exc}") from None

    def pending_resumes(self) -> list[ResumeRequest]:
        rows = self._conn.execute(
            "SELECT id, venue, guard, requested_at, requested_by FROM guard_resumes "
            "WHERE applied_at IS NULL ORDER BY id"
        ).fetchall()
        return [ResumeRequest(*r) for r in rows]

    def apply_pending(
        self, settings: GuardSettings, state: GuardState, now: datetime
    ) -> tuple[GuardState, list[tuple[ResumeRequest, list[tuple[str, str]]]]]:
        """``state`` with every pending resume applied (not yet saved: :meth:`save` marks them)."""
        done = []
        for req in self.pending_resumes():
            state, hit = apply_resume(settings, state, now, req.venue, req.guard)
            done.append((req, hit))
        return state, done

    def save(
        self,
        state: GuardState,
        at: datetime,
        applied: list[tuple[ResumeRequest, list[tuple[str, str]]]] = (),  # type: ignore[assignment]
    ) -> None:
        text = json.dumps(codec.dump(state), sort_keys=True)
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT INTO guard_state (id, state_json, saved_at) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET state_json = excluded.state_json, "
                "saved_at = excluded.saved_at",
                (text, at.isoformat()),
            )
            for req, hit in applied:
                c.execute(
                    "UPDATE guard_resumes SET applied_at = ?, result = ? WHERE id = ?",
                    (at.isoformat(), json.dumps([list(k) for k in hit]), req.id),
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise


def validate_target(venue: str | None, guard: str | None, venues: set[str] | None) -> None:
    """``ValueError`` naming the field when the resume names no known venue or guard."""
    if guard is not None and guard not in GUARDS:
        raise ValueError(f"guard: {guard!r} is not a guard; known: {', '.join(GUARDS)}")
    if venue is not None and venues is not None and venue not in venues | {PORTFOLIO}:
        raise ValueError(f"venue: {venue!r} is not a configured venue (or {PORTFOLIO!r})")


def request_resume(
    data_dir: Path,
    venue: str | None,
    guard: str | None,
    *,
    now: datetime | None = None,
    by: str = "cli",
    venues: set[str] | None = None,
) -> ResumeRequest:
    """Queue an operator's resume of the breakers matching ``venue`` / ``guard`` (None: all).

    The daemon applies it at its next guard step; the CLI and the operator API both call this.
    """
    validate_target(venue, guard, venues)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    at = (now or datetime.now(UTC)).isoformat()
    conn = _connect(Path(data_dir) / FILENAME)
    try:
        cur = conn.execute(
            "INSERT INTO guard_resumes (venue, guard, requested_at, requested_by) VALUES (?, ?, ?, ?)",
            (venue, guard, at, by),
        )
        rid = int(cur.lastrowid or 0)
    finally:
        conn.close()
    return ResumeRequest(rid, venue, guard, at, by)


def read_status(data_dir: Path) -> tuple[GuardState, list[ResumeRequest]]:
    """The saved state and the resumes not yet applied (for ``yieldvault guards status``)."""
    store = GuardStore(data_dir)
    try:
        return store.load(), store.pending_resumes()
    finally:
        store.close()
