"""The feed bench runs end to end on a small generated market (speed goals live in its JSON, not here)."""

from __future__ import annotations

import json

from adapters.bench import _percentile, bench_feeds, main


async def test_bench_feeds_small_market() -> None:
    result = await bench_feeds(venues=30, cycles=2, seed=3)
    json.dumps(result)
    assert result["venues"] == 30 and result["snapshots"] == 30 and result["rejections"] == 0
    w = result["cycle_wall_seconds"]
    assert 0 < w["p50"] <= w["p99"] <= w["max"]
    assert (
        result["cpu_seconds"] >= 0 and result["peak_rss_mb"] > 0 and result["max_loop_lag_ms"] >= 0
    )
    assert result["requests_per_cycle"] == result["endpoints"]
    assert set(result["goals"]) == {"cycle_p99_under_2s", "loop_lag_under_50ms"}
    assert result["server"]["separate_process"] is True


def test_percentile_nearest_rank() -> None:
    assert _percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert _percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert _percentile([5.0], 1) == 5.0


def test_main_prints_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--venues", "12", "--cycles", "1", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["venues"] == 12
