"""Guards end to end: `yieldvault run` as a subprocess on the embedded simulated market.

* an exploit preceded by outflows: with guards the daemon is out before the strike and loses at
  most half of what it loses without (the full table for every incident: guard/README.md,
  ``python -m tests.guard_scenarios``); every executed cycle kept every limit;
* an exit whose answer is lost, then SIGKILL: the restarted daemon still has the breaker tripped,
  replays the written-ahead withdrawal under its key, books it once, and finishes the exit
  (books = market, one USDT redemption at the market);
* metrics, the evidence log line, ``yieldvault guards status`` and an operator's resume while the
  daemon runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.money import usd_to_units
from tests.daemon_process import REPO, DaemonProcess
from tests.guard_scenarios import CASES, run_case
from tests.test_e2e import books_and_market, pause_market_and_settle
from vault.settings import DEFAULT_CONFIG

pytestmark = pytest.mark.slow
EARN = "earn-usdt-flexible"


def _market_url(daemon: DaemonProcess) -> str:
    return re.findall(r'"url": "(http://127\.0\.0\.1:\d+)", "market"', daemon.logs())[-1]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _position(daemon: DaemonProcess, venue: str) -> float:
    rows = daemon.json("/api/v1/status")["positions"]
    return sum(float(p["position_usd"]) for p in rows if p["venue"] == venue)


def _metric(daemon: DaemonProcess, name: str, **labels: str) -> float | None:
    return daemon.metrics().get((name, tuple(sorted(labels.items()))))


def test_exploit_after_outflows_guards_lose_at_most_half(tmp_path: Path) -> None:
    case = CASES["exploit_after_outflows"]
    off = run_case(case, False, tmp_path / "off")
    on = run_case(case, True, tmp_path / "on")
    assert off.loss_usd > 50_000, off  # without guards the strike takes half the Aave position
    assert on.loss_usd <= off.loss_usd / 2, (on, off)
    assert "aave-v3-usdc-ethereum/outflow" in on.guard_trips
    db = sqlite3.connect(tmp_path / "on" / "var" / "ledger.sqlite3")
    rows = db.execute(
        "SELECT outcome, solution_json FROM rebalances WHERE outcome = 'executed'"
    ).fetchall()
    db.close()
    assert rows
    for _, sol in rows:
        assert json.loads(sol).get("violations", []) == []  # the exits kept every limit


def test_exit_survives_sigkill_with_its_answer_lost_and_books_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = {
        "YIELDVAULT_GUARDS__DEPEG__FOR_SECONDS": "0",  # trip at the first reading, exit that cycle
        "YIELDVAULT_GUARDS__NAV_DRAWDOWN__ENABLED": "false",
    }
    first = DaemonProcess(data_dir, env=env)
    try:
        first.wait_until(lambda: _position(first, EARN) > 1_000, 60, "a USDT earn position")
        market = _market_url(first)
        _post(
            f"{market}/admin/v1/scenarios",
            {
                "name": "depeg",
                "chain": "ethereum",
                "token": "USDT",
                "params": {"price": 0.97},
                "duration_seconds": 30 * 86400,
            },
        )
        _post(
            f"{market}/admin/v1/faults",
            {"path_prefix": "/paper/v1/withdraw", "mode": "http_5xx", "count": 1},
        )
        first.wait_until(
            lambda: _metric(first, "yieldvault_unresolved_moves") == 1, 60, "the exit's lost answer"
        )
        logs = first.logs()
        assert '"guard": "depeg"' in logs and '"venue": "earn-usdt-flexible"' in logs
        db = sqlite3.connect(data_dir / "ledger.sqlite3")
        pending = db.execute("SELECT move_json FROM pending_moves").fetchall()
        db.close()
        # a withdrawal of the exit's plan lost its answer (fastest first: it may be an instant
        # one the plan sends before the queued USDT redemption, which then waits for the replay)
        assert len(pending) == 1 and '"path": "/withdraw"' in pending[0][0]
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        first.kill()

    second = DaemonProcess(data_dir, env=env)
    try:
        second.wait_until(lambda: "move_replayed" in second.logs(), 60, "the replay")
        assert "guards_restored" in second.logs()
        assert _metric(second, "yieldvault_guard_state", venue=EARN, guard="depeg") in (1.0, 2.0)
        second.wait_until(lambda: _position(second, EARN) < 100, 60, "the exit done")
        withdrawals = _get(f"{_market_url(second)}/paper/v1/withdrawals")["withdrawals"]
        pause_market_and_settle(second)
    finally:
        code, _ = second.terminate()
    assert code == 0
    mine = [w for w in withdrawals if w["venue"] == EARN]
    assert len(mine) == 1, mine  # the replay did not withdraw a second time
    books, _, venues = books_and_market(data_dir, DEFAULT_CONFIG.parent / "market.default.yaml")
    ours = {v: u for v, u in books.positions_units.items() if u}
    assert set(ours) == {v for v, u in venues.items() if u}
    for venue, units in ours.items():
        assert abs(venues[venue] - units) <= 10, (venue, units, venues[venue])
    assert books.positions_units.get(EARN, 0) < usd_to_units(100)


def test_metrics_log_status_and_an_operator_resume_while_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = {
        "YIELDVAULT_GUARDS__DEPEG__FOR_SECONDS": "0",
        "YIELDVAULT_GUARDS__DEPEG__COOLDOWN_SECONDS": "0",
        "YIELDVAULT_GUARDS__LOSS__COOLDOWN_SECONDS": "0",  # the mark-down trips the loss guard too
    }
    daemon = DaemonProcess(data_dir, env=env)
    try:
        daemon.wait_until(lambda: daemon.json("/api/v1/status")["rebalances"] >= 2, 60, "cycles")
        assert _metric(daemon, "yieldvault_guard_state", venue=EARN, guard="depeg") == 0
        assert _metric(daemon, "yieldvault_guard_trips_total", guard="depeg") == 0
        market = _market_url(daemon)
        sc = _post(
            f"{market}/admin/v1/scenarios",
            {
                "name": "depeg",
                "chain": "ethereum",
                "token": "USDT",
                "params": {"price": 0.9},
                "duration_seconds": 6 * 3600,
            },
        )
        daemon.wait_until(
            lambda: _metric(daemon, "yieldvault_guard_directive", venue=EARN, action="exit") == 1,
            60,
            "the exit directive",
        )
        assert _metric(daemon, "yieldvault_guard_trips_total", guard="depeg") == 1
        trip = next(
            json.loads(line)
            for line in daemon.logs().splitlines()
            if '"event": "guard"' in line and '"kind": "trip"' in line and '"depeg"' in line
        )
        assert trip["venue"] == EARN and trip["evidence"]["deviation_bps"] < -900
        status = _cli("status", "--json", data_dir=data_dir)
        assert [
            (b["venue"], b["guard"])
            for b in json.loads(status)["breakers"]
            if b["guard"] == "depeg"
        ] == [(EARN, "depeg")]
        # the depeg ends; the breaker cools but an exit waits for the operator
        daemon.wait_until(
            lambda: not _get(f"{market}/admin/v1/scenarios")["scenarios"][-1]["active"],
            60,
            "the depeg's end",
        )
        daemon.wait_until(
            lambda: _metric(daemon, "yieldvault_guard_state", venue=EARN, guard="depeg") == 1,
            60,
            "cooling",
        )
        assert _metric(daemon, "yieldvault_guard_directive", venue=EARN, action="exit") == 1
        _cli("resume", "--venue", EARN, data_dir=data_dir)  # every guard on the venue
        daemon.wait_until(
            lambda: (
                _metric(daemon, "yieldvault_guard_state", venue=EARN, guard="depeg") == 0
                and _metric(daemon, "yieldvault_guard_directive", venue=EARN, action="exit") == 0
            ),
            60,
            "the resume applied",
        )
        assert '"guard_resume"' in daemon.logs()
        assert sc["name"] == "depeg"
    finally:
        code, _ = daemon.terminate()
    assert code == 0


def _cli(*args: str, data_dir: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "vault.cli", "guards", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout
