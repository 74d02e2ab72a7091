"""``Optimizer.decide``: snapshots + positions + limits -> a checked allocation and a gated plan.

Pipeline (each step a function you can test alone):
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
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from core.types import (
    NO_DIRECTIVES,
    Allocation,
    Directives,
    MoveAction,
    Plan,
    PortfolioState,
    Venue,
    VenueSnapshot,
)
from optimizer.checker import CheckReport, check_allocation
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import CycleData, build_cycle, effective_exit_days
from optimizer.decision import HOLD, Decision, DecisionStatus, Timings
from optimizer.directives import apply_freeze
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory

__all__ = ["HOLD", "Decision", "DecisionStatus", "Optimizer", "RiskHistory", "Timings"]
from optimizer.model import AllocationModel, SolveResult
from optimizer.plan import after_costs, gate, make_moves, prune_unprofitable, round_small_trades

FloatArray = NDArray[np.float64]


class _Clock:
    """Solve and fit time of one decide(), summed over its solves."""

    def __init__(self) -> None:
        self.solve = 0.0
        self.solver: float | None = None
        self.fit = 0.0

    def add(self, result: SolveResult) -> SolveResult:
        self.solve += result.solve_seconds
        if result.solver_seconds is not None:
            self.solver = (self.solver or 0.0) + result.solver_seconds
        return result


def _window_around(breakpoints: FloatArray, x_usd: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Where to refine: where the true optimum can be, given the LP's. On a breakpoint ``β_j`` (the
    simplex returns vertices) the LP's price of venue ``i`` lies between the slopes of the two pieces
    that meet there, and the true curve's derivative crosses it between their outer ends: the window
    is ``[β_{j-1}, β_{j+1}]``. Inside a piece (the venue at the margin, its piece's slope equal to the
    price), the derivative equals that slope somewhere in the piece: the window is the piece. "On" is
    up to rounding (1e-9 of the domain), so a solution reported a hair to either side of a breakpoint
    gets the same window. Never less than ``±max(25 % of x, 5 % of the domain)``, so that the price
    may move and windows do not shrink cycle after cycle."""
    n, m = breakpoints.shape
    rows = np.arange(n)
    tol = (1e-9 * (breakpoints[:, -1] - breakpoints[:, 0]) + 1e-9)[:, None]
    left = (breakpoints < x_usd[:, None] - tol).sum(axis=1)  # breakpoints strictly left of x
    # index of the first one strictly right of x
    right = (breakpoints <= x_usd[:, None] + tol).sum(axis=1)
    lo = breakpoints[rows, np.clip(left - 1, 0, m - 1)]
    hi = breakpoints[rows, np.clip(right, 0, m - 1)]
    floor = np.maximum(0.25 * np.abs(x_usd), 0.05 * (breakpoints[:, -1] - breakpoints[:, 0]))
    return np.minimum(lo, x_usd - floor), np.maximum(hi, x_usd + floor)


class RiskHistory:
    """Marginal APRs observed at each decide(), per venue; a factor model of their covariance.

    With ``T`` observations of ``n`` venues, ``Y`` (T×n) centred, ``Σ = YᵀY/(T-1) ≈ V_f Λ_f V_fᵀ + diag(s²)``
    (top-``f`` principal components plus the residual variance). The penalty is
    ``γ xᵀΣx = ‖(√γ V_f Λ_f^{1/2})ᵀ x‖² + ‖√γ s ∘ x‖²`` in NAV units.
    """

    def __init__(self, window: int, series: Mapping[str, Sequence[float]] | None = None):
        self.window = window
        self.series: dict[str, deque[float]] = {
            k: deque(v, maxlen=window) for k, v in (series or {}).items()
        }

    def record(self, snaps: Sequence[VenueSnapshot], haircut: float) -> None:
        for s in snaps:
            q = self.series.setdefault(s.venue.id, deque(maxlen=self.window))
            q.append(float(s.real_apr) + (1.0 - haircut) * float(s.emission_apr))

    def factors(
        self, ids: Sequence[str], settings: OptimizerSettings
    ) -> tuple[FloatArray, FloatArray] | None:
        depth = min((len(self.series.get(i, ())) for i in ids), default=0)
        if depth < settings.risk_min_observations:
            return None
        y = np.array([list(self.series[i])[-depth:] for i in ids]).T  # T x n
        y = y - y.mean(axis=0)
        u, sv, vt = np.linalg.svd(y / np.sqrt(depth - 1), full_matrices=False)
        f = settings.risk_factors
        k = min(f, len(sv))
        loadings = np.zeros((len(ids), f))
        loadings[:, :k] = vt[:k].T * sv[:k]
        resid = y / np.sqrt(depth - 1) - (u[:, :k] * sv[:k]) @ vt[:k]
        idio = np.sqrt(np.maximum((resid**2).sum(axis=0), 0.0))
        g = np.sqrt(settings.risk_aversion)
        return g * loadings, g * idio


