"""``yieldvault bench backtest --json``: replay speed and memory.

1. The 3-year hourly Aave v3 Ethereum history (4 stablecoin reserves, 26,141 hours) with a decision
   every hour, ``ours`` only. Goal: <= 120 s on this 2-core machine (<= 4.6 ms a cycle).
2. 1,000 simulated reserves over 30 days hourly (720 cycles): a seeded, generated lending history in
   the contract's format (13 chains; utilization a bounded random walk; each reserve on its own
   kinked curve), so every cycle builds 1,000 curves and solves at 1,000 venues. Goal: <= 5 min.

Reported: wall and CPU seconds, ms per cycle, per phase wall seconds and CPU ms a cycle
(``time.thread_time``: ``market`` accrual, ``snapshots`` = the adapters' curve builds, ``cycle`` =
``vault.cycle.run_cycle`` of which ``decide`` = ``Optimizer.decide`` and ``cycle_without_decide``
the rest: recover, settle, sync/reconcile, gate, execute, record; ``check`` = the books and the
independent checker; the wall ones also split the cycle's ``cycle.sync``, ``cycle.execute``,
``cycle.record`` as ``run_cycle`` times them), the curve memo's hits and builds, peak RSS, and
each goal on the wall (``goal_met``) and on the CPU time (``cpu_goal_met``).

``side_by_side``: the same short windows replayed twice in this run, ``before`` on the unoptimised
path (one ``aave_lending_curve`` per reserve per cycle, nothing memoised, the ledger on its file)
and ``after`` on the default one (batched, memoised curves; in-memory ledger saved at the end):
the ratio is the evidence on a noisy shared machine, the absolute times are not.
"""

from __future__ import annotations

import dataclasses
import resource
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from backtest.curves import CurveMemo
from backtest.engine import RunConfig, run_strategies
from backtest.history import LendingHistory, Reserve, load_lending
from backtest.market import CHAIN_GAS_USD, history_venues
from backtest.rates import fit_rate_models
from backtest.run import DEFAULT_ASSETS, load_config, shared_data
from backtest.strategies import Strategy, make_strategy
from core.types import NO_DIRECTIVES, Directives, PortfolioState, VenueSnapshot
from optimizer import Decision
from optimizer.memory import OptimizerMemory

FULL_HOURLY_CYCLES = 26_141  # 2023-01-27..2026-01-20 hourly
FULL_VENUE_CYCLES = 721  # 30 days hourly, both ends


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def generated_history(venues: int = 1000, days: int = 30, seed: int = 7) -> LendingHistory:
    rng = np.random.default_rng(seed)
    chains = sorted(CHAIN_GAS_USD)
    hours = days * 24 + 1
    t0 = 1_735_689_600  # 2025-01-01
    times = t0 + 3600 * np.arange(hours, dtype=np.int64)
    reserves = tuple(Reserve(chains[k % len(chains)], f"USD{k:04d}") for k in range(venues))
    supplied = np.exp(rng.uniform(np.log(2e6), np.log(2e9), venues))
    u = np.clip(
        rng.uniform(0.4, 0.9, venues) + np.cumsum(rng.normal(0, 0.004, (hours, venues)), axis=0),
        0.05,
        0.99,
    )
    uopt, s1, s2, rf = 0.9, rng.uniform(0.03, 0.12, venues), 0.6, 0.1
    rb = np.where(u <= uopt, s1 * u / uopt, s1 + s2 * (u - uopt) / (1 - uopt))
    rs = rb * u * (1 - rf)
    s = np.broadcast_to(supplied, (hours, venues)) * (
        1 + np.cumsum(rng.normal(0, 0.002, (hours, venues)), axis=0)
    )
    return LendingHistory(
        source=f"generated(venues={venues}, days={days}, seed={seed})",
        times=times,
        step_seconds=3600,
        reserves=reserves,
        supplied_usd=s,
        borrowed_usd=s * u,
        liquidations_usd=np.zeros_like(s),
        supply_apr=rs,
        borrow_apr=rb,
    )


@dataclasses.dataclass
class _TimedDecide:
    """The strategy as the cycle's optimizer, its ``decide`` timed (the cycle calls it unchanged)."""

    inner: Strategy
    timings: dict[str, float]
    name: str = ""
    hindsight: bool = False

    def __post_init__(self) -> None:
        self.name, self.hindsight = self.inner.name, self.inner.hindsight

    def decide(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        memory: OptimizerMemory | None = None,
        directives: Directives = NO_DIRECTIVES,
    ) -> Decision:
        t, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.inner.decide(
                snapshots, portfolio, now, memory=memory, directives=directives
            )
        finally:
            self.timings["decide"] = self.timings.get("decide", 0.0) + time.perf_counter() - t
            self.timings["cpu:decide"] = (
                self.timings.get("cpu:decide", 0.0) + time.thread_time() - cpu
            )


