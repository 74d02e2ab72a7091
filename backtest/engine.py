"""The driver: simulated time, one cycle every ``period_seconds``, per strategy, through the real books.

Per strategy: a :class:`~backtest.market.ReplayMarket` (its own world: our deposits move its rates),
a real SQLite :class:`~vault.ledger.Ledger` in the out dir and the vault's paper executor over the
in-process transport. Each cycle: advance the market (accrual), replay unresolved moves, land
transfers, sync positions (accrual and marks booked as income), decide, execute what the decision
says, and record. After every cycle the books are checked: every account sums to zero (double
entry) and ``idle + positions + in flight`` equals the NAV the market reports plus what is in
flight, to the base unit; the holdings after the moves go through the independent checker, and a
hard-limit breach beyond the drift band (``optimizer.drift_tolerance_ratio``) is counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backtest.history import LendingHistory
from backtest.market import ReplayMarket
from backtest.rates import RateModels
from backtest.sources import PriceTable
from backtest.strategies import Strategy
from backtest.transport import InProcessExecutor
from core.money import units_to_usd, usd_to_units
from core.types import PortfolioState, Venue
from optimizer import OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from protocols import across
from vault.executor import MoveStatus, move_to_dict
from vault.ledger import Ledger


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


def _landing(flights: dict[str, int], venues: dict[str, Venue]) -> tuple[tuple[float, float], ...]:
    out = []
    for flight, units in flights.items():
        _, kind, ref = flight.split("/", 2)
        venue = venues.get(ref.partition("/")[0]) if kind == "withdrawal" else None
        days = venue.exit_days if venue is not None else across.SLOW_FILL_SECONDS / 86_400
        out.append((days, units_to_usd(units)))
    return tuple(out)


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
    raw = json.dumps(
        [d.status, d.plan.execute, moves, target, predicted],  # type: ignore[attr-defined]
        sort_keys=True,
        default=str,
    )
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
) -> StrategyRun:
    """``timings``: when given, wall seconds per phase are added to it (market, books, snapshots,
    decide, execute, check)."""
    clock = _PhaseClock(timings)
    market = ReplayMarket(
        history,
        rates,
        venues,
        prices=prices,
        bridge_fee_bps=cfg.settings.bridge_fee_bps,
        bridge_gas_usd=cfg.settings.bridge_gas_usd,
    )
    ledger_path.unlink(missing_ok=True)
    for extra in ("-wal", "-shm"):
        Path(str(ledger_path) + extra).unlink(missing_ok=True)
    ledger = Ledger(ledger_path, durable=False)
    by_id = {v.id: v for v in venues}
    ledger.deposit_capital(market.now(), cfg.home_chain, usd_to_units(cfg.capital_usd))
    executor = InProcessExecutor(
        market, ledger=ledger, venues=by_id, home_chain=cfg.home_chain, clock=market.now
    )
    run = StrategyRun(strategy.name, ledger_path)
    tolerance = cfg.settings.drift_tolerance_ratio
    try:
        for ts in cycle_times(history, cfg.period_seconds):
            clock.lap()
            market.advance_to(ts)
            now = market.now()
            clock.lap("market")
            await executor.recover()
            await executor.settle_in_flight()
            await executor.sync_positions()
            b = ledger.balances()
            _check_books(ledger, market, b, audit_every_cycle)
            clock.lap("books")
            portfolio = PortfolioState(
                positions_usd={v: units_to_usd(u) for v, u in b.positions_units.items() if u},
                idle_usd=units_to_usd(b.total_idle_units),
                in_flight_usd=units_to_usd(b.total_in_flight_units),
                in_flight_landing=_landing(b.in_flight_units, by_id),
            )
            live = market.snapshots()
            snaps = market.hindsight_snapshots(cfg.period_seconds) if strategy.hindsight else live
            clock.lap("snapshots")
            decision = strategy.decide(snaps, portfolio, now)
            clock.lap("decide")
            results = []
            if decision.plan.execute and decision.status == "optimal" and not decision.violations:
                results = await executor.execute(decision.plan)
                if any(r.status is MoveStatus.DONE for r in results):
                    run.executed_plans += 1
            clock.lap("execute")
            after = ledger.balances()
            if ledger.total_units() != 0:
                raise ConservationError(f"accounts sum to {ledger.total_units()} units at {now}")
            post = PortfolioState(
                positions_usd={v: units_to_usd(u) for v, u in after.positions_units.items() if u},
                idle_usd=units_to_usd(after.total_idle_units),
                in_flight_usd=units_to_usd(after.total_in_flight_units),
                in_flight_landing=_landing(after.in_flight_units, by_id),
            )
            report = check_allocation(
                live,
                post,
                dict(post.positions_usd),
                post.idle_usd,
                cfg.limits,
                cfg.settings,
                cfg.home_chain,
                in_flight_known=post.in_flight_landing,
            )
            hard = tuple(
                v for v, e in zip(report.violations, report.excess, strict=False) if e > tolerance
            )
            traded = sum(
                r.applied_units
                for r in results
                if r.status is MoveStatus.DONE and r.action in ("deposit", "withdraw")
            )
            run.records.append(
                CycleRecord(
                    ts=ts,
                    nav_units=after.nav_units,
                    status=decision.status,
                    executed=bool(results),
                    predicted_apr=decision.predicted_apr,
                    traded_units=traded,
                    positions_units={k: v for k, v in after.positions_units.items() if v},
                    idle_units=after.total_idle_units,
                    breaches=hard,
                    drift_breaches=len(report.violations) - len(hard),
                    digest=_digest(decision),
                )
            )
            if results:
                ledger.record_rebalance(
                    started_at=now,
                    finished_at=now,
                    outcome="executed",
                    solver_status=decision.status,
                    reason=decision.reason,
                    nav_units=after.nav_units,
                    inputs={},
                    solution={"predicted_apr": decision.predicted_apr},
                    moves=[move_to_dict(m) for m in decision.plan.moves],
                    results=[r.as_dict() for r in results],
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
        ledger.close()
    return run


class _PhaseClock:
    def __init__(self, sink: dict[str, float] | None):
        self.sink = sink
        self.t = time.perf_counter()

    def lap(self, phase: str | None = None) -> None:
        if self.sink is None:
            return
        t = time.perf_counter()
        if phase is not None:
            self.sink[phase] = self.sink.get(phase, 0.0) + t - self.t
        self.t = t


def _check_books(ledger: Ledger, market: ReplayMarket, b: object, audit: bool) -> None:
    """Double entry (all accounts sum to 0) and the books against the market, to the base unit."""
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
) -> list[StrategyRun]:
    """Every strategy over the same history, one after another (each in its own world and books)."""
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
            )
            for s in strategies
        ]

    return asyncio.run(go())


def nav_series(run: StrategyRun) -> tuple[np.ndarray, np.ndarray]:
    ts = np.array([r.ts for r in run.records], dtype=np.int64)
    nav = np.array([r.nav_units for r in run.records], dtype=np.float64) / 1e6
    return ts, nav
