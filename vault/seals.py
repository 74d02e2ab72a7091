"""The ledger's seal: an HMAC-SHA256 chain over every transaction, keyed by a per-vault secret.

``seal_n = HMAC(key, seal_{n-1} || canonical(tx_n))``, the key in ``data_dir/vault.key``. The
primitives the ledger writes with (:mod:`vault.ledger`) and the file checks verify with
(:mod:`vault.integrity`, which explains what the seal does and does not defend against); a module
of their own so that the two need not import each other.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sqlite3
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"
KEY_FILE = "vault.key"
REQUIRED_TABLES = frozenset(
    {"meta", "transactions", "postings", "balances", "pending_moves", "rebalances"}
)
RESTORE_HINT = "see README 'Restoring the ledger'"


class LedgerIntegrityError(Exception):
    """The ledger cannot be trusted; the message is one line naming the file and the reason."""


def load_or_create_key(data_dir: Path, *, create: bool) -> bytes | None:
    """The vault's 32-byte sealing secret from ``data_dir/vault.key`` (hex), made (0600) if asked."""
    path = data_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        if not create:
            return None
    except ValueError as exc:
        raise LedgerIntegrityError(f"{path}: not a hex key ({exc})") from None
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def canonical(
    tx_id: int, at: str, kind: str, key: str | None, memo: str, postings: list[tuple[str, int]]
) -> bytes:
    """The bytes a seal covers: the transaction row and its postings, sorted."""
    lines = ";".join(f"{a}={u}" for a, u in sorted(postings))
    return f"{tx_id}|{at}|{kind}|{key or ''}|{memo}|{lines}".encode()


def seal(key: bytes, previous: str, body: bytes) -> str:
    """``HMAC-SHA256(key, previous || body)`` as hex: each seal chains the one before it."""
    # ``hmac.digest``: the same HMAC in one C call (``hmac.new(...).hexdigest()`` builds two
    # hash objects in Python: ~4x the time, paid on every ledger post)
    return hmac.digest(key, previous.encode() + b"|" + body, "sha256").hex()


def verify_seals(
    db: sqlite3.Connection, key: bytes, after_tx: int = 0, previous: str = ""
) -> tuple[list[str], int, str]:
    """Check the seal chain for transactions with id > ``after_tx``.

    Returns (problems, last verified tx id, its seal), so a caller can continue incrementally.
    """
    postings: dict[int, list[tuple[str, int]]] = {}
    for tx_id, account, units in db.execute(
        "SELECT tx_id, account, amount_units FROM postings WHERE tx_id > ?", (after_tx,)
    ):
        postings.setdefault(tx_id, []).append((account, units))
    seals = dict(db.execute("SELECT tx_id, mac FROM seals WHERE tx_id > ?", (after_tx,)))
    last, prev = after_tx, previous
    for tx_id, at, kind, idem, memo in db.execute(
        "SELECT id, at, kind, idempotency_key, memo FROM transactions WHERE id > ? ORDER BY id",
        (after_tx,),
    ):
        expected = seal(key, prev, canonical(tx_id, at, kind, idem, memo, postings.get(tx_id, [])))
        if not hmac.compare_digest(seals.pop(tx_id, ""), expected):
            return [f"transaction {tx_id} ({kind}) does not match its seal"], last, prev
        last, prev = tx_id, expected
    if seals:
        return [f"seal for a transaction that does not exist ({min(seals)})"], last, prev
    return [], last, prev
