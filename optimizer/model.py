"""The allocation problem, built once per venue set, re-solved every cycle by changing Parameters.

In NAV units (``x_i`` = position / NAV, ``B`` = investable / NAV), with ``P = pieces + 1``:

    maximise    Σ_i t_i  -  ‖Fᵀx‖²  -  ‖d ∘ x‖²                       (risk term only if enabled)
    subject to  t_i <= a_ik x_i + b_ik        i = 1..n, k = 1..P      (hypograph of g_i)
                every limit in optimizer.limits                     (linear, RHS Parameters)

``g_i`` is the PWL income net of annualised move costs (:meth:`CycleData.objective_pieces`);
``a``, ``b``, ``F``, ``d`` and every limit's right-hand side are Parameters. The product
``a ∘ x`` is Parameter × Variable, which DPP allows; nothing multiplies two Parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from numpy.typing import NDArray

from core.types import Venue
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import CycleData, queued_exits
from optimizer.limits import (
    ChainIdle,
    Limit,
    ModelVars,
    limits_from_config,
    put,
    validate_parameters,
)
from optimizer.pwl import FitCache

FloatArray = NDArray[np.float64]

ACCEPTED = {cp.OPTIMAL, cp.OPTIMAL_INACCURATE}


@dataclass(frozen=True, slots=True)
class SolveResult:
    status: str  # "optimal" | "infeasible" | "solver_error"
    x: FloatArray | None  # NAV units
    objective: float | None  # NAV units (annual net income / NAV)
    solve_seconds: float  # wall time of cvxpy's solve (parameter stuffing + solver + unpacking)
    solver_seconds: float | None  # solver-internal time reported by the solver
    detail: str = ""
    # bridge legs of the optimum, NAV units (README §4c; None when every venue is on the home chain)
    bridge_out: FloatArray | None = None
    bridge_back: FloatArray | None = None


def solver_options(settings: OptimizerSettings) -> dict[str, object]:
    """Time limit and tolerances in each solver's own option names."""
    tol, limit = settings.tolerance, settings.time_limit_seconds
    match settings.solver:
        case "CLARABEL":
            # iterative refinement roughly doubles the time per iteration on this LP (README) and
            # changes the objective by < 1e-7 NAV; the independent checker guards feasibility
            return {
                "time_limit": limit,
                "tol_gap_abs": tol,
                "tol_gap_rel": tol,
                "tol_feas": tol,
                "iterative_refinement_enable": settings.clarabel_refinement,
                **settings.solver_options,
            }
        case "ECOS":
            return {"abstol": tol, "reltol": tol, "feastol": tol, **settings.solver_options}
        case "OSQP":
            return {
                "time_limit": limit,
                "eps_abs": tol,
                "eps_rel": tol,
                "polish": True,
                **settings.solver_options,
            }
        case "SCS":
            return {
                "time_limit_secs": limit,
                "eps_abs": tol,
                "eps_rel": tol,
                **settings.solver_options,
            }
        case "HIGHS":
            opts: dict[str, object] = {"time_limit": limit, **settings.solver_options}
            if (
                "solver" in opts
            ):  # HiGHS's own 'solver' option (simplex/ipm) clashes with cvxpy's keyword
                opts["highs_options"] = {"solver": opts.pop("solver")}
            return opts
    return {}


