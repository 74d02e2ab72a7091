"""``yieldvault bench feeds``: how long one poll cycle of N generated venues takes on loopback.

The simulated market (``mockfeeds.generate.generate_market(venues, seed)``) runs in a separate
process, so the numbers measured here (wall time per cycle, CPU seconds, peak RSS, event-loop
lag) are the poller's alone; the server's CPU is reported apart. The market's clock is stopped
(``time_scale: 0``) so every cycle sees valid data, and the mock sends no cache headers, so
every cycle fetches, parses and validates every payload again: the worst case.

Event-loop lag is measured by a ticker that sleeps 5 ms and records how late it wakes up; the
largest lateness during the measured cycles is ``max_loop_lag_ms``.

Usage: ``python -m adapters.bench --venues 1000 --cycles 10 --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

GOAL_CYCLE_SECONDS = 2.0
GOAL_LOOP_LAG_SECONDS = 0.050
TICK_SECONDS = 0.005


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of another process from /proc (Linux); None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def _serve(venues: int, seed: int) -> None:
    """Child process: serve the generated market on an ephemeral loopback port, print its URL."""
    from mockfeeds.generate import generate_market
    from mockfeeds.market import Market
    from mockfeeds.server import start, stop

    cfg = generate_market(venues, seed)
    cfg["time_scale"] = 0
    market = Market.from_config(cfg)
    runner, url = await start(market, "127.0.0.1", 0)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    print(json.dumps({"url": url, "sim_time": market.clock.now()}), flush=True)
    await stop_event.wait()
    await stop(runner)


def _loads_pairs_hook(body: bytes) -> Any:
    """The feed parser before jiter: ``json.loads`` with a Python ``object_pairs_hook`` that
    refuses a duplicate key (kept here as the measured "before")."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate key")
        return out

    return json.loads(body, object_pairs_hook=no_duplicates)


async def _json_parse_side_by_side(
    session: aiohttp.ClientSession, endpoints: Sequence[Any], rounds: int = 5
) -> dict[str, Any]:
    """One cycle's bodies (every endpoint, page 1 of the paged ones) parsed by plain
    ``json.loads`` (no duplicate check), the old pairs-hook parser and the feeds' parser
    (:func:`adapters.http.parse_feed_json`), interleaved round by round in one process, best
    round of each: the ratios are the evidence, the milliseconds depend on the machine."""
    from adapters.http import parse_feed_json

    bodies: list[bytes] = []
    for ep in endpoints:
        query = {**(ep.query or {}), **({"current": "1", "size": "100"} if ep.paged else {})}
        async with session.get(ep.url, params=query) as resp:
            if resp.status == 200:
                bodies.append(await resp.read())
    parsers: dict[str, Callable[[bytes], Any]] = {
        "plain_json_loads": json.loads,
        "pairs_hook": _loads_pairs_hook,
        "feed_parser": parse_feed_json,
    }
    same = all(parse_feed_json(body) == json.loads(body) for body in bodies)
    best = dict.fromkeys(parsers, math.inf)
    for _ in range(rounds):
        for name, parse in parsers.items():
            t0 = time.perf_counter()
            for body in bodies:
                parse(body)
            best[name] = min(best[name], time.perf_counter() - t0)
    plain = best["plain_json_loads"]
    return {
        "bodies": len(bodies),
        "bytes": sum(len(b) for b in bodies),
        "same_objects": same,  # the feed parser builds what json.loads builds
        "ms": {name: round(seconds * 1000, 2) for name, seconds in best.items()},
        "pairs_hook_over_plain": round(best["pairs_hook"] / plain, 3),
        "feed_parser_over_plain": round(best["feed_parser"] / plain, 3),
    }


