"""The operator API end to end against a running daemon (a subprocess on the embedded market):
pause holds every cycle until resume (and survives a restart); manual approval keeps a plan
pending until approved, then it executes once; a reload that makes the limits infeasible is
refused with the keys named, the old limits keep running, and a good one applies with its diff."""

from __future__ import annotations

import json
import signal

import pytest
import yaml

from tests.api_process import api, get, last_rebalance_id, positions, rebalance_rows, start
from tests.daemon_process import DaemonProcess

pytestmark = pytest.mark.slow
EXIT_VENUE = "aave-v3-usdc-ethereum"


def wait_rows(daemon: DaemonProcess, after: int, count: int, timeout: float = 60) -> list[dict]:
    data_dir = daemon_data(daemon)
    return daemon.wait_until(
        lambda: len(rows := rebalance_rows(data_dir, after)) >= count and rows,
        timeout,
        f"{count} rebalances after #{after}",
    )


def log_lines(daemon: DaemonProcess) -> list[dict]:
    return [json.loads(x) for x in daemon.logs().splitlines() if x.startswith("{")]


def daemon_data(daemon: DaemonProcess):
    args = daemon.proc.args
    return __import__("pathlib").Path(args[args.index("--data-dir") + 1])


def test_pause_holds_every_cycle_until_resume_and_survives_a_restart(tmp_path):
    daemon, _ = start(tmp_path)
    try:
        held = daemon.wait_until(
            lambda: EXIT_VENUE in (p := positions(daemon)) and len(p) >= 3 and p, 60, "allocation"
        )
        status, body = api(daemon, "POST", "/api/v1/pause", {"scope": "all", "reason": "test"})
        assert status == 200 and body["directives"]["paused"] == "all"
        mark = last_rebalance_id(tmp_path / "var")
        status, body = api(daemon, "POST", f"/api/v1/venues/{EXIT_VENUE}/exit")
        assert status == 200 and body["directives"]["exiting"] == [EXIT_VENUE]
        rows = wait_rows(daemon, mark + 1, 4)
        assert all(r["outcome"] == "held" and r["results"] == [] for r in rows), rows
        planned = [r for r in rows if r["moves"]]
        assert planned and all(
            r["reason"].startswith("hold_all: operator bob-operate: pause") for r in planned
        )
        assert EXIT_VENUE in positions(daemon)
    finally:
        code, _ = daemon.terminate()
    assert code == 0
    daemon = DaemonProcess(tmp_path / "var", args=["--config", str(tmp_path / "config.yaml")])
    try:
        daemon.wait_until(lambda: daemon.get("/healthz")[0] == 200, 60, "/healthz again")
        assert get(daemon, "/api/v1/status")["operator"]["directives"]["paused"] == "all"
        mark = last_rebalance_id(tmp_path / "var")
        rows = wait_rows(daemon, mark, 3)
        assert all(r["outcome"] == "held" and r["results"] == [] for r in rows), rows
        assert EXIT_VENUE in positions(daemon)
        status, body = api(daemon, "POST", "/api/v1/resume")
        assert status == 200 and body["directives"]["paused"] is None
        daemon.wait_until(lambda: EXIT_VENUE not in positions(daemon), 60, "the exit, resumed")
        actions = get(daemon, "/api/v1/actions")["actions"]
        assert [a["action"] for a in actions][:3] == ["resume", "exit", "pause"]
        assert {a["who"] for a in actions} == {"bob-operate"}
        metrics = daemon.metrics()
        assert metrics[("yieldvault_operator_actions_total", (("action", "resume"),))] == 1
    finally:
        code, _ = daemon.terminate()
    assert code == 0
    assert held


