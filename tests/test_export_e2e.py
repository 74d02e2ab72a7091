"""Export mode end to end: a signer process of the tests' own polls the plan, executes it against
the simulated market's paper endpoints, reports the outcomes, and the books equal the market; a
signer that dies mid-plan leaves every unit it moved inside an intent the daemon holds on (the
unresolved-move alert's metric counts them past the deadline), and its late report books them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from core.money import usd_to_units
from mockfeeds.market import Market
from tests.api_daemon import OPERATE_TOKEN
from tests.api_process import api, get, market_url, rebalance_rows, start
from tests.daemon_process import REPO, DaemonProcess
from tests.test_e2e import assert_books_match_the_market
from vault.ledger import Ledger
from vault.settings import DEFAULT_CONFIG, read_yaml

pytestmark = pytest.mark.slow
MARKET_YAML = DEFAULT_CONFIG.parent / "market.default.yaml"


def run_signer(daemon: DaemonProcess, journal: Path, *extra: str) -> int:
    argv = [
        sys.executable,
        "-m",
        "tests.signer",
        "--daemon",
        daemon.url,
        "--token",
        OPERATE_TOKEN,
        "--market",
        market_url(daemon),
        "--journal",
        str(journal),
        *extra,
    ]
    return subprocess.run(argv, cwd=REPO, timeout=120).returncode


def exported_plan(daemon: DaemonProcess) -> dict:
    def found() -> dict | None:
        plans = get(daemon, "/api/v1/plans/pending")["plans"]
        return next((p for p in plans if p["kind"] == "export"), None)

    return daemon.wait_until(found, 60, "an exported plan")


def pending_keys(data_dir: Path) -> set[str]:
    db = sqlite3.connect(f"file:{data_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return {r[0] for r in db.execute("SELECT idempotency_key FROM pending_moves")}
    finally:
        db.close()


def finish_and_compare(daemon: DaemonProcess, data_dir: Path) -> None:
    """Stop the market's clock, let two cycles sync, stop: the books against the saved market."""
    req = urllib.request.Request(
        f"{market_url(daemon)}/admin/v1/clock",
        data=b'{"time_scale": 0}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    assert urllib.request.urlopen(req, timeout=5).status == 200
    count = get(daemon, "/api/v1/status")["rebalances"]
    daemon.wait_until(
        lambda: get(daemon, "/api/v1/status")["rebalances"] >= count + 2, 30, "two syncs"
    )
    code, _ = daemon.terminate()
    assert code == 0, daemon.logs()[-3000:]
    assert_books_match_the_market(*books_and_market(data_dir))


def books_and_market(data_dir: Path) -> tuple:
    """(books, yield booked, the market's positions for this vault's paper account) after a stop."""
    ledger = Ledger(data_dir / "ledger.sqlite3")
    try:
        assert ledger.audit() == [] and ledger.pending_moves() == []
        books = ledger.balances()
        earned = -sum(ledger.account(f"income:{v}") for v in books.positions_units)
    finally:
        ledger.close()
    market = Market.from_config(
        read_yaml(MARKET_YAML), state_path=data_dir / "market-state.json", wall_clock=lambda: 0.0
    )
    with market.use_account((data_dir / "vault-id").read_text().strip()):
        rows = market.positions_view()["positions"]
    return books, earned, {r["venue"]: usd_to_units(r["position_usd"]) for r in rows}


def test_export_signer_executes_the_plan_and_the_books_equal_the_market(tmp_path):
    daemon, _ = start(tmp_path, vault={"mode": "export", "export_deadline_seconds": 300})
    try:
        plan = exported_plan(daemon)
        on_disk = json.loads((tmp_path / "var" / "plans" / f"plan-{plan['id']}.json").read_text())
        assert on_disk["moves"] == plan["moves"] and on_disk["deadline"] == plan["deadline"]
        for m in plan["moves"]:
            assert m["amount_units"] > 0 and 0 < m["min_outcome_units"] <= m["amount_units"]
        assert [m["seq"] for m in plan["moves"]] == list(range(len(plan["moves"])))
        assert get(daemon, "/api/v1/status")["positions"][0]["position_usd"] == "0.000000"
        # no new plan after this one is reported: the books are compared on a still portfolio
        assert api(daemon, "POST", "/api/v1/pause", {"scope": "all"})[0] == 200
        assert run_signer(daemon, tmp_path / "journal.jsonl") == 0
        done = get(daemon, f"/api/v1/plans/{plan['id']}")
        assert done["status"] == "reported"
        assert {r["status"] for r in done["results"]} <= {"done", "failed"}
        assert sum(r["status"] == "done" for r in done["results"]) >= 3
        rebalance = get(daemon, f"/api/v1/rebalances/{done['rebalance_id']}")
        assert [r["idempotency_key"] for r in rebalance["results"]] == [
            m["idempotency_key"] for m in plan["moves"]
        ]
        daemon.wait_until(lambda: pending_keys(tmp_path / "var") == set(), 10, "no intent left")
        finish_and_compare(daemon, tmp_path / "var")
    finally:
        daemon.kill()


def test_a_signer_that_dies_mid_plan_leaves_no_money_unaccounted(tmp_path):
    daemon, _ = start(tmp_path, vault={"mode": "export", "export_deadline_seconds": 3})
    data_dir = tmp_path / "var"
    journal = tmp_path / "journal.jsonl"
    try:
        plan = exported_plan(daemon)
        assert api(daemon, "POST", "/api/v1/pause", {"scope": "all"})[0] == 200
        assert run_signer(daemon, journal, "--crash-after", "2") == 3
        moved = [json.loads(x) for x in journal.read_text().splitlines()]
        assert len(moved) == 2 and all(x["status"] == 200 for x in moved)
        # Past the deadline: the daemon holds, and every unreported move counts as unresolved.
        count = len(plan["moves"])
        daemon.wait_until(
            lambda: daemon.metrics()[("yieldvault_unresolved_moves", ())] == count,
            30,
            "the unresolved-move gauge at the plan's size",
        )
        rows = rebalance_rows(data_dir)
        assert (
            "unreported past the deadline" in rows[-1]["reason"] and rows[-1]["outcome"] == "failed"
        )
        # Every unit the signer moved sits in an intent the daemon holds on; the books moved nothing.
        assert {x["move"]["idempotency_key"] for x in moved} <= pending_keys(data_dir)
        status = get(daemon, "/api/v1/status")
        assert (
            status["nav_usd"] == "1000000.000000"
            and status["positions"][0]["position_usd"] == "0.000000"
        )
        # The signer comes back late: it replays under the same keys (nothing moves twice) and reports.
        assert run_signer(daemon, journal) == 0
        assert get(daemon, f"/api/v1/plans/{plan['id']}")["status"] == "reported"
        daemon.wait_until(
            lambda: daemon.metrics()[("yieldvault_unresolved_moves", ())] == 0, 30, "resolved"
        )
        assert pending_keys(data_dir) == set()
        finish_and_compare(daemon, data_dir)
    finally:
        daemon.kill()
