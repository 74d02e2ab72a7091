"""Issue 12, a hung feed end to end: a daemon on its embedded market whose Lido APR endpoint
hangs (socket open, no answer) keeps polling on schedule, the other venues' data keeps arriving
and the decision keeps running, and the hung fetch is cut as ``timeout`` at its own deadline."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from tests.daemon_process import DaemonProcess

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 6.0
HANG_SECONDS = 20.0  # the market answers the hung request (504) only after this


def test_a_hung_feed_holds_back_neither_the_polls_nor_the_other_venues(tmp_path):
    daemon = DaemonProcess(
        tmp_path / "var",
        env={
            # the cycle deadline, not the request timeout, is what cuts the hung fetch
            "YIELDVAULT_FEEDS__TIMEOUT_SECONDS": "60",
            "YIELDVAULT_FEEDS__CYCLE_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        },
    )
    try:
        daemon.wait_until(lambda: daemon.json("/api/v1/status")["rebalances"] >= 1, 90, "up")
        found = re.search(
            r'"url": "([^"]+)"[^\n]*"event": "embedded_market_started"', daemon.logs()
        )
        assert found, daemon.logs()[-2000:]
        rule = {
            "path_prefix": "/lido/v1/protocol/steth/apr",
            "mode": "timeout",
            "timeout_seconds": HANG_SECONDS,
            "count": 1,  # one request hangs; the one after the cut answers
        }
        hung_at = time.time()  # before the rule exists: the hung fetch starts after this
        req = urllib.request.Request(
            f"{found.group(1)}/admin/v1/faults",
            data=json.dumps(rule).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 201
        rebalances_at_hang = daemon.json("/api/v1/status")["rebalances"]
        polls: set[float] = set()
        aave: set[float] = set()
        rebalances: list[int] = []

        def cut() -> bool:
            m = daemon.metrics()
            polls.add(m[("yieldvault_last_success_timestamp_seconds", (("cycle", "poll"),))])
            aave.add(m[("yieldvault_feed_last_success_timestamp_seconds", (("feed", "aave"),))])
            rebalances.append(daemon.json("/api/v1/status")["rebalances"])
            key = ("yieldvault_feed_errors_total", (("feed", "lido"), ("reason", "timeout")))
            return m.get(key, 0.0) >= 1

        daemon.wait_until(cut, 120, "the hung Lido fetch cut at its deadline")
        cut_at = time.time()
        # cut no earlier than its own deadline after the fault went in (the code guarantees it)
        assert cut_at - hung_at >= DEADLINE_SECONDS
        # meanwhile the polls went on (before: one poll waited the whole deadline for Lido) ...
        assert len({t for t in polls if t > hung_at}) >= 2, sorted(polls)
        # ... with the other feeds' fresh data, and the decision ran on it
        assert any(t > hung_at for t in aave), sorted(aave)
        assert max(rebalances) > rebalances_at_hang
        assert "not done within the cycle deadline" in daemon.logs()
        # the next Lido request answers: the venue thaws
        daemon.wait_until(
            lambda: re.search(
                r'"venue": "lido-steth"[^\n]*"event": "feed_recovered"', daemon.logs()
            ),
            60,
            "Lido back",
        )
        # let the market's hung handler finish (its own 20 s timer) before the daemon stops
        daemon.wait_until(lambda: time.time() > hung_at + HANG_SECONDS + 1, 60, "the hang over")
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.logs()[-3000:]
