"""Benchmark of a generated market: ``python -m mockfeeds.bench --venues 1000`` prints JSON.

Measures building the world (with its history warm-up), one tick, the /defillama/pools body
(first build after a tick and a cached read), and real loopback HTTP requests per second for
/defillama/pools. Speed goals live here, not in timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp

from mockfeeds.generate import generate_market
from mockfeeds.market import Market
from mockfeeds.server import start, stop


async def _http(market: Market, requests: int) -> dict[str, Any]:
    runner, url = await start(market)
    try:
        async with aiohttp.ClientSession() as s:
            latencies = []
            size = 0
            for _ in range(requests):
                t0 = time.perf_counter()
                async with s.get(f"{url}/defillama/pools") as r:
                    body = await r.read()
                latencies.append(time.perf_counter() - t0)
                size = len(body)
    finally:
        await stop(runner)
    return {
        "pools_http_p50_ms": statistics.median(latencies) * 1e3,
        "pools_http_max_ms": max(latencies) * 1e3,
        "pools_body_bytes": size,
    }


def run(n_venues: int, seed: int, requests: int) -> dict[str, Any]:
    cfg = generate_market(n_venues, seed)
    cfg["time_scale"] = 0
    t0 = time.perf_counter()
    m = Market.from_config(cfg)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.advance(cfg["tick_seconds"])
    tick = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.defillama_pools_bytes()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.defillama_pools_bytes()
    cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    state_bytes = len(json.dumps(m.dump_state()))
    dump = time.perf_counter() - t0
    out = {
        "venues": n_venues,
        "build_with_history_s": build,
        "tick_ms": tick * 1e3,
        "pools_build_ms": first * 1e3,
        "pools_cached_us": cached * 1e6,
        "state_dump_ms": dump * 1e3,
        "state_bytes": state_bytes,
    }
    out.update(asyncio.run(_http(m, requests)))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--venues", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--requests", type=int, default=50)
    a = p.parse_args(argv)
    print(json.dumps(run(a.venues, a.seed, a.requests), indent=2))


if __name__ == "__main__":
    main()
