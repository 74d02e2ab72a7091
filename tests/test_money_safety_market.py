"""Issue 12 end to end against one simulated market served by URL: two daemons on it are two
accounts, and a move older than the venue's idempotency memory is asked about, not replayed."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import pytest

from core.money import usd_to_units
from tests.daemon_process import REPO, DaemonProcess, free_port
from tests.test_e2e import allocated_venues

pytestmark = pytest.mark.slow


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
