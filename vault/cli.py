"""``yieldvault``: the command line.

    yieldvault run [--config FILE] [--listen HOST:PORT] [--data-dir DIR]
    yieldvault mock-feeds [--listen HOST:PORT] [--market FILE] [--state FILE]
    yieldvault check-config [FILE]
    yieldvault ledger verify|book-break|adopt [--config FILE] [--data-dir DIR] [--venue V] [--reason R]
    yieldvault bench solver --venues N [--repeats R] --json
    yieldvault bench quality --json
    yieldvault bench costs --venues N --nav-usd USD --json
    yieldvault bench feeds --venues N [--cycles C] --json
    yieldvault ctl status|rebalances|pending|pause|resume|approve ID|reject ID|freeze V|unfreeze V|
                   exit V|reload|hash-token      (vault/ctl.py: YIELDVAULT_URL, YIELDVAULT_TOKEN)
    yieldvault backtest --history FILE [--config FILE] [--from D --to D] [--rebalance-every 6h] --out DIR [--json]
    yieldvault backtest sweep --grid KEY=V1,V2 ... --history FILE --out DIR [--scheduler tcp://HOST:PORT]
    yieldvault bench backtest --json
    yieldvault guards resume [--venue V] [--guard G] [--config FILE] [--data-dir DIR]
    yieldvault guards status [--config FILE] [--data-dir DIR] [--json]

Exit codes: 0 success, 1 runtime failure, 2 invalid config or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from core.money import units_to_str
from vault.identity import IdentityError
from vault.integrity import LedgerIntegrityError
from vault.logs import configure_logging
from vault.reconcile import StrandedMoney
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

    ledger = sub.add_parser("ledger", help="operator actions on the books (the daemon stopped)")
    ledger_sub = ledger.add_subparsers(dest="ledger", required=True)
    for name, text in (
        ("verify", "check the ledger file (what `run` checks before the first cycle)"),
        ("book-break", "book an open reconciliation break, with a reason"),
        ("adopt", "rebuild a lost ledger from what the venue holds for this vault, with a reason"),
    ):
        cmd = ledger_sub.add_parser(name, help=text)
        cmd.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
        cmd.add_argument("--data-dir", type=Path, default=None)
        if name != "verify":
            cmd.add_argument("--reason", required=True, help="why: kept with the transaction")
        if name == "book-break":
            cmd.add_argument("--venue", required=True)

    bench = sub.add_parser("bench", help="benchmarks that print JSON")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    solver = bench_sub.add_parser(
        "solver", help="first build and re-solve times of the allocation problem"
    )
    solver.add_argument("--venues", type=int, default=1000)
    solver.add_argument("--repeats", type=int, default=20)
    solver.add_argument("--seed", type=int, default=7)
    solver.add_argument(
        "--changed-share", type=float, default=1.0, help="share of venues whose rates move a cycle"
    )
    solver.add_argument(
        "--ours-only", action="store_true", help="no naive and no cvxpy runs (peak RSS is ours)"
    )
    solver.add_argument("--json", action="store_true")
    quality = bench_sub.add_parser("quality", help="net yield against baselines on seeded markets")
    quality.add_argument("--seed", type=int, default=7)
    # the names of optimizer.bench.SCENARIOS (not imported here: it loads cvxpy, ~2 s)
    quality.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        choices=QUALITY_SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    quality.add_argument("--steady-cycles", type=int, default=15)
    quality.add_argument("--json", action="store_true")
    costsb = bench_sub.add_parser(
        "costs", help="the soak: predicted vs paid move costs per kind, convex vs linear model"
    )
    costsb.add_argument("--venues", type=int, default=1000)
    costsb.add_argument("--nav-usd", type=float, default=50_000_000.0)
    costsb.add_argument("--seed", type=int, default=0)
    costsb.add_argument("--invested-share", type=float, default=0.5)
    costsb.add_argument("--json", action="store_true")
    feedsb = bench_sub.add_parser("feeds", help="poll-cycle time for many mock venues on loopback")
    feedsb.add_argument("--venues", type=int, default=1000)
    feedsb.add_argument("--cycles", type=int, default=10)
    feedsb.add_argument("--seed", type=int, default=7)
    feedsb.add_argument("--json", action="store_true")
    btb = bench_sub.add_parser("backtest", help="3-year hourly replay, a decision every hour")
    btb.add_argument("--history", type=Path, default=None)
    btb.add_argument("--days", type=int, default=None, help="replay only the first N days")
    btb.add_argument("--venue-days", type=int, default=30, help="days of the 1,000-venue replay")
    btb.add_argument("--json", action="store_true")

    from backtest.cli import add_parser as add_backtest

    add_backtest(sub)
    guards = sub.add_parser("guards", help="protocol-health guards: status, operator resume")
    guards_sub = guards.add_subparsers(dest="guards", required=True)
    resume = guards_sub.add_parser(
        "resume", help="resume tripped exit/pause breakers (applied at the daemon's next cycle)"
    )
    resume.add_argument("--venue", default=None, help="only this venue ('*' = the portfolio)")
    resume.add_argument("--guard", default=None, help="only this guard (e.g. depeg)")
    status = guards_sub.add_parser("status", help="every breaker that is not closed")
    status.add_argument("--json", action="store_true")
    for gp in (resume, status):
        gp.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
        gp.add_argument("--data-dir", type=Path, default=None)
    from vault.ctl import add_parser as add_ctl

    add_ctl(sub)
    return p


QUALITY_SCENARIOS = (
    "loose",
    "binding_limits",
    "rebalance_with_turnover",
    "heavy_rate_impact",
    "frozen_and_exit_bounds",
    "composite_kinds",
)


def guards_command(args: argparse.Namespace) -> int:
    """``yieldvault guards resume|status``: exit 2 naming the field on a bad venue or guard."""
    from vault.guard_store import read_status, request_resume

    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    if args.guards == "resume":
        try:
            req = request_resume(
                settings.data_dir,
                args.venue,
                args.guard,
                venues={v.id for v in settings.venues},
            )
        except ValueError as exc:
            print(f"yieldvault guards resume: {exc}", file=sys.stderr)
            return 2
        print(
            f"resume #{req.id} queued for venue={req.venue or 'any'} guard={req.guard or 'any'}; "
            "the daemon applies it at its next rebalance"
        )
        return 0
    try:
        state, pending = read_status(settings.data_dir)
    except (ValueError, OSError) as exc:
        print(f"yieldvault guards status: {exc}", file=sys.stderr)
        return 1
    rows = [
        {
            "venue": v,
            "guard": g,
            "state": b.state.value,
            "action": b.action,
            "trips": b.trips,
            "resumed": b.resumed,
            "evidence": b.evidence,
        }
        for (v, g), b in sorted(state.breakers.items())
        if b.active
    ]
    if args.json:
        _print_json({"breakers": rows, "pending_resumes": [dataclasses.asdict(r) for r in pending]})
    else:
        for r in rows:
            print(f"{r['venue']:28} {r['guard']:16} {r['state']:8} {r['action']:6} {r['evidence']}")
        print(f"{len(rows)} breaker(s) not closed; {len(pending)} resume(s) pending")
    return 0


def check_config(path: Path) -> list[str]:
    """Every problem with the config at ``path``, one line each naming the key and the reason."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return exc.problems
    return config_problems(settings, path.parent)


