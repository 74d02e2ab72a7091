"""From the solver's solution to a checked target: the solve (with the cold refinement passes),
rounding small trades, pruning unprofitable moves, the independent check (plus ``Directives.exit``)
and the allocation it reports. A base of :class:`optimizer.engine.Optimizer`."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from core.types import Allocation, PortfolioState, Venue, VenueSnapshot
from optimizer.checker import CheckContext, CheckReport
from optimizer.cycle import CycleData
from optimizer.engine_inputs import CycleInputs
from optimizer.model import AllocationModel, SolveResult
from optimizer.plan import PlanContext, prune_unprofitable, round_small_trades
from optimizer.pwl import WARM_REFINE_PASSES, refine_pays
from optimizer.refine import REFINE_WINDOW_SHARE, refit_carrying
from optimizer.routing import chain_flows_usd
from optimizer.sums import total
from optimizer.venue_arrays import VenueArrays
from optimizer.work import DecideWork, StageClock, window_around

FloatArray = NDArray[np.float64]


class TargetSteps(CycleInputs):
    """The solve-to-target steps of :class:`optimizer.engine.Optimizer`.

    ``refine_passes_run`` / ``refine_venues_refitted``: the refinement passes so far and the venues
    they refitted (a cold pass every curved venue, a warm one those carrying the bound)."""

    refine_passes_run: int = 0
    refine_venues_refitted: int = 0

    def _solve(
        self,
        w: DecideWork,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        model: AllocationModel,
        cycle: CycleData,
        risk: tuple[FloatArray, FloatArray] | None,
        cold: bool,
        clock: StageClock,
    ) -> tuple[SolveResult, CycleData]:
        """Solve the cycle; cold, refit the curves around the solution and solve again (README §2)."""
        nav = cycle.nav_usd
        model.update(cycle, risk)
        result = clock.add(model.solve())
        # cold: refine_passes passes; then (and warm) more only while the fit near the solution could
        # hide more than 0.1 % of the objective (README §2); refine_passes 0: none at all
        always = self.settings.refine_passes if cold else 0
        passes = always + (WARM_REFINE_PASSES if self.settings.refine_passes else 0)
        for k in range(passes if result.status == "optimal" else 0):
            if model.linear.all() or result.x is None:
                break
            if k >= always and not refine_pays(cycle.pwl, result.x * nav, result.objective, nav):
                break
            t_refit = time.perf_counter()
            if k >= always:
                # a warm pass: only the venues that carry the bound are refitted (optimizer/refine.py)
                refined, rows = refit_carrying(
                    cycle, result.x * nav, result.objective, portfolio, self.settings, model.linear
                )
                self.refine_venues_refitted += len(rows)
            else:
                hint = np.where(model.linear, np.nan, result.x * nav)
                refined = self._build_cycle(
                    w,
                    snaps,
                    portfolio,
                    linear=model.linear,
                    hint_usd=hint,
                    window_usd=window_around(cycle.pwl.breakpoints, result.x * nav),
                    window_share=REFINE_WINDOW_SHARE,
                    buffer=cycle.buffer,
                )
                self.refine_venues_refitted += int(np.count_nonzero(~model.linear))
            self.refine_passes_run += 1
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
        w: DecideWork,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        result: SolveResult,
        cycle: CycleData,
        priced: PlanContext,
        clock: StageClock,
    ) -> tuple[FloatArray, CheckReport]:
        """The solution as a checked target: small trades rounded away, losing moves undone."""
        nav = cycle.nav_usd
        x0_usd = cycle.x0 * nav
        lb_usd, ub_usd = cycle.lb * nav, np.maximum(cycle.ub, cycle.lb) * nav
        raw = np.clip(np.asarray(result.x) * nav, lb_usd, ub_usd)
        rounded = round_small_trades(x0_usd, raw, self.settings.min_trade_usd)
        target, report = (
            rounded,
            self._check(w, snaps, portfolio, rounded, cycle, clock, priced=priced),
        )
        if not report.ok:
            # dropping small trades moved us off a binding limit; the unrounded solution may pass
            fallback = self._check(w, snaps, portfolio, raw, cycle, clock, priced=priced)
            if fallback.ok:
                target, report = raw, fallback
        if report.ok and self.settings.prune_max_tries > 0:
            t_prune, checks_before = time.perf_counter(), clock.check
            reserve = (self.limits.min_idle_ratio * (1.0 + cycle.buffer) + cycle.idle_reserve) * nav
            target, report = prune_unprofitable(
                snaps,
                x0_usd,
                target,
                report,
                self.settings,
                self.home_chain,
                lambda x: self._check(
                    w, snaps, portfolio, x, cycle, clock, first_only=True, priced=priced
                ),
                cycle.investable * nav,
                reserve,
                queued=cycle.queued_mask(),
                ctx=priced,
            )
            clock.prune += time.perf_counter() - t_prune - (clock.check - checks_before)
        return target, report

    def _check(
        self,
        w: DecideWork,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        target_usd: FloatArray,
        cycle: CycleData,
        clock: StageClock | None = None,
        first_only: bool = False,
        priced: PlanContext | None = None,
    ) -> CheckReport:
        """The independent checker, plus ``Directives.exit``: an exit venue above what its exit
        liquidity must leave in (``lb``) breaks it (so the holdings force the plan that exits).
        ``priced``: the cycle's plan context; given, the target's bridge legs are checked per chain
        (README §4c). ``first_only``: a trial, stop at the first violation.

        A target checked before in this decide (same cycle and plan context) gets a copy of that
        report: the checker is a function of its inputs. A passing report answers both kinds of
        call (with no violation, ``first_only`` runs every rule, so the two reports are equal); a
        full report answers a ``first_only`` trial whatever it says (a trial reads only whether
        it passes, and a failing full report fails it with the same first violation: the holdings
        within the drift band of a floor, tried again by the pruning, are checked once)."""
        t0 = time.perf_counter()
        key = np.ascontiguousarray(target_usd, dtype=float).tobytes()
        for k in ((key, first_only), (key, not first_only)):
            hit = w.checked.get(k)
            if (
                hit is not None
                and hit[0] is cycle
                and hit[1] is priced
                and (k[1] == first_only or hit[2].ok or (first_only and not k[1]))
            ):
                if clock is not None:
                    clock.check += time.perf_counter() - t0
                return _copy(hit[2])
        idle = cycle.idle_after_usd(target_usd)  # queued withdrawals are in flight, not idle
        legs = priced.legs(target_usd) if priced is not None else None
        plan_cost = None
        if priced is not None and legs is not None:
            # what the plan will charge for this target, for the checker's own pricing
            plan_cost = total(priced.costs_usd(target_usd)) + sum(
                priced.leg_cost_usd(u, d) for _, d, u in legs
            )
        report = self._checker(w, snaps, portfolio, cycle).check(
            target_usd,
            idle,
            first_only=first_only,
            bridges=legs,
            plan_cost_usd=plan_cost,
        )
        if clock is not None:
            clock.check += time.perf_counter() - t0
        if w.exit and not (first_only and report.violations):
            floor = cycle.lb * cycle.nav_usd
            for i, vid in enumerate(s.venue.id for s in snaps):
                if vid in w.exit and target_usd[i] > floor[i] + 1e-6 + 1e-9 * cycle.nav_usd:
                    report.add(f"exit {vid}: {target_usd[i]:,.2f} USD held, directive says 0")
        w.checked[(key, first_only)] = (cycle, priced, _copy(report))
        return report

    def _checker(
        self,
        w: DecideWork,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        cycle: CycleData,
    ) -> CheckContext:
        """The checker's arrays for this cycle's inputs, built once per decide and reused by every
        check of it (holdings, rounded target, each pruning trial, the post-cost state)."""
        memo = w.checker
        if (
            memo is not None
            and memo[0] is snaps
            and memo[1] is portfolio
            and memo[2] == cycle.in_flight_known
        ):
            return memo[3]
        ctx = CheckContext(
            snaps,
            portfolio,
            self.limits,
            self.settings,
            self.home_chain,
            in_flight_known=cycle.in_flight_known,
        )
        w.checker = (snaps, portfolio, cycle.in_flight_known, ctx)
        return ctx

    @staticmethod
    def _allocation(
        venues: Sequence[Venue],
        target: FloatArray,
        cycle: CycleData,
        portfolio: PortfolioState,
        priced: PlanContext,
    ) -> Allocation:
        targets = dict(zip(VenueArrays.of(venues).ids, target.tolist(), strict=True))
        for vid, amount in portfolio.positions_usd.items():
            targets.setdefault(vid, float(amount))  # locked: no snapshot ever seen, held as is
        # idle per chain once the venue moves and the bridge legs are done (README §4c)
        by_chain = chain_flows_usd(
            priced.chains, priced.x0, target, cycle.queued_mask(), priced.idle_on
        )
        for origin, dest, usd in priced.legs(target):
            by_chain[origin] = by_chain.get(origin, 0.0) - usd
            by_chain[dest] = by_chain.get(dest, 0.0) + usd
        return Allocation(
            target_usd=targets, idle_usd=cycle.idle_after_usd(target), idle_by_chain_usd=by_chain
        )


def _copy(report: CheckReport) -> CheckReport:
    return CheckReport(list(report.violations), dict(report.utilization), list(report.excess))