@dataclass(slots=True)
class _Work:
    """One decide's working copy of its memory plus its per-call scratch; never outlives the call."""

    cycle: int
    last_snapshot: dict[str, VenueSnapshot]
    last_seen: dict[str, int]
    history: RiskHistory
    warm: dict[str, tuple[float, float, float]]
    flights: list[tuple[datetime, float]]
    model_linear: tuple[tuple[str, bool], ...]
    # scratch: this decide's (days left, USD) in flight, queued venues' exit days, exits ordered
    known: tuple[tuple[float, float], ...] = ()
    queued_exit_days: dict[str, float] = field(default_factory=dict)
    exit: frozenset[str] = frozenset()

    @classmethod
    def start(cls, memory: OptimizerMemory, window: int, exit: frozenset[str]) -> _Work:
        return cls(
            cycle=memory.cycle,
            last_snapshot=dict(memory.last_snapshot),
            last_seen=dict(memory.last_seen),
            history=RiskHistory(window, memory.risk_series),
            warm=dict(memory.warm),
            flights=list(memory.flights),
            model_linear=memory.model_linear,
            exit=exit,
        )

    def memory(self) -> OptimizerMemory:
        return OptimizerMemory(
            cycle=self.cycle,
            last_snapshot=self.last_snapshot,
            last_seen=self.last_seen,
            risk_series={k: tuple(v) for k, v in self.history.series.items()},
            warm=self.warm,
            flights=tuple(self.flights),
            model_linear=self.model_linear,
        )


