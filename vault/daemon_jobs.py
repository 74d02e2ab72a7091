"""The daemon's two jobs: ``poll`` (every feed, each judged on its own; the snapshots published
as they arrive) and ``rebalance`` (one :func:`vault.cycle.run_cycle` on the latest snapshots,
held while the ledger fails its checks), plus what they export to the metrics and the API
(``readiness``). A mixin of ``vault.daemon.Daemon``, kept apart so the lifecycle (start, stop)
and the cycle each fit a screen; every method runs on the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import structlog

from adapters import PollReport
from core.money import units_to_str, units_to_usd
from optimizer import Decision
from vault.cycle import CycleDeps, CycleInput, run_cycle
from vault.daemon_clock import ClockHooks
from vault.daemon_operator import OperatorHooks
from vault.executor import MoveStatus
from vault.integrity import audit_file

if TYPE_CHECKING:
    from adapters import FeedPoller
    from core.types import Directives
    from optimizer import Optimizer
    from vault.cycle import GuardHook
    from vault.integrity import LedgerWatch
    from vault.operations import Operations
    from vault.performance import RealizedApr

log = structlog.get_logger("vault.daemon")


class CycleJobs(ClockHooks, OperatorHooks):
    """The ``poll`` and ``rebalance`` jobs of :class:`vault.daemon.Daemon`."""

    realized: RealizedApr
    ledger_watch: LedgerWatch | None
    guard: GuardHook
    guard_state: Any
    exit_only: Directives
    vault_id: str | None
    operations: Operations

    if TYPE_CHECKING:  # resources of vault.daemon.Daemon

        @property
        def poller(self) -> FeedPoller: ...

        @property
        def optimizer(self) -> Optimizer: ...

    def positions_usd(self) -> dict[str, float]:
        return {v: units_to_usd(u) for v, u in self.ledger.balances().positions_units.items() if u}

    async def poll_once(self) -> PollReport | None:
        with structlog.contextvars.bound_contextvars(job="poll"):
            await self._settle_clock()
            if self._clock_unsettled:
                log.warning("feeds_unreachable", root_url=self.poller_root)
                return None  # nothing answers yet: no data to judge, and no clock to judge it by
            # each feed is judged on its own: venues whose feeds answered reach the decision at
            # once (on_partial), and a hung feed is carried past this poll (never longer than half an
            # interval) until its own deadline cuts it, so the next poll starts on schedule
            report = await self.poller.poll(
                self.positions_usd(),
                wait_seconds=0.5 * self.settings.schedule.poll_interval_seconds,
                on_partial=self._publish_partial,
            )
            self.state.report = report
            self.state.last_poll_monotonic = time.monotonic()
            wall = time.time()
            failed_feeds = {r.feed for r in report.rejections}
            for feed, seconds in report.feed_durations_seconds.items():
                self.metrics.observe_feed_poll(
                    feed, seconds, ok=feed not in failed_feeds, reason=None, at=wall
                )
            for r in report.rejections:
                self.metrics.count_feed_error(r.feed, r.reason)
                log.warning(
                    "feed_rejected", venue=r.venue_id, feed=r.feed, reason=r.reason, detail=r.detail
                )
            feed_now = self.clock()
            for snap in report.snapshots.values():
                # Feeds stamp data in their own (possibly simulated) time; export its wall-clock equivalent.
                age_wall = (feed_now - snap.observed_at).total_seconds() / self.time_scale
                self.metrics.record_snapshot(snap, observed_at=wall - max(age_wall, 0.0))
            self.metrics.mark_cycle_success("poll", wall)
            return report

    def _publish_partial(self, report: PollReport) -> None:
        self.state.report = report
        self.state.last_poll_monotonic = time.monotonic()

    async def rebalance_once(self) -> Decision | None:
        async with self.cycle_lock:  # a config reload applies between cycles, never inside one
            return await self._rebalance_once()

    async def _rebalance_once(self) -> Decision | None:
        """One cycle (``vault/cycle.py``) on the latest snapshots; metrics, logs and the API state
        are read from its outcome. Before it, the operator's side (``vault/daemon_operator.py``):
        an exported plan still out with its signer holds the cycle; an approved plan executes
        instead of a new decision (after the same recover, settle and sync, and the drift check)."""
        self.state.cycles += 1
        with structlog.contextvars.bound_contextvars(job="rebalance", cycle=self.state.cycles):
            problem = await self._ledger_problem()
            if problem is not None:
                self._hold(f"ledger integrity: {problem}")
                return None
            self.directives = self.operator_directives()
            if await self.operator_step():
                return None
            snapshots = list(self.state.report.snapshots.values()) if self.state.report else []
            inp = CycleInput(
                snapshots=snapshots,
                now=self.clock(),
                memory=self.memory,
                directives=self.directives.merge(self.exit_only),
                guard_state=self.guard_state,
            )
            out = await run_cycle(inp, self.cycle_deps())
            self.link_plans(out.rebalance_id)
            self.memory, self.guard_state = out.memory, out.guard_state
            self.state.outcome = out
            self.state.hold_reason = out.reason if out.decision is None else None
            if out.decision is None:
                log.warning(
                    "rebalance",
                    outcome=str(out.outcome),
                    solver_status="not_run",
                    reason=out.reason,
                )
                self.metrics.record_rebalance(str(out.outcome), "not_run", None)
                self._export_portfolio()
                return None
            decision = out.decision
            if out.synced is not None:
                self.realized.update(
                    out.started_at,
                    out.synced.nav_units,
                    out.synced.positions_units,
                    out.income_units,
                )
            self.state.decision = decision
            self.state.last_rebalance_at = out.started_at
            self.state.last_outcome = str(out.outcome)
            self.state.results = list(out.results)
            self._export_decision(decision, str(out.outcome))
            # replayed moves (out.recovered) cost money too: both count in the move-cost metric
            self.metrics.record_move_costs(
                (*out.recovered, *out.results), {v.id: str(v.kind) for v in self.venues.values()}
            )
            self._export_portfolio()
            log.info(
                "rebalance",
                outcome=str(out.outcome),
                solver_status=decision.status,
                nav_usd=units_to_str(out.balances_after.nav_units),
                predicted_apr=decision.predicted_apr,
                moves=len(decision.plan.moves),
                done=sum(r.status is MoveStatus.DONE for r in out.results),
                gain_usd=round(decision.plan.expected_gain_usd, 2),
                cost_usd=round(decision.plan.cost_usd, 2),
                solve_ms=round(decision.solve_seconds * 1000, 2),
                cycle_ms=round(out.timings.total_seconds * 1000, 2),
                reason=out.reason,
            )
            return decision

    async def _ledger_problem(self) -> str | None:
        """None while the ledger file passes its checks (vault/integrity.py), else why (sticky)."""
        watch = self.ledger_watch
        if watch is None:
            return "ledger not open"
        first_failure = watch.failure is None
        problem = watch.check()
        if problem is None:
            problems = await asyncio.to_thread(audit_file, self.ledger.path, self.ledger.key)
            problem = watch.fail_with(problems)
        if problem is not None:
            if first_failure:
                rescued = self.ledger.rescue_if_deleted()
                if rescued is not None:
                    log.error("ledger_rescued", path=str(rescued))
            log.error("ledger_integrity_failed", reason=problem, vault_id=self.vault_id)
        return problem

    def _hold(self, reason: str) -> None:
        """A cycle that moves and books nothing, because the ledger cannot be trusted any more.

        Nothing is written into that ledger either (not even the held cycle's row): a write into
        a truncated file's log could be checkpointed into it; the log line, the metrics and the
        status say why the cycle held."""
        log.warning("rebalance", outcome="failed", solver_status="not_run", reason=reason)
        self.state.last_outcome = "failed"
        self.state.hold_reason = reason
        self.metrics.record_rebalance("failed", "not_run", None)
        with contextlib.suppress(sqlite3.Error):
            self._export_portfolio()

    def cycle_deps(self) -> CycleDeps:
        """What ``run_cycle`` works with in this daemon (the solver in a worker thread)."""
        return CycleDeps(
            ledger=self.ledger,
            executor=self.executor,
            optimizer=self.optimizer,
            venues=self.venues,
            clock=self.clock,
            run_in_thread=asyncio.to_thread,
            guard=self.guard,
            should_stop=self._stopping.is_set,
            # export: the plan goes to the signer, the cycle itself moves nothing
            dry_run=self.settings.vault.mode in ("dry-run", "export"),
            reconcile=self.settings.reconciliation,
            approval=self.approval_gate,
        )

    # -- metrics ------------------------------------------------------------------------------

    def _export_portfolio(self) -> None:
        b = self.ledger.balances()
        self.metrics.set_portfolio(
            units_to_usd(b.nav_units),
            units_to_usd(b.total_idle_units),
            units_to_usd(b.total_in_flight_units),
            realized_apr=self.realized.portfolio,
        )
        self.metrics.set_unresolved_moves(self.unresolved_count())
        self.metrics.set_plans_awaiting(self.operations.awaiting())
        watch = self.ledger_watch
        self.metrics.set_money_safety(
            len(self.ledger.open_breaks()), watch is not None and watch.failure is None
        )
        bridging = {k: u for k, u in b.in_flight_units.items() if "/bridge/" in k}
        self.metrics.set_bridge_in_flight(len(bridging), units_to_usd(sum(bridging.values())))
        targets = (
            self.state.decision.allocation.target_usd
            if self.state.decision and self.state.decision.allocation
            else {}
        )
        shifts = (self.state.decision.rate_shift if self.state.decision else None) or {}
        for v in self.venues.values():
            self.metrics.set_allocation(
                v.id,
                str(v.kind),
                v.chain,
                units_to_usd(b.positions_units.get(v.id, 0)),
                float(targets.get(v.id, 0.0)),
            )
            self.metrics.set_venue_rate_forecast_shift(
                v.id, str(v.kind), v.chain, float(shifts.get(v.id, 0.0))
            )
            if v.id in self.realized.venues:
                self.metrics.set_venue_realized_apr(
                    v.id, str(v.kind), v.chain, self.realized.venues[v.id]
                )

    def _export_decision(self, d: Decision, outcome: str) -> None:
        turnover = sum(m.amount_usd for m in d.plan.moves if m.action != "bridge")
        self.metrics.record_rebalance(
            outcome,
            d.status,
            d.solve_seconds,
            d.objective_usd,
            d.predicted_apr,
            turnover,
            d.plan.cost_usd,
            expected_gain_usd=d.plan.expected_gain_usd,
        )
        for name, ratio in d.limit_utilization.items():
            self.metrics.set_limit_utilization(name, ratio)
        if outcome in ("executed", "held", "gated"):
            self.metrics.mark_cycle_success("rebalance", time.time())

    # -- probes ---------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready = feeds fresh (a good poll within 3 poll intervals) and the last solve was optimal."""
        s = self.settings.schedule
        age = (
            None
            if self.state.last_poll_monotonic is None
            else time.monotonic() - self.state.last_poll_monotonic
        )
        report = self.state.report
        live = sum(1 for x in report.snapshots.values() if not x.frozen) if report else 0
        feeds_fresh = age is not None and age <= 3 * s.poll_interval_seconds and live > 0
        solve_ok = self.state.decision is not None and self.state.decision.status == "optimal"
        return feeds_fresh and solve_ok, {
            "feeds_fresh": feeds_fresh,
            "last_poll_age_seconds": age,
            "live_venues": live,
            "last_solver_status": self.state.decision.status if self.state.decision else None,
        }
