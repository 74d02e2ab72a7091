"""One rebalance step, the same for the daemon and the backtester: ``run_cycle(inp, deps)``.

Its inputs are explicit (:class:`CycleInput`: the snapshots, the time, the optimizer's memory,
the operator's directives, the guards' prior state) and so are the parts it works with
(:class:`CycleDeps`: ledger, executor, optimizer, guard hook, a way to run the solver off the
event loop); it returns everything that happened as a :class:`CycleOutcome`, which the daemon
reads for its metrics, logs and API state and the backtester for its report. It does no
scheduling and no serving, and reads no clock but ``deps.clock`` (for the record's finish time).

The steps, in order, each a small function below (structlog's processor pipeline shape):

1. :func:`recover`: replay the moves written ahead and never booked; one still unresolved stops
   the cycle (syncing would book a move the venue applied, but we have not, as yield);
2. :func:`settle`: land filled bridge transfers and settled queued withdrawals;
3. :func:`sync`: reconcile each venue's report with the books (``vault/reconcile.py``): what the
   venue's own rate explains is booked as accrual, anything beyond is a reconciliation break,
   booked as nothing; while a *surplus* break is open the cycle holds before deciding, while a
   *shortfall* is open no venue may grow and the optimizer sees what the venue reports
   (:func:`shortfall_directives`); the books become the portfolio (:func:`portfolio_of`);
4. :func:`guard`: the guards' hook (``deps.guard``) turns the snapshots and their history into
   :class:`core.types.Directives`, merged with the operator's (``inp.directives``);
5. :func:`decide`: ``Optimizer.decide`` in ``deps.run_in_thread``, on the snapshots frozen by the
   directives, with the memory passed in;
6. :func:`may_execute`: the gate (``plan.execute``) and the independent checker (no violations)
   must both agree, and no ``hold_all``; then the operator's approval (``deps.approval``: None
   executes now, a reason holds the plan, which waits as a pending plan: ``vault/approval.py``);
7. :func:`execute`: the executor runs the plan's moves, stopping between moves when asked;
8. :func:`record`: one rebalance row in the ledger (inputs, solution, moves, results, memory).

A failure of steps 1-3 (:class:`vault.transport.OutcomeUnknown`) records a ``failed`` cycle that
did not decide (the memory passes on unchanged).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from core.marks import peg_mark
from core.types import NO_DIRECTIVES, Directives, PortfolioState, Venue, VenueSnapshot
from optimizer import Decision, DecisionStatus, Optimizer
from optimizer.decision import FAILED_STATUSES
from optimizer.directives import apply_freeze
from optimizer.memory import OptimizerMemory
from vault.cycle_books import breaks_reason, rates_of, shortfall_directives
from vault.cycle_books import portfolio_of as portfolio_of
from vault.executor import Executor, MoveResult, MoveStatus, OutcomeUnknown, move_to_dict
from vault.ledger import Balances, Ledger
from vault.reconcile import ReconcileSettings, reconcile

P = ParamSpec("P")
T = TypeVar("T")


class RebalanceOutcome(enum.StrEnum):
    """What a cycle came to, as counted in ``yieldvault_rebalances_total{outcome}``."""

    EXECUTED = "executed"  # at least one move done, none unknown
    HELD = "held"  # nothing to do, a dry run, or a directive's hold_all
    GATED = "gated"  # moves proposed, the benefit/cost gate held them
    FAILED = "failed"  # no decision, a failed solve or check, or a move whose outcome is unknown


class GuardHook(Protocol):
    """The guards' step: (snapshots, portfolio, now, prior guard state) -> (directives, new state).

    Pure in its arguments (the state is a value the cycle passes on, as the optimizer's memory),
    so a replay is deterministic.
    """

    def __call__(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        state: Any,
        /,
    ) -> tuple[Directives, Any]: ...


def no_guard(
    snapshots: Sequence[VenueSnapshot], portfolio: PortfolioState, now: datetime, state: Any
) -> tuple[Directives, Any]:
    """The default guard: no directives, the state passed on as it is."""
    return NO_DIRECTIVES, state


async def run_inline(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``run_in_thread`` for a caller that may block (the backtester): call ``fn`` right here."""
    return fn(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class CycleInput:
    """Everything one cycle decides from, besides the books."""

    snapshots: Sequence[VenueSnapshot]
    now: datetime  # the cycle's time (the feeds' clock); stamps the record's start
    memory: OptimizerMemory  # what the previous cycle's decision returned
    directives: Directives = NO_DIRECTIVES  # the operator's (merged with the guards')
    guard_state: Any = None  # what the previous cycle's guard returned


@dataclass(frozen=True, slots=True)
class CycleDeps:
    """The parts a cycle works with. ``run_in_thread``: ``asyncio.to_thread`` in the daemon (the
    solver must not block the event loop), :func:`run_inline` in the backtester."""

    ledger: Ledger
    executor: Executor
    optimizer: Optimizer
    venues: Mapping[str, Venue]
    clock: Callable[[], datetime]
    run_in_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread
    guard: GuardHook = no_guard
    should_stop: Callable[[], bool] = lambda: False
    dry_run: bool = False  # the executor moves nothing: a plan that would execute is "held"
    # the operator's approval of a plan that may execute: None executes it now; a reason holds
    # it (the cycle is "held" with that reason; the daemon keeps the plan pending)
    approval: Callable[[Decision], str | None] = lambda decision: None
    # store the optimizer's memory with each rebalance row (what a restart resumes from); a
    # backtest that never restarts may skip the serialisation (~50 ms at 1,000 venues)
    persist_memory: bool = True
    # store every snapshot the cycle decided on with its rebalance row (what the daemon's API
    # and an audit read back); a backtest whose inputs are its history file may leave them out
    # (~40 ms of JSON a cycle at 1,000 venues): the row then holds their count only
    record_snapshots: bool = True
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)


@dataclass(frozen=True, slots=True)
class CycleTimings:
    """Wall seconds (``time.perf_counter``) of each step of one cycle."""

    sync_seconds: float = 0.0  # recover + settle + sync
    guard_seconds: float = 0.0
    decide_seconds: float = 0.0  # including the wait for the worker thread
    execute_seconds: float = 0.0
    record_seconds: float = 0.0
    total_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """What one cycle did, for metrics, logs, the API and the backtester's report."""

    outcome: RebalanceOutcome
    reason: str
    started_at: datetime
    finished_at: datetime
    decision: Decision | None  # None when the cycle stopped before deciding
    memory: OptimizerMemory  # pass it to the next cycle's CycleInput
    guard_state: Any
    directives: Directives  # as applied: the operator's merged with the guards'
    snapshots: tuple[VenueSnapshot, ...]  # as decided on (frozen by the directives)
    portfolio: PortfolioState | None  # the holdings the optimizer saw (after sync)
    synced: Balances | None  # the books after sync, before any move (None: sync failed)
    income_units: Mapping[str, int]  # income:<venue> at sync (what realized APRs are read from)
    balances_after: Balances
    recovered: tuple[MoveResult, ...] = ()
    results: tuple[MoveResult, ...] = ()
    rebalance_id: int = 0
    timings: CycleTimings = field(default_factory=CycleTimings)


# -- the steps ------------------------------------------------------------------------------


async def recover(deps: CycleDeps) -> tuple[MoveResult, ...]:
    recovered = await deps.executor.recover()
    unresolved = deps.ledger.pending_moves()
    if unresolved:
        # Syncing now would book a move the venue applied, but we have not, as yield.
        raise OutcomeUnknown(f"{len(unresolved)} move(s) still unresolved; replayed next cycle")
    return tuple(recovered)


async def settle(deps: CycleDeps) -> None:
    await deps.executor.settle_in_flight()


async def sync(inp: CycleInput, deps: CycleDeps) -> None:
    """Reconcile the venues' reports with the books; breaks are left open in the ledger."""
    reported = await deps.executor.venue_positions()
    if reported is not None:
        kinds = {s.venue.id: str(s.venue.kind) for s in inp.snapshots}
        marks = {s.venue.id: m for s in inp.snapshots if (m := peg_mark(s)) is not None}
        reconcile(
            deps.ledger,
            reported,
            rates_of(inp.snapshots),
            deps.clock(),
            deps.reconcile,
            kinds,
            marks,
        )


async def guard(
    inp: CycleInput, portfolio: PortfolioState, deps: CycleDeps
) -> tuple[Directives, Any]:
    """The guards' directives merged with the operator's, and the guards' new state (in
    ``deps.run_in_thread``: the signals over every venue's history and the state's save are tens
    of ms of CPU and an fsync, kept off the daemon's event loop like the decision)."""
    found, state = await deps.run_in_thread(
        deps.guard, inp.snapshots, portfolio, inp.now, inp.guard_state
    )
    return inp.directives.merge(found), state


async def decide(
    snapshots: Sequence[VenueSnapshot],
    portfolio: PortfolioState,
    inp: CycleInput,
    directives: Directives,
    deps: CycleDeps,
) -> Decision:
    decision: Decision = await deps.run_in_thread(
        deps.optimizer.decide,
        snapshots,
        portfolio,
        inp.now,
        memory=inp.memory,
        directives=directives,
    )
    return decision


def may_execute(decision: Decision, directives: Directives) -> bool:
    """The gate said execute, the solve was optimal, the checker found nothing, no hold_all."""
    return (
        decision.plan.execute
        and decision.status is DecisionStatus.OPTIMAL
        and not decision.violations
        and not directives.hold_all
    )


async def execute(decision: Decision, deps: CycleDeps) -> tuple[MoveResult, ...]:
    return tuple(await deps.executor.execute(decision.plan, should_stop=deps.should_stop))


def rebalance_outcome(
    decision: Decision, results: Sequence[MoveResult], dry_run: bool, hold_all: bool = False
) -> RebalanceOutcome:
    """executed | held | gated | failed, as counted in ``yieldvault_rebalances_total{outcome}``."""
    if decision.status in FAILED_STATUSES:
        return RebalanceOutcome.FAILED
    if not decision.plan.moves or hold_all:
        return RebalanceOutcome.HELD
    if not decision.plan.execute:
        return RebalanceOutcome.GATED
    if dry_run:
        return RebalanceOutcome.HELD
    if any(r.status is MoveStatus.UNKNOWN for r in results):
        return RebalanceOutcome.FAILED
    if any(r.status is MoveStatus.DONE for r in results):
        return RebalanceOutcome.EXECUTED
    return RebalanceOutcome.FAILED


def snapshot_record(s: VenueSnapshot) -> dict[str, Any]:
    return {
        "venue": s.venue.id,
        "observed_at": s.observed_at.isoformat(),
        "real_apr": s.real_apr,
        "emission_apr": s.emission_apr,
        "tvl_usd": s.tvl_usd,
        "exit_liquidity_usd": s.exit_liquidity_usd,
        "frozen": s.frozen,
        "frozen_reason": s.frozen_reason,
        "state": dict(s.state),
    }


def directives_record(d: Directives) -> dict[str, Any]:
    return {
        "freeze": sorted(d.freeze),
        "exit": sorted(d.exit),
        "no_new_deposits": d.no_new_deposits,
        "hold_all": d.hold_all,
        "reasons": dict(d.reasons),
    }


def record(
    deps: CycleDeps,
    *,
    started_at: datetime,
    outcome: RebalanceOutcome,
    reason: str,
    decision: Decision | None,
    portfolio: PortfolioState | None,
    snapshots: Sequence[VenueSnapshot],
    directives: Directives,
    results: Sequence[MoveResult],
    nav_units: int,
) -> int:
    """The cycle's row in the ledger: inputs, solution, moves, results and the new memory."""
    inputs: dict[str, Any] = {}
    if portfolio is not None:
        inputs = {
            "portfolio": {
                "positions_usd": dict(portfolio.positions_usd),
                "idle_usd": portfolio.idle_usd,
                "in_flight_usd": portfolio.in_flight_usd,
            },
            **(
                {"snapshots": [snapshot_record(x) for x in snapshots]}
                if deps.record_snapshots
                else {"snapshot_count": len(snapshots)}
            ),
            "directives": directives_record(directives),
        }
    solution: dict[str, Any] = {}
    if decision is not None:
        solution = {
            "status": str(decision.status),
            "objective_usd": decision.objective_usd,
            "predicted_apr": decision.predicted_apr,
            "violations": list(decision.violations),
            "limit_utilization": dict(decision.limit_utilization),
            "target_usd": dict(decision.allocation.target_usd) if decision.allocation else None,
        }
    memory = decision.memory.to_json() if decision is not None and deps.persist_memory else None
    return deps.ledger.record_rebalance(
        started_at=started_at,
        finished_at=deps.clock(),
        outcome=str(outcome),
        solver_status=str(decision.status) if decision is not None else "not_run",
        reason=reason,
        nav_units=nav_units,
        inputs=inputs,
        solution=solution,
        moves=[move_to_dict(m) for m in decision.plan.moves] if decision is not None else [],
        results=[r.as_dict() for r in results],
        memory=memory,
    )


# -- the pipeline ---------------------------------------------------------------------------


def stopped(
    inp: CycleInput, deps: CycleDeps, outcome: RebalanceOutcome, reason: str, t0: float
) -> CycleOutcome:
    """A cycle that ends before deciding (a sync that failed, an open break): recorded, no moves."""
    t_rec = time.perf_counter()
    after = deps.ledger.balances()
    row = record(
        deps,
        started_at=inp.now,
        outcome=outcome,
        reason=reason,
        decision=None,
        portfolio=None,
        snapshots=(),
        directives=inp.directives,
        results=(),
        nav_units=after.nav_units,
    )
    t_end = time.perf_counter()
    return CycleOutcome(
        outcome=outcome,
        reason=reason,
        started_at=inp.now,
        finished_at=deps.clock(),
        decision=None,
        memory=inp.memory,
        guard_state=inp.guard_state,
        directives=inp.directives,
        snapshots=(),
        portfolio=None,
        synced=None,
        income_units={},
        balances_after=after,
        rebalance_id=row,
        timings=CycleTimings(
            sync_seconds=t_rec - t0, record_seconds=t_end - t_rec, total_seconds=t_end - t0
        ),
    )


async def run_cycle(inp: CycleInput, deps: CycleDeps) -> CycleOutcome:
    """recover -> settle -> sync -> guard -> decide -> gate/check -> execute -> record."""
    t0 = time.perf_counter()
    ledger = deps.ledger
    try:
        recovered = await recover(deps)
        await settle(deps)
        await sync(inp, deps)
        held = breaks_reason(ledger)
    except OutcomeUnknown as exc:
        return stopped(inp, deps, RebalanceOutcome.FAILED, f"venue sync failed: {exc}", t0)
    if held is not None:
        return stopped(inp, deps, RebalanceOutcome.HELD, held, t0)
    synced = ledger.balances()
    booked = ledger.balances_under("income:")
    income = {v: booked.get(v, 0) for v in deps.venues}
    broken, portfolio = shortfall_directives(ledger, portfolio_of(synced, deps.venues))
    t_sync = time.perf_counter()

    directives, guard_state = await guard(inp, portfolio, deps)
    directives = directives.merge(broken)
    snapshots = tuple(apply_freeze(inp.snapshots, directives))
    t_guard = time.perf_counter()

    decision = await decide(snapshots, portfolio, inp, directives, deps)
    t_decide = time.perf_counter()

    results: tuple[MoveResult, ...] = ()
    waits: str | None = None
    if may_execute(decision, directives):
        waits = deps.approval(decision)
        if waits is None:
            results = await execute(decision, deps)
    t_exec = time.perf_counter()

    outcome = rebalance_outcome(decision, results, deps.dry_run, directives.hold_all)
    reason = decision.reason
    if waits is not None:
        outcome, reason = RebalanceOutcome.HELD, f"{waits}; {decision.reason}"
    if directives.hold_all:
        why = directives.reasons.get("*", "")
        reason = f"hold_all{': ' + why if why else ''}; {decision.reason}"
    after = ledger.balances()
    row = record(
        deps,
        started_at=inp.now,
        outcome=outcome,
        reason=reason,
        decision=decision,
        portfolio=portfolio,
        snapshots=snapshots,
        directives=directives,
        results=results,
        nav_units=after.nav_units,
    )
    t_end = time.perf_counter()
    return CycleOutcome(
        outcome=outcome,
        reason=reason,
        started_at=inp.now,
        finished_at=deps.clock(),
        decision=decision,
        memory=decision.memory,
        guard_state=guard_state,
        directives=directives,
        snapshots=snapshots,
        portfolio=portfolio,
        synced=synced,
        income_units=income,
        balances_after=after,
        recovered=recovered,
        results=results,
        rebalance_id=row,
        timings=CycleTimings(
            sync_seconds=t_sync - t0,
            guard_seconds=t_guard - t_sync,
            decide_seconds=t_decide - t_guard,
            execute_seconds=t_exec - t_decide,
            record_seconds=t_end - t_exec,
            total_seconds=t_end - t0,
        ),
    )
