"""The ledger's reads: the asset balances, the write-ahead intents, the open breaks, the audit.

A mixin of :class:`vault.ledger.Ledger` on the ledger's connection. A cycle asks for the same
answer several times between writes (the sync, the guards, the gate, the record), so an answer is
kept until this connection changes a row (``sqlite3.Connection.total_changes``) or another
connection commits (SQLite's ``PRAGMA data_version``). An answer read inside a transaction is
never kept: a rollback would leave one that never committed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from vault.ledger_recon import Break

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Balances:
    """Asset balances in base units at one commit."""

    idle_units: Mapping[str, int]  # chain -> units
    positions_units: Mapping[str, int]  # venue id -> units
    in_flight_units: Mapping[str, int]  # transfer id -> units

    @property
    def nav_units(self) -> int:
        return (
            sum(self.idle_units.values())
            + sum(self.positions_units.values())
            + sum(self.in_flight_units.values())
        )

    @property
    def total_idle_units(self) -> int:
        return sum(self.idle_units.values())

    @property
    def total_in_flight_units(self) -> int:
        return sum(self.in_flight_units.values())


def audit_connection(db: sqlite3.Connection) -> list[str]:
    """Every transaction sums to zero and every stored balance equals the sum of its postings."""
    problems = [
        f"transaction {tx_id} sums to {total} units"
        for tx_id, total in db.execute(
            "SELECT tx_id, SUM(amount_units) FROM postings GROUP BY tx_id "
            "HAVING SUM(amount_units) != 0"
        )
    ]
    derived = dict(db.execute("SELECT account, SUM(amount_units) FROM postings GROUP BY account"))
    stored = dict(db.execute("SELECT account, units FROM balances"))
    for account in sorted(set(derived) | set(stored)):
        if derived.get(account, 0) != stored.get(account, 0):
            problems.append(
                f"{account}: stored {stored.get(account, 0)} != derived {derived.get(account, 0)}"
            )
    if sum(stored.values()) != 0:
        problems.append(f"balances sum to {sum(stored.values())} units, not 0")
    return problems


class LedgerReads:
    """Reads on the ledger's connection, each kept between writes (module docstring)."""

    _db: sqlite3.Connection
    _kept_reads: dict[str, tuple[tuple[int, int], Any]]

    def data_version(self) -> int:
        """Changes only when another connection commits to the file (SQLite ``data_version``)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _kept(self, name: str, read: Callable[[], T]) -> T:
        """``read()``, or its last answer while no row has changed since (module docstring).
        The answer must be immutable, or copied by the caller before it is handed out."""
        db = self._db
        version = (db.total_changes, self.data_version())
        hit = self._kept_reads.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]
        out = read()
        if not db.in_transaction:
            self._kept_reads[name] = (version, out)
        return out

    def balances(self) -> Balances:
        """The asset balances now."""
        return self._kept("balances", self._read_balances)

    def _read_balances(self) -> Balances:
        idle: dict[str, int] = {}
        positions: dict[str, int] = {}
        in_flight: dict[str, int] = {}
        for account, units in self._db.execute(
            "SELECT account, units FROM balances ORDER BY account"
        ):
            kind, _, name = account.partition(":")
            if kind == "idle":
                idle[name] = units
            elif kind == "position":
                positions[name] = units
            elif kind == "in_flight" and units:
                in_flight[name] = units
        return Balances(idle, positions, in_flight)

    def pending_moves(self) -> list[dict[str, Any]]:
        """The moves written ahead and not booked, oldest first; each with ``written_at``."""
        kept = self._kept("pending_moves", self._read_pending_moves)
        return [dict(m) for m in kept]

    def _read_pending_moves(self) -> tuple[dict[str, Any], ...]:
        rows = self._db.execute(
            "SELECT created_at, move_json FROM pending_moves ORDER BY created_at, idempotency_key"
        ).fetchall()
        return tuple({**json.loads(r[1]), "written_at": r[0]} for r in rows)

    def open_breaks(self) -> list[Break]:
        """The reconciliation breaks no operator has booked yet, by venue."""
        return list(self._kept("open_breaks", self._read_open_breaks))

    def _read_open_breaks(self) -> tuple[Break, ...]:
        return tuple(
            Break(*row)
            for row in self._db.execute(
                "SELECT venue, detected_at, updated_at, books_units, reported_units, "
                "explained_units, reason FROM breaks ORDER BY venue"
            )
        )

    def total_units(self) -> int:
        """The sum of every account's balance: 0 at every commit (double entry)."""
        return int(self._db.execute("SELECT COALESCE(SUM(units), 0) FROM balances").fetchone()[0])

    def account(self, name: str) -> int:
        row = self._db.execute("SELECT units FROM balances WHERE account = ?", (name,)).fetchone()
        return row[0] if row else 0

    def audit(self) -> list[str]:
        """Re-derive every balance from the postings and check each transaction sums to zero.

        Returns the problems found (empty when the books are sound).
        """
        return audit_connection(self._db)

    def is_booked(self, idempotency_key: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM transactions WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            is not None
        )
