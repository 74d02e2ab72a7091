"""Issue 12: the ledger soak (deleted, truncated, tampered at random moments while running)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from core.money import usd_to_units
from tests.daemon_process import REPO, DaemonProcess
from tests.money_safety import CAPITAL_UNITS, adopt, income_units, run_refused
from vault.integrity import open_verified

pytestmark = pytest.mark.slow


def test_soak_ledger_deleted_truncated_tampered_at_random_never_books_phantom_money(tmp_path):
    """~60 s: rounds of a running daemon whose ledger is deleted, truncated to 0 bytes or has
    +500k written into `balances` at a random moment. Each time it stops moving money, refuses
    the damaged file on restart (exit 2, one line), and runs on after a restore (the rescued
    copy, or the backup taken at the last clean stop, or an adoption of what the venue holds);
    and not one USD is ever booked as income.

    Deterministic in its checks. The market's clock is stopped (``time_scale: 0``), so there is
    no yield and no price move to explain: any income would be phantom money, whatever the
    speed of the machine. And the damage is what the restart sees: the daemon writes nothing
    into a truncated file at stop (it once rewrote it from the write-ahead log at close, whole
    or with holes depending on when the last checkpoint ran, and the restart that had to refuse
    then ran until its subprocess timeout)."""
    import random
    import time

    import yaml

    rng = random.Random(12)
    market = yaml.safe_load((REPO / "config" / "market.default.yaml").read_text())
    market["time_scale"] = 0
    market_yaml = tmp_path / "market.paused.yaml"
    market_yaml.write_text(yaml.safe_dump(market))
    env = {"YIELDVAULT_FEEDS__EMBEDDED_MARKET": str(market_yaml)}
    data_dir = tmp_path / "var"
    ok = ("yieldvault_ledger_integrity_ok", ())
    backup = tmp_path / "backup.sqlite3"
    path = data_dir / "ledger.sqlite3"
    damages = rng.sample(["delete", "truncate", "tamper"], 3)
    nav_before = CAPITAL_UNITS
    for damage in damages:
        daemon = DaemonProcess(data_dir, env=env)
        try:
            daemon.wait_until(
                lambda d=daemon: d.json("/api/v1/status")["rebalances"] >= 1, 60, "up"
            )
            time.sleep(
                rng.uniform(0.0, 3.0)
            )  # a random moment: what it hits varies, not the checks
            if damage == "delete":
                path.unlink()
            elif damage == "truncate":
                path.write_bytes(b"")
            else:
                db = sqlite3.connect(path)
                db.execute(
                    "UPDATE balances SET units = units + ? WHERE account = 'idle:ethereum'",
                    (usd_to_units(500_000),),
                )
                db.commit()
                db.close()
            daemon.wait_until(lambda d=daemon: d.metrics().get(ok) == 0, 30, f"stop after {damage}")
            status = daemon.json("/api/v1/status")
            assert status["ledger_integrity"]["ok"] is False
        finally:
            code, _ = daemon.terminate()
        assert code == 0, daemon.logs()[-2000:]
        if damage == "truncate":  # left as the damage left it, not rewritten from the log
            assert path.stat().st_size == 0
        for stale in ("ledger.sqlite3-wal", "ledger.sqlite3-shm"):
            (data_dir / stale).unlink(missing_ok=True)
        if damage == "delete":
            run_refused(data_dir, env=env)  # "ledger missing but the venue holds ..."
            (data_dir / "ledger.rescued.sqlite3").replace(path)
        else:
            proc = run_refused(data_dir, env=env)
            assert ("empty (0 bytes)" if damage == "truncate" else "altered") in proc.stderr
            path.unlink()
            if backup.exists():
                shutil.copy(backup, path)
            else:  # no clean stop yet: adopt what the venue holds (no capital)
                adopt(data_dir, "soak", env)
        led = open_verified(path)  # the restored file passes every check
        try:
            assert income_units(led) == 0
            assert led.balances().nav_units <= nav_before
        finally:
            led.close()
        # a clean run and stop on the restored books, then the backup for the next round
        daemon = DaemonProcess(data_dir, env=env)
        try:
            daemon.wait_until(
                lambda d=daemon: d.json("/api/v1/status")["rebalances"] >= 1, 60, "up"
            )
        finally:
            code, _ = daemon.terminate()
        assert code == 0
        led = open_verified(path)
        try:
            assert income_units(led) == 0
            nav = led.balances().nav_units
            assert nav <= nav_before, (nav, nav_before)  # moves cost fees and gas, never earn
            nav_before = nav
        finally:
            led.close()
        src = sqlite3.connect(path)
        dst = sqlite3.connect(backup)
        src.backup(dst)
        src.close()
        dst.close()
