"""The daemon's operator side: directives into the cycle, plans waiting for approval or a signer,
config reload between cycles. A mixin of ``vault.daemon.Daemon`` (kept apart so the cycle stays
short); everything here runs on the event loop, under ``cycle_lock`` where it touches a cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from core.types import Directives, Venue
from vault import cycle
from vault.approval import (
    books_context,
    drift_reason,
    needs_approval,
    plan_from_record,
    plan_record,
)
from vault.control import OPEN_STATUSES
from vault.executor import MoveStatus, OutcomeUnknown, move_to_dict

if TYPE_CHECKING:
    from optimizer import Decision
    from vault.control import OperatorStore
    from vault.cycle import CycleDeps
    from vault.executor import Executor, MoveResult
    from vault.export import ExportExecutor
    from vault.ledger import Ledger
    from vault.metrics import Metrics
    from vault.settings import Settings

log = structlog.get_logger("vault.daemon")


class OperatorHooks:
    """The daemon's operator side; ``vault.operations.Operations`` sees the daemon as this."""

    settings: Settings
    config_path: Path | None
    venues: dict[str, Venue]
    metrics: Metrics
    exporter: ExportExecutor | None
    cycle_lock: asyncio.Lock
    directives: Directives
    memory: Any
    state: Any
    clock: Callable[[], datetime]
    control: OperatorStore | None
    _scheduler: Any
    _optimizer: Any
    _stopping: asyncio.Event

    if TYPE_CHECKING:  # the daemon's resources (properties of vault.daemon.Daemon)

        @property
        def ledger(self) -> Ledger: ...

        @property
        def executor(self) -> Executor: ...

        def cycle_deps(self) -> CycleDeps: ...

        def _export_portfolio(self) -> None: ...

    @property
    def store(self) -> OperatorStore:
        if self.control is None:
            raise RuntimeError("the operator store is opened by Daemon.start()")
        return self.control

    def wall_now(self) -> datetime:
        return datetime.now(UTC)

    def operator_directives(self) -> Directives:
        return self.store.directives()

    def request_cycle(self) -> bool:
        """Run the rebalance job now rather than at its next interval (after the one running,
        if any: the job never overlaps itself). False when there is no schedule to move."""
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            job = scheduler.get_job("rebalance")
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC))
                return True
        return False

    def expire_plans(self) -> None:
        now = self.wall_now()
        for p in self.store.plans(("pending",), kind="approval"):
            if datetime.fromisoformat(p.expires_at) <= now:
                self.store.transition(
                    p.id, ("pending",), "expired", at=now, detail="not approved in time"
                )
                log.info("plan_expired", plan=p.id)
        self.metrics.set_plans_awaiting(len(self.store.plans(OPEN_STATUSES)))

    def recover_plans(self) -> None:
        """At start: a plan caught executing never runs again (its moves were written ahead)."""
        for p in self.store.plans(("executing",)):
            self.store.transition(
                p.id,
                ("executing",),
                "executed",
                at=self.wall_now(),
                detail="interrupted by a restart; its written-ahead moves are replayed",
            )

    # -- in the cycle -----------------------------------------------------------------------

    async def operator_step(self) -> bool:
        """Before the cycle: True when the operator's side took this cycle over.

        * an exported plan still out with its signer holds it (``held``; ``failed`` past the
          deadline);
        * an approved plan executes instead of a new decision, after the cycle's own recover,
          settle and sync, if the books are still within the drift band (``approved_plan``).
        """
        started = self.clock()
        self.expire_plans()
        waiting = self.export_hold()
        if waiting is not None:
            self.record_not_run(started, *waiting)
            return True
        if self.directives.hold_all or not self.store.plans(("approved",), kind="approval"):
            return False
        deps = self.cycle_deps()
        report = self.state.report
        inp = cycle.CycleInput(
            snapshots=list(report.snapshots.values()) if report else [],
            now=started,
            memory=self.memory,
            directives=self.directives,
        )
        try:
            await cycle.recover(deps)
            await cycle.settle(deps)
            await cycle.sync(inp, deps)
        except OutcomeUnknown:
            return False  # the cycle itself records the failed sync
        if cycle.breaks_reason(self.ledger) is not None:
            return False  # the cycle holds on an open reconciliation break
        frozen = {x.venue.id for x in report.snapshots.values() if x.frozen} if report else set()
        chosen = self.approved_plan(self.directives, frozen)
        if chosen is None:
            return False
        plan_id, plan, who = chosen
        done = await self.executor.execute(plan, should_stop=self._stopping.is_set)
        self.finish_approved(plan_id, done)
        n_done = sum(r.status is MoveStatus.DONE for r in done)
        unknown = any(r.status is MoveStatus.UNKNOWN for r in done)
        self.record_not_run(
            started,
            "executed" if n_done and not unknown else "failed",
            f"plan {plan_id} approved by {who}: {n_done} of {len(done)} move(s) done",
            moves=[move_to_dict(m) for m in plan.moves],
            results=done,
        )
        return True

    def record_not_run(
        self,
        started: datetime,
        outcome: str,
        reason: str,
        moves: list[dict[str, Any]] | None = None,
        results: list[MoveResult] | None = None,
    ) -> None:
        """A rebalance row for a cycle the optimizer did not run in (a hold, an approved plan)."""
        log.info("rebalance", outcome=outcome, solver_status="not_run", reason=reason)
        rid = self.ledger.record_rebalance(
            started_at=started,
            finished_at=self.clock(),
            outcome=outcome,
            solver_status="not_run",
            reason=reason,
            nav_units=self.ledger.balances().nav_units,
            inputs={},
            solution={},
            moves=moves or [],
            results=[r.as_dict() for r in results or []],
        )
        self.link_plans(rid)
        self.metrics.record_rebalance(outcome, "not_run", None)
        if outcome in ("held", "executed"):
            self.metrics.mark_cycle_success("rebalance", time.time())
        self.state.last_outcome = outcome
        self.state.hold_reason = reason if outcome != "executed" else None
        self._export_portfolio()

    def export_hold(self) -> tuple[str, str] | None:
        """(outcome, reason) while an exported plan waits for its signer, else None."""
        if self.exporter is None:
            return None
        open_plans = self.store.plans(("exported",), kind="export")
        if not open_plans:
            return None
        p = open_plans[0]
        left = len(self.exporter.unreported(p.id))
        if datetime.fromisoformat(p.expires_at) < self.wall_now():
            return "failed", (
                f"plan {p.id}: {left} move(s) unreported past the deadline {p.expires_at}; the "
                "daemon holds until the signer (or an operator) reports them"
            )
        return "held", f"plan {p.id}: waiting for the signer's report (deadline {p.expires_at})"

    def approved_plan(
        self, directives: Directives, frozen: set[str]
    ) -> tuple[int, Any, str] | None:
        """The approved plan to execute now: (id, plan, who approved), after the drift re-check."""
        for p in self.store.plans(("approved",), kind="approval"):
            deposits = [m["venue_id"] for m in p.plan["moves"] if m["action"] == "deposit"]
            # a pause of new deposits blocks every deposit; frozen and exiting venues their own
            blocked = set(deposits) if directives.no_new_deposits else set()
            stale = drift_reason(
                p.context,
                self.ledger.balances(),
                self.settings.optimizer.drift_tolerance_ratio,
                deposits,
                blocked | frozen | directives.freeze | directives.exit,
            )
            now = self.wall_now()
            if stale is not None:
                self.store.transition(
                    p.id, ("approved",), "superseded", at=now, detail=f"re-decided: {stale}"
                )
                log.info("plan_superseded", plan=p.id, reason=stale)
                continue
            if self.store.transition(p.id, ("approved",), "executing", at=now):
                return p.id, plan_from_record(p.plan), p.decided_by or "?"
        return None

    def finish_approved(self, plan_id: int, results: list[MoveResult]) -> None:
        done = sum(r.status is MoveStatus.DONE for r in results)
        self.store.set_plan_results(plan_id, [r.as_dict() for r in results])
        self.store.transition(
            plan_id,
            ("executing",),
            "executed",
            at=self.wall_now(),
            detail=f"{done} of {len(results)} move(s) done",
        )

    def approval_gate(self, decision: Decision) -> str | None:
        """None: execute now. Else the reason the plan waits (stored as a pending plan)."""
        v = self.settings.vault
        if not needs_approval(decision.plan, v.approval, v.approval_threshold_usd):
            return None
        self.expire_plans()
        open_plans = self.store.plans(("pending", "approved", "executing"), kind="approval")
        if open_plans:
            return (
                f"held: plan {open_plans[0].id} is {open_plans[0].status}; one plan waits at a time"
            )
        now = self.wall_now()
        plan_id = self.store.add_plan(
            created_at=now,
            expires_at=now + timedelta(seconds=v.approval_expiry_seconds),
            status="pending",
            kind="approval",
            plan=plan_record(decision.plan),
            context=books_context(self.ledger.balances()),
        )
        self.metrics.set_plans_awaiting(len(self.store.plans(OPEN_STATUSES)))
        log.info("plan_pending", plan=plan_id, moves=len(decision.plan.moves))
        return f"plan {plan_id} awaits approval (vault.approval: {v.approval})"

    def link_plans(self, rebalance_id: int) -> None:
        for p in self.store.plans(OPEN_STATUSES):
            if p.rebalance_id is None:
                self.store.set_plan_rebalance(p.id, rebalance_id)

    def unresolved_count(self) -> int:
        """Paper moves without a booked answer, plus exported moves unreported past their deadline."""
        pending = self.ledger.pending_moves()
        paper = sum(1 for p in pending if not p.get("export"))
        overdue = self.exporter.overdue_moves(self.wall_now()) if self.exporter else 0
        return paper + overdue

    def after_report(self, plan_id: int, booked: list[dict[str, Any]]) -> list[str]:
        """After a signer's report: the plan's unreported keys; the plan closes when none is left."""
        assert self.exporter is not None
        plan = self.store.plan(plan_id)
        if plan is not None:
            merged = {r["idempotency_key"]: r for r in plan.results}
            merged.update({r["idempotency_key"]: r for r in booked})
            self.store.set_plan_results(plan_id, list(merged.values()))
            if plan.rebalance_id is not None:
                self.ledger.set_rebalance_results(plan.rebalance_id, list(merged.values()))
        left = self.exporter.unreported(plan_id)
        if not left:
            self.store.transition(
                plan_id, ("exported",), "reported", at=self.wall_now(), detail="every move reported"
            )
            self.request_cycle()
        self.metrics.set_unresolved_moves(self.unresolved_count())
        self.metrics.set_plans_awaiting(len(self.store.plans(OPEN_STATUSES)))
        return left

    async def apply_settings(self, new: Settings) -> None:
        """Swap the live settings between cycles; a new optimizer when its limits or settings change."""
        from optimizer import Optimizer

        async with self.cycle_lock:
            old = self.settings
            if (new.limits, new.optimizer) != (old.limits, old.optimizer):
                self._optimizer = Optimizer(new.limits, new.optimizer, new.vault.home_chain)
            self.settings = new
        log.info("config_reloaded")