def config_problems(settings: Any, config_dir: Path) -> list[str]:
    """What a loaded config still cannot do: infeasible limits, an embedded market that fails."""
    from optimizer import check_feasibility

    problems = [
        f"limits: {p}"
        for p in check_feasibility([v.to_venue() for v in settings.venues], settings.limits)
    ]
    market = settings.market_path(config_dir)
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

    # The event loop shares the GIL with the worker threads that decide and build snapshots;
    # a CPU-bound thread keeps it for a whole switch interval (5 ms by default) each time the loop
    # asks, and a /healthz reply needs several turns: at 1 ms the loop waits a fifth as long.
    sys.setswitchinterval(0.001)
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
    except (LedgerIntegrityError, IdentityError, StrandedMoney) as exc:
        print(f"yieldvault: refusing to start: {exc}", file=sys.stderr)
        await daemon.stop()
        return 2
    except OSError as exc:
        log.error("start_failed", error=str(exc))
        await daemon.stop()
        return 1
    await stop.wait()
    log.info("stop_requested")
    await daemon.stop()
    return 0


async def _adopt(settings: Any, config_dir: Path, reason: str) -> int:
    from vault.daemon import Daemon

    daemon = Daemon(settings, config_dir=config_dir)
    try:
        await daemon.open_books(adopt_reason=reason)
        b = daemon.ledger.balances()
        print(
            f"vault {daemon.vault_id}: ledger holds NAV {units_to_str(b.nav_units)} USD "
            f"({len([u for u in b.positions_units.values() if u])} positions)"
        )
        return 0
    except (LedgerIntegrityError, IdentityError) as exc:
        print(f"yieldvault: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"yieldvault: {exc}", file=sys.stderr)
        return 1
    finally:
        await daemon.stop()


def _ledger_command(args: argparse.Namespace) -> int:
    """``yieldvault ledger verify | book-break | adopt``: one line out, exit 2 on a refusal."""
    from datetime import UTC, datetime

    from vault.daemon import lock_data_dir
    from vault.integrity import open_verified
    from vault.reconcile import NoOpenBreak, book_break

    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    if args.ledger == "adopt":
        return asyncio.run(_adopt(settings, args.config.parent, args.reason))
    path = settings.data_dir / "ledger.sqlite3"
    if not path.exists():
        print(f"yieldvault: no ledger at {path}", file=sys.stderr)
        return 2
    try:
        lock = lock_data_dir(settings.data_dir)
    except OSError as exc:
        print(f"yieldvault: {exc}: stop it first (or use the operator API)", file=sys.stderr)
        return 1
    try:
        ledger = open_verified(path)
    except LedgerIntegrityError as exc:
        lock.close()
        print(f"yieldvault: {exc}", file=sys.stderr)
        return 2
    try:
        if args.ledger == "verify":
            b = ledger.balances()
            breaks = ledger.open_breaks()
            print(
                f"{path}: OK (vault {ledger.vault_id()}, NAV {units_to_str(b.nav_units)} USD, "
                f"{len(breaks)} open break(s))"
            )
            return 0
        try:
            brk = book_break(ledger, args.venue, args.reason, datetime.now(UTC))
        except (NoOpenBreak, ValueError) as exc:
            print(f"yieldvault: {exc}", file=sys.stderr)
            return 2
        print(
            f"booked the break at {brk.venue}: {units_to_str(brk.difference_units)} USD "
            f"(books {units_to_str(brk.books_units)} -> {units_to_str(brk.reported_units)}), "
            f"reason: {args.reason.strip()}"
        )
        return 0
    finally:
        ledger.close()
        lock.close()


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
        problems = config_problems(settings, args.config.parent)
        if problems:
            print(ConfigError(str(args.config), problems).render(), file=sys.stderr)
            return 2
        return asyncio.run(_run(settings, args.config.parent, args.config))

    if args.command == "ledger":
        return _ledger_command(args)

    if args.command == "mock-feeds":
        from mockfeeds.server import run_forever

        run_forever(args.market, args.listen, args.state)
        return 0

    if args.command == "ctl":
        from vault.ctl import main as ctl_main

        return ctl_main(args)
    if args.command == "backtest":
        from backtest.cli import main as backtest_main

        return backtest_main(args)
    if args.command == "guards":
        return guards_command(args)

    if args.command == "bench":
        if args.bench == "backtest":
            from backtest.bench import bench_backtest
            from backtest.console import quiet_logs, stdout_to_stderr

            quiet_logs()
            with stdout_to_stderr():
                result = bench_backtest(args.history, days=args.days, venue_days=args.venue_days)
            _print_json(result)
        elif args.bench == "solver":
            from optimizer.bench import bench_solver

            _print_json(
                bench_solver(
                    venues=args.venues,
                    repeats=args.repeats,
                    seed=args.seed,
                    changed_share=args.changed_share,
                    naive=not args.ours_only,
                    reference=not args.ours_only,
                )
            )
        elif args.bench == "costs":
            from optimizer.bench_costs import bench_costs

            _print_json(bench_costs(args.venues, args.nav_usd, args.seed, args.invested_share))
        elif args.bench == "quality":
            from optimizer.bench import bench_quality

            _print_json(
                bench_quality(
                    seed=args.seed, scenarios_only=args.scenarios, steady_cycles=args.steady_cycles
                )
            )
        else:
            from adapters.bench import bench_feeds

            _print_json(
                asyncio.run(bench_feeds(venues=args.venues, cycles=args.cycles, seed=args.seed))
            )
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
