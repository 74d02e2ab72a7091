"""Guards end to end: `yieldvault run` as a subprocess on the embedded simulated market.

* an exploit preceded by outflows, the market's clock stepped by the test: with guards the daemon
  is out before the strike and loses at most half of what it loses without (the full table for every incident: guard/README.md,
  ``python -m tests.guard_scenarios``); every executed cycle kept every limit;
* an exit whose answer is lost, then SIGKILL (on a paused market clock): the restarted daemon still has the breaker tripped,
  replays the written-ahead withdrawal under its key, books it once, and finishes the exit
  (books = market but for the depeg's mark-down, which stays an open reconciliation break; one
  USDT redemption at the market);
* metrics, the evidence log line, ``yieldvault guards status`` and an operator's resume while the
  daemon runs (on a paused market clock, stepped past the depeg's end).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.money import usd_to_units
from tests.daemon_process import REPO, DaemonProcess
from tests.guard_scenarios import (
    CASES,
    SETTLE_TIMEOUT_SECONDS,
    _config,
    market_url,
    post_json,
    run_case,
    settle,
)
from tests.test_e2e import pause_market_and_settle
from vault.settings import DEFAULT_CONFIG

pytestmark = pytest.mark.slow
EARN = "earn-usdt-flexible"


def _get(url: str, account: str | None = None) -> dict[str, Any]:
    headers = {"X-Paper-Account": account} if account else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
        return json.loads(resp.read())


def _market_position(daemon: DaemonProcess, data_dir: Path, venue: str) -> float:
    """What the market holds for this vault (its paper account is the vault id)."""
    account = (data_dir / "vault-id").read_text().strip()
    rows = _get(f"{market_url(daemon)}/paper/v1/positions", account)["positions"]
    return sum(float(p["position_usd"]) for p in rows if p["venue"] == venue)


def _position(daemon: DaemonProcess, venue: str) -> float:
    rows = daemon.json("/api/v1/status")["positions"]
    return sum(float(p["position_usd"]) for p in rows if p["venue"] == venue)


def _metric(daemon: DaemonProcess, name: str, **labels: str) -> float | None:
    return daemon.metrics().get((name, tuple(sorted(labels.items()))))


def test_exploit_after_outflows_guards_lose_at_most_half(tmp_path: Path) -> None:
    """The market's clock is paused and stepped by the test (30 simulated minutes a step, the
    daemon's rebalances on the new data awaited after each), so both runs see the same path."""
    # 2 h to allocate, 6 h of outflows, the strike, 2 h after it
    case = dataclasses.replace(CASES["exploit_after_outflows"], window_hours=8)
    off = run_case(case, False, tmp_path / "off")
    on = run_case(case, True, tmp_path / "on")
    # the same start: the same first allocation (to a few tens of USD: the daemon runs as many
    # cycles per step as the box allows, and a later one may trim a position the first left)
    assert on.nav_before_usd == pytest.approx(off.nav_before_usd, rel=1e-3)
    assert off.loss_usd > 50_000, off  # without guards the strike takes half the Aave position
    assert on.loss_usd <= off.loss_usd / 2, (on, off)
    assert "aave-v3-usdc-ethereum/outflow" in on.guard_trips
    assert off.guard_trips == ()
    assert on.limit_breach_cycles == 0  # the exits kept every limit


def _no_withdrawals(data_dir: Path, n: int) -> bool:
    """The last ``n`` rebalances withdrew nothing (on a paused clock a bridge leg never fills:
    each cycle replays it under its key and skips the deposit it funds, and that is all)."""
    db = sqlite3.connect(data_dir / "ledger.sqlite3")
    try:
        rows = db.execute(
            "SELECT results_json FROM rebalances ORDER BY id DESC LIMIT ?", (n,)
        ).fetchall()
    except sqlite3.OperationalError:  # no schema yet
        return False
    finally:
        db.close()
    return len(rows) == n and not any(
        m.get("action") == "withdraw" for (r,) in rows for m in json.loads(r or "[]")
    )


def _now(market: str) -> datetime:
    return datetime.fromisoformat(
        _get(f"{market}/admin/v1/state")["sim_time"].replace("Z", "+00:00")
    )


