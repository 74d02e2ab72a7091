"""Issue 12, the HTTP side under load: /metrics and /api/v1/status hammered on loopback (bounded
in time and count) while the daemon rebalances every second; /healthz stays fast and the
rebalances keep their schedule. Figures in README ("The HTTP side under load")."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.daemon_process import DaemonProcess
from tests.http_load import run_load
from tests.test_e2e import allocated_venues

pytestmark = pytest.mark.slow


def test_healthz_and_rebalances_hold_up_under_metrics_and_status_load(tmp_path):
    daemon = DaemonProcess(
        tmp_path / "var", env={"YIELDVAULT_SCHEDULE__REBALANCE_INTERVAL_SECONDS": "1"}
    )
    try:
        daemon.wait_until(lambda: len(allocated_venues(daemon)) >= 3, 90, "an allocation")
        before = daemon.json("/api/v1/status")["rebalances"]
        result = asyncio.run(
            run_load(daemon.url, workers=8, seconds=15.0, max_requests=5_000, rate_per_second=200)
        )
        after = daemon.json("/api/v1/status")["rebalances"]
        print(json.dumps(result.__dict__ | {"rebalances": after - before}))
        assert result.errors == 0 and result.requests >= 500
        # The goal is 50 ms; on a machine whose run queue is longer than its cores (the shared
        # build box ran at load 15 on 2 cores) scheduling alone costs more, so the bound widens
        # there to what a stalled loop could never meet (before: p99 1,298 ms at that load).
        busy = os.getloadavg()[0] > (os.cpu_count() or 1)
        assert result.healthz_p99_ms < (500 if busy else 50), result
        # one rebalance a second: on schedule means at least ~80 % of the 15 possible
        assert after - before >= 12, (after - before, result)
    finally:
        code, _ = daemon.terminate()
    assert code == 0