def _replay(h: LendingHistory, goal_seconds: float, *, before: bool = False) -> dict[str, Any]:
    """``before``: the unoptimised path (scalar curve builds, no memo, ledger on its file)."""
    cfg = load_config(None)
    run_cfg = RunConfig(cfg.limits, cfg.settings, cfg.home_chain, cfg.capital_usd, 3600)
    timings: dict[str, float] = {}
    curves = CurveMemo(0, batch=False) if before else CurveMemo()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rates = fit_rate_models(h)
    fit_seconds = time.perf_counter() - wall0
    strategy = _TimedDecide(
        make_strategy("ours", cfg.limits, cfg.settings, cfg.home_chain), timings
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = run_strategies(
            [strategy],
            h,
            rates,
            history_venues(h),
            run_cfg,
            Path(tmp),
            timings=timings,
            ledger_in_memory=not before,
            curves=curves,
        )[0]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = len(run.records)
    wall_phases = {k: v for k, v in timings.items() if not k.startswith("cpu:")}
    cpu_phases = {k[4:]: v for k, v in timings.items() if k.startswith("cpu:")}
    # the cycle outside Optimizer.decide: recover, settle, sync/reconcile, gate, execute, record
    cpu_phases["cycle_without_decide"] = cpu_phases.get("cycle", 0.0) - cpu_phases.get(
        "decide", 0.0
    )
    return {
        "source": h.source,
        "reserves": len(h.reserves),
        "cycles": n,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "ms_per_cycle": round(wall / n * 1e3, 2),
        "cpu_ms_per_cycle": round(cpu / n * 1e3, 2),
        "rate_fit_seconds": round(fit_seconds, 2),
        "phase_seconds": {k: round(v, 2) for k, v in sorted(wall_phases.items())},
        "phase_ms_per_cycle": {k: round(v / n * 1e3, 2) for k, v in sorted(wall_phases.items())},
        "phase_cpu_ms_per_cycle": {k: round(v / n * 1e3, 2) for k, v in sorted(cpu_phases.items())},
        "curve_builds": curves.builds,
        "curve_memo_hits": curves.hits,
        "executed_plans": run.executed_plans,
        "final_nav_units": run.final_nav_units,
        "goal_seconds": goal_seconds,
        "goal_met": wall <= goal_seconds,
        # the same goal on this process's CPU time (a shared machine inflates the wall time)
        "cpu_goal_met": cpu <= goal_seconds,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _side_by_side(h: LendingHistory) -> dict[str, Any]:
    before = _replay(h, 0.0, before=True)
    after = _replay(h, 0.0)
    keep = (
        "cycles",
        "cpu_ms_per_cycle",
        "ms_per_cycle",
        "phase_ms_per_cycle",
        "phase_cpu_ms_per_cycle",
        "curve_builds",
    )
    return {
        "source": h.source,
        "from": int(h.times[0]),
        "before": {k: before[k] for k in keep},
        "after": {k: after[k] for k in keep},
        "cpu_speedup": round(before["cpu_ms_per_cycle"] / max(after["cpu_ms_per_cycle"], 1e-9), 2),
        # the same decisions on both paths: the optimisations change the cost, not the run
        "same_outcome": (before["executed_plans"], before["final_nav_units"])
        == (after["executed_plans"], after["final_nav_units"]),
    }


def bench_backtest(
    history: Path | None = None, *, days: int | None = None, venue_days: int = 30
) -> dict[str, Any]:
    """``days``/``venue_days`` shorten the two replays (the goals scale with the cycles)."""
    path = history or shared_data("aave_v3_ethereum_hourly.csv.gz")
    if path is None:
        raise FileNotFoundError(
            "aave_v3_ethereum_hourly.csv.gz not found (set YIELDVAULT_SHARED_DIR)"
        )
    t = time.perf_counter()
    h = load_lending(path).select(list(DEFAULT_ASSETS))
    load_seconds = time.perf_counter() - t
    t0 = int(h.times[0])
    cut = int(np.searchsorted(h.times, t0 + 365 * 86_400))  # a window of 2024: 4 live reserves
    side = {
        "hourly_history_7_days": _side_by_side(
            h.window(int(h.times[cut]), int(h.times[cut]) + 7 * 86_400)
        )
        if cut < len(h.times)
        else None,
        "venues_1000_6_hours": _side_by_side(
            generated_history(days=1).window(None, 1_735_689_600 + 6 * 3600)
        ),
    }
    if days is not None:
        h = h.window(None, t0 + days * 86_400)
    real = _replay(
        h, goal_seconds=120.0 if days is None else 120.0 * days * 24 / FULL_HOURLY_CYCLES
    )
    real["load_seconds"] = round(load_seconds, 2)
    generated = _replay(generated_history(days=venue_days), goal_seconds=300.0 * venue_days / 30)
    # what the full replays take at this CPU cost a cycle (a shortened run's honest extrapolation)
    real["projected_full_cpu_seconds"] = round(real["cpu_ms_per_cycle"] * FULL_HOURLY_CYCLES / 1e3)
    generated["projected_full_cpu_seconds"] = round(
        generated["cpu_ms_per_cycle"] * FULL_VENUE_CYCLES / 1e3
    )
    return {
        "hourly_history": real,
        "venues_1000_30_days": generated,
        "side_by_side": side,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
