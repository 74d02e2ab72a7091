"""``yieldvault``: the command line.

    yieldvault run [--config FILE] [--listen HOST:PORT] [--data-dir DIR]
    yieldvault mock-feeds [--listen HOST:PORT] [--market FILE] [--state FILE]
    yieldvault check-config [FILE]
    yieldvault bench solver --venues N [--repeats R] --json
    yieldvault bench quality --json
    yieldvault bench feeds --venues N [--cycles C] --json
    yieldvault ctl status|rebalances|pending|pause|resume|approve ID|reject ID|freeze V|unfreeze V|
                   exit V|reload|hash-token      (vault/ctl.py: YIELDVAULT_URL, YIELDVAULT_TOKEN)

Exit codes: 0 success, 1 runtime failure, 2 invalid config or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from vault.logs import configure_logging
from vault.settings import DEFAULT_CONFIG, ConfigError, load_settings, read_yaml

log = structlog.get_logger("vault.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yieldvault", description="Automated DeFi yield vault optimizer."
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--log-json",
        dest="log_json",
        action="store_true",
        default=None,
        help="JSON log lines (default when stdout is not a terminal)",
    )
    fmt.add_argument(
        "--log-console", dest="log_json", action="store_false", help="readable console logs"
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"YAML config (default: {DEFAULT_CONFIG})",
    )
    run.add_argument(
        "--listen",
        default=None,
        help="HOST:PORT for /metrics, /healthz, /readyz, /api/v1/status (overrides config)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the SQLite ledger lives (overrides config; default ./var)",
    )

    feeds = sub.add_parser(
        "mock-feeds", help="run the simulated market alone, for a daemon to poll by URL"
    )
    feeds.add_argument("--listen", default="127.0.0.1:9600")
    feeds.add_argument("--market", type=Path, default=DEFAULT_CONFIG.parent / "market.default.yaml")
    feeds.add_argument(
        "--state",
        type=Path,
        default=None,
        help="JSON file to keep the simulated world in across restarts",
    )

    check = sub.add_parser(
        "check-config", help="validate a config file and the feasibility of its limits"
    )
    check.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG)

    bench = sub.add_parser("bench", help="benchmarks that print JSON")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    solver = bench_sub.add_parser(
        "solver", help="first build and re-solve times of the allocation problem"
    )
    solver.add_argument("--venues", type=int, default=1000)
    solver.add_argument("--repeats", type=int, default=20)
    solver.add_argument("--seed", type=int, default=7)
    solver.add_argument("--json", action="store_true")
    quality = bench_sub.add_parser("quality", help="net yield against baselines on seeded markets")
    quality.add_argument("--seed", type=int, default=7)
    quality.add_argument("--json", action="store_true")
    feedsb = bench_sub.add_parser("feeds", help="poll-cycle time for many mock venues on loopback")
    feedsb.add_argument("--venues", type=int, default=1000)
    feedsb.add_argument("--cycles", type=int, default=10)
    feedsb.add_argument("--seed", type=int, default=7)
    feedsb.add_argument("--json", action="store_true")
    from vault.ctl import add_parser as add_ctl

    add_ctl(sub)
    return p


def check_config(path: Path) -> list[str]:
    """Every problem with the config at ``path``, one line each naming the key and the reason."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return exc.problems
    from optimizer import check_feasibility

    problems = [
        f"limits: {p}"
        for p in check_feasibility([v.to_venue() for v in settings.venues], settings.limits)
    ]
    market = settings.market_path(path.parent)
    if market is not None:
        from mockfeeds.market import Market

        try:
            Market.from_config(read_yaml(market), state_path=None)
        except ConfigError as exc:
            problems += [f"feeds.embedded_market ({market}): {p}" for p in exc.problems]
        except ValueError as exc:
            problems.append(f"feeds.embedded_market ({market}): {exc}")
    return problems


async def _reload_on_sighup(daemon: Any) -> None:
    """SIGHUP: the same reload as POST /api/v1/config/reload, recorded as operator ``sighup``."""
    from vault.api.errors import ApiError

    try:
        result = await daemon.operations.reload("sighup")
        log.info("sighup_reload", result="ok", diff=result["diff"])
    except ApiError as exc:
        log.warning("sighup_reload", result="refused", field=exc.field, reason=exc.reason)


async def _run(settings: Any, config_dir: Path, config_path: Path | None = None) -> int:
    from vault.daemon import Daemon

    daemon = Daemon(settings, config_dir=config_dir, config_path=config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(_reload_on_sighup(daemon))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        await daemon.start()
    except OSError as exc:
        log.error("start_failed", error=str(exc))
        await daemon.stop()
        return 1
    await stop.wait()
    log.info("stop_requested")
    await daemon.stop()
    return 0


def _print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, sort_keys=True, default=str))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)

    if args.command == "check-config":
        problems = check_config(args.file)
        if problems:
            noun = "problem" if len(problems) == 1 else "problems"
            print(f"Invalid config {args.file} ({len(problems)} {noun}):", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            return 2
        print(f"{args.file}: OK")
        return 0

    if args.command == "run":
        try:
            settings = load_settings(args.config, listen=args.listen, data_dir=args.data_dir)
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            return 2
        return asyncio.run(_run(settings, args.config.parent, args.config))

    if args.command == "mock-feeds":
        from mockfeeds.server import run_forever

        run_forever(args.market, args.listen, args.state)
        return 0

    if args.command == "ctl":
        from vault.ctl import main as ctl_main

        return ctl_main(args)

    if args.command == "bench":
        if args.bench == "solver":
            from optimizer.bench import bench_solver

            _print_json(bench_solver(venues=args.venues, repeats=args.repeats, seed=args.seed))
        elif args.bench == "quality":
            from optimizer.bench import bench_quality

            _print_json(bench_quality(seed=args.seed))
        else:
            from adapters.bench import bench_feeds

            _print_json(
                asyncio.run(bench_feeds(venues=args.venues, cycles=args.cycles, seed=args.seed))
            )
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
