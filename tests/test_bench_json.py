"""Every ``bench`` command's ``--json`` output is JSON and nothing else on stdout (no solver banner:
HiGHS prints "Running HiGHS ..." from its first constructor, before any option can be set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from optimizer.bench import SCENARIOS
from vault.cli import QUALITY_SCENARIOS


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "vault.cli", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("solver", "--venues", "40", "--repeats", "2"),
        ("quality", "--seed", "1", "--scenario", "loose", "--steady-cycles", "2"),
        ("feeds", "--venues", "6", "--cycles", "1"),
        ("costs", "--venues", "40", "--nav-usd", "2000000"),
    ],
    ids=lambda a: a[0],
)
def test_bench_json_is_the_only_stdout(args: tuple[str, ...]) -> None:
    done = _run(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)  # the whole of stdout: a banner or a log line would fail here
    assert isinstance(out, dict) and out
    if args[0] == "solver":
        assert out["ours"]["statuses"] == {"optimal": 2} and "naive" in out
    if args[0] == "costs":
        assert out["convex"]["cost_model"] == "convex" and out["linear"]["cost_model"] == "linear"
        assert out["convex"]["status"] == "optimal", out["convex"]["reason"]
    if args[0] == "quality":
        assert [s["scenario"] for s in out["scenarios"]] == ["loose"]
        assert out["steady_state"]["cycles"] == 2


def test_the_cli_offers_the_bench_scenarios() -> None:
    assert QUALITY_SCENARIOS == SCENARIOS
