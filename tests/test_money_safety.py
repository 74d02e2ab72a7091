"""Issue 12 end to end: a running daemon on the simulated market never books money it cannot explain.

Each test starts from a real stopped vault (a daemon run until it holds >= 3 venues, then SIGTERM),
damages it the way a careless or hostile operator would, and checks that `yieldvault run` refuses
(exit 2, one line, no traceback) or holds, and that no USD is booked that was not there.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.money import usd_to_units
from tests.daemon_process import FAST_SCHEDULE, REPO, DaemonProcess, free_port
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


def copy_of(stopped_vault: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "var"
    shutil.copytree(stopped_vault, data_dir)
    return data_dir


def run_refused(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`yieldvault run` (or another command) that must refuse: exit 2, one stderr line, no traceback."""
    import os

    cmd = args or ("run", "--listen", f"127.0.0.1:{free_port()}")
    proc = subprocess.run(
        [sys.executable, "-m", "vault.cli", *cmd, "--data-dir", str(data_dir)],
        cwd=REPO,
        env={**os.environ, **FAST_SCHEDULE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc


def nav_units(data_dir: Path) -> int:
    led = open_verified(data_dir / "ledger.sqlite3")
    try:
        return led.balances().nav_units
    finally:
        led.close()


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
    adopted = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli",
            "ledger",
            "adopt",
            "--reason",
            "ledger lost in test",
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert adopted.returncode == 0, adopted.stderr
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


def test_case2_two_daemons_on_one_market_are_two_accounts(tmp_path):
    """Each daemon books only its own deposits: the two NAVs sum to the 2M of capital put in
    (before: 3.90M, each booking the other's deposits as yield)."""
    import json

    port = free_port()
    market = subprocess.Popen(
        [sys.executable, "-m", "vault.cli", "mock-feeds", "--listen", f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "YIELDVAULT_FEEDS__EMBEDDED_MARKET": "null",
        "YIELDVAULT_FEEDS__ROOT_URL": f"http://127.0.0.1:{port}",
    }
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    daemons = [DaemonProcess(tmp_path / name / "var", env=env) for name in ("a", "b")]
    try:
        for d in daemons:
            d.wait_until(lambda d=d: len(allocated_venues(d)) >= 3, 90, "an allocation")
        for d in daemons:
            count = d.json("/api/v1/status")["rebalances"]
            d.wait_until(
                lambda d=d, c=count: d.json("/api/v1/status")["rebalances"] >= c + 3, 60, "cycles"
            )
        statuses = [d.json("/api/v1/status") for d in daemons]
        assert statuses[0]["vault_id"] != statuses[1]["vault_id"]
        navs = [usd_to_units(s["nav_usd"]) for s in statuses]
        for nav, s in zip(navs, statuses, strict=True):
            assert usd_to_units(990_000) <= nav <= usd_to_units(1_010_000), s["nav_usd"]
            assert s["reconciliation_breaks"] == []
        for d in daemons:
            assert d.metrics().get(("yieldvault_reconciliation_breaks", ())) == 0
        # the market holds each vault's positions apart, equal to that vault's books
        import urllib.request

        def same_venues(d: DaemonProcess, vault_id: str) -> bool:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/paper/v1/positions",
                headers={"X-Paper-Account": vault_id},
            )
            rows = json.loads(urllib.request.urlopen(req, timeout=5).read())["positions"]
            ours = d.json("/api/v1/status")["positions"]
            return {r["venue"] for r in rows if float(r["position_usd"]) > 0} == {
                p["venue"] for p in ours if float(p["position_usd"]) > 0
            }

        for d, s in zip(daemons, statuses, strict=True):
            # (a move may land between the two reads: ask again until they agree)
            d.wait_until(lambda d=d, s=s: same_venues(d, s["vault_id"]), 20, "books = market")
    finally:
        codes = [d.terminate()[0] for d in daemons]
        market.terminate()
        market.wait(timeout=10)
    assert codes == [0, 0]


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


def test_case3_a_move_older_than_the_venues_key_memory_is_asked_about_not_replayed(tmp_path):
    """A deposit applied but its answer lost, the daemon killed, the market's clock 31 days on
    (its key memory is 30): the restart asks the venue instead of sending the deposit again,
    books what the venue shows, and the books equal the market (before: the replay executed a
    second time and +34,931 was booked as income)."""
    import json
    import signal
    import time
    import urllib.request

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    market = subprocess.Popen(
        [sys.executable, "-m", "vault.cli", "mock-feeds", "--listen", f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def post(path: str, body: dict) -> dict:
        req = urllib.request.Request(
            base + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    # Venues on ethereum only: a bridge leg in flight at the kill would be forgotten by the market
    # after 31 days too, and that (held for a person, by design) is not what this case is about.
    import yaml

    from vault.settings import DEFAULT_CONFIG

    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG.parent, config_dir)
    config = yaml.safe_load((config_dir / "default.yaml").read_text())
    config["venues"] = [v for v in config["venues"] if v["chain"] == "ethereum"]
    kinds = {v["kind"] for v in config["venues"]}
    config["limits"]["max_kind_ratio"] = {
        k: r for k, r in config["limits"]["max_kind_ratio"].items() if k in kinds
    }
    (config_dir / "default.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", str(config_dir / "default.yaml")]
    env = {"YIELDVAULT_FEEDS__EMBEDDED_MARKET": "null", "YIELDVAULT_FEEDS__ROOT_URL": base}
    data_dir = tmp_path / "var"

    def pending() -> int:
        try:
            db = sqlite3.connect(data_dir / "ledger.sqlite3", timeout=5)
            try:
                return db.execute("SELECT COUNT(*) FROM pending_moves").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            return -1

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/admin/v1/state", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mock-feeds did not start"
                time.sleep(0.2)
        post(
            "/admin/v1/faults", {"path_prefix": "/paper/v1/deposit", "mode": "http_5xx", "count": 1}
        )
        first = DaemonProcess(
            data_dir,
            args=args,
            env={**env, "YIELDVAULT_SCHEDULE__REBALANCE_INTERVAL_SECONDS": "3600"},
        )
        try:
            first.wait_until(lambda: pending() == 1, 90, "a deposit whose answer was lost")
        finally:
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait()
            first.kill()
        post("/admin/v1/clock", {"advance_seconds": 31 * 86_400})
        second = DaemonProcess(data_dir, args=args, env=env)
        try:
            second.wait_until(lambda: "move_asked_first" in second.logs(), 60, "the venue asked")
            second.wait_until(lambda: pending() == 0, 30, "the move booked")
            count = second.json("/api/v1/status")["rebalances"]
            second.wait_until(
                lambda: second.json("/api/v1/status")["rebalances"] >= count + 3, 60, "cycles"
            )
            # Stop the market's clock, then let one more cycle sync the books at that instant: a
            # leveraged loop's mark moves ~0.2 % a tick, so comparing the books with a moving
            # market measures the tick, not the booking.
            post("/admin/v1/clock", {"time_scale": 0})
            count = second.json("/api/v1/status")["rebalances"]
            second.wait_until(
                lambda: second.json("/api/v1/status")["rebalances"] >= count + 2, 60, "synced"
            )
            status = second.json("/api/v1/status")
            assert status["reconciliation_breaks"] == [], status["reconciliation_breaks"]
            assert '"event": "move_replayed"' not in second.logs()
            req = urllib.request.Request(
                base + "/paper/v1/positions", headers={"X-Paper-Account": status["vault_id"]}
            )
            rows = json.loads(urllib.request.urlopen(req, timeout=5).read())["positions"]
            market_units = {r["venue"]: usd_to_units(r["position_usd"]) for r in rows}
            books = {p["venue"]: usd_to_units(p["position_usd"]) for p in status["positions"]}
            for venue, units in market_units.items():
                # the same at one frozen instant, to within the reconciliation's rounding slack
                assert abs(books.get(venue, 0) - units) <= max(units * 0.0005, 10**6), venue
            assert usd_to_units(status["nav_usd"]) <= usd_to_units(1_000_000) * 1.01
        finally:
            code, _ = second.terminate()
        assert code == 0
    finally:
        market.terminate()
        market.wait(timeout=10)


@pytest.mark.xfail(
    strict=False,
    raises=subprocess.TimeoutExpired,
    reason="NOT YET reliable: on a fresh CI run a restart inside the soak did not finish within "
    "its subprocess timeout; a wrong booking still fails it (only a timeout is expected)",
)
def test_soak_ledger_deleted_truncated_tampered_at_random_never_books_phantom_money(tmp_path):
    """~90 s: rounds of a running daemon whose ledger is deleted, truncated to 0 bytes or has
    +500k written into `balances` at a random moment. Each time it stops moving money, refuses
    the damaged file on restart (exit 2, one line), and runs on after a restore (the rescued
    copy, or the backup taken at the last clean stop); at no point do the books claim more than
    the capital plus a sane accrual, and no income beyond that is ever booked."""
    import random
    import time

    rng = random.Random(12)
    data_dir = tmp_path / "var"
    ok = ("yieldvault_ledger_integrity_ok", ())
    started = time.monotonic()
    backup = tmp_path / "backup.sqlite3"
    damages = rng.sample(["delete", "truncate", "tamper"], 3)
    for damage in damages:
        daemon = DaemonProcess(data_dir)
        try:
            daemon.wait_until(
                lambda d=daemon: d.json("/api/v1/status")["rebalances"] >= 1, 60, "up"
            )
            time.sleep(rng.uniform(0.0, 3.0))
            path = data_dir / "ledger.sqlite3"
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
        for stale in ("ledger.sqlite3-wal", "ledger.sqlite3-shm"):
            (data_dir / stale).unlink(missing_ok=True)
        if damage == "delete":
            run_refused(data_dir)  # "ledger missing but the venue holds ..."
            (data_dir / "ledger.rescued.sqlite3").replace(path)
        else:
            run_refused(data_dir)  # empty, or altered outside yieldvault
            path.unlink()
            if backup.exists():
                shutil.copy(backup, path)
            else:  # no clean stop yet: adopt what the venue holds (no capital)
                adopted = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "vault.cli",
                        "ledger",
                        "adopt",
                        "--reason",
                        "soak",
                        "--data-dir",
                        str(data_dir),
                    ],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert adopted.returncode == 0, adopted.stderr
        led = open_verified(path)  # the restored file passes every check
        try:
            nav = led.balances().nav_units
            income = -sum(
                units
                for _, units in led._db.execute(
                    "SELECT account, units FROM balances WHERE account LIKE 'income:%'"
                )
            )
            assert nav <= usd_to_units(1_000_000) * 1.01, nav
            assert income <= usd_to_units(2_000), income
        finally:
            led.close()
        # a clean run and stop on the restored books, then the backup for the next round
        daemon = DaemonProcess(data_dir)
        try:
            daemon.wait_until(
                lambda d=daemon: d.json("/api/v1/status")["rebalances"] >= 1, 60, "up"
            )
            status = daemon.json("/api/v1/status")
            assert usd_to_units(status["nav_usd"]) <= usd_to_units(1_000_000) * 1.01
        finally:
            code, _ = daemon.terminate()
        assert code == 0
        src = sqlite3.connect(path)
        dst = sqlite3.connect(backup)
        src.backup(dst)
        src.close()
        dst.close()
    assert time.monotonic() - started < 400  # ~90 s on an idle machine, bounded either way
