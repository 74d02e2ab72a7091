"""``yieldvault backtest`` (and ``backtest sweep``): argument parsing and the exit-code contract.

Exit codes: 0 done, 2 bad input (a history row, a config key, a flag: named with the reason on
stderr, never a traceback). ``--json`` prints summary.json and nothing else on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from backtest.console import quiet_logs, stdout_to_stderr
from backtest.strategies import EXTRA_STRATEGIES, STRATEGIES


def _common(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--history",
        type=Path,
        help="lending history: the hourly contract's columns, or the daily 13-chain Aave file"
        " (aave_v3_daily_rates.csv: converted in memory, TVL assumed; see backtest/README.md)",
    )
    src.add_argument("--market", type=Path, help="a mockfeeds market YAML (seeded Monte Carlo)")
    p.add_argument("--days", type=float, default=7.0, help="--market: simulated days to run")
    p.add_argument("--config", type=Path, default=None, help="YAML with vault/limits/optimizer")
    p.add_argument("--from", dest="start", default=None, help="first time (ISO date or time, UTC)")
    p.add_argument("--to", dest="end", default=None, help="last time (ISO date or time, UTC)")
    p.add_argument("--rebalance-every", default="6h", help="cycle period: 6h, 1h, 30m, 1d")
    p.add_argument(
        "--assets",
        default=",".join(("DAI", "USDC", "USDT", "USDE")),
        help="reserve symbols to replay, each with its variants (USDC: USDC.e, USDbC, USDC-0x..;"
        " USDT: USDT0); comma-separated; '*' for all",
    )
    p.add_argument(
        "--fill-gaps",
        type=int,
        default=0,
        metavar="N",
        help="carry a reserve's last row across at most N consecutive missing periods (no"
        " snapshot there, accrual at the carried rate; counted in summary.json); default 0:"
        " a gap is refused",
    )
    p.add_argument("--prices", type=Path, default=None, help="daily stablecoin prices (marks)")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--out", type=Path, default=None, help="output directory (required)")
    p.add_argument("--json", action="store_true", help="print summary.json as the only stdout")
    p.add_argument("--jobs", type=int, default=1, help="strategies replayed in parallel processes")


def add_parser(sub: Any) -> None:
    bt = sub.add_parser("backtest", help="replay history through the daemon's decision code")
    _common(bt)
    bt.add_argument(
        "--check-lookahead",
        action="store_true",
        help="re-run ours with the history cut at random times; decisions must match",
    )
    bt.add_argument("--cuts", type=int, default=3, help="cuts for --check-lookahead")
    bt.add_argument("--seed", type=int, default=0)
    bt_sub = bt.add_subparsers(dest="backtest_command", required=False)
    sw = bt_sub.add_parser("sweep", help="a grid of configs on Dask distributed; frontier table")
    _common(sw)
    sw.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a config key (limits.x / optimizer.y) and its values; repeatable",
    )
    sw.add_argument("--scheduler", default=None, help="tcp://HOST:PORT (default: a LocalCluster)")
    sw.add_argument("--workers", type=int, default=2)


def _fail(field: str, reason: str) -> int:
    print(f"yieldvault backtest: {field}: {reason}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from backtest.engine import ConservationError
    from backtest.history import HistoryError
    from backtest.run import BadInput
    from vault.settings import ConfigError

    quiet_logs()
    try:
        with stdout_to_stderr():
            code, text = _main(args)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
        return code
    except HistoryError as exc:
        return _fail(exc.field, f"{exc.reason} ({exc.where})")
    except BadInput as exc:
        return _fail(exc.field, exc.reason)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ConservationError as exc:  # a bug or an unbookable break, never a market event
        print(f"yieldvault backtest: books check failed: {exc}", file=sys.stderr)
        return 1


def _prepare(args: argparse.Namespace) -> Any:
    from backtest.run import DEFAULT_PRICES, BadInput, prepare

    if args.out is None:
        raise BadInput("--out", "required (the directory for summary.json, report.html, ledgers)")
    if args.market is not None:
        raise BadInput(
            "--market", "the simulated-market (Monte Carlo) source is not built yet; use --history"
        )
    if args.history is None:
        raise BadInput("--history", "required (a lending history in the hourly contract's columns)")
    assets = None if args.assets.strip() == "*" else [a for a in args.assets.split(",") if a]
    return prepare(
        args.history,
        args.config,
        start=args.start,
        end=args.end,
        period=args.rebalance_every,
        assets=assets,
        prices_path=args.prices or DEFAULT_PRICES,
        fill_gaps=args.fill_gaps,
    )


def _simulated(args: argparse.Namespace, names: list[str]) -> tuple[int, str]:
    from backtest.report import render_html
    from backtest.run import BadInput, summary_bytes
    from backtest.simulated import run_simulated

    if args.out is None:
        raise BadInput("--out", "required (the directory for summary.json, report.html, ledgers)")
    if not args.market.is_file():
        raise BadInput("--market", f"{args.market}: no such file")
    if args.strategies == ",".join(STRATEGIES):
        names = [n for n in names if n != "hindsight"]
    summary, runs, chains = run_simulated(
        args.market,
        args.config,
        args.out,
        names,
        period=args.rebalance_every,
        days=args.days,
        seed=args.seed,
    )
    summary["inputs"]["simulated"] = True
    (args.out / "summary.json").write_bytes(summary_bytes(summary))
    (args.out / "report.html").write_text(render_html(summary, runs, chains))
    return 0, summary_bytes(summary).decode() if args.json else ""


def _strategies(args: argparse.Namespace) -> list[str]:
    from backtest.run import BadInput

    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGIES + EXTRA_STRATEGIES]
    if bad or not names:
        raise BadInput("--strategies", f"unknown {bad or 'empty'}; known: {', '.join(STRATEGIES)}")
    return names


def _main(args: argparse.Namespace) -> tuple[int, str]:
    from tqdm import tqdm

    from backtest.engine import cycle_times
    from backtest.run import run_prepared, summary_bytes, write_outputs

    if getattr(args, "backtest_command", None) == "sweep":
        from backtest.sweep import run_sweep

        return run_sweep(args, _prepare(args), _strategies(args))
    names = _strategies(args)
    if args.market is not None:
        return _simulated(args, names)
    p = _prepare(args)
    total = len(names) * len(cycle_times(p.history, p.period_seconds))
    with tqdm(total=total, file=sys.stderr, unit="cycle", desc="backtest", disable=None) as bar:
        summary, runs = run_prepared(
            p, args.out, names, progress=bar.update, jobs=max(args.jobs, 1)
        )
    if args.check_lookahead:
        from backtest.lookahead import check_lookahead

        summary["lookahead"] = check_lookahead(
            p, args.out / "lookahead", cuts=args.cuts, seed=args.seed
        )
    write_outputs(summary, runs, args.out, p.history)
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'report.html'}", file=sys.stderr)
    code = 1 if args.check_lookahead and not summary["lookahead"]["identical"] else 0
    return code, summary_bytes(summary).decode() if args.json else ""
