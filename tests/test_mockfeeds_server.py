"""Serving the market: start/stop on an ephemeral port, the state saved on shutdown, and the
standalone ``run_forever`` stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from mockfeeds.market import Market
from mockfeeds.server import parse_listen, start, stop

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = yaml.safe_load((ROOT / "config" / "market.default.yaml").read_text())


def cfg(**over: Any) -> dict[str, Any]:
    c = copy.deepcopy(DEFAULT)
    c.update(over)
    return c


async def test_start_on_an_ephemeral_port_and_save_on_stop(tmp_path: Path) -> None:
    state = tmp_path / "state" / "market.json"
    m = Market.from_config(cfg(time_scale=0), state_path=state)
    runner, url = await start(m, "127.0.0.1", 0)
    try:
        assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/healthz") as r:
                assert (await r.json())["venues"] == 8
            async with s.post(
                f"{url}/paper/v1/deposit",
                json={
                    "venue": "earn-usdt-flexible",
                    "amount_usd": "10.000000",
                    "idempotency_key": "k",
                },
            ) as r:
                assert r.status == 200
        assert json.loads(state.read_text())["positions"] == {
            "earn-usdt-flexible": "10.000000"
        }  # saved at the write
        m.advance(3600)
    finally:
        await stop(runner)
    saved = json.loads(state.read_text())
    assert saved["state_time"] == m.state_time  # saved again on shutdown
    resumed = Market.from_config(cfg(time_scale=0), state_path=state)
    assert resumed.position_usd("earn-usdt-flexible") == m.position_usd("earn-usdt-flexible")


async def test_the_clock_runs_accelerated_while_serving() -> None:
    m = Market.from_config(cfg(time_scale=36_000, tick_seconds=900))
    runner, url = await start(m)
    try:
        t0 = m.state_time
        async with aiohttp.ClientSession() as s:
            await s.get(f"{url}/healthz")
            await asyncio.sleep(0.6)
            async with s.get(f"{url}/admin/v1/state") as r:
                body = await r.json()
        assert (
            m.state_time - t0 >= 3 * 3600
        )  # >= 0.6 s x 10 simulated hours per second, minus a tick
        assert body["sim_time"] > "2026-02-01T03"
    finally:
        await stop(runner)


async def test_stop_does_not_wait_for_a_request_held_by_a_timeout_fault() -> None:
    m = Market.from_config(cfg(time_scale=0))
    m.add_fault({"path_prefix": "/lido/", "mode": "timeout", "timeout_seconds": 30})
    runner, url = await start(m, shutdown_timeout_seconds=0.5)
    session = aiohttp.ClientSession()
    pending = asyncio.ensure_future(session.get(f"{url}/lido/v1/protocol/steth/apr/sma"))
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    await stop(runner)
    assert time.perf_counter() - t0 < 5.0
    with pytest.raises(aiohttp.ClientError):
        await pending
    await session.close()


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9600") == ("127.0.0.1", 9600)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("9600", "host:port", "h:70000"):
        with pytest.raises(ValueError, match="listen"):
            parse_listen(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_run_forever_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "world.json"
    port = _free_port()
    code = f"from mockfeeds.server import run_forever; raise SystemExit(run_forever(None, '127.0.0.1:{port}', {str(state)!r}))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, line + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped, state saved" in out
    assert json.loads(state.read_text())["version"] == 1
