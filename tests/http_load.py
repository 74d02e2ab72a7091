"""A bounded wrk-style load generator on loopback (aiohttp), for the daemon's HTTP side.

``run_load(base_url, paths, workers, seconds, max_requests)`` keeps ``workers`` connections busy
with GETs over ``paths`` in turn until ``seconds`` pass or ``max_requests`` are sent, while a
probe times ``GET /healthz`` every ``probe_every_seconds``. Returns the counts and latencies.
``python -m tests.http_load URL [RATE]`` prints them as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass

import aiohttp


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    load_p50_ms: float
    load_p99_ms: float
    healthz_samples: int
    healthz_p50_ms: float
    healthz_p99_ms: float
    healthz_max_ms: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(
    base_url: str,
    paths: tuple[str, ...] = ("/metrics", "/api/v1/status"),
    workers: int = 16,
    seconds: float = 15.0,
    max_requests: int = 50_000,
    probe_every_seconds: float = 0.05,
    rate_per_second: float | None = None,
) -> LoadResult:
    """``rate_per_second``: the total request rate to hold (wrk2's -R), None: as fast as it goes."""
    deadline = time.monotonic() + seconds
    sent = 0
    errors = 0
    load_ms: list[float] = []
    probe_ms: list[float] = []
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent, errors
        k = i
        gap = workers / rate_per_second if rate_per_second else 0.0
        next_at = time.monotonic() + gap * i / workers
        while time.monotonic() < deadline and sent < max_requests:
            if gap:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += gap
            sent += 1
            path = paths[k % len(paths)]
            k += 1
            t0 = time.perf_counter()
            try:
                async with session.get(base_url + path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            load_ms.append((time.perf_counter() - t0) * 1000)

    async def probe(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            async with session.get(base_url + "/healthz") as resp:
                await resp.read()
            probe_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(probe_every_seconds)

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=workers)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as load,
        aiohttp.ClientSession(timeout=timeout) as probing,
    ):
        await asyncio.gather(probe(probing), *(worker(i, load) for i in range(workers)))
    took = time.monotonic() - started
    return LoadResult(
        requests=sent,
        errors=errors,
        seconds=round(took, 2),
        requests_per_second=round(sent / took, 1),
        load_p50_ms=round(percentile(load_ms, 0.5), 2),
        load_p99_ms=round(percentile(load_ms, 0.99), 2),
        healthz_samples=len(probe_ms),
        healthz_p50_ms=round(percentile(probe_ms, 0.5), 2),
        healthz_p99_ms=round(percentile(probe_ms, 0.99), 2),
        healthz_max_ms=round(max(probe_ms, default=float("nan")), 2),
    )


if __name__ == "__main__":
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(asdict(asyncio.run(run_load(sys.argv[1], rate_per_second=rate))), indent=2))
