"""``bench solver``: first build, re-solve and decide latency by stage, solver-internal time, peak
RSS and the objective with every limit active, for our build-once problem and, side by side, a
naive version that rebuilds the cvxpy problem every cycle."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from core.types import VenueSnapshot
from optimizer.bench_markets import T0, all_limits, drift, peak_rss_mb
from optimizer.config import OptimizerSettings
from optimizer.cycle import build_cycle
from optimizer.engine import Optimizer
from optimizer.model import AllocationModel
from optimizer.testing import (
    CHAINS,
    random_market,
)


def _legs_cost(model: AllocationModel) -> float:
    """The bridge legs' annualised cost at the cvxpy problem's last solution (NAV units, README §4c)."""
    from optimizer.limits import ChainIdle

    for lim in model.limits:
        if isinstance(lim, ChainIdle) and lim.active and lim.out is not None:
            out = lim.out.value
            back = lim.back.value if lim.back is not None else None
            if out is None or back is None:
                return 0.0
            return float(lim.rate.value) * float(np.sum(out) + np.sum(back))  # type: ignore[arg-type]  # a Parameter's value, set by update()
    return 0.0


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else math.nan


def bench_solver(
    venues: int,
    repeats: int = 20,
    seed: int = 0,
    settings: OptimizerSettings | None = None,
    naive: bool = True,
    changed_share: float = 1.0,
    reference: bool = True,
) -> dict:
    """Build once and re-solve ``repeats`` drifting cycles; then the naive rebuild-every-cycle version.
    ``changed_share``: the share of venues whose rates move each cycle (1: all, the worst case for the
    incremental fit). ``reference=False`` (with ``naive=False``: ``--ours-only``) skips the cvxpy
    runs, so that the peak RSS is ours alone."""
    settings = settings or OptimizerSettings()
    rng = np.random.default_rng(seed)
    market = random_market(venues, seed, invested_share=0.6)
    limits = all_limits(market)
    home = CHAINS[0]
    gc.collect()
    rss0 = peak_rss_mb()
    opt = Optimizer(limits, settings, home)
    t = time.perf_counter()
    first = opt.decide(market.snapshots, market.portfolio, T0)
    first_total = time.perf_counter() - t
    model = opt._model
    assert model is not None
    cycles = []
    snaps_now: Sequence[VenueSnapshot] = market.snapshots
    for i in range(repeats):
        # each cycle drifts from the last (so an unchanged venue is the same as in the cycle before)
        snaps_now = drift(snaps_now, rng, T0 + timedelta(minutes=i + 1), share=changed_share)
        cycles.append(snaps_now)
    refitted: list[int] = []
    solve, solver, fit, total, objective = [], [], [], [], []
    check, prune, plan, cpu = [], [], [], []
    statuses: dict[str, int] = {}
    # side by side, same cycles, same Parameter values: the cvxpy problem (the reference path)
    ref_solve, ref_solver, ref_gap, ref_true_gap, ref_first = [], [], [], [], None
    with_reference = model.segment is not None and reference
    for i, snaps in enumerate(cycles):
        c0 = time.process_time()
        d = opt.decide(snaps, market.portfolio, T0 + timedelta(minutes=i + 1))
        cpu.append(time.process_time() - c0)
        refitted.append(model.fit_cache.refitted)
        statuses[d.status] = statuses.get(d.status, 0) + 1
        solve.append(d.solve_seconds)
        check.append(d.check_seconds)
        prune.append(d.prune_seconds)
        plan.append(d.plan_seconds)
        fit.append(d.fit_seconds)
        total.append(d.total_seconds)
        if d.solver_seconds is not None:
            solver.append(d.solver_seconds)
        if d.objective_usd is not None:
            objective.append(d.objective_usd)
        if with_reference:
            # the decide's last Parameter values (warm basis: already optimal)
            ours_now = model.solve()
            ref = model.solve_cvxpy()
            if ref_first is None:
                ref_first = ref.solve_seconds  # includes the DPP compile (first cvxpy solve)
            else:
                ref_solve.append(ref.solve_seconds)
                if ref.solver_seconds is not None:
                    ref_solver.append(ref.solver_seconds)
            if ref.objective is not None and ours_now.objective is not None and ref.x is not None:
                ref_gap.append((ours_now.objective - ref.objective) / abs(ref.objective))
                assert model._cycle is not None  # set by the update before the solve
                a, b = model._cycle.objective_pieces(settings)
                # the PWL objective at cvxpy's x
                g_ref = float(np.min(a * ref.x[:, None] + b, axis=1).sum()) - _legs_cost(model)
                ref_true_gap.append((ours_now.objective - g_ref) / abs(g_ref))
    ours: dict[str, Any] = {
        "first_build_ms": round((first.build_seconds + first.solve_seconds) * 1e3, 1),
        "first_decide_ms": round(first_total * 1e3, 1),
        "problem_construction_ms": round(first.build_seconds * 1e3, 1),
        "first_solve_ms": round(first.solve_seconds * 1e3, 1),
        "resolve_p50_ms": round(_pct(solve, 50), 2),
        "resolve_p99_ms": round(_pct(solve, 99), 2),
        "solver_internal_p50_ms": round(_pct(solver, 50), 2),
        "solver_internal_p99_ms": round(_pct(solver, 99), 2),
        "fit_p50_ms": round(_pct(fit, 50), 2),
        "changed_share": changed_share,
        "refitted_venues_p50": float(np.median(refitted)) if refitted else None,
        "decide_p50_ms": round(_pct(total, 50), 2),
        "decide_p99_ms": round(_pct(total, 99), 2),
        # CPU time of the process per decide: what the decide costs when the box is shared
        "decide_cpu_p50_ms": round(_pct(cpu, 50), 2),
        # p50 of each stage of decide (they need not add up to the decide p50 exactly)
        "stages_p50_ms": {
            "fit": round(_pct(fit, 50), 2),
            "solve": round(_pct(solve, 50), 2),
            "check": round(_pct(check, 50), 2),
            "prune": round(_pct(prune, 50), 2),
            "plan": round(_pct(plan, 50), 2),
            "other": round(
                _pct(
                    [
                        t - a - b - c - e - f
                        for t, a, b, c, e, f in zip(
                            total, fit, solve, check, prune, plan, strict=True
                        )
                    ],
                    50,
                ),
                2,
            ),
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_at_start_mb": round(rss0, 1),
        "objective_usd_first": first.objective_usd,
        "objective_usd_last": objective[-1] if objective else None,
        "statuses": statuses,
        "first_status": first.status,
        "dpp": model.use_dpp,
        "is_dpp": bool(model.problem.is_dpp()),
        "parameter_entries": model.parameter_entries(),
        "pwl_error_bound_usd": first.pwl_error_bound_usd,
        "rebuilds_after_first": opt.rebuilds - 1,
        # refinement passes in every decide (the cold first one included), venues they refitted (README §2, §9e)
        "refine_passes": opt.refine_passes_run,
        "refine_venues_refitted": opt.refine_venues_refitted,
        "lp_method": "segment" if model.segment is not None else "cvxpy",
    }
    if with_reference:
        # exactness: the last cycle's Parameter values, cvxpy solved tightly (Clarabel at 1e-10)
        ours_last = model.solve()
        tight = dict(
            solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, max_iter=500
        )
        model.problem.solve(
            **tight, **({"enforce_dpp": True} if model.use_dpp else {"ignore_dpp": True})
        )
        tight_obj = float(model.problem.value) if model.problem.value is not None else math.nan
        assert model._cycle is not None  # set by the update before the solve
        a, b = model._cycle.objective_pieces(settings)
        tight_g = (
            float(np.min(a * model.x.value[:, None] + b, axis=1).sum()) - _legs_cost(model)
            if model.x.value is not None
            else math.nan
        )
        ours["exactness"] = {
            "cvxpy_tight_status": str(model.problem.status),
            "cvxpy_tight_objective_nav": tight_obj,
            "ours_objective_nav": ours_last.objective,
            "rel_diff": (ours_last.objective - tight_obj) / abs(tight_obj)
            if ours_last.objective is not None
            else None,
            # the PWL objective at the tight solution's x (its Σ t may exceed it by the solver's slack)
            "cvxpy_tight_g_at_x_nav": tight_g,
            "rel_diff_vs_g_at_x": (ours_last.objective - tight_g) / abs(tight_g)
            if ours_last.objective is not None
            else None,
        }
        # the cvxpy path (Clarabel, DPP up to dpp_max_venues) on the same Parameter values each cycle;
        # objective_rel_diff = (ours - cvxpy)/|cvxpy|: cvxpy's Σ t may exceed g(x) by its tolerance
        ours["cvxpy_reference"] = {
            "first_solve_ms": round((ref_first or 0.0) * 1e3, 1),
            "resolve_p50_ms": round(_pct(ref_solve, 50), 2),
            "resolve_p99_ms": round(_pct(ref_solve, 99), 2),
            "solver_internal_p50_ms": round(_pct(ref_solver, 50), 2),
            "objective_rel_diff_max_abs": float(np.max(np.abs(ref_gap))) if ref_gap else None,
            "objective_rel_diff_mean": float(np.mean(ref_gap)) if ref_gap else None,
            # against g(x) at cvxpy's solution (its Σ t minus its own feasibility slack): ours >= it
            "objective_rel_diff_vs_g_at_cvxpy_x_min": float(np.min(ref_true_gap))
            if ref_true_gap
            else None,
            "objective_rel_diff_vs_g_at_cvxpy_x_max": float(np.max(ref_true_gap))
            if ref_true_gap
            else None,
        }
    out: dict = {
        "venues": venues,
        "repeats": repeats,
        "seed": seed,
        "solver": settings.solver,
        "pieces": settings.pieces,
        "limits": sorted(
            type(lim).__name__ + (":" + lim.name if hasattr(lim, "family") else "")
            for lim in model.limits
        ),
        "ours": ours,
    }
    if naive:
        n_naive = max(2, min(repeats, 5 if venues <= 2000 else 2))
        build, nsolve, ntotal, nobj, ncpu = [], [], [], [], []
        for snaps in cycles[:n_naive]:
            c0 = time.process_time()
            t = time.perf_counter()
            cycle = build_cycle(
                sorted(snaps, key=lambda s: s.venue.id), market.portfolio, limits, settings, home
            )
            m = AllocationModel(
                cycle.venues,
                limits,
                settings.model_copy(update={"dpp_max_venues": 0, "lp_method": "cvxpy"}),
                home,
            )
            t_build = time.perf_counter()
            m.update(cycle)
            r = m.solve()
            build.append(t_build - t)
            nsolve.append(r.solve_seconds)
            ntotal.append(time.perf_counter() - t)
            ncpu.append(time.process_time() - c0)
            if r.objective is not None:
                nobj.append(r.objective * cycle.nav_usd)
        out["naive"] = {
            "cycles": n_naive,
            "cycle_p50_ms": round(_pct(ntotal, 50), 1),
            "cycle_cpu_p50_ms": round(_pct(ncpu, 50), 1),
            "build_p50_ms": round(_pct(build, 50), 1),
            "solve_p50_ms": round(_pct(nsolve, 50), 1),
            "objective_usd_first_cycle": nobj[0] if nobj else None,
            "ours_objective_usd_same_cycle": objective[0] if objective else None,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        # the goal: decide (fit, solve, check, prune, plan) >= 4x faster than the naive cycle (build + solve)
        out["speedup_decide_vs_naive"] = {
            "wall_p50": round(_pct(ntotal, 50) / _pct(total, 50), 2),
            "cpu_p50": round(_pct(ncpu, 50) / _pct(cpu, 50), 2),
        }
    return out


# -- quality -------------------------------------------------------------------------------------
