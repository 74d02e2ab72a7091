"""A warm refinement pass that refits only the venues carrying the fit's error bound (README §2).

The bound on what the true curves could still gain over the LP optimum ``x*`` is a sum over venues,
``Σ_i e_i`` with ``e_i = pwl.error_near_usd(x*)_i`` (:meth:`optimizer.pwl.PiecewiseLinear.error_near_usd`).
When it exceeds the trigger (:func:`optimizer.pwl.refine_pays`), the venues that carry it are the
few with the largest ``e_i`` (:func:`optimizer.pwl.refine_rows`): those are refitted around ``x*``
(``x*_i`` a forced breakpoint, 90 % of the quantile mass in the window where the true optimum can
be, :func:`optimizer.work.window_around`), and every other venue keeps its pieces. A row's fit
depends on that row's inputs alone (:func:`optimizer.pwl.fit_pwl`), so the refitted rows are the
rows a full refit would give them, and the rest are the fit the cycle was solved with. The cycle's
fit cache is not touched: it still holds the cycle's own fit, which the next cycle compares with.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from core.types import PortfolioState
from optimizer.config import OptimizerSettings
from optimizer.costs import ZapPools
from optimizer.cycle import CycleData
from optimizer.pwl import fit_pwl, merge_rows, refine_rows
from optimizer.work import window_around

FloatArray = NDArray[np.float64]

#: the share of the quantile mass a refinement pass puts inside the window around ``x*`` (README §2)
REFINE_WINDOW_SHARE = 0.9


def refit_carrying(
    cycle: CycleData,
    x_usd: FloatArray,
    objective_nav: float | None,
    portfolio: PortfolioState,
    settings: OptimizerSettings,
    linear: NDArray[np.bool_],
) -> tuple[CycleData, NDArray[np.int64]]:
    """``cycle`` with the venues that carry the error bound at ``x_usd`` refitted around it, and
    the rows refitted. ``linear`` venues (two exact chords) are never refitted. The fit's inputs per
    row are those :func:`optimizer.cycle.build_cycle` gives it: the fitted domain
    (``pwl.lb_usd``/``ub_usd``), the holdings ``x0`` in USD as the portfolio states them, the full
    split budget ``pieces - 1``, and for an LP zap its annualised move cost (README §3a)."""
    nav = cycle.nav_usd
    pwl = cycle.pwl
    rows = refine_rows(pwl, x_usd, objective_nav, nav, eligible=~linear)
    if len(rows) == 0:
        return cycle, rows
    get = portfolio.positions_usd.get
    x0_usd = np.maximum(np.array([get(cycle.venues[i].id, 0.0) for i in rows], dtype=float), 0.0)
    hint = np.asarray(x_usd, dtype=float)[rows]
    window = window_around(pwl.breakpoints[rows], hint)
    zap = cycle.zap_pools
    sub: ZapPools | None = None
    if cycle.zap is not None and zap is not None and bool(zap.mask[rows].any()):
        sub = ZapPools(zap.mask[rows], zap.tvl_others_usd[rows], zap.fee[rows])
    annual = 365.0 / settings.holding_horizon_days

    def zap_cost(grid: FloatArray) -> FloatArray:
        assert sub is not None
        return annual * sub.impact_usd(x0_usd, grid)

    part = fit_pwl(
        [cycle.snapshots[i].curve for i in rows],
        pwl.lb_usd[rows],
        pwl.ub_usd[rows],
        x0_usd,
        settings.pieces,
        settings.samples,
        settings.emission_haircut,
        split_budget=np.full(len(rows), settings.pieces - 1, dtype=np.int64),
        method=settings.pwl_method,
        hint_usd=hint,
        window_usd=window,
        window_share=REFINE_WINDOW_SHARE,
        cost_usd=zap_cost if sub is not None else None,
    )
    merged = merge_rows(pwl, rows, part)
    impact = cycle.impact_usd
    if impact is not None and sub is not None:
        impact = impact.copy()
        impact[rows] = sub.impact_usd(x0_usd, part.breakpoints)
    return dataclasses.replace(cycle, pwl=merged, impact_usd=impact), rows