async def bench_feeds(
    venues: int, cycles: int, seed: int, *, gc_freeze: bool = True
) -> dict[str, Any]:
    """Poll ``venues`` generated venues ``cycles`` times (after one warm-up cycle) and measure.

    Returns a JSON-able dict: cycle wall time p50/p99/max (s), client CPU seconds, peak RSS (MB),
    max event-loop lag (ms), requests per cycle, snapshot and rejection counts, and whether the
    goals (cycle < 2 s, lag < 50 ms) were met.
    """
    from adapters import FeedPoller, FeedSettings
    from core.config import VenueConfig
    from mockfeeds.generate import daemon_venues, generate_market

    if cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    configs = [VenueConfig.model_validate(v) for v in daemon_venues(generate_market(venues, seed))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.bench",
        "serve",
        "--venues",
        str(venues),
        "--seed",
        str(seed),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
        if not line:
            raise RuntimeError("the mock market process exited before serving")
        hello = json.loads(line)
        sim_now = datetime.fromtimestamp(hello["sim_time"], UTC)
        settings = FeedSettings(root_url=hello["url"])  # the defaults the daemon runs with
        positions = {c.id: 10_000.0 for c in configs[::3]}
        connector = aiohttp.TCPConnector(limit=settings.max_concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            poller = FeedPoller(
                configs, settings, session, root_url=hello["url"], clock=lambda: sim_now
            )
            warm_start = time.perf_counter()
            warm = await poller.poll(positions)
            warm_seconds = time.perf_counter() - warm_start
            if gc_freeze:
                # what a long-running daemon does after start-up: move everything alive now (code,
                # config, the first cycle's caches) out of the collector's way, so a full
                # collection scans only what the cycles create
                gc.collect()
                gc.freeze()

            lags: list[tuple[float, float]] = []  # (wall lateness, CPU this thread used meanwhile)
            stop = asyncio.Event()

            async def ticker() -> None:
                while not stop.is_set():
                    t0, c0 = time.perf_counter(), time.thread_time()
                    await asyncio.sleep(TICK_SECONDS)
                    lags.append((time.perf_counter() - t0 - TICK_SECONDS, time.thread_time() - c0))

            tick_task = asyncio.create_task(ticker())
            server_cpu0 = _proc_cpu_seconds(proc.pid)
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            walls: list[float] = []
            report = warm
            for _ in range(cycles):
                t0 = time.perf_counter()
                report = await poller.poll(positions)
                walls.append(time.perf_counter() - t0)
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu1 = _proc_cpu_seconds(proc.pid)
            stop.set()
            await tick_task
            parse = await _json_parse_side_by_side(session, poller.endpoints())
    finally:
        if gc_freeze:
            gc.unfreeze()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    p50, p99 = _percentile(walls, 50), _percentile(walls, 99)
    worst = max(lags) if lags else (0.0, 0.0)
    max_lag = worst[0]
    # CPU the loop thread itself burnt while the worst tick was late: lateness beyond it is the OS
    # running other processes (this machine's 2 cores are shared), not our code blocking the loop
    max_block = max((min(late, cpu) for late, cpu in lags), default=0.0)
    lag_sorted = sorted(late for late, _ in lags)
    return {
        "venues": len(configs),
        "cycles": cycles,
        "seed": seed,
        "cycle_wall_seconds": {
            "p50": round(p50, 4),
            "p99": round(p99, 4),
            "max": round(max(walls), 4),
            "mean": round(statistics.fmean(walls), 4),
            "warmup": round(warm_seconds, 4),
        },
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_cycle": round(cpu / cycles, 4),
        "peak_rss_mb": round(usage1.ru_maxrss / 1024.0, 1),  # Linux reports KiB
        "max_loop_lag_ms": round(max_lag * 1000.0, 2),
        "p99_loop_lag_ms": round(_percentile(lag_sorted, 99) * 1000.0, 2) if lag_sorted else 0.0,
        "max_loop_block_cpu_ms": round(max_block * 1000.0, 2),
        "worst_tick_cpu_ms": round(worst[1] * 1000.0, 2),
        "requests_per_cycle": report.requests,
        "endpoints": len(poller.endpoints()),
        "snapshots": len(report.snapshots),
        "rejections": len(report.rejections),
        "rejection_reasons": sorted({r.reason for r in report.rejections}),
        "gc_freeze_after_warmup": gc_freeze,
        "server": {
            "separate_process": True,
            "cpu_seconds": None
            if server_cpu0 is None or server_cpu1 is None
            else round(server_cpu1 - server_cpu0, 3),
        },
        "json_parse": parse,
        "goals": {
            "cycle_p99_under_2s": p99 < GOAL_CYCLE_SECONDS,
            "loop_lag_under_50ms": max_lag < GOAL_LOOP_LAG_SECONDS,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yieldvault bench feeds", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="(internal) serve a generated market and print its URL")
    serve.add_argument("--venues", type=int, required=True)
    serve.add_argument("--seed", type=int, default=7)
    parser.add_argument("--venues", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave everything to the cyclic GC (no gc.freeze())",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(_serve(args.venues, args.seed))
        return 0
    result = asyncio.run(
        bench_feeds(args.venues, args.cycles, args.seed, gc_freeze=not args.no_gc_freeze)
    )
    if args.json:
        print(json.dumps(result))
    else:
        w = result["cycle_wall_seconds"]
        print(
            f"{result['venues']} venues, {result['cycles']} cycles: p50 {w['p50']:.3f}s p99 {w['p99']:.3f}s, "
            f"CPU {result['cpu_seconds_per_cycle']:.3f}s/cycle, peak RSS {result['peak_rss_mb']} MB, "
            f"max loop lag {result['max_loop_lag_ms']} ms, {result['requests_per_cycle']} requests/cycle, "
            f"{result['rejections']} rejections"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
