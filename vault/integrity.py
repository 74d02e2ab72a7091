"""Is the ledger file the one we wrote? Checked before the first cycle and watched while running.

At start (:func:`open_verified`), a ledger file must be, in this order:

1. not empty: a 0-byte file is a truncated ledger, never a fresh one;
2. an SQLite database (the 16-byte header ``SQLite format 3\\0``);
3. undamaged: ``PRAGMA quick_check`` answers ``ok``;
4. ours: the ``meta`` table holds ``schema_version`` and every table of our schema exists
   (a foreign SQLite file is refused before anything is written to it);
5. sound: :meth:`Ledger.audit` (every transaction sums to zero, every stored balance equals the
   sum of its postings);
6. sealed: every transaction carries a seal, an HMAC-SHA256 chain
   ``seal_n = HMAC(key, seal_{n-1} || canonical(tx_n))`` keyed by a per-vault secret kept in
   ``data_dir/vault.key``. Editing ``balances`` alone fails step 5; editing postings and
   balances together (a balanced fake transaction) fails step 6.

The seal catches edits made without the key (an SQLite shell, a script, a restored file from
another vault). The key sits next to the ledger, so it is no defence against someone who can
read the data dir and knows the scheme: keep the data dir's permissions tight, and its backups
apart.

While running (:class:`LedgerWatch`), before every cycle: the file must still be the same inode,
non-empty, and no other connection may have written to it (``PRAGMA data_version`` changes only
for other connections' commits); the new transactions' seals are verified incrementally and the
full audit (not the whole seal chain) runs on a read-only connection in a worker thread. Any failure is sticky: the daemon
stops moving and booking money until it is restarted on a restored ledger.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from vault.ledger import Ledger, audit_connection
from vault.seals import (
    KEY_FILE as KEY_FILE,
)
from vault.seals import (
    REQUIRED_TABLES,
    RESTORE_HINT,
    SQLITE_HEADER,
    LedgerIntegrityError,
    verify_seals,
)


def precheck_file(path: Path) -> bool:
    """Before SQLite touches it: True when the file exists and looks like an SQLite database."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise LedgerIntegrityError(
                f"ledger {path} is missing but its write-ahead log {wal.name} remains (deleted?); "
                f"{RESTORE_HINT}"
            ) from None
        return False
    if size == 0:
        raise LedgerIntegrityError(
            f"ledger {path} is empty (0 bytes): truncated, not fresh; {RESTORE_HINT}"
        )
    with open(path, "rb") as handle:
        head = handle.read(len(SQLITE_HEADER))
    if head != SQLITE_HEADER:
        raise LedgerIntegrityError(
            f"ledger {path} is not an SQLite database (damaged or a foreign file); {RESTORE_HINT}"
        )
    return True


def check_schema(db: sqlite3.Connection, path: Path) -> None:
    """quick_check, then our tables and schema version (before anything is written to the file)."""
    try:
        rows = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise LedgerIntegrityError(f"ledger {path} is damaged ({exc}); {RESTORE_HINT}") from None
    if rows != ["ok"]:
        raise LedgerIntegrityError(
            f"ledger {path} is damaged (quick_check: {rows[0]}"
            f"{f' and {len(rows) - 1} more' if len(rows) > 1 else ''}); {RESTORE_HINT}"
        )
    missing = REQUIRED_TABLES - tables
    if missing:
        raise LedgerIntegrityError(
            f"ledger {path} is not a yieldvault ledger (no table {', '.join(sorted(missing))}); "
            f"{RESTORE_HINT}"
        )
    version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version is None:
        raise LedgerIntegrityError(
            f"ledger {path} is not a yieldvault ledger (no schema_version); {RESTORE_HINT}"
        )


def open_verified(path: Path) -> Ledger:
    """Open the ledger at ``path`` after steps 1-6 above; raise LedgerIntegrityError otherwise."""

    existed = precheck_file(path)
    if existed:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check_schema(db, path)
        finally:
            db.close()
    try:
        ledger = Ledger(path)
    except sqlite3.DatabaseError as exc:
        raise LedgerIntegrityError(f"ledger {path} is damaged ({exc}); {RESTORE_HINT}") from None
    problems = ledger.verify()
    if problems:
        ledger.close()
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise LedgerIntegrityError(
            f"ledger {path} was altered outside yieldvault ({problems[0]}{more}); {RESTORE_HINT}"
        )
    return ledger


