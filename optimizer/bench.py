"""Benchmarks that print JSON: ``yieldvault bench solver`` and ``yieldvault bench quality``.

- :func:`bench_solver`: first build, re-solve latency, solver-internal time, peak RSS and the
  objective with every limit active, for our build-once DPP problem and, side by side, for a naive
  version that rebuilds the cvxpy problem every cycle.
- :func:`bench_quality`: on seeded simulated markets (some with binding limits), our net yield
  against the exact optimum of the true curves (high-resolution reference), greedy highest-APY,
  water-filling and equal weight, with each baseline's limit violations counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from optimizer.bench_baselines import equal_weight, greedy_highest_apy, water_filling, within_limits
from optimizer.bench_markets import T0, all_limits, drift, peak_rss_mb, quality_scenarios
from optimizer.bench_quality import bench_quality, steady_state_quality
from optimizer.bench_solver import bench_solver

__all__ = [
    "SCENARIOS",
    "T0",
    "add_quality_options",
    "all_limits",
    "bench_quality",
    "bench_solver",
    "drift",
    "equal_weight",
    "greedy_highest_apy",
    "main",
    "peak_rss_mb",
    "quality_scenarios",
    "steady_state_quality",
    "water_filling",
    "within_limits",
]

SCENARIOS = (
    "loose",
    "binding_limits",
    "rebalance_with_turnover",
    "heavy_rate_impact",
    "frozen_and_exit_bounds",
    "composite_kinds",
)


def add_quality_options(p: argparse.ArgumentParser) -> None:
    """``--scenario NAME`` (repeatable; all by default) and ``--steady-cycles N`` (15)."""
    p.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    p.add_argument(
        "--steady-cycles", type=int, default=15, help="cycles of the steady-state run (15)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``bench solver --venues N [--repeats R] [--seed S]`` | ``bench quality [--seed S]``; prints JSON."""
    p = argparse.ArgumentParser(prog="yieldvault bench")
    sub = p.add_subparsers(dest="what", required=True)
    ps = sub.add_parser("solver", help="build/re-solve latency and memory, ours vs naive rebuild")
    ps.add_argument("--venues", type=int, default=1000)
    ps.add_argument("--repeats", type=int, default=20)
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument(
        "--changed-share", type=float, default=1.0, help="share of venues whose rates move a cycle"
    )
    ps.add_argument(
        "--ours-only", action="store_true", help="no naive and no cvxpy runs (peak RSS is ours)"
    )
    ps.add_argument("--json", action="store_true", help="JSON output (the only format)")
    pc = sub.add_parser(
        "costs", help="the soak: predicted vs paid move costs per kind, convex vs linear model"
    )
    pc.add_argument("--venues", type=int, default=1000)
    pc.add_argument("--nav-usd", type=float, default=50_000_000.0)
    pc.add_argument("--seed", type=int, default=0)
    pc.add_argument("--invested-share", type=float, default=0.5)
    pc.add_argument("--json", action="store_true", help="JSON output (the only format)")
    pq = sub.add_parser("quality", help="net yield vs reference and baselines on seeded markets")
    pq.add_argument("--seed", type=int, default=0)
    add_quality_options(pq)
    pq.add_argument("--json", action="store_true", help="JSON output (the only format)")
    args = p.parse_args(argv)
    if args.what == "solver":
        out = bench_solver(
            args.venues,
            args.repeats,
            args.seed,
            changed_share=args.changed_share,
            naive=not args.ours_only,
            reference=not args.ours_only,
        )
    elif args.what == "costs":
        from optimizer.bench_costs import bench_costs

        out = bench_costs(args.venues, args.nav_usd, args.seed, args.invested_share)
    else:
        out = bench_quality(
            args.seed, scenarios_only=args.scenarios, steady_cycles=args.steady_cycles
        )
    json.dump(out, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
