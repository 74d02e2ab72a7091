"""``Optimizer.decide``: snapshots + positions + limits -> a checked allocation and a gated plan.

Pipeline (each step a function you can test alone; the steps' code lives in
:mod:`optimizer.engine_inputs` (venue set, in flight, fit, model cache), :mod:`optimizer.engine_targets`
(solve, round, prune, check, allocation) and :mod:`optimizer.work` (the per-call state)):
snapshots -> :func:`optimizer.cycle.build_cycle` (bounds, PWL fit, costs) -> the cached
:class:`optimizer.model.AllocationModel` (update Parameters, solve) -> round small trades ->
:func:`optimizer.checker.check_allocation` -> :func:`optimizer.plan.make_moves` -> :func:`optimizer.plan.gate`.

Any failure (bad curve, solver error, infeasible, failed check) returns a holding Decision with
no moves and a one-line reason; the daemon logs it and counts it. The optimizer does no I/O.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from core.types import (
    NO_DIRECTIVES,
    Directives,
    Plan,
    PortfolioState,
    Venue,
    VenueSnapshot,
)
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import venue_set_facts
from optimizer.decision import HOLD, Decision, DecisionStatus, Timings
from optimizer.directives import apply_freeze
from optimizer.engine_targets import TargetSteps
from optimizer.forecast import level_rates
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory
from optimizer.model import AllocationModel
from optimizer.plan import (
    PlanContext,
    after_costs,
    gate,
    make_moves,
)
from optimizer.sums import total
from optimizer.venue_arrays import VenueArrays
from optimizer.work import DecideWork, RiskHistory, StageClock, window_around

__all__ = ["HOLD", "Decision", "DecisionStatus", "Optimizer", "RiskHistory", "Timings"]

FloatArray = NDArray[np.float64]


class Optimizer(TargetSteps):
    """Limits and settings, plus a cache: the compiled problem of the last venue set.

    What one cycle passes to the next is an explicit :class:`OptimizerMemory` (``decide(...,
    memory=)`` in, ``Decision.memory`` out), so a fresh Optimizer given the same memory decides
    the same. ``decide`` may run in a worker thread (``asyncio.to_thread``); one call at a time (a
    lock enforces it, because the cvxpy Problem and its Parameters are shared mutable state).
    """

    def __init__(self, limits: RiskLimits, settings: OptimizerSettings, home_chain: str):
        self.limits = limits
        self.settings = settings
        self.home_chain = home_chain
        self._model: AllocationModel | None = None
        self._model_key: tuple[Venue, ...] | None = None
        self.rebuilds = 0
        self._lock = threading.Lock()
        # the memory of the last decide: what ``decide(...)`` without ``memory=`` continues from
        self.last_memory: OptimizerMemory = EMPTY_MEMORY

    @staticmethod
    def _hold(
        status: DecisionStatus,
        reason: str,
        *,
        timings: Timings | None = None,
        limit_utilization: dict[str, float] | None = None,
        current_violations: tuple[str, ...] = (),
        rebuilt: bool = False,
        dpp: bool = True,
        venues: int = 0,
        pwl_error_bound_usd: float | None = None,
    ) -> Decision:
        """A decision that moves nothing, with its one-line reason."""
        return Decision(
            status=status,
            allocation=None,
            plan=dataclasses.replace(HOLD, reason=reason),
            objective_usd=None,
            predicted_apr=None,
            violations=(),
            limit_utilization=limit_utilization or {},
            reason=reason,
            timings=timings or Timings(),
            rebuilt=rebuilt,
            dpp=dpp,
            venues=venues,
            pwl_error_bound_usd=pwl_error_bound_usd,
            current_violations=current_violations,
        )

    # -- the cycle -----------------------------------------------------------------------------
    def decide(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        memory: OptimizerMemory | None = None,
        directives: Directives = NO_DIRECTIVES,
    ) -> Decision:
        """One decision from the snapshots, the holdings and ``memory`` (what the previous decide
        returned as ``Decision.memory``; ``None``: this optimizer's last one, ``self.last_memory``,
        a convenience for callers that run one sequence of cycles; ``EMPTY_MEMORY``: a cold start).

        ``directives`` (:class:`core.types.Directives`): ``freeze`` and ``no_new_deposits`` freeze
        the snapshots (shrink only); ``exit`` sets those venues' upper bound to 0 and makes their
        holdings a broken limit, so the plan that takes them out executes whatever the benefit/cost
        gate says (the checker still checks the target). ``hold_all``: the decision is made (for the
        record) and its plan never executes.
        """
        start = self.last_memory if memory is None else memory
        with self._lock:
            w = DecideWork.start(
                start,
                self.settings.risk_window,
                frozenset(directives.exit),
                self.settings.rate_forecast_window,
            )
            snaps = apply_freeze(snapshots, directives)
            try:
                w.known = self._known_in_flight(w, portfolio, now)
                decision = self._decide(w, snaps, portfolio, now)
                if directives.hold_all and decision.plan.execute:
                    why = directives.reasons.get("*") or "operator pause"
                    held = f"hold: hold_all ({why}); would have run: {decision.plan.reason}"
                    decision = dataclasses.replace(
                        decision,
                        plan=dataclasses.replace(decision.plan, execute=False, reason=held),
                    )
                if decision.plan.execute and decision.status is DecisionStatus.OPTIMAL:
                    self._record_flights(w, decision, w.queued_exit_days, now)
            except Exception as exc:
                w.warm = {}
                decision = self._hold(
                    DecisionStatus.SOLVER_ERROR, f"hold: {type(exc).__name__}: {exc}"
                )
            decision = dataclasses.replace(decision, memory=w.memory(), rate_shift=w.rate_shift)
            self.last_memory = decision.memory
            return decision

    def _forecast(
        self,
        w: DecideWork,
        fresh: Sequence[VenueSnapshot],
        snaps: Sequence[VenueSnapshot],
        nav: float,
        now: datetime,
    ) -> None:
        """Each venue's rate over the horizon from its own past (optimizer/forecast.py, README §3b):
        record the fresh snapshots' levels, then the venue set's level shifts into ``w.rate_shift``.
        A venue kept frozen after its feed dropped out is not recorded (no new observation)."""
        ref = self.settings.rate_forecast_reference_ratio * nav
        levels = level_rates(snaps, self.settings.emission_haircut, ref)
        ids = VenueArrays.of(tuple(s.venue for s in snaps)).ids
        seen = {s.venue.id for s in fresh}
        rec = [i for i, vid in enumerate(ids) if vid in seen]
        w.rates.record([ids[i] for i in rec], levels[rec].tolist(), now)
        shift = w.rates.shifts(ids, levels, self.settings)
        w.rate_shift = None if shift is None else dict(zip(ids, shift.tolist(), strict=True))

    def _decide(
        self,
        w: DecideWork,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
    ) -> Decision:
        t_start = time.perf_counter()
        snaps = self._venue_set(w, snapshots, portfolio)
        for s in snapshots:
            w.last_snapshot[s.venue.id] = s
        if self.settings.risk_aversion > 0:
            w.history.record(snapshots, self.settings.emission_haircut)
        if not snaps:
            return self._hold(DecisionStatus.NO_VENUES, "hold: no venue snapshots")
        nav = portfolio.nav_usd
        if not nav > 0:
            return self._hold(DecisionStatus.NO_VENUES, f"hold: NAV is {nav}")
        if self.settings.rate_forecast != "spot":
            self._forecast(w, snapshots, snaps, nav, now)

        t_fit = time.perf_counter()
        try:
            cycle, model, rebuilt, resumed = self._cycle_and_model(w, snaps, portfolio)
        except (ValueError, FloatingPointError, ArithmeticError) as exc:
            return self._hold(DecisionStatus.SOLVER_ERROR, f"hold: bad input: {exc}")
        venues = cycle.venues
        set_facts = venue_set_facts(venues, self.settings, self.home_chain)
        w.queued_exit_days = (
            {
                v.id: e
                for v, e, q in zip(
                    venues, set_facts.exit_days.tolist(), cycle.queued_mask().tolist(), strict=True
                )
                if q
            }
            if set_facts.any_queued
            else {}
        )
        build_seconds = model.build_seconds if rebuilt else 0.0
        risk = w.history.factors([v.id for v in venues], self.settings) if model.with_risk else None
        fit_seconds = time.perf_counter() - t_fit - build_seconds
        clock = StageClock()
        cold = (rebuilt and not resumed) or not w.warm
        result, cycle = self._solve(w, snaps, portfolio, model, cycle, risk, cold, clock)
        if result.status == "infeasible" and cycle.buffer > 0:
            # the buffered limits (README §7) can be out of reach where the hard ones are not, e.g.
            # idle exactly at its floor with nothing that can leave: aim at the limits themselves
            t_refit = time.perf_counter()
            warm = self._warm_hints(w, snaps)
            hard = self._build_cycle(
                w,
                snaps,
                portfolio,
                linear=model.linear,
                hint_usd=warm[0] if warm else None,
                window_usd=warm[1] if warm else None,
                buffer=0.0,
            )
            clock.fit += time.perf_counter() - t_refit
            result, cycle = self._solve(w, snaps, portfolio, model, hard, risk, cold, clock)
        fit_seconds += clock.fit
        if result.status == "optimal" and result.x is not None:
            x_usd = result.x * nav
            lo, hi = window_around(cycle.pwl.breakpoints, x_usd)
            curved = np.nonzero(~model.linear)[0]
            ids = VenueArrays.of(cycle.venues).ids
            w.warm = {
                ids[i]: row
                for i, row in zip(
                    curved.tolist(),
                    zip(
                        x_usd[curved].tolist(),
                        lo[curved].tolist(),
                        hi[curved].tolist(),
                        strict=True,
                    ),
                    strict=True,
                )
            }
        else:
            w.warm = {}
        x0_usd = cycle.x0 * nav
        # the cycle's cost arrays, true incomes and bridge routing, shared by pruning, the post-cost
        # check and the plan
        priced = PlanContext(
            snaps,
            x0_usd,
            self.settings,
            self.home_chain,
            idle_on=portfolio.idle_on(self.home_chain),
            min_on=dict(self.limits.min_idle_by_chain_usd),
            queued=cycle.queued_mask(),
            zap=cycle.zap_pools,
            bridge_fee=cycle.bridge_fee,
            rate_shift=cycle.rate_shift,
        )
        current = self._check(w, snaps, portfolio, x0_usd, cycle, clock, priced=priced)
        # holdings breaches up to the drift band came from drift or costs and force nothing (README §7)
        tolerance = self.settings.drift_tolerance_ratio
        forced_by = tuple(
            v for v, e in zip(current.violations, current.excess, strict=True) if not e <= tolerance
        )
        drifted = tuple(
            v for v, e in zip(current.violations, current.excess, strict=True) if e <= tolerance
        )

        def timings() -> Timings:
            return Timings(
                solve_seconds=clock.solve,
                build_seconds=build_seconds,
                solver_seconds=clock.solver,
                fit_seconds=fit_seconds,
                total_seconds=time.perf_counter() - t_start,
                check_seconds=clock.check,
                prune_seconds=clock.prune,
                plan_seconds=clock.plan,
            )

        if result.status != "optimal" or result.x is None:
            reason = f"hold: {result.status} ({result.detail})"
            if current.violations:
                reason += (
                    f"; holdings break {len(current.violations)} limit(s): {current.violations[0]}"
                )
            return self._hold(
                DecisionStatus(result.status),
                reason,
                timings=timings(),
                current_violations=tuple(current.violations),
                limit_utilization=current.utilization,
                rebuilt=rebuilt,
                dpp=model.use_dpp,
                venues=len(venues),
                pwl_error_bound_usd=total(cycle.pwl.error_bound_usd),
            )

        target, report = self._target(w, snaps, portfolio, result, cycle, priced, clock)
        # the plan pays its gas and fees after the moves, out of idle (vault/executor.py): check the state
        # it leaves against the hard limits; if its costs would take idle below a floor, reserve them
        # out of idle in the model and solve again (README §7)
        # what the plan would break, beyond the drift band, after its own costs
        short: tuple[str, ...] = ()
        passes = self.settings.cost_reserve_passes
        for attempt in range(passes + 1 if passes > 0 else 0):
            if not report.ok or np.array_equal(target, x0_usd):
                short = ()
                break
            t_plan = time.perf_counter()
            post = after_costs(
                snaps,
                x0_usd,
                target,
                cycle.idle_after_usd(target),
                self.settings,
                self.home_chain,
                queued=cycle.queued_mask(),
                ctx=priced,
            )
            legs = priced.legs(target)
            t_check = time.perf_counter()
            clock.plan += t_check - t_plan
            after = self._checker(w, snaps, portfolio, cycle).check(
                post.positions_usd,
                post.idle_usd,
                costs_usd=post.cost_usd,
                bridges=legs,
                home_spend_usd=priced.gas_usd(target) + self.settings.bridge_gas_usd * len(legs),
            )
            clock.check += time.perf_counter() - t_check
            short = tuple(
                v for v, e in zip(after.violations, after.excess, strict=True) if not e <= tolerance
            )
            if not after.violations or attempt == passes:
                break
            reserve = max(
                cycle.idle_reserve,
                1.25 * post.idle_cost_usd / nav + self.settings.check_tolerance_ratio,
            )
            cycle = dataclasses.replace(cycle, idle_reserve=reserve)
            model.update(cycle, risk)
            again = clock.add(model.solve())
            if again.status != "optimal" or again.x is None:
                break
            result = again
            target, report = self._target(w, snaps, portfolio, result, cycle, priced, clock)

        t_plan = time.perf_counter()
        objective_usd = result.objective * nav if result.objective is not None else None
        allocation = self._allocation(venues, target, cycle, portfolio, priced)
        income = total(priced.income_usd(target))
        predicted_apr = income / nav
        if not report.ok:
            clock.plan += time.perf_counter() - t_plan
            reason = f"hold: check failed: {report.violations[0]}" + (
                f" (+{len(report.violations) - 1} more)" if len(report.violations) > 1 else ""
            )
            return Decision(
                status=DecisionStatus.CHECK_FAILED,
                allocation=allocation,
                plan=dataclasses.replace(HOLD, reason=reason),
                objective_usd=objective_usd,
                predicted_apr=predicted_apr,
                violations=tuple(report.violations),
                limit_utilization=report.utilization,
                reason=reason,
                timings=timings(),
                rebuilt=rebuilt,
                dpp=model.use_dpp,
                venues=len(venues),
                pwl_error_bound_usd=total(cycle.pwl.error_bound_usd),
                current_violations=tuple(current.violations),
            )
        econ = make_moves(snaps, x0_usd, target, self.settings, self.home_chain, now, ctx=priced)
        plan = gate(econ, nav, self.settings, forced_by=forced_by, drifted=drifted)
        if plan.execute and short and not forced_by:
            # a plan whose own gas and fees would push the holdings past a limit by more than the drift
            # band (so that the next cycle would have to restore it) waits
            plan = Plan(
                (),
                plan.expected_gain_usd,
                plan.cost_usd,
                False,
                f"hold: after its own gas and fees the plan would break {short[0]}",
            )
        reason = (
            f"optimal: {len(plan.moves)} moves, predicted APR {predicted_apr:.4%}; {plan.reason}"
        )
        clock.plan += time.perf_counter() - t_plan
        return Decision(
            status=DecisionStatus.OPTIMAL,
            allocation=allocation,
            plan=plan,
            objective_usd=objective_usd,
            predicted_apr=predicted_apr,
            violations=(),
            limit_utilization=report.utilization,
            reason=reason,
            timings=timings(),
            rebuilt=rebuilt,
            dpp=model.use_dpp,
            venues=len(venues),
            pwl_error_bound_usd=total(cycle.pwl.error_bound_usd),
            current_violations=tuple(current.violations),
        )
