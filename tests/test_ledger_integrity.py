"""The ledger file's checks (vault/integrity.py) on real SQLite files: each kind of damage refused."""

import sqlite3
from datetime import UTC, datetime

import pytest

from core.money import usd_to_units
from vault.integrity import KEY_FILE, LedgerIntegrityError, LedgerWatch, open_verified
from vault.ledger import Ledger

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def booked(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    led = Ledger(path)
    led.deposit_capital(T0, "ethereum", usd_to_units(1_000_000))
    led.post(
        T0,
        "deposit",
        [("idle:ethereum", -usd_to_units(400_000)), ("position:a", usd_to_units(400_000))],
    )
    led.post(T0, "accrual", [("position:a", 1234), ("income:a", -1234)], memo="a")
    led.close()
    return path


def test_a_sound_ledger_opens(tmp_path):
    led = open_verified(booked(tmp_path))
    assert led.balances().nav_units == usd_to_units(1_000_000) + 1234
    led.close()


def test_a_missing_ledger_is_created_fresh(tmp_path):
    led = open_verified(tmp_path / "ledger.sqlite3")
    assert not led.is_initialised()
    led.close()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "is empty (0 bytes)"),
        ("garbage_header", "is not an SQLite database"),
        ("foreign", "is not a yieldvault ledger"),
        ("corrupt_pages", "damaged"),
        ("balances", "altered outside yieldvault (idle:ethereum: stored"),
        ("balanced_fake", "does not match its seal"),
        ("deleted_posting", "altered outside yieldvault"),
    ],
)
def test_each_kind_of_damage_refuses_with_one_line(tmp_path, damage, message):
    path = booked(tmp_path)
    if damage == "truncate":
        path.write_bytes(b"")
    elif damage == "garbage_header":
        path.write_bytes(b"PK\x03\x04 not a database" + bytes(4000))
    elif damage == "foreign":
        path.unlink()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        db.commit()
        db.close()
    elif damage == "corrupt_pages":
        raw = bytearray(path.read_bytes())
        for i in range(200, len(raw), 97):  # keep the 100-byte header, break page contents
            raw[i] = 0xFF
        path.write_bytes(bytes(raw))
    else:
        db = sqlite3.connect(path)
        if damage == "balances":
            db.execute(
                "UPDATE balances SET units = units + 500000000000 WHERE account = 'idle:ethereum'"
            )
        elif damage == "balanced_fake":
            # A transaction that balances, with balances to match: the audit alone cannot see it.
            cur = db.execute(
                "INSERT INTO transactions(at, kind, memo) VALUES ('2026-01-02', 'accrual', 'a')"
            )
            for account, units in (
                ("idle:ethereum", 500_000_000_000),
                ("income:a", -500_000_000_000),
            ):
                db.execute("INSERT INTO postings VALUES (?, ?, ?)", (cur.lastrowid, account, units))
                db.execute(
                    "UPDATE balances SET units = units + ? WHERE account = ?", (units, account)
                )
            db.execute("INSERT INTO balances VALUES ('income:a', 0) ON CONFLICT DO NOTHING")
        else:
            db.execute("DELETE FROM postings WHERE account = 'income:a'")
        db.commit()
        db.close()
    with pytest.raises(LedgerIntegrityError) as info:
        open_verified(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text
    assert "Restoring the ledger" in text


def test_a_ledger_without_its_key_is_refused(tmp_path):
    path = booked(tmp_path)
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(LedgerIntegrityError, match="does not match its seal"):
        open_verified(path)


def test_a_schema_1_ledger_is_sealed_once_when_it_audits_clean(tmp_path):
    path = booked(tmp_path)
    db = sqlite3.connect(path)
    db.execute("DELETE FROM seals")
    db.execute("DELETE FROM meta WHERE key IN ('sealed', 'initialised')")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    led = open_verified(path)
    assert led.is_initialised() and led.verify() == []
    led.close()
    open_verified(path).close()


def test_the_watch_notices_deletion_replacement_truncation_and_foreign_writes(tmp_path):
    for what in ("delete", "replace", "truncate", "foreign_write", "none"):
        d = tmp_path / what
        d.mkdir()
        led = open_verified(booked(d))
        watch = LedgerWatch.start(led)
        assert watch.check() is None
        led.post(T0, "accrual", [("position:a", 5), ("income:a", -5)])  # our own write is fine
        assert watch.check() is None
        if what == "delete":
            led.path.unlink()
        elif what == "replace":
            copy = d / "copy"
            copy.write_bytes(led.path.read_bytes())
            copy.replace(led.path)
        elif what == "truncate":
            led.path.write_bytes(b"")
        elif what == "foreign_write":
            other = sqlite3.connect(led.path)
            other.execute("UPDATE balances SET units = units + 1 WHERE account = 'position:a'")
            other.commit()
            other.close()
        problem = watch.check()
        if what == "none":
            assert problem is None
        else:
            assert problem is not None and str(led.path) in problem, (what, problem)
            assert watch.check() == problem  # sticky
        if what == "delete":
            rescued = led.rescue_if_deleted()
            assert rescued is not None and rescued.exists()
            led.close()
            for stale in ("ledger.sqlite3-wal", "ledger.sqlite3-shm"):
                (d / stale).unlink(missing_ok=True)  # README: restore without the old WAL files
            rescued.replace(d / "ledger.sqlite3")
            open_verified(d / "ledger.sqlite3").close()  # the rescued copy verifies
        else:
            led.close()
