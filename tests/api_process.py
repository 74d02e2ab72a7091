"""A daemon subprocess with the operator API's test tokens, and calls to it."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.api_daemon import OPERATE_TOKEN, write_config
from tests.daemon_process import DaemonProcess


def start(
    tmp_path: Path, env: dict[str, str] | None = None, **sections: Any
) -> tuple[DaemonProcess, Path]:
    config = write_config(tmp_path / "config.yaml", **sections)
    daemon = DaemonProcess(tmp_path / "var", args=["--config", str(config)], env=env)
    daemon.wait_until(lambda: daemon.get("/healthz")[0] == 200, 60, "/healthz")
    return daemon, config


def api(
    daemon: DaemonProcess,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = OPERATE_TOKEN,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(daemon.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(daemon: DaemonProcess, path: str) -> Any:
    status, body = api(daemon, "GET", path)
    assert status == 200, (path, status, body)
    return body


def rebalance_rows(data_dir: Path, after_id: int = 0) -> list[dict[str, Any]]:
    db = sqlite3.connect(data_dir / "ledger.sqlite3")
    try:
        rows = db.execute(
            "SELECT id, outcome, solver_status, reason, moves_json, results_json FROM rebalances "
            "WHERE id > ? ORDER BY id",
            (after_id,),
        ).fetchall()
    finally:
        db.close()
    keys = ("id", "outcome", "solver_status", "reason", "moves", "results")
    return [
        dict(zip(keys, (*r[:4], json.loads(r[4]), json.loads(r[5])), strict=True)) for r in rows
    ]


def last_rebalance_id(data_dir: Path) -> int:
    rows = rebalance_rows(data_dir)
    return rows[-1]["id"] if rows else 0


def market_url(daemon: DaemonProcess) -> str:
    return re.findall(r'"url": "(http://127\.0\.0\.1:\d+)", "market"', daemon.logs())[-1]


def positions(daemon: DaemonProcess) -> dict[str, str]:
    return {
        p["venue"]: p["position_usd"]
        for p in get(daemon, "/api/v1/status")["positions"]
        if p["position_usd"] != "0.000000"
    }
