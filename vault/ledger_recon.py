"""The ledger's tables for reconciliation (``vault/reconcile.py``): when each venue last agreed with
the books, the open breaks, and the operator's two kinds of transaction that are not moves
(``break_booked`` against ``equity:breaks``, ``adoption`` against ``equity:adopted``).

A mixin of :class:`vault.ledger.Ledger` (it uses the ledger's connection and ``post``), kept apart
so the ledger file stays one room.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

ADOPTED = "equity:adopted"  # positions an operator adopted into a ledger that lost its own
BREAKS = "equity:breaks"  # reconciliation breaks an operator booked, with a reason


@dataclass(frozen=True, slots=True)
class Break:
    """A venue's report the books cannot explain (``vault/reconcile.py``), open until booked."""

    venue: str
    detected_at: str
    updated_at: str
    books_units: int
    reported_units: int
    explained_units: int
    reason: str

    @property
    def difference_units(self) -> int:
        return self.reported_units - self.books_units


class ReconciliationBooks:
    """Reconciliation state and the operator's transactions, on the ledger's connection."""

    _db: sqlite3.Connection

    def post(  # provided by Ledger
        self,
        at: datetime,
        kind: str,
        postings: Iterable[tuple[str, int]],
        *,
        idempotency_key: str | None = None,
        memo: str = "",
        _clear_pending: str | None = None,
        _close_break: str | None = None,
    ) -> bool:
        raise NotImplementedError

    def mark_initialised(self, how: str) -> None:  # provided by Ledger
        raise NotImplementedError

    def last_reconciled(self) -> dict[str, tuple[datetime, float]]:
        """venue -> (when its report last matched the books, the venue's APR then)."""
        return {
            venue: (datetime.fromisoformat(at), float(apr))
            for venue, at, apr in self._db.execute("SELECT venue, at, apr FROM reconciliations")
        }

    def first_postings(self, prefix: str) -> dict[str, datetime]:
        """account name after ``prefix`` -> time of its first posting."""
        return {
            account.removeprefix(prefix): datetime.fromisoformat(at)
            for account, at in self._db.execute(
                "SELECT p.account, MIN(t.at) FROM postings p JOIN transactions t ON t.id = p.tx_id "
                "WHERE p.account LIKE ? GROUP BY p.account",
                (prefix + "%",),
            )
        }

    def first_posting(self, account: str) -> datetime | None:
        """Time of ``account``'s first posting (None: never posted). One account through the
        ``postings_account`` index: :meth:`first_postings` scans every posting of the prefix, a
        cost that grows with the ledger (a 3-year hourly replay books ~100k accruals)."""
        row = self._db.execute(
            "SELECT MIN(t.at) FROM postings p JOIN transactions t ON t.id = p.tx_id "
            "WHERE p.account = ?",
            (account,),
        ).fetchone()
        return None if row is None or row[0] is None else datetime.fromisoformat(row[0])

    def balances_under(self, prefix: str) -> dict[str, int]:
        """account name after ``prefix`` -> its balance, for every account that starts with it
        (one range scan of the balances' key; ``Ledger.account`` per name is a query each)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return {
            account.removeprefix(prefix): int(units)
            for account, units in self._db.execute(
                "SELECT account, units FROM balances WHERE account >= ? AND account < ?",
                (prefix, upper),
            )
        }

    def reconciled_marks(self) -> dict[str, float]:
        """venue -> its asset's price/peg when its report last matched the books (where known)."""
        return {
            venue: float(mark)
            for venue, mark in self._db.execute(
                "SELECT venue, mark FROM reconciliations WHERE mark IS NOT NULL"
            )
        }

    def mark_reconciled(
        self, venue: str, at: datetime, apr: float, mark: float | None = None
    ) -> None:
        """The venue's report agreed with the books at ``at`` (its APR then, and its asset's
        price/peg then, or None where unknown)."""
        self._db.execute(
            "INSERT INTO reconciliations(venue, at, apr, mark) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(venue) DO UPDATE SET at = excluded.at, apr = excluded.apr, "
            "mark = excluded.mark",
            (venue, at.isoformat(), apr, mark),
        )

    def mark_reconciled_many(
        self, at: datetime, agreed: Iterable[tuple[str, float, float | None]]
    ) -> None:
        """:meth:`mark_reconciled` for each (venue, APR, mark) at ``at``, in one statement."""
        at_iso = at.isoformat()
        self._db.executemany(
            "INSERT INTO reconciliations(venue, at, apr, mark) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(venue) DO UPDATE SET at = excluded.at, apr = excluded.apr, "
            "mark = excluded.mark",
            [(venue, at_iso, apr, mark) for venue, apr, mark in agreed],
        )

    def record_break(
        self, at: datetime, venue: str, books: int, reported: int, explained: int, reason: str
    ) -> None:
        """Open a break, or refresh an open one with the latest report (its detection time stays)."""
        self._db.execute(
            "INSERT INTO breaks(venue, detected_at, updated_at, books_units, reported_units, "
            "explained_units, reason) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(venue) DO UPDATE SET "
            "updated_at = excluded.updated_at, books_units = excluded.books_units, "
            "reported_units = excluded.reported_units, explained_units = excluded.explained_units, "
            "reason = excluded.reason",
            (venue, at.isoformat(), at.isoformat(), books, reported, explained, reason),
        )

    def post_break(self, at: datetime, brk: Break, reason: str) -> int:
        """Book an open break's difference as the operator's own kind of transaction, and close it.

        position:<venue> += reported - books, ``equity:breaks`` -= the same (never income).
        """
        delta = brk.difference_units
        self.post(
            at,
            "break_booked",
            [(f"position:{brk.venue}", delta), (BREAKS, -delta)],
            memo=json.dumps({"venue": brk.venue, "reason": reason, "detected_at": brk.detected_at}),
            _close_break=brk.venue,
        )
        self.mark_reconciled(brk.venue, datetime.fromisoformat(brk.updated_at), 0.0)
        return delta

    def adopt(self, at: datetime, positions_units: Mapping[str, int], reason: str) -> None:
        """Book positions a venue holds for this vault into a ledger that lost its own (operator).

        position:<venue> += units, ``equity:adopted`` -= units; no capital is deposited.
        """
        for venue, units in sorted(positions_units.items()):
            self.post(
                at,
                "adoption",
                [(f"position:{venue}", units), (ADOPTED, -units)],
                idempotency_key=f"adoption:{venue}",
                memo=json.dumps({"venue": venue, "reason": reason}),
            )
            self.mark_reconciled(venue, at, 0.0)
        self.mark_initialised("adopt")