class Optimizer:
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

    def _build_cycle(
        self,
        w: _Work,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        *,
        linear: NDArray[np.bool_] | None = None,
        hint_usd: FloatArray | None = None,
        window_usd: tuple[FloatArray, FloatArray] | None = None,
        window_share: float = 0.5,
        buffer: float | None = None,
    ) -> CycleData:
        """:func:`optimizer.cycle.build_cycle` with this call's in-flight landings and exits."""
        cycle = build_cycle(
            snaps,
            portfolio,
            self.limits,
            self.settings,
            self.home_chain,
            linear=linear,
            hint_usd=hint_usd,
            window_usd=window_usd,
            window_share=window_share,
            buffer=buffer,
            in_flight_known=w.known,
        )
        if not w.exit:
            return cycle
        # Directives.exit: the venue's upper bound is 0 (its lower bound stays: what its exit
        # liquidity cannot pay out now stays in)
        out = np.array([v.id in w.exit for v in cycle.venues], dtype=bool)
        return dataclasses.replace(cycle, ub=np.where(out, cycle.lb, cycle.ub))

    def _known_in_flight(
        self, w: _Work, portfolio: PortfolioState, now: datetime
    ) -> tuple[tuple[float, float], ...]:
        """Which part of ``portfolio.in_flight_usd`` is ours with a known landing time.

        ``portfolio.in_flight_landing`` when the caller's books provide it (the daemon's ledger does);
        otherwise:
        The queued withdrawals of earlier plans that have not landed yet, latest first, up to the
        amount actually in flight (so a plan that did not execute, or capital that landed early, is
        never counted; the latest landings are assumed still pending: the conservative attribution).
        Anything else in flight lands, as far as the optimizer knows, within the longest exit time.
        """
        w.flights = [(t, u) for t, u in w.flights if t > now]
        if portfolio.in_flight_landing:
            # The books know what is in flight and when it lands at the latest: better than memory,
            # and it survives a restart.
            left = max(float(portfolio.in_flight_usd), 0.0)
            booked = []
            for d, u in sorted(portfolio.in_flight_landing):
                part = min(float(u), left)
                if part > 0:
                    booked.append((max(float(d), 0.0), part))
                    left -= part
            return tuple(booked)
        left = max(float(portfolio.in_flight_usd), 0.0)
        known = []
        for t, u in sorted(w.flights, key=lambda f: f[0], reverse=True):
            part = min(u, left)
            if part <= 0:
                break
            known.append(((t - now).total_seconds() / 86_400.0, part))
            left -= part
        return tuple(known)

    @staticmethod
    def _record_flights(
        w: _Work, decision: Decision, queued_exit_days: dict[str, float], now: datetime
    ) -> None:
        """Remember the queued withdrawals of a plan that executes: their capital lands after the
        venue's exit time (plus the bridge off the home chain)."""
        for m in decision.plan.moves:
            if m.action is MoveAction.WITHDRAW and m.venue_id in queued_exit_days:
                w.flights.append(
                    (now + timedelta(days=queued_exit_days[m.venue_id]), float(m.amount_usd))
                )

    # -- helpers -------------------------------------------------------------------------------
    def _venue_set(
        self, w: _Work, snapshots: Sequence[VenueSnapshot], portfolio: PortfolioState
    ) -> list[VenueSnapshot]:
        """Current snapshots plus the last one seen, frozen, for venues whose feed is gone: always
        for held venues, and for ``keep_lost_venues_cycles`` cycles for the others, so that a
        flapping feed does not rebuild (and recompile) the problem every time it drops out."""
        w.cycle += 1
        current = {s.venue.id: s for s in snapshots}
        for s in snapshots:
            w.last_seen[s.venue.id] = w.cycle
        for vid, last in w.last_snapshot.items():
            if vid in current:
                continue
            held = portfolio.positions_usd.get(vid, 0.0) > 0
            if held or w.cycle - w.last_seen.get(vid, 0) <= self.settings.keep_lost_venues_cycles:
                current[vid] = dataclasses.replace(
                    last, frozen=True, frozen_reason="no snapshot this cycle (feed lost)"
                )
        return [current[k] for k in sorted(current)]

    @staticmethod
    def _warm_hints(
        w: _Work, snaps: Sequence[VenueSnapshot]
    ) -> tuple[FloatArray, tuple[FloatArray, FloatArray]] | None:
        """Last cycle's solution and refinement window per venue (NaN where unknown)."""
        if not w.warm:
            return None
        rows = np.array(
            [w.warm.get(s.venue.id, (np.nan, np.nan, np.nan)) for s in snaps], dtype=float
        )
        return rows[:, 0], (rows[:, 1], rows[:, 2])

    def _cycle_and_model(
        self, w: _Work, snaps: Sequence[VenueSnapshot], portfolio: PortfolioState
    ) -> tuple[CycleData, AllocationModel, bool, bool]:
        """Fit this cycle; reuse the compiled problem unless the venue set (or a curve's linearity)
        changed. Returns (cycle, model, rebuilt, warm): ``warm`` when the fit is refined around the
        last solution (``memory.warm``), as in a steady cycle.

        Which venues the model fits with two chords (``linear``) is part of the memory
        (``memory.model_linear``), so that a fresh optimizer (a restart) builds the model the
        cached one has and fits it the same way: same memory, same decision."""
        venues = tuple(s.venue for s in snaps)
        ids = tuple(v.id for v in venues)
        remembered = None
        if w.model_linear and tuple(i for i, _ in w.model_linear) == ids:
            remembered = np.array([f for _, f in w.model_linear], dtype=bool)
        warm = self._warm_hints(w, snaps)
        hint, window = warm if warm is not None else (None, None)
        model = self._model
        if (
            model is not None
            and self._model_key == venues
            and (remembered is None or np.array_equal(remembered, model.linear))
        ):
            cycle = self._build_cycle(
                w, snaps, portfolio, linear=model.linear, hint_usd=hint, window_usd=window
            )
            if not np.any(model.linear & ~cycle.pwl.linear()):
                w.model_linear = tuple(zip(ids, model.linear.tolist(), strict=True))
                return cycle, model, False, warm is not None
        # which venues are exactly served by the two chords around x0 (fit all venues that way first)
        probe = self._build_cycle(w, snaps, portfolio, linear=np.ones(len(snaps), dtype=bool))
        linear = probe.pwl.linear()
        # the remembered fit, unless a venue it fits with two chords is no longer linear
        resumed = remembered is not None and not np.any(remembered & ~linear)
        if resumed and remembered is not None:
            linear = remembered
        self._model = AllocationModel(
            venues, self.limits, self.settings, self.home_chain, linear=linear
        )
        self._model_key = venues
        self.rebuilds += 1
        w.model_linear = tuple(zip(ids, linear.tolist(), strict=True))
        # refit with the two-chord budget for linear venues, so the pieces the model keeps are exact
        if linear.all():
            return probe, self._model, True, False
        if resumed and warm is not None:
            cycle = self._build_cycle(
                w, snaps, portfolio, linear=linear, hint_usd=hint, window_usd=window
            )
            return cycle, self._model, True, True
        return self._build_cycle(w, snaps, portfolio, linear=linear), self._model, True, False

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
            w = _Work.start(start, self.settings.risk_window, frozenset(directives.exit))
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
            decision = dataclasses.replace(decision, memory=w.memory())
            self.last_memory = decision.memory
            return decision

    def _decide(
        self,
        w: _Work,
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

        t_fit = time.perf_counter()
        try:
            cycle, model, rebuilt, resumed = self._cycle_and_model(w, snaps, portfolio)
        except (ValueError, FloatingPointError, ArithmeticError) as exc:
            return self._hold(DecisionStatus.SOLVER_ERROR, f"hold: bad input: {exc}")
        venues = cycle.venues
        exit_days = effective_exit_days(venues, self.settings, self.home_chain)
        w.queued_exit_days = {
            v.id: float(e)
            for v, e, q in zip(venues, exit_days, cycle.queued_mask(), strict=True)
            if q
        }
        build_seconds = model.build_seconds if rebuilt else 0.0
        risk = w.history.factors([v.id for v in venues], self.settings) if model.with_risk else None
        fit_seconds = time.perf_counter() - t_fit - build_seconds
        clock = _Clock()
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
            lo, hi = _window_around(cycle.pwl.breakpoints, x_usd)
            w.warm = {
                v.id: (float(x_usd[i]), float(lo[i]), float(hi[i]))
                for i, v in enumerate(cycle.venues)
                if not model.linear[i]
            }
        else:
            w.warm = {}
        x0_usd = cycle.x0 * nav
        current = self._check(w, snaps, portfolio, x0_usd, cycle)
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
                pwl_error_bound_usd=float(cycle.pwl.error_bound_usd.sum()),
            )

        target, report = self._target(w, snaps, portfolio, result, cycle)
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
            post = after_costs(
                snaps,
                x0_usd,
                target,
                cycle.idle_after_usd(target),
                self.settings,
                self.home_chain,
                queued=cycle.queued_mask(),
            )
            after = check_allocation(
                snaps,
                portfolio,
                dict(zip([v.id for v in venues], post.positions_usd.tolist(), strict=True)),
                post.idle_usd,
                self.limits,
                self.settings,
                self.home_chain,
                costs_usd=post.cost_usd,
                in_flight_known=cycle.in_flight_known,
            )
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
            target, report = self._target(w, snaps, portfolio, result, cycle)

        objective_usd = result.objective * nav if result.objective is not None else None
        allocation = self._allocation(venues, target, cycle, portfolio)
        income = sum(
            float(s.curve.income_usd(np.array([target[i]]), self.settings.emission_haircut)[0])
            for i, s in enumerate(snaps)
        )
        predicted_apr = income / nav
        if not report.ok:
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
                pwl_error_bound_usd=float(cycle.pwl.error_bound_usd.sum()),
                current_violations=tuple(current.violations),
            )
        econ = make_moves(snaps, x0_usd, target, self.settings, self.home_chain, now)
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
            pwl_error_bound_usd=float(cycle.pwl.error_bound_usd.sum()),
            current_violations=tuple(current.violations),
        )

    def _solve(
        self,
        w: _Work,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        model: AllocationModel,
        cycle: CycleData,
        risk: tuple[FloatArray, FloatArray] | None,
        cold: bool,
        clock: _Clock,
    ) -> tuple[SolveResult, CycleData]:
        """Solve the cycle; cold, refit the curves around the solution and solve again (README §2)."""
        nav = cycle.nav_usd
        model.update(cycle, risk)
        result = clock.add(model.solve())
        for _ in range(self.settings.refine_passes if result.status == "optimal" and cold else 0):
            if model.linear.all() or result.x is None:
                break
            t_refit = time.perf_counter()
            hint = np.where(model.linear, np.nan, result.x * nav)
            refined = self._build_cycle(
                w,
                snaps,
                portfolio,
                linear=model.linear,
                hint_usd=hint,
                window_usd=_window_around(cycle.pwl.breakpoints, result.x * nav),
                window_share=0.9,
                buffer=cycle.buffer,
            )
            model.update(refined, risk)
            clock.fit += time.perf_counter() - t_refit
            again = clock.add(model.solve())
            if (
                again.status != "optimal"
                or again.objective is None
                or again.objective < (result.objective or -np.inf) - 1e-9
            ):
                break  # keep the first solution (cannot happen in exact arithmetic: x* stays feasible)
            result, cycle = again, refined
        return result, cycle

    def _target(
        self,
        w: _Work,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        result: SolveResult,
        cycle: CycleData,
    ) -> tuple[FloatArray, CheckReport]:
        """The solution as a checked target: small trades rounded away, losing moves undone."""
        nav = cycle.nav_usd
        x0_usd = cycle.x0 * nav
        lb_usd, ub_usd = cycle.lb * nav, np.maximum(cycle.ub, cycle.lb) * nav
        raw = np.clip(np.asarray(result.x) * nav, lb_usd, ub_usd)
        rounded = round_small_trades(x0_usd, raw, self.settings.min_trade_usd)
        target, report = rounded, self._check(w, snaps, portfolio, rounded, cycle)
        if not report.ok:
            # dropping small trades moved us off a binding limit; the unrounded solution may pass
            fallback = self._check(w, snaps, portfolio, raw, cycle)
            if fallback.ok:
                target, report = raw, fallback
        if report.ok and self.settings.prune_max_tries > 0:
            reserve = (self.limits.min_idle_ratio * (1.0 + cycle.buffer) + cycle.idle_reserve) * nav
            target, report = prune_unprofitable(
                snaps,
                x0_usd,
                target,
                report,
                self.settings,
                self.home_chain,
                lambda x: self._check(w, snaps, portfolio, x, cycle),
                cycle.investable * nav,
                reserve,
                queued=cycle.queued_mask(),
            )
        return target, report

    def _check(
        self,
        w: _Work,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        target_usd: FloatArray,
        cycle: CycleData,
    ) -> CheckReport:
        """The independent checker, plus ``Directives.exit``: an exit venue above what its exit
        liquidity must leave in (``lb``) breaks it (so the holdings force the plan that exits)."""
        ids = [s.venue.id for s in snaps]
        idle = cycle.idle_after_usd(target_usd)  # queued withdrawals are in flight, not idle
        report = check_allocation(
            snaps,
            portfolio,
            dict(zip(ids, target_usd.tolist(), strict=True)),
            idle,
            self.limits,
            self.settings,
            self.home_chain,
            in_flight_known=cycle.in_flight_known,
        )
        if w.exit:
            floor = cycle.lb * cycle.nav_usd
            for i, vid in enumerate(ids):
                if vid in w.exit and target_usd[i] > floor[i] + 1e-6 + 1e-9 * cycle.nav_usd:
                    report.add(f"exit {vid}: {target_usd[i]:,.2f} USD held, directive says 0")
        return report

    @staticmethod
    def _allocation(
        venues: Sequence[Venue], target: FloatArray, cycle: CycleData, portfolio: PortfolioState
    ) -> Allocation:
        targets = {v.id: float(target[i]) for i, v in enumerate(venues)}
        for vid, amount in portfolio.positions_usd.items():
            targets.setdefault(vid, float(amount))  # locked: no snapshot ever seen, held as is
        return Allocation(target_usd=targets, idle_usd=cycle.idle_after_usd(target))