def test_exit_survives_sigkill_with_its_answer_lost_and_books_once(tmp_path: Path) -> None:
    """The market's clock is paused from the start (time moves only when the test steps it), so
    the only withdrawal after the depeg is the exit's, and the restart sees the same world."""
    data_dir = tmp_path / "var"
    config = _config(tmp_path, None)
    env = {
        "YIELDVAULT_GUARDS__DEPEG__FOR_SECONDS": "0",  # trip at the first reading, exit that cycle
        "YIELDVAULT_GUARDS__NAV_DRAWDOWN__ENABLED": "false",
    }
    args = ["--config", str(config)]
    first = DaemonProcess(data_dir, args=args, env=env)
    try:
        first.wait_until(lambda: _position(first, EARN) > 1_000, 120, "a USDT earn position")
        # the first allocation finished (the clock stands still: its follow-up moves, e.g. a trim
        # of the loop, come in the next cycles on the same data): until then a withdrawal of the
        # optimizer's own could meet the fault below before the guards see the depeg
        first.wait_until(lambda: _no_withdrawals(data_dir, 3), 120, "cycles without withdrawals")
        market = market_url(first)
        post_json(
            f"{market}/admin/v1/scenarios",
            {
                "name": "depeg",
                "chain": "ethereum",
                "token": "USDT",
                "params": {"price": 0.97},
                "duration_seconds": 30 * 86400,
            },
        )
        # every withdrawal's answer lost until the fault is removed: the exit's written-ahead
        # withdrawal stays unresolved (each replay under its key meets the same 5xx, the venue
        # never applied it) until the SIGKILL, however slow the machine
        post_json(
            f"{market}/admin/v1/faults",
            {"path_prefix": "/paper/v1/withdraw", "mode": "http_5xx"},
        )

        def pending_withdrawals() -> list[str]:
            db = sqlite3.connect(data_dir / "ledger.sqlite3")
            try:
                return [m for (m,) in db.execute("SELECT move_json FROM pending_moves")]
            finally:
                db.close()

        first.wait_until(
            lambda: (
                _metric(first, "yieldvault_unresolved_moves") == 1
                and len(pending_withdrawals()) == 1
            ),
            120,
            "the exit's lost answer",
        )
        logs = first.logs()
        assert '"guard": "depeg"' in logs and '"venue": "earn-usdt-flexible"' in logs
        pending = pending_withdrawals()
        # a withdrawal of the exit's plan lost its answer (fastest first: it may be an instant
        # one the plan sends before the queued USDT redemption, which then waits for the replay)
        assert len(pending) == 1 and '"path": "/withdraw"' in pending[0], pending
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        first.kill()

    second = DaemonProcess(data_dir, args=args, env=env)
    try:
        # the fault is saved with the market's state: remove it, and the replay gets its answer
        second.wait_until(lambda: "embedded_market_started" in second.logs(), 120, "the market")
        req = urllib.request.Request(f"{market_url(second)}/admin/v1/faults", method="DELETE")
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["removed"] == 1
        second.wait_until(lambda: "move_replayed" in second.logs(), 120, "the replay")
        assert "guards_restored" in second.logs()
        assert _metric(second, "yieldvault_guard_state", venue=EARN, guard="depeg") in (1.0, 2.0)
        # the exit takes what the venue holds; the mark-down the books cannot explain stays an
        # open reconciliation break (vault/reconcile.py) for the operator to book. A queued
        # redemption pays out as simulated time passes: step the clock until it has.
        market = market_url(second)
        for _ in range(8):
            settle(second, data_dir, _now(market), SETTLE_TIMEOUT_SECONDS)
            if _market_position(second, data_dir, EARN) < 1:
                break
            post_json(f"{market}/admin/v1/clock", {"advance_seconds": 1800})
        assert _market_position(second, data_dir, EARN) < 1, "the exit done at the venue"
        account = (data_dir / "vault-id").read_text().strip()
        withdrawals = _get(f"{market_url(second)}/paper/v1/withdrawals", account)["withdrawals"]
        pause_market_and_settle(second)
    finally:
        code, _ = second.terminate()
    assert code == 0
    mine = [w for w in withdrawals if w["venue"] == EARN]
    # the exit's redemption once (the replay did not withdraw it again); later ones are the dust
    # of yield accrued since, under keys of their own
    big = [w for w in mine if float(w["amount_usd"]) > 1_000]
    assert len(big) == 1, mine
    assert len({w["withdrawal_id"] for w in mine}) == len(mine)
    from mockfeeds.market import Market
    from vault.ledger import Ledger
    from vault.settings import read_yaml

    ledger = Ledger(data_dir / "ledger.sqlite3")
    try:
        assert ledger.audit() == [] and ledger.pending_moves() == []
        books = ledger.balances()
        breaks = {b.venue: b for b in ledger.open_breaks()}
        earn_income = ledger.account(f"income:{EARN}")
    finally:
        ledger.close()
    market = Market.from_config(
        read_yaml(DEFAULT_CONFIG.parent / "market.default.yaml"),
        state_path=data_dir / "market-state.json",
        wall_clock=lambda: 0.0,
    )
    with market.use_account(account):
        held = {
            r["venue"]: usd_to_units(r["position_usd"])
            for r in market.positions_view()["positions"]
        }
    for venue, units in books.positions_units.items():
        # each venue matches the market to the base unit, or an open break names the difference
        brk = breaks.get(venue)
        gap = brk.books_units - brk.reported_units if brk is not None else 0
        assert abs(units - held.get(venue, 0) - gap) <= 10, (venue, units, held.get(venue), brk)
    # the USDT product: emptied at the venue and in the books. Its report fell with USDT's
    # price/peg, so the sync booked the depeg's mark-down as the venue's loss (reconcile's mark
    # term: income credit-normal, a loss is positive) rather than holding it in a break
    assert held.get(EARN, 0) < usd_to_units(1)
    assert EARN not in breaks and books.positions_units.get(EARN, 0) < usd_to_units(1), breaks
    assert earn_income > usd_to_units(1_000), earn_income


