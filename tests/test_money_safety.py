"""Issue 12 end to end: a running daemon on the simulated market never books money it cannot explain.

Each test starts from a real stopped vault (a daemon run until it holds >= 3 venues, then SIGTERM),
damages it the way a careless or hostile operator would, and checks that `yieldvault run` refuses
(exit 2, one line, no traceback) or holds, and that no USD is booked that was not there. Two
daemons on one market and a move older than the venue's key memory:
tests/test_money_safety_market.py; the ledger soak: tests/test_money_safety_soak.py.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from core.money import usd_to_units
from tests.daemon_process import DaemonProcess
from tests.money_safety import adopt, copy_of, nav_units, run_refused
from tests.test_e2e import allocated_venues
from vault.integrity import open_verified

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stopped_vault(tmp_path_factory) -> Path:
    """A data dir after a clean stop, holding positions in >= 3 venues of the embedded market."""
    data_dir = tmp_path_factory.mktemp("vault") / "var"
    daemon = DaemonProcess(data_dir)
    try:
        daemon.wait_until(lambda: len(allocated_venues(daemon)) >= 3, 90, "an allocation")
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.logs()[-3000:]
    return data_dir


def test_case1_truncated_ledger_refuses_to_start(stopped_vault, tmp_path):
    data_dir = copy_of(stopped_vault, tmp_path)
    (data_dir / "ledger.sqlite3").write_bytes(b"")
    proc = run_refused(data_dir)
    assert "is empty (0 bytes)" in proc.stderr and "Restoring the ledger" in proc.stderr


def test_case1_deleted_ledger_refuses_until_adopted_and_never_books_the_market_as_income(
    stopped_vault, tmp_path
):
    data_dir = copy_of(stopped_vault, tmp_path)
    vault_id = (data_dir / "vault-id").read_text().strip()
    nav_before = nav_units(data_dir)
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    proc = run_refused(data_dir)
    assert "ledger" in proc.stderr and "missing but the venue holds" in proc.stderr
    assert f"for vault {vault_id}" in proc.stderr
    # Still refused on the next try: the refusal left nothing behind that looks like a fresh start.
    run_refused(data_dir)
    adopt(data_dir, "ledger lost in test")
    nav_adopted = nav_units(data_dir)
    # The venue's positions, not 1,000,000 of fresh capital on top of them (the 1,978,021).
    assert nav_adopted <= nav_before
    assert nav_adopted >= nav_before * 0.9  # the idle cash of the lost ledger is not invented back
    daemon = DaemonProcess(data_dir)
    try:
        daemon.wait_until(lambda: daemon.json("/api/v1/status")["rebalances"] >= 3, 60, "cycles")
        status = daemon.json("/api/v1/status")
        assert usd_to_units(status["nav_usd"]) <= nav_before * 1.001
        assert status["vault_id"] == vault_id
    finally:
        code, _ = daemon.terminate()
    assert code == 0


def test_case4_edited_balances_refuse_to_start(stopped_vault, tmp_path):
    data_dir = copy_of(stopped_vault, tmp_path)
    db = sqlite3.connect(data_dir / "ledger.sqlite3")
    db.execute(
        "UPDATE balances SET units = units + ? WHERE account = 'idle:ethereum'",
        (usd_to_units(500_000),),
    )
    db.commit()
    db.close()
    proc = run_refused(data_dir)
    assert "altered outside yieldvault" in proc.stderr and "idle:ethereum" in proc.stderr


def test_a_foreign_or_damaged_file_refuses_to_start(stopped_vault, tmp_path):
    data_dir = copy_of(stopped_vault, tmp_path)
    path = data_dir / "ledger.sqlite3"
    raw = bytearray(path.read_bytes())
    for i in range(4096, len(raw), 131):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    proc = run_refused(data_dir)
    assert "damaged" in proc.stderr or "altered" in proc.stderr
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    proc = run_refused(data_dir)
    assert "not a yieldvault ledger" in proc.stderr


@pytest.mark.parametrize("damage", ["delete", "tamper"])
def test_ledger_deleted_or_tampered_while_running_stops_all_money(stopped_vault, tmp_path, damage):
    data_dir = copy_of(stopped_vault, tmp_path)
    daemon = DaemonProcess(data_dir)
    try:
        daemon.wait_until(lambda: daemon.json("/api/v1/status")["rebalances"] >= 2, 60, "cycles")
        ok = ("yieldvault_ledger_integrity_ok", ())
        assert daemon.metrics().get(ok) == 1
        path = data_dir / "ledger.sqlite3"
        if damage == "delete":
            path.unlink()
        else:
            db = sqlite3.connect(path)
            db.execute(
                "UPDATE balances SET units = units + ? WHERE account = 'idle:ethereum'",
                (usd_to_units(500_000),),
            )
            db.commit()
            db.close()
        daemon.wait_until(lambda: daemon.metrics().get(ok) == 0, 30, "the integrity gauge at 0")
        moves_at_failure = daemon.logs().count('"event": "move"')
        count = daemon.metrics()
        held = sum(
            v
            for (n, labels), v in count.items()
            if n == "yieldvault_rebalances_total" and dict(labels).get("outcome") == "failed"
        )
        daemon.wait_until(
            lambda: (
                sum(
                    v
                    for (n, labels), v in daemon.metrics().items()
                    if n == "yieldvault_rebalances_total"
                    and dict(labels).get("outcome") == "failed"
                )
                >= held + 3
            ),
            30,
            "three more held cycles",
        )
        logs = daemon.logs()
        assert logs.count('"event": "move"') == moves_at_failure  # nothing moved since
        assert "ledger_integrity_failed" in logs
        assert (
            "deleted underneath" if damage == "delete" else "written by another process"
        ) in logs
        assert daemon.get("/healthz")[0] == 200
    finally:
        code, _ = daemon.terminate()
    assert code == 0
    if damage == "delete":
        assert (data_dir / "ledger.rescued.sqlite3").exists()


def test_sigterm_drains_the_move_in_progress_and_books_it(tmp_path):
    """A deposit the venue answers slowly (3 s) is in flight at SIGTERM: it finishes and is booked,
    no move is left unresolved, and the daemon still exits 0 within 10 s."""
    import time

    import yaml

    from vault.settings import DEFAULT_CONFIG

    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG.parent, config_dir)
    market_yaml = config_dir / "market.default.yaml"
    market = yaml.safe_load(market_yaml.read_text())
    market["faults"] = [
        {"path_prefix": "/paper/v1/deposit", "mode": "latency", "latency_ms": 3000, "count": 100}
    ]
    market_yaml.write_text(yaml.safe_dump(market))
    data_dir = tmp_path / "var"
    daemon = DaemonProcess(
        data_dir,
        args=["--config", str(config_dir / "default.yaml")],
        env={"YIELDVAULT_SCHEDULE__REBALANCE_INTERVAL_SECONDS": "3600"},
    )

    def pending() -> int:
        if not (data_dir / "ledger.sqlite3").exists():
            return -1
        db = sqlite3.connect(data_dir / "ledger.sqlite3", timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM pending_moves").fetchone()[0]
        except sqlite3.OperationalError:
            return -1  # the daemon has created the file but not its schema yet
        finally:
            db.close()

    try:
        daemon.wait_until(lambda: pending() == 1, 90, "a deposit in flight")
        time.sleep(0.5)
    finally:
        code, seconds = daemon.terminate()
    assert code == 0, daemon.logs()[-3000:]
    assert seconds <= 10
    assert pending() == 0
    led = open_verified(data_dir / "ledger.sqlite3")
    try:
        deposits = led._db.execute("SELECT COUNT(*) FROM transactions WHERE kind = 'deposit'")
        assert deposits.fetchone()[0] == 1  # the one in flight, and no other started after SIGTERM
    finally:
        led.close()


def test_case5_a_held_venue_removed_from_the_config_is_refused_then_exited(stopped_vault, tmp_path):
    """Deleting a venue that holds money from the config is refused, naming it; marked
    `exit_only: true` instead, it stays visible and is withdrawn, and nothing else is sold off
    (before: it vanished from the status and the books sold every other venue at a loss)."""
    import yaml

    from vault.settings import DEFAULT_CONFIG

    data_dir = copy_of(stopped_vault, tmp_path)
    led = open_verified(data_dir / "ledger.sqlite3")
    held = {v: u for v, u in led.balances().positions_units.items() if u}
    nav_before = led.balances().nav_units
    led.close()
    venue = "aave-v3-usdc-ethereum" if "aave-v3-usdc-ethereum" in held else sorted(held)[0]
    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG.parent, config_dir)
    config = yaml.safe_load((config_dir / "default.yaml").read_text())
    gone = next(v for v in config["venues"] if v["id"] == venue)
    kinds = {k: r for k, r in config["limits"]["max_kind_ratio"].items() if k != gone["kind"]}
    without = {
        **config,
        "venues": [v for v in config["venues"] if v["id"] != venue],
        "limits": {**config["limits"], "max_kind_ratio": kinds},
    }
    (config_dir / "without.yaml").write_text(yaml.safe_dump(without))
    proc = run_refused(data_dir, "run", "--config", str(config_dir / "without.yaml"))
    assert venue in proc.stderr and "exit_only: true" in proc.stderr
    for v in config["venues"]:
        if v["id"] == venue:
            v["exit_only"] = True
    (config_dir / "exit.yaml").write_text(yaml.safe_dump(config))
    daemon = DaemonProcess(data_dir, args=["--config", str(config_dir / "exit.yaml")])

    def position(status: dict) -> dict:
        return next(p for p in status["positions"] if p["venue"] == venue)

    try:
        first = daemon.wait_until(lambda: daemon.json("/api/v1/status"), 30, "status")
        assert position(first)["exit_only"] is True
        daemon.wait_until(
            lambda: float(position(daemon.json("/api/v1/status"))["position_usd"]) == 0.0,
            90,
            f"{venue} withdrawn",
        )
        status = daemon.json("/api/v1/status")
        assert usd_to_units(status["nav_usd"]) >= nav_before * 0.995
        others = [p for p in status["positions"] if p["venue"] != venue]
        assert sum(float(p["position_usd"]) > 0 for p in others) >= 2  # the rest stays invested
    finally:
        code, _ = daemon.terminate()
    assert code == 0