def test_manual_approval_keeps_the_plan_pending_then_it_executes_once(tmp_path):
    daemon, _ = start(tmp_path, vault={"approval": "manual"})
    try:
        plan = daemon.wait_until(
            lambda: (p := get(daemon, "/api/v1/plans/pending")["plans"]) and p[0],
            60,
            "a pending plan",
        )
        mark = last_rebalance_id(tmp_path / "var")
        rows = wait_rows(daemon, mark, 3)
        assert all(r["outcome"] == "held" and r["results"] == [] for r in rows)
        assert positions(daemon) == {}  # nothing moved while it waits
        assert [p["id"] for p in get(daemon, "/api/v1/plans/pending")["plans"]] == [plan["id"]]
        status, _ = api(daemon, "POST", f"/api/v1/plans/{plan['id']}/approve", token=None)
        assert status == 401
        status, body = api(daemon, "POST", f"/api/v1/plans/{plan['id']}/approve")
        assert status == 200 and body["plan"]["status"] == "approved"
        status, again = api(daemon, "POST", f"/api/v1/plans/{plan['id']}/approve")
        assert status == 409 and "not pending" in again["error"]["reason"]
        done = daemon.wait_until(
            lambda: (p := get(daemon, f"/api/v1/plans/{plan['id']}"))["status"] == "executed" and p,
            60,
            "the approved plan executed",
        )
        assert len(positions(daemon)) >= 3
        executions = [
            r
            for r in rebalance_rows(tmp_path / "var")
            if f"plan {plan['id']} approved" in r["reason"]
        ]
        assert len(executions) == 1 and executions[0]["outcome"] == "executed"
        keys = [m["idempotency_key"] for m in plan["moves"]]
        assert [r["idempotency_key"] for r in done["results"]] == keys
        mark = last_rebalance_id(tmp_path / "var")
        wait_rows(daemon, mark, 3)
        later = [r for r in rebalance_rows(tmp_path / "var", mark) if r["results"]]
        assert not {r["idempotency_key"] for row in later for r in row["results"]} & set(keys)
    finally:
        code, _ = daemon.terminate()
    assert code == 0


def test_reload_refuses_infeasible_limits_and_applies_a_good_change(tmp_path):
    daemon, config = start(tmp_path)
    try:
        daemon.wait_until(lambda: len(positions(daemon)) >= 3, 60, "a first allocation")
        good = yaml.safe_load(config.read_text())
        bad = {**good, "limits": {**good["limits"], "max_venue_ratio": 0.05}}
        config.write_text(yaml.safe_dump(bad))
        status, body = api(daemon, "POST", "/api/v1/config/reload")
        assert status == 422, body
        fields = {p["field"] for p in body["error"]["problems"]}
        assert "limits.max_venue_ratio" in fields and "limits.min_idle_ratio" in fields
        assert "old config keeps running" in body["error"]["reason"]
        assert get(daemon, "/api/v1/config")["limits"]["max_venue_ratio"] == 0.4
        mark = last_rebalance_id(tmp_path / "var")
        rows = wait_rows(daemon, mark, 2)
        assert all(r["solver_status"] == "optimal" for r in rows)  # the old limits run on
        daemon.proc.send_signal(signal.SIGHUP)  # the same check, from a signal
        line = daemon.wait_until(
            lambda: [x for x in log_lines(daemon) if x.get("event") == "sighup_reload"],
            30,
            "the SIGHUP reload",
        )[0]
        assert line["result"] == "refused" and line["field"].startswith("limits.")
        changed = {**good, "limits": {**good["limits"], "max_venue_ratio": 0.35}}
        config.write_text(yaml.safe_dump(changed))
        status, body = api(daemon, "POST", "/api/v1/config/reload")
        assert status == 200, body
        assert body["diff"] == [{"key": "limits.max_venue_ratio", "old": 0.4, "new": 0.35}]
        assert get(daemon, "/api/v1/config")["limits"]["max_venue_ratio"] == 0.35
        reloads = [a for a in get(daemon, "/api/v1/actions")["actions"] if a["action"] == "reload"]
        assert [(a["who"], a["result"]) for a in reloads] == [
            ("bob-operate", "ok"),
            ("sighup", "refused"),
            ("bob-operate", "refused"),
        ]
    finally:
        code, _ = daemon.terminate()
    assert code == 0
