"""The driver: simulated time, one ``vault.cycle.run_cycle`` every ``period_seconds``, per strategy.

Per strategy: a :class:`~backtest.market.ReplayMarket` (its own world: our deposits move its rates),
a real SQLite :class:`~vault.ledger.Ledger` in the out dir, the vault's ``PaperExecutor`` over
``vault.transport.InProcessTransport(market)``, and the strategy as the cycle's optimizer. Each
cycle: advance the market (accrual), build the snapshots, then ``run_cycle`` (recover, settle, sync,
decide, gate/check, execute, record: the daemon's own step, nothing re-implemented here). After
every cycle the books are checked: every account sums to zero (double entry) and each
``position:<venue>`` equals what the market holds for us, to the base unit; the holdings after the
moves go through the independent checker, and a hard-limit breach beyond the drift band
(``optimizer.drift_tolerance_ratio``) is counted. ``Ledger.audit()`` runs at the end (and every
cycle with ``audit_every_cycle``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backtest.curves import CurveMemo
from backtest.history import LendingHistory
from backtest.market import ReplayMarket
from backtest.rates import RateModels
from backtest.sources import PriceTable
from backtest.strategies import Strategy
from core.money import usd_to_units
from core.types import Venue, VenueSnapshot
from optimizer import OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from optimizer.memory import EMPTY_MEMORY
from vault.cycle import (
    CycleDeps,
    CycleInput,
    RebalanceOutcome,
    no_guard,
    portfolio_of,
    run_cycle,
    run_inline,
)
from vault.executor import MoveStatus, PaperExecutor, move_to_dict
from vault.ledger import Ledger
from vault.reconcile import ReconcileSettings
from vault.seals import load_or_create_key
from vault.transport import InProcessTransport

# The replay's marks are data (daily stablecoin prices), not a venue's unexplained report: a day's
# mark move (USDC 0.9976 -> 0.9611 on 2023-03-11, -3.7 %) is booked as the position's loss, up to
# 10 % of the position a sync (the reconciler's widest tolerance); beyond it the daemon's rule holds
# (a break, every move held until an operator books it) and the backtest stops, naming it.
REPLAY_RECONCILE = ReconcileSettings(tolerance_ratio=0.1)


class ConservationError(AssertionError):
    """The books do not balance, or do not match the market: a bug, never a market event."""


@dataclass(frozen=True)
class RunConfig:
    limits: RiskLimits
    settings: OptimizerSettings
    home_chain: str
    capital_usd: float
    period_seconds: int


@dataclass
class CycleRecord:
    ts: int
    nav_units: int
    status: str
    executed: bool
    predicted_apr: float | None
    traded_units: int
    positions_units: dict[str, int]
    idle_units: int
    breaches: tuple[str, ...]
    drift_breaches: int
    digest: str  # what was decided: the look-ahead check compares these


@dataclass
class StrategyRun:
    name: str
    ledger_path: Path
    records: list[CycleRecord] = field(default_factory=list)
    costs_units: dict[str, int] = field(default_factory=dict)
    executed_plans: int = 0
    final_nav_units: int = 0
    audit_problems: list[str] = field(default_factory=list)


def cycle_times(h: LendingHistory, period_seconds: int) -> list[int]:
    t0, t1 = int(h.times[0]), int(h.times[-1])
    return list(range(t0, t1 + 1, max(period_seconds, h.step_seconds)))


def _digest(decision: object) -> str:
    d = decision
    moves = [move_to_dict(m) for m in d.plan.moves]  # type: ignore[attr-defined]
    target = (
        sorted((k, round(v, 2)) for k, v in d.allocation.target_usd.items())  # type: ignore[attr-defined]
        if d.allocation is not None  # type: ignore[attr-defined]
        else None
    )
    # the predicted APR moves with every rate the decision saw, so any data from after t shows
    predicted = None if d.predicted_apr is None else round(float(d.predicted_apr), 12)  # type: ignore[attr-defined]
    # repr, not JSON: the same values give the same text (dicts in move_to_dict's fixed key order,
    # floats as their shortest round trip), at a fraction of json.dumps(sort_keys=True)'s cost
    raw = repr((str(d.status), d.plan.execute, moves, target, predicted))  # type: ignore[attr-defined]
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def costs_by_kind(ledger: Ledger) -> dict[str, int]:
    """Expense postings grouped as ``<gas|fees>:<transaction kind>`` (e.g. ``gas:deposit``)."""
    rows = ledger._db.execute(
        "SELECT p.account, t.kind, SUM(p.amount_units) FROM postings p JOIN transactions t "
        "ON p.tx_id = t.id WHERE p.account LIKE 'expense:%' GROUP BY p.account, t.kind"
    ).fetchall()
    return {f"{a.split(':', 1)[1]}:{k}": int(u) for a, k, u in sorted(rows)}


async def replay_strategy(
    strategy: Strategy,
    history: LendingHistory,
    rates: RateModels,
    venues: list[Venue],
    cfg: RunConfig,
    ledger_path: Path,
    *,
    prices: PriceTable | None = None,
    progress: Callable[[int], None] | None = None,
    audit_every_cycle: bool = False,
    timings: dict[str, float] | None = None,
    ledger_in_memory: bool = True,
    curves: CurveMemo | None = None,
) -> StrategyRun:
    """One strategy over the history; each cycle is ``vault.cycle.run_cycle`` (recover, settle, sync,
    decide, gate/check, execute, record: the daemon's step). ``timings``: when given, wall seconds
    per phase are added to it (market accrual, snapshots, cycle, check).

    ``ledger_in_memory``: the ledger is the vault's own (same schema, same code) on an in-memory
    SQLite database, copied to ``ledger_path`` with SQLite's online backup when the replay ends
    (or stops on an error): one file, the same rows, without a file write per commit."""
    clock = _PhaseClock(timings)
    market = ReplayMarket(
        history,
        rates,
        venues,
        prices=prices,
        bridge_fee_bps=cfg.settings.bridge_fee_bps,
        bridge_gas_usd=cfg.settings.bridge_gas_usd,
        curves=curves,
        cycle_ts=cycle_times(history, cfg.period_seconds),
        home_chain=cfg.home_chain,
    )
    ledger_path.unlink(missing_ok=True)
    for extra in ("-wal", "-shm"):
        Path(str(ledger_path) + extra).unlink(missing_ok=True)
    if ledger_in_memory:
        key = load_or_create_key(ledger_path.parent, create=True)
        ledger = Ledger(Path(":memory:"), key=key, durable=False)
    else:
        ledger = Ledger(ledger_path, durable=False)
    by_id = {v.id: v for v in venues}
    ledger.deposit_capital(market.now(), cfg.home_chain, usd_to_units(cfg.capital_usd))
    executor = PaperExecutor(
        InProcessTransport(market),
        ledger=ledger,
        venues=by_id,
        home_chain=cfg.home_chain,
        clock=market.now,
        bridge_wait_seconds=0.0,  # simulated time does not pass inside a cycle
    )
    deps = CycleDeps(
        ledger=ledger,
        executor=executor,
        optimizer=strategy,  # type: ignore[arg-type]  # duck-typed: decide(..., memory=, directives=)
        venues=by_id,
        clock=market.now,
        run_in_thread=run_inline,
        guard=getattr(strategy, "guard", None) or no_guard,
        persist_memory=False,
        record_snapshots=False,  # the history file is the record of every cycle's inputs
        reconcile=REPLAY_RECONCILE,
    )
    memory = EMPTY_MEMORY
    guard_state: Any = None
    known: dict[str, VenueSnapshot] = {}
    run = StrategyRun(strategy.name, ledger_path)
    tolerance = cfg.settings.drift_tolerance_ratio
    try:
        for ts in cycle_times(history, cfg.period_seconds):
            clock.lap()
            market.advance_to(ts)
            now = market.now()
            clock.lap("market")
            live = market.snapshots()
            snaps = market.hindsight_snapshots(cfg.period_seconds) if strategy.hindsight else live
            known.update((s.venue.id, s) for s in live)  # each venue's latest live snapshot
            clock.lap("snapshots")
            out = await run_cycle(CycleInput(snaps, now, memory, guard_state=guard_state), deps)
            memory, guard_state = out.memory, out.guard_state
            clock.lap("cycle")
            clock.add("cycle.sync", out.timings.sync_seconds)  # wall, as the cycle measures them
            clock.add("cycle.execute", out.timings.execute_seconds)
            clock.add("cycle.record", out.timings.record_seconds)
            if out.outcome is RebalanceOutcome.EXECUTED:
                run.executed_plans += 1
            after = out.balances_after
            _check_books(ledger, market, after, audit_every_cycle)
            post = portfolio_of(after, by_id)
            report = check_allocation(
                _checked_view(live, known, after.positions_units),
                post,
                dict(post.positions_usd),
                post.idle_usd,
                cfg.limits,
                cfg.settings,
                cfg.home_chain,
                in_flight_known=post.in_flight_landing,
            )
            hard = tuple(
                v for v, e in zip(report.violations, report.excess, strict=True) if e > tolerance
            )
            traded = sum(
                r.applied_units
                for r in out.results
                if r.status is MoveStatus.DONE and r.action in ("deposit", "withdraw")
            )
            d = out.decision
            run.records.append(
                CycleRecord(
                    ts=ts,
                    nav_units=after.nav_units,
                    status=d.status if d is not None else "not_run",
                    executed=out.outcome is RebalanceOutcome.EXECUTED,
                    predicted_apr=d.predicted_apr if d is not None else None,
                    traded_units=traded,
                    positions_units={k: v for k, v in after.positions_units.items() if v},
                    idle_units=after.total_idle_units,
                    breaches=hard,
                    drift_breaches=len(report.violations) - len(hard),
                    digest=_digest(d) if d is not None else f"not_run:{out.reason}",
                )
            )
            clock.lap("check")
            if progress is not None:
                progress(1)
        run.costs_units = costs_by_kind(ledger)
        run.final_nav_units = ledger.balances().nav_units
        run.audit_problems = ledger.audit()
        if run.audit_problems:
            raise ConservationError(f"{strategy.name}: ledger audit: {run.audit_problems[:3]}")
    finally:
        if ledger_in_memory:
            _save_ledger(ledger, ledger_path)
        ledger.close()
    return run


def _checked_view(
    live: Sequence[VenueSnapshot],
    known: dict[str, VenueSnapshot],
    positions_units: Mapping[str, int],
) -> Sequence[VenueSnapshot]:
    """What the harness checks the holdings against: the live snapshots, plus, for a venue we hold
    that has none this cycle, its last live one. That is the view the daemon's optimizer keeps for
    a lost feed (``OptimizerMemory.last_snapshot``); without it the checker counts the position at
    the unknown venue's worst score and as not withdrawable, a breach the holdings never made."""
    seen = {s.venue.id for s in live}
    held = [known[v] for v, u in positions_units.items() if u and v not in seen and v in known]
    return [*live, *held] if held else live


def _save_ledger(ledger: Ledger, path: Path) -> None:
    """The in-memory ledger to ``path`` (SQLite's online backup: page by page, one transaction)."""
    import sqlite3

    target = sqlite3.connect(path)
    try:
        ledger._db.backup(target)
    finally:
        target.close()


class _PhaseClock:
    """Per phase, wall seconds (``time.perf_counter``) in ``sink[phase]`` and this thread's CPU
    seconds (``time.thread_time``: what a loaded machine does not inflate) in ``sink["cpu:" +
    phase]``."""

    def __init__(self, sink: dict[str, float] | None):
        self.sink = sink
        self.t, self.cpu = time.perf_counter(), time.thread_time()

    def lap(self, phase: str | None = None) -> None:
        if self.sink is None:
            return
        t, cpu = time.perf_counter(), time.thread_time()
        if phase is not None:
            self.sink[phase] = self.sink.get(phase, 0.0) + t - self.t
            key = "cpu:" + phase
            self.sink[key] = self.sink.get(key, 0.0) + cpu - self.cpu
        self.t, self.cpu = t, cpu

    def add(self, phase: str, seconds: float) -> None:
        if self.sink is not None:
            self.sink[phase] = self.sink.get(phase, 0.0) + seconds


def _check_books(ledger: Ledger, market: ReplayMarket, b: object, audit: bool) -> None:
    """Double entry (all accounts sum to 0) and the books against the market, to the base unit."""
    breaks = ledger.open_breaks()
    if breaks:
        raise ConservationError(
            f"reconciliation break at {market.now()} (a replay has no operator to book it): {breaks[0]}"
        )
    total = ledger.total_units()
    if total != 0:
        raise ConservationError(f"accounts sum to {total} units at {market.now()}")
    positions = b.positions_units  # type: ignore[attr-defined]
    for j, v in enumerate(market.venues):
        booked = positions.get(v.id, 0)
        if booked != market.position_units(j):
            raise ConservationError(
                f"{v.id}: books {booked} units, market {market.position_units(j)} at {market.now()}"
            )
    if audit:
        problems = ledger.audit()
        if problems:
            raise ConservationError(f"audit at {market.now()}: {problems[:3]}")


def run_strategies(
    strategies: Sequence[Strategy],
    history: LendingHistory,
    rates: RateModels,
    venues: list[Venue],
    cfg: RunConfig,
    out_dir: Path,
    *,
    prices: PriceTable | None = None,
    progress: Callable[[int], None] | None = None,
    audit_every_cycle: bool = False,
    timings: dict[str, float] | None = None,
    ledger_in_memory: bool = True,
    curves: CurveMemo | None = None,
) -> list[StrategyRun]:
    """Every strategy over the same history, one after another (each in its own world and books;
    ``curves``: where their curves are kept, default the process's ``curves.CURVES``)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> list[StrategyRun]:
        return [
            await replay_strategy(
                s,
                history,
                rates,
                venues,
                cfg,
                out_dir / f"ledger-{s.name}.sqlite3",
                prices=prices,
                progress=progress,
                audit_every_cycle=audit_every_cycle,
                timings=timings,
                ledger_in_memory=ledger_in_memory,
                curves=curves,
            )
            for s in strategies
        ]

    return asyncio.run(go())


def nav_series(run: StrategyRun) -> tuple[np.ndarray, np.ndarray]:
    ts = np.array([r.ts for r in run.records], dtype=np.int64)
    nav = np.array([r.nav_units for r in run.records], dtype=np.float64) / 1e6
    return ts, nav