def audit_file(path: Path, key: bytes, *, seals: bool = False) -> list[str]:
    """The full audit on a read-only connection of its own (for a worker thread: SQLite runs the
    GROUP BYs without the GIL). ``seals``: the whole seal chain too, a Python loop over every
    transaction; the watch checks the new transactions' seals each cycle, so once at start is
    enough."""

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open read-only: {exc}"]
    try:
        problems = audit_connection(db)
        return problems + (verify_seals(db, key)[0] if seals else [])
    except sqlite3.Error as exc:
        return [f"read failed: {exc}"]
    finally:
        db.close()


@dataclass
class LedgerWatch:
    """Notices a ledger file deleted, replaced, truncated or written by another process.

    It also holds a read-only *witness* connection to the file, idle (no open transaction, so it
    never holds a checkpoint back). Its only job is the lock it keeps: SQLite's last connection
    to close copies the write-ahead log back into the database file, and a ledger truncated (or
    replaced) underneath us would be silently rewritten from the log at stop, whole or with holes
    depending on when the last checkpoint ran. :meth:`close_ledger` closes the witness first on a
    sound file (the usual checkpoint) and last on a file that is no longer ours, so the daemon
    writes nothing into it: it stays as the damage left it, and the log stays beside it.
    """

    ledger: Ledger
    inode: tuple[int, int] = (0, 0)
    data_version: int = 0
    sealed_tx: int = 0
    sealed_mac: str = ""
    failure: str | None = None
    file_lost: bool = False  # deleted, replaced or truncated: not a file to write into any more
    witness: sqlite3.Connection | None = None

    @classmethod
    def start(cls, ledger: Ledger) -> LedgerWatch:
        st = ledger.path.stat()
        watch = cls(ledger, (st.st_dev, st.st_ino), ledger.data_version())
        watch.sealed_tx, watch.sealed_mac = ledger.last_seal()
        witness = sqlite3.connect(
            f"file:{ledger.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        witness.execute("PRAGMA schema_version").fetchall()  # a read: it now holds its lock
        watch.witness = witness
        return watch

    def close_ledger(self) -> None:
        """Close the ledger (and the witness) at stop; see the class docstring for the order."""
        self.check()  # a damage since the last cycle counts too
        if not self.file_lost and self.witness is not None:
            self.witness.close()
            self.witness = None
        self.ledger.close()
        if self.witness is not None:  # read-only: it cannot checkpoint, the log is left as it is
            self.witness.close()
            self.witness = None

    def check(self) -> str | None:
        """The cheap checks, on the event loop (microseconds): None, or why money must stop."""
        if self.failure is not None:
            return self.failure
        path = self.ledger.path
        try:
            st = path.stat()
        except FileNotFoundError:
            self.file_lost = True
            return self._fail(f"ledger {path} was deleted underneath the running daemon")
        if (st.st_dev, st.st_ino) != self.inode:
            self.file_lost = True
            return self._fail(f"ledger {path} was replaced by another file (new inode)")
        if st.st_size == 0:
            self.file_lost = True
            return self._fail(f"ledger {path} was truncated to 0 bytes")
        try:
            version = self.ledger.data_version()
            problems, self.sealed_tx, self.sealed_mac = self.ledger.verify_seals_after(
                self.sealed_tx, self.sealed_mac
            )
        except sqlite3.DatabaseError as exc:
            return self._fail(f"ledger {path} cannot be read ({exc})")
        if version != self.data_version:
            return self._fail(f"ledger {path} was written by another process")
        if problems:
            return self._fail(f"ledger {path}: {problems[0]}")
        return None

    def fail_with(self, problems: list[str]) -> str | None:
        """Record the worker-thread audit's findings (sticky)."""
        if problems and self.failure is None:
            return self._fail(f"ledger {self.ledger.path} failed its audit: {problems[0]}")
        return self.failure

    def _fail(self, reason: str) -> str:
        self.failure = reason
        return reason