def test_metrics_log_status_and_an_operator_resume_while_running(tmp_path: Path) -> None:
    """On a paused market clock: the depeg is seen at the next poll, and it ends when the test
    steps the clock past it (no wall-clock pace to fall behind on a loaded machine)."""
    data_dir = tmp_path / "var"
    env = {
        "YIELDVAULT_GUARDS__DEPEG__FOR_SECONDS": "0",
        "YIELDVAULT_GUARDS__DEPEG__COOLDOWN_SECONDS": "0",
        "YIELDVAULT_GUARDS__LOSS__COOLDOWN_SECONDS": "0",  # the mark-down trips the loss guard too
    }
    daemon = DaemonProcess(data_dir, args=["--config", str(_config(tmp_path, None))], env=env)
    try:
        daemon.wait_until(lambda: daemon.json("/api/v1/status")["rebalances"] >= 2, 120, "cycles")
        assert _metric(daemon, "yieldvault_guard_state", venue=EARN, guard="depeg") == 0
        assert _metric(daemon, "yieldvault_guard_trips_total", guard="depeg") == 0
        market = market_url(daemon)
        sc = post_json(
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
            120,
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
        # the depeg ends (the test steps the clock past it); the breaker cools but an exit waits
        # for the operator
        post_json(f"{market}/admin/v1/clock", {"advance_seconds": 6 * 3600 + 1800})
        assert not _get(f"{market}/admin/v1/scenarios")["scenarios"][-1]["active"]
        daemon.wait_until(
            lambda: _metric(daemon, "yieldvault_guard_state", venue=EARN, guard="depeg") == 1,
            120,
            "cooling",
        )
        assert _metric(daemon, "yieldvault_guard_directive", venue=EARN, action="exit") == 1
        _cli("resume", "--venue", EARN, data_dir=data_dir)  # every guard on the venue
        daemon.wait_until(
            lambda: (
                _metric(daemon, "yieldvault_guard_state", venue=EARN, guard="depeg") == 0
                and _metric(daemon, "yieldvault_guard_directive", venue=EARN, action="exit") == 0
            ),
            120,
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
