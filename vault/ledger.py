"""The ledger: exact, double-entry bookkeeping in one SQLite file.

Every amount is an integer number of base units (``core.money``: 1 USD = 10**6 units). Every
transaction is a set of postings that sums to zero, so value only moves between accounts:

* asset accounts, which together are the NAV:
  ``idle:<chain>``, ``position:<venue>``, ``in_flight:<transfer id>``;
* the other side: ``equity:deposits`` (capital put in), ``income:<venue>`` (yield accrued,
  negative for losses), ``expense:fees``, ``expense:gas``.

Hence ``idle + positions + in flight = NAV = -(equity + income + expenses)`` to the base unit at
every commit; :meth:`Ledger.post` refuses an unbalanced transaction and :meth:`Ledger.audit`
re-derives all balances from the postings.

Moves are written ahead: :meth:`Ledger.begin_move` records the intent under the move's
idempotency key before the venue is called, :meth:`Ledger.finish_move` books the result and
clears the intent in one SQL transaction. After a crash, the intents left over are replayed with
the same key (the venue answers a repeated key with its first result), so nothing is lost and
nothing is counted twice.

SQLite access is synchronous and fast (microseconds per statement, WAL mode); the daemon calls
it from its single event-loop thread only, and never holds a transaction across an ``await``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.ledger_reads import Balances as Balances
from vault.ledger_reads import LedgerReads
from vault.ledger_reads import audit_connection as audit_connection
from vault.ledger_rebalances import RebalanceBooks
from vault.ledger_rebalances import RebalanceRecord as RebalanceRecord
from vault.ledger_recon import ADOPTED as ADOPTED
from vault.ledger_recon import BREAKS as BREAKS
from vault.ledger_recon import Break as Break
from vault.ledger_recon import ReconciliationBooks
from vault.seals import canonical, load_or_create_key, seal, verify_seals

# 2: rebalances.memory_json (the optimizer's memory after the cycle; NULL where none was made)
# 3: seals, reconciliations, breaks (tables only: created where missing); vault id in meta
# 4: reconciliations.mark (the venue asset's price/peg when its report last agreed; NULL before)
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    memo TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS postings (
    tx_id INTEGER NOT NULL REFERENCES transactions(id),
    account TEXT NOT NULL,
    amount_units INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS postings_account ON postings(account);
CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, units INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending_moves (
    idempotency_key TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    move_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rebalances (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    solver_status TEXT NOT NULL,
    reason TEXT NOT NULL,
    nav_units INTEGER NOT NULL,
    inputs_json TEXT NOT NULL,
    solution_json TEXT NOT NULL,
    moves_json TEXT NOT NULL,
    results_json TEXT NOT NULL,
    memory_json TEXT
);
CREATE TABLE IF NOT EXISTS seals (tx_id INTEGER PRIMARY KEY, mac TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reconciliations (
    venue TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    apr REAL NOT NULL,
    mark REAL
);
CREATE TABLE IF NOT EXISTS breaks (
    venue TEXT PRIMARY KEY,
    detected_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    books_units INTEGER NOT NULL,
    reported_units INTEGER NOT NULL,
    explained_units INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

ASSET_PREFIXES = ("idle:", "position:", "in_flight:")
EQUITY = "equity:deposits"
FEES = "expense:fees"
GAS = "expense:gas"


class LedgerError(Exception):
    """A transaction that would break the books (unbalanced, or an asset going negative)."""


class Ledger(LedgerReads, ReconciliationBooks, RebalanceBooks):
    def __init__(self, path: Path, *, key: bytes | None = None, durable: bool = True):
        """``durable=False`` (backtests: a replay is re-run, not recovered) skips the fsync per commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._kept_reads: dict[str, tuple[tuple[int, int], Any]] = {}
        self._db.execute("PRAGMA journal_mode=WAL")
        # a committed move survives a power cut
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        self._migrate()
        loaded = key if key is not None else load_or_create_key(path.parent, create=True)
        assert loaded is not None  # create=True makes one when there is none
        self._key: bytes = loaded
        if self._meta("sealed") is None and self._count("transactions") == 0:
            self._set_meta("sealed", "1")  # a new ledger: sealed from its first transaction

    def _migrate(self) -> None:
        """Bring a ledger written by an older version up to ``SCHEMA_VERSION``, in one transaction.

        1 -> 2: ``rebalances.memory_json`` (NULL for the rows before: a daemon restarted on such a
        ledger starts the optimizer cold, as it did before). 2 -> 3: the seals, reconciliations
        and breaks tables (made by the schema script); the seals of the transactions before are
        made by :meth:`verify` once the ledger audits clean. 3 -> 4: ``reconciliations.mark``
        (NULL for the rows before: their next sync explains no mark move, as before).
        """
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: schema_version {version} is newer than this version reads "
                f"({SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(rebalances)")}
        recon = {r[1] for r in self._db.execute("PRAGMA table_info(reconciliations)")}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if "memory_json" not in columns:
                self._db.execute("ALTER TABLE rebalances ADD COLUMN memory_json TEXT")
            if "mark" not in recon:
                self._db.execute("ALTER TABLE reconciliations ADD COLUMN mark REAL")
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def changes(self) -> int:
        """Rows this connection has changed since it opened (a cheap "did anything move?")."""
        return int(self._db.total_changes)

    def rescue_if_deleted(self) -> Path | None:
        """A ledger file unlinked underneath us still lives in our open connection: copy it out."""
        if self.path.exists():
            return None
        target = self.path.with_name(f"{self.path.stem}.rescued{self.path.suffix}")
        try:
            self._db.execute("VACUUM INTO ?", (str(target),))
        except sqlite3.Error:
            return None
        return target

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- identity and integrity (vault/integrity.py) ---------------------------------------

    def vault_id(self) -> str | None:
        return self._meta("vault_id")

    def set_vault_id(self, vault_id: str) -> None:
        self._set_meta("vault_id", vault_id)

    def verify(self) -> list[str]:
        """The audit and the seal chain; a schema-1 ledger that audits clean is sealed as it is."""
        problems = self.audit()
        if problems:
            return problems
        if self._meta("sealed") is None:
            self._seal_legacy()
            return []
        return verify_seals(self._db, self._key)[0]

    def _seal_legacy(self) -> None:
        """Seal a schema-1 ledger's transactions (trusted because they audit clean)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            prev = ""
            for tx_id, at, kind, idem, memo in db.execute(
                "SELECT id, at, kind, idempotency_key, memo FROM transactions ORDER BY id"
            ).fetchall():
                lines = db.execute(
                    "SELECT account, amount_units FROM postings WHERE tx_id = ?", (tx_id,)
                ).fetchall()
                prev = seal(self._key, prev, canonical(tx_id, at, kind, idem, memo, lines))
                db.execute("INSERT OR REPLACE INTO seals(tx_id, mac) VALUES (?, ?)", (tx_id, prev))
            self._set_meta("sealed", "1")
            self._set_meta("schema_version", str(SCHEMA_VERSION))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def last_seal(self) -> tuple[int, str]:
        row = self._db.execute(
            "SELECT tx_id, mac FROM seals ORDER BY tx_id DESC LIMIT 1"
        ).fetchone()
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def verify_seals_after(self, tx_id: int, mac: str) -> tuple[list[str], int, str]:
        return verify_seals(self._db, self._key, tx_id, mac)

    # -- posting ---------------------------------------------------------------------------

    def post(
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
        """Book one balanced transaction atomically. Returns False if ``idempotency_key`` was booked before.

        Raises LedgerError if the postings do not sum to zero or would drive an asset account negative.
        """
        lines = [(account, int(units)) for account, units in postings if units != 0]
        total = sum(units for _, units in lines)
        if total != 0:
            raise LedgerError(f"{kind}: postings sum to {total} units, not 0: {lines}")
        db = self._db
        # inside ``atomically()`` a savepoint: the enclosing transaction commits it with the rest
        nested = db.in_transaction
        db.execute("SAVEPOINT post" if nested else "BEGIN IMMEDIATE")
        try:
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT 1 FROM transactions WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    if _clear_pending:
                        db.execute(
                            "DELETE FROM pending_moves WHERE idempotency_key = ?", (_clear_pending,)
                        )
                    db.execute("RELEASE post" if nested else "COMMIT")
                    return False
            at_iso = at.isoformat()
            cur = db.execute(
                "INSERT INTO transactions(at, kind, idempotency_key, memo) VALUES (?, ?, ?, ?)",
                (at_iso, kind, idempotency_key, memo),
            )
            tx_id = int(cur.lastrowid or 0)
            prev = db.execute("SELECT mac FROM seals ORDER BY tx_id DESC LIMIT 1").fetchone()
            body = canonical(tx_id, at_iso, kind, idempotency_key, memo, lines)
            db.execute(
                "INSERT INTO seals(tx_id, mac) VALUES (?, ?)",
                (tx_id, seal(self._key, prev[0] if prev else "", body)),
            )
            db.executemany(
                "INSERT INTO postings(tx_id, account, amount_units) VALUES (?, ?, ?)",
                [(tx_id, account, units) for account, units in lines],
            )
            for account, new in self._apply_balances(lines):
                if new < 0 and account.startswith(ASSET_PREFIXES):
                    raise LedgerError(f"{kind}: {account} would go negative ({new} units)")
                if new == 0 and account.startswith("in_flight:"):
                    db.execute("DELETE FROM balances WHERE account = ?", (account,))  # landed
            if _clear_pending:
                db.execute("DELETE FROM pending_moves WHERE idempotency_key = ?", (_clear_pending,))
            if _close_break:
                db.execute("DELETE FROM breaks WHERE venue = ?", (_close_break,))
            db.execute("RELEASE post" if nested else "COMMIT")
        except BaseException:
            if nested:
                db.execute("ROLLBACK TO post")
                db.execute("RELEASE post")
            else:
                db.execute("ROLLBACK")
            raise
        return True

    def _apply_balances(self, lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Add each posting to its account's balance; (account, new balance) in ``lines``' order.

        One ``executemany`` and one read for a transaction's distinct accounts (an accrual
        touches two per venue); an account posted twice in one transaction is added line by
        line, so each intermediate balance is checked as before."""
        db = self._db
        accounts = [account for account, _ in lines]
        if len(set(accounts)) < len(accounts):
            return [
                (
                    account,
                    db.execute(
                        "INSERT INTO balances(account, units) VALUES (?, ?) ON CONFLICT(account) "
                        "DO UPDATE SET units = units + excluded.units RETURNING units",
                        (account, units),
                    ).fetchone()[0],
                )
                for account, units in lines
            ]
        db.executemany(
            "INSERT INTO balances(account, units) VALUES (?, ?) "
            "ON CONFLICT(account) DO UPDATE SET units = units + excluded.units",
            lines,
        )
        marks = ",".join("?" * len(accounts))
        now = dict(
            db.execute(f"SELECT account, units FROM balances WHERE account IN ({marks})", accounts)
        )
        return [(account, int(now[account])) for account in accounts]

    @contextlib.contextmanager
    def atomically(self) -> Iterator[None]:
        """One transaction (one fsync) around several posts and records: all of them or none.

        A sync books every venue's accrual and reconciliation mark together; committed one by
        one they cost an fsync each (~4 ms) on the daemon's event loop."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def deposit_capital(self, at: datetime, chain: str, units: int) -> None:
        """Capital put into the vault from outside: equity -> idle. Done once, on the first start."""
        self.post(
            at,
            "capital_in",
            [(f"idle:{chain}", units), (EQUITY, -units)],
            idempotency_key="capital_in:initial",
        )
        self.mark_initialised("capital_in")

    def is_initialised(self) -> bool:
        """Capital was put in, or an operator adopted a venue's positions (``ledger adopt``)."""
        return self._meta("initialised") is not None or (
            self._db.execute(
                "SELECT 1 FROM transactions WHERE idempotency_key = 'capital_in:initial'"
            ).fetchone()
            is not None
        )

    def mark_initialised(self, how: str) -> None:
        self._set_meta("initialised", how)

    # -- write-ahead moves -----------------------------------------------------------------

    def begin_move(self, at: datetime, key: str, move: Mapping[str, Any]) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO pending_moves(idempotency_key, created_at, move_json) VALUES (?, ?, ?)",
            (key, at.isoformat(), json.dumps(dict(move), sort_keys=True)),
        )

    def finish_move(
        self, at: datetime, key: str, kind: str, postings: Iterable[tuple[str, int]], memo: str = ""
    ) -> bool:
        """Book a move's result and clear its intent in the same SQL transaction."""
        return self.post(at, kind, postings, idempotency_key=key, memo=memo, _clear_pending=key)

    def abandon_move(self, key: str) -> None:
        """Forget an intent the venue refused (nothing moved)."""
        self._db.execute("DELETE FROM pending_moves WHERE idempotency_key = ?", (key,))