class AllocationModel:
    """One cvxpy Problem for a fixed, ordered venue set."""

    def __init__(
        self,
        venues: tuple[Venue, ...],
        limits: RiskLimits,
        settings: OptimizerSettings,
        home_chain: str,
        linear: NDArray[np.bool_] | None = None,
        previous: AllocationModel | None = None,
    ):
        """``previous``: the model this one replaces for the *same* venue set (only which venues are
        fitted with two chords changed): its fit cache and its segment simplex's basis carry over,
        because neither depends on that (every venue has ``P + 2`` slots in the segment LP, a
        two-chord venue's extra ones of width 0), so the rebuild does not start the simplex cold."""
        t0 = time.perf_counter()
        self.venues = venues
        self.settings = settings
        n = len(venues)
        self.linear = np.zeros(n, dtype=bool) if linear is None else np.asarray(linear, dtype=bool)
        self.x = cp.Variable(n, name="x")
        self.t = cp.Variable(n, name="t")
        self.budget = cp.Parameter(nonneg=True, name="investable")
        idle = self.budget - cp.sum(self.x)
        # withdrawals from queued venues go in flight: w_i >= x0_i - x_i, w_i >= 0 and idle = B - Σx - Σw.
        # Every constraint on idle is a floor and nothing else involves w, so w = (x0 - x)⁺ at an optimum
        # (any excess can be dropped without losing feasibility or objective)
        self.queued_idx = np.nonzero(queued_exits(venues, settings))[0]
        flight_constraints: list[cp.Constraint] = []
        self.flight: cp.Variable | None = None
        if len(self.queued_idx):
            self.flight = cp.Variable(len(self.queued_idx), nonneg=True, name="in_flight")
            self.x0_queued = cp.Parameter(len(self.queued_idx), nonneg=True, name="x0_queued")
            flight_constraints.append(self.flight >= self.x0_queued - self.x[self.queued_idx])
            idle = idle - cp.sum(self.flight)
        m = ModelVars(
            x=self.x,
            idle=idle,
            venues=venues,
            settings=settings,
            home_chain=home_chain,
            flight=self.flight,
            queued_idx=self.queued_idx,
        )
        self.limits: list[Limit] = limits_from_config(limits)
        # two blocks: venues with linear curves need only the two pieces around x0 (a third of the
        # rows at pieces=8), the others pieces + 1
        self.blocks: list[tuple[NDArray[np.int64], cp.Parameter, cp.Parameter]] = []
        constraints: list[cp.Constraint] = []
        for mask, p in ((self.linear, 2), (~self.linear, settings.pieces + 1)):
            idx = np.nonzero(mask)[0]
            if len(idx) == 0:
                continue
            k = len(idx)
            slope = cp.Parameter((k, p), name=f"slope{p}")
            intercept = cp.Parameter((k, p), name=f"intercept{p}")
            self.blocks.append((idx, slope, intercept))
            t_col = cp.reshape(self.t[idx] if k < n else self.t, (k, 1), order="C")
            x_col = cp.reshape(self.x[idx] if k < n else self.x, (k, 1), order="C")
            constraints.append(t_col <= cp.multiply(slope, x_col) + intercept)
        constraints += flight_constraints
        for limit in self.limits:
            constraints += limit.build(m)
        objective = cp.sum(self.t)
        # bridge legs cost what they move (README §4c)
        for limit in self.limits:
            if isinstance(limit, ChainIdle) and limit.active:
                objective = objective - limit.cost
        self.with_risk = settings.risk_aversion > 0
        if self.with_risk:
            self.loadings = cp.Parameter((n, settings.risk_factors), name="risk_loadings")
            self.idio = cp.Parameter(n, nonneg=True, name="risk_idio")
            self.risk = cp.sum_squares(self.loadings.T @ self.x) + cp.sum_squares(
                cp.multiply(self.idio, self.x)
            )
            objective = objective - self.risk
        self.problem = cp.Problem(cp.Maximize(objective), constraints)
        self.use_dpp = n <= settings.dpp_max_venues
        # the same LP on segments, solved by a warm-started dual simplex (optimizer/fastlp.py); the
        # cvxpy problem above stays the reference and the fallback (and the only path with the risk term)
        self.segment = None
        if settings.lp_method == "segment" and not self.with_risk:
            from optimizer.fastlp import SegmentLP

            self.segment = SegmentLP(self)
        self._cycle: CycleData | None = None
        # the last fit of this venue set, so that a cycle refits only the venues that changed
        self.fit_cache = FitCache()
        same_set = previous is not None and (previous.venues is venues or previous.venues == venues)
        if same_set and previous is not None:
            # a row's fit depends on its own inputs only (the budget is one), so the cache stays exact
            self.fit_cache = previous.fit_cache
            if self.segment is not None and previous.segment is not None:
                self.segment.adopt_basis(previous.segment)
        self.build_seconds = time.perf_counter() - t0
        self.solves = 0

    def parameter_entries(self) -> int:
        return int(sum(p.size for p in self.problem.parameters()))

    def update(self, d: CycleData, risk: tuple[FloatArray, FloatArray] | None = None) -> None:
        """Pour the cycle's numbers into the Parameters. ``risk``: (F, d) already scaled by √γ."""
        self._cycle = d
        a, b = d.objective_pieces(self.settings)
        for idx, slope, intercept in self.blocks:
            p = slope.shape[1]
            put(slope, a[idx, :p])
            put(intercept, b[idx, :p])
        put(self.budget, max(d.investable, 0.0))
        if self.flight is not None:
            put(self.x0_queued, d.x0[self.queued_idx])
        for limit in self.limits:
            limit.update(d)
        if self.with_risk:
            n = len(self.venues)
            if risk is None:
                self.loadings.value = np.zeros((n, self.settings.risk_factors))
                self.idio.value = np.zeros(n)
            else:
                self.loadings.value, self.idio.value = risk

    def solve(self) -> SolveResult:
        """The segment simplex when it applies (an LP), else, or if it fails, the cvxpy problem."""
        if self.segment is not None and self._cycle is not None:
            r = self.segment.solve(self._cycle)
            if r.status == "optimal":
                self.solves += 1
                return SolveResult(
                    "optimal",
                    r.x,
                    r.objective,
                    r.seconds,
                    self.segment.run_seconds,
                    r.detail,
                    r.bridge_out,
                    r.bridge_back,
                )
            # infeasible or an error: the reference path decides (and reports) it
        return self.solve_cvxpy()

    def solve_cvxpy(self) -> SolveResult:
        """The cvxpy problem with the current Parameter values (DPP up to ``dpp_max_venues``)."""
        kwargs: dict[str, object] = dict(solver_options(self.settings))
        if self.use_dpp:
            kwargs["enforce_dpp"] = True
        else:
            kwargs["ignore_dpp"] = True
        t0 = time.perf_counter()
        try:
            validate_parameters(self.problem)  # the values set by limits.put, checked once here
            self.problem.solve(
                solver=self.settings.solver, warm_start=True, verbose=False, **kwargs
            )
        except Exception as exc:
            return SolveResult(
                "solver_error",
                None,
                None,
                time.perf_counter() - t0,
                None,
                f"{type(exc).__name__}: {exc}",
            )
        elapsed = time.perf_counter() - t0
        self.solves += 1
        stats = self.problem.solver_stats
        solver_seconds = (
            float(stats.solve_time) if stats is not None and stats.solve_time is not None else None
        )
        status = self.problem.status
        if status in ACCEPTED and self.x.value is not None:
            return SolveResult(
                "optimal",
                np.asarray(self.x.value, dtype=float),
                float(self.problem.value),
                elapsed,
                solver_seconds,
                str(status),
            )
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return SolveResult("infeasible", None, None, elapsed, solver_seconds, str(status))
        return SolveResult("solver_error", None, None, elapsed, solver_seconds, str(status))
