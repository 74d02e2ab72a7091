"""report.html renders in a real headless Chromium: every plot decodes and the console stays clean.

Driven over the DevTools protocol (``--remote-debugging-port=0``; the port is read from
``DevToolsActivePort`` in the profile dir) with an aiohttp websocket. Skips, saying so, when no
``chromium`` binary is installed (CI installs Debian's: ``.ci/install-chromium.sh``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backtest.run import prepare, run_prepared, write_outputs
from tests.test_backtest import synthetic_rows, write_history

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (.ci/install-chromium.sh)"
)


class DevTools:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), timeout=30)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    async def wait_for(self, event: str, timeout: float = 30) -> None:
        if any(e.get("method") == event for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = await asyncio.wait_for(self.ws.receive_json(), timeout=timeout)
            self.events.append(msg)
            if msg.get("method") == event:
                return
        raise TimeoutError(event)


async def inspect(url: str, profile: Path) -> tuple[list[int], list[str], str]:
    proc = subprocess.Popen(
        [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t.get("type") == "page"]
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                dt = DevTools(ws)
                await dt.call("Runtime.enable")
                await dt.call("Log.enable")
                await dt.call("Page.enable")
                await dt.call("Page.navigate", url=url)
                await dt.wait_for("Page.loadEventFired")
                res = await dt.call(
                    "Runtime.evaluate",
                    expression="JSON.stringify(Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1))",
                    returnByValue=True,
                )
                widths = json.loads(res["result"]["value"])
                title = (
                    await dt.call(
                        "Runtime.evaluate", expression="document.title", returnByValue=True
                    )
                )["result"]["value"]
                errors = [
                    json.dumps(e["params"])[:300]
                    for e in dt.events
                    if e.get("method") == "Runtime.exceptionThrown"
                    or (
                        e.get("method") == "Runtime.consoleAPICalled"
                        and e["params"].get("type") == "error"
                    )
                    or (
                        e.get("method") == "Log.entryAdded"
                        and e["params"]["entry"].get("level") == "error"
                    )
                ]
                return widths, errors, title
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_report_renders_every_plot_without_console_errors(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=3))
    p = prepare(path, None, period="6h", prices_path=None)
    summary, runs = run_prepared(p, tmp_path / "out", ["ours", "greedy_apy", "stay_home"])
    write_outputs(summary, runs, tmp_path / "out", p.history)
    report = tmp_path / "out" / "report.html"
    assert (
        "http://" not in report.read_text() and "https://" not in report.read_text()
    )  # self-contained
    widths, errors, title = asyncio.run(inspect(report.as_uri(), tmp_path / "profile"))
    assert title == "yieldvault backtest"
    assert len(widths) == 5  # NAV, allocation by venue, by chain, drawdown, costs
    assert all(w > 0 for w in widths), widths
    assert errors == []


def test_a_broken_image_is_seen(tmp_path: Path) -> None:
    """The check can fail: a page with an undecodable PNG reports naturalWidth 0."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head><title>t</title></head><body>"
        '<img src="data:image/png;base64,AAAA"></body></html>'
    )
    widths, _, _ = asyncio.run(inspect(page.as_uri(), tmp_path / "profile"))
    assert widths == [0]
