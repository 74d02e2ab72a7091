"""``yieldvault check-config``: can the configured limits hold the capital that must be invested?

With no market data the question is structural. Let ``w_i`` be venue ``i``'s share of NAV and
``m = min_idle_ratio``; the capital that must be placeable is ``1 - m``. Solve the LP

    maximise  Σ w_i
    s.t.      0 <= w_i <= min(max_venue_ratio, max_venue_usd / NAV)
              Σ_{i in g} w_i <= cap_g               (kind, chain, protocol, dependency)
              Σ r_i w_i <= R                        (risk budget)
              (1 - Σ w) + Σ_{e_i <= D} w_i >= φ_D    (liquidity floors; exit liquidity unknown: full)
              Σ w_i <= 1 - m

If the optimum is below ``1 - m`` the limits conflict: the ones with a positive dual value are
the binding ones, and each gets named in the report. Turnover, TVL and withdrawal bounds depend
on live state and are not part of this static check.
"""

from __future__ import annotations

from collections.abc import Sequence

import cvxpy as cp
import numpy as np

from core.types import Venue
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import effective_exit_days


def check_feasibility(
    venues: Sequence[Venue],
    limits: RiskLimits,
    nav_usd: float | None = None,
    home_chain: str | None = None,
    settings: OptimizerSettings | None = None,
) -> list[str]:
    """Empty when the limits can place ``1 - min_idle_ratio`` of NAV; else one line per conflict.

    ``nav_usd`` (optional) turns ``max_venue_usd`` into a share; ``home_chain`` (optional) adds the
    bridge time to the exit time of venues off it.
    """
    problems: list[str] = []
    need = 1.0 - limits.min_idle_ratio
    if not venues:
        return (
            []
            if need <= 0
            else [
                f"no venues configured, but min_idle_ratio {limits.min_idle_ratio:g} leaves {need:g} of NAV to invest"
            ]
        )
    ids = [v.id for v in venues]
    if len(set(ids)) != len(ids):
        problems.append("venues: duplicate venue ids")
    settings = settings or OptimizerSettings()
    n = len(venues)
    w = cp.Variable(n, nonneg=True)
    labelled: list[tuple[str, cp.Constraint]] = []
    cap = limits.max_venue_ratio
    cap_label = f"max_venue_ratio {limits.max_venue_ratio:g}"
    if limits.max_venue_usd is not None and nav_usd and limits.max_venue_usd / nav_usd < cap:
        cap, cap_label = (
            limits.max_venue_usd / nav_usd,
            f"max_venue_usd {limits.max_venue_usd:,.0f} (= {limits.max_venue_usd / nav_usd:.4g} of NAV {nav_usd:,.0f})",
        )
    labelled.append((f"{cap_label} x {n} venues", w <= cap))
    families = (
        (
            "max_kind_ratio",
            {str(k): r for k, r in limits.max_kind_ratio.items()},
            lambda v: (str(v.kind),),
        ),
        ("max_chain_ratio", dict(limits.max_chain_ratio), lambda v: (v.chain,)),
        ("max_protocol_ratio", dict(limits.max_protocol_ratio), lambda v: (v.protocol,)),
        ("max_dependency_ratio", dict(limits.max_dependency_ratio), lambda v: v.exposures),
    )
    for name, caps, members in families:
        for key, ratio in caps.items():
            sel = np.array([key in members(v) for v in venues], dtype=float)
            if sel.any():
                labelled.append((f"{name}[{key}] {ratio:g}", sel @ w <= ratio))
    if limits.max_avg_risk_score is not None:
        r = np.array([v.risk_score for v in venues])
        labelled.append(
            (
                f"max_avg_risk_score {limits.max_avg_risk_score:g} (venue scores {r.min():g}..{r.max():g})",
                r @ w <= limits.max_avg_risk_score,
            )
        )
    exit_days = (
        effective_exit_days(venues, settings, home_chain)
        if home_chain
        else np.array([v.exit_days for v in venues])
    )
    for j, f in enumerate(sorted(limits.liquidity_floors, key=lambda f: f.days)):
        liquid = (exit_days <= f.days).astype(float)
        labelled.append(
            (
                f"liquidity_floors[{j}] ({f.min_ratio:g} of NAV within {f.days:g} d; {int(liquid.sum())} of {n} venues exit that fast)",
                1 - cp.sum(w) + liquid @ w >= f.min_ratio,
            )
        )
    labelled.append((f"min_idle_ratio {limits.min_idle_ratio:g}", cp.sum(w) <= need))
    prob = cp.Problem(cp.Maximize(cp.sum(w)), [c for _, c in labelled])
    prob.solve(solver="CLARABEL")
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return [*problems, f"feasibility LP did not solve ({prob.status})"]
    best = float(prob.value)
    if best < need - 1e-6:
        binding = []
        for label, con in labelled[:-1]:
            dual = con.dual_value
            if dual is not None and float(np.max(np.abs(np.atleast_1d(dual)))) > 1e-7:
                binding.append(label)
        problems.append(
            f"min_idle_ratio {limits.min_idle_ratio:g} leaves {need:.4g} of NAV to invest, but "
            + (" + ".join(binding) if binding else "the limits")
            + f" cap the invested share at {best:.4g}"
        )
    return problems
