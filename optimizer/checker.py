"""The independent checker: every limit, recomputed in NumPy from the raw inputs.

It shares no code with the model (no cvxpy, no PWL, no :mod:`optimizer.cycle`): it reads the
snapshots, the portfolio, the config and a proposed allocation, and returns the violations in
words and the utilisation of every limit. A plan executes only if this list is empty.

Rules (all in USD, with a slack ``τ = check_tolerance_ratio · NAV``):

- conservation: ``Σ target + idle + locked + in_flight + Σ_queued (x0_i - x_i)⁺ = NAV``; no negative
  amounts. A withdrawal from a *queued* venue (``exit_days > instant_exit_days``: a withdrawal queue,
  a redemption delay) goes in flight and lands days later, so it is not in ``idle``: an allocation
  whose idle counts it (a plan funding a deposit with it) is rejected (``queued_withdrawal``);
- withdrawal bound: ``x0_i - x_i <= min(x0_i, exit_liquidity_i)``;
- frozen venues do not grow: ``x_i <= x0_i``; capacity bounds growth only: ``x_i <= max(capacity_i, x0_i)``
  (capacity is what the venue can take from us now, not a risk limit: a position above a capacity that
  shrank may be held, never grown);
- per-venue caps (USD, share of NAV, share of TVL after us), group caps (kind, chain, protocol,
  dependency), risk budget: ``exposure <= max(cap, forced)`` where ``forced`` is the exposure of
  ``lb_i = x0_i - min(x0_i, exit_liquidity_i)``, what cannot leave this cycle;
- floors: ``idle >= min_idle_ratio NAV`` (idle now, nothing in flight);
  ``idle + in_flight landing within D + Σ_{e_i <= D} min(x_i, L_i) >= φ_D NAV``, where a queued
  withdrawal of this plan lands after its venue's ``e_i``, a known part of ``in_flight`` after its
  own horizon (``in_flight_known``) and the rest only within the longest ``e_i`` of any venue;
- turnover: ``Σ |x_i - x0_i| <= T NAV``.

``costs_usd`` checks the state *after* a plan that paid that much (gas, fees) out of NAV, as the
executor books it: conservation and every share-of-NAV limit are then against ``NAV - costs``.

Each violation comes with its relative size (``CheckReport.excess``): ``(used - allowed)/allowed``
for a cap, ``(required - available)/required`` for a floor, ``inf`` for the rules that are not
limits with a size (conservation, locked, withdrawal bound, frozen, negative amounts), so that a
caller can tell a drift of a hair past a limit from a real breach (README §7).

Utilisation is ``used / allowed`` for caps and ``required / available`` for floors (1 = binding,
above 1 = violated), under a bounded set of names.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from core.types import PortfolioState, VenueSnapshot
from optimizer.checker_facts import VenueFacts as _VenueFacts
from optimizer.checker_rules import CheckReport, CostPricer, check_state_rules
from optimizer.checker_rules import Enough as _Enough
from optimizer.checker_rules import amounts as _amounts
from optimizer.checker_rules import ratio as _ratio
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.sums import total

UNKNOWN_SCORE = 10.0

__all__ = ["UNKNOWN_SCORE", "CheckContext", "CheckReport", "check_allocation"]


def check_allocation(
    snaps: Sequence[VenueSnapshot],
    portfolio: PortfolioState,
    target_usd: Mapping[str, float],
    idle_usd: float,
    limits: RiskLimits,
    settings: OptimizerSettings,
    home_chain: str,
    costs_usd: float = 0.0,
    in_flight_known: Sequence[tuple[float, float]] = (),
) -> CheckReport:
    """``in_flight_known``: ``(days until it lands, USD)`` for the parts of ``portfolio.in_flight_usd``
    whose landing time is known (the rest counts only toward floors at least as long as the longest
    exit time of any venue)."""
    ctx = CheckContext(snaps, portfolio, limits, settings, home_chain, in_flight_known)
    return ctx.check_mapping(target_usd, idle_usd, costs_usd)


class CheckContext:
    """Everything the rules read that does not depend on the proposed allocation, in arrays, so that
    checking many candidate allocations of one cycle (the pruning of README §7 tries up to a dozen)
    costs NumPy over the venues and nothing per venue in Python. Built from the raw inputs only."""

    def __init__(
        self,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        limits: RiskLimits,
        settings: OptimizerSettings,
        home_chain: str,
        in_flight_known: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.snaps = snaps
        self.portfolio = portfolio
        self.limits = limits
        self.settings = settings
        self.in_flight_known = tuple(in_flight_known)
        self._pricer: CostPricer | None = None
        static = _VenueFacts.of(snaps, limits, settings, home_chain)
        self.static = static
        self.ids = ids = static.ids
        self.index = static.index
        positions = portfolio.positions_usd
        get = positions.get
        self.x0 = np.maximum(np.array([get(i, 0.0) for i in ids], dtype=float), 0.0)
        index = self.index
        self.locked = sum(max(float(v), 0.0) for k, v in positions.items() if k not in index)
        # the snapshot's numbers the rules read, in one pass over the snapshots
        cols = np.array(
            [(s.exit_liquidity_usd, s.frozen, s.curve.capacity_usd, s.tvl_usd) for s in snaps],
            dtype=float,
        ).reshape(len(snaps), 4)
        amounts = _amounts(cols[:, (0, 2, 3)])  # (elementwise: as one column at a time)
        self.exit_liq = amounts[:, 0]
        self.stay = self.x0 - np.minimum(self.x0, self.exit_liq)  # what cannot leave this cycle
        self.own_exit = static.own_exit
        self.queued = static.queued
        self.frozen = cols[:, 1] > 0
        self.capacity = amounts[:, 1]
        self.tvl = amounts[:, 2]
        self.scores = static.scores
        self.exit_days = static.exit_days
        # idle per chain (README §4c)
        self.home_chain = home_chain
        self.chain_names, self.chain_of = static.chain_names, static.chain_of
        self.idle_on = portfolio.idle_on(home_chain)
        self.G = static.G
        self.groups = static.groups
        self.forced_group = self.G @ self.stay
        self.floor_masks = static.floor_masks
        # the per-venue caps that do not depend on NAV: max(cap, what cannot leave), and its inverse
        self.venue_usd_allowed = (
            np.maximum(limits.max_venue_usd, self.stay)
            if limits.max_venue_usd is not None
            else None
        )
        r = limits.max_venue_tvl_ratio
        self.venue_tvl_allowed = (
            None
            if r is None
            else np.maximum(
                np.full(len(ids), math.inf) if r >= 1 else r * self.tvl / (1 - r), self.stay
            )
        )
        # what every check of this cycle reads and no target changes, computed once
        self.stay_known = not bool(np.isnan(self.stay).any())  # (a NaN position: NaN stays)
        self.venue_tvl_positive = bool(
            self.venue_tvl_allowed is not None and (self.venue_tvl_allowed > 0).all()
        )
        self.withdrawable = np.minimum(self.x0, self.exit_liq)
        self.room = np.maximum(self.capacity, self.x0)  # capacity bounds growth only
        self.any_queued = static.any_queued
        self.any_frozen = bool(self.frozen.any())
        self.no_flight = np.zeros(len(ids))  # new flights when no venue is queued
        self.stay_score = float(self.scores @ self.stay)
        self.longest_exit = static.longest_exit
        self.known_usd = float(sum(u for _, u in self.in_flight_known))
        self.known_within = [
            float(sum(u for d, u in self.in_flight_known if d <= f.days))
            for f in limits.liquidity_floors
        ]
        self.chain_strs = static.chain_strs

    def check_mapping(
        self, target_usd: Mapping[str, float], idle_usd: float, costs_usd: float = 0.0
    ) -> CheckReport:
        """A target given as ``{venue id: USD}`` (venues left out hold; unknown ids are checked as
        locked positions that must not move)."""
        positions = self.portfolio.positions_usd
        x = np.array(
            [float(target_usd.get(i, positions.get(i, 0.0))) for i in self.ids], dtype=float
        )
        unknown = {k: float(v) for k, v in target_usd.items() if k not in self.index}
        return self.check(x, idle_usd, costs_usd, unknown)

    def check(
        self,
        x: np.ndarray,
        idle_usd: float,
        costs_usd: float = 0.0,
        unknown_targets: Mapping[str, float] | None = None,
        first_only: bool = False,
        bridges: Sequence[tuple[str, str, float]] | None = None,
        home_spend_usd: float = 0.0,
        plan_cost_usd: float | None = None,
    ) -> CheckReport:
        """Check the allocation ``x`` (USD per venue, in snapshot order) with ``idle_usd`` idle, after a
        plan that cost ``costs_usd`` out of NAV. ``first_only``: stop at the first violation (a caller
        that only asks whether a trial passes; its utilisation is then incomplete).

        ``bridges``: the plan's bridge legs ``(from chain, to chain, USD)``. Given, idle is checked per
        chain: ``I_c + Σ_{i on c} (x0_i - x_i) - Σ_{i on c, queued} (x0_i - x_i)⁺ + in_c - out_c`` (and
        ``- home_spend_usd`` on the home chain: the plan's gas) must not fall below the chain's floor
        (``min_idle_by_chain_usd``, 0 elsewhere): a plan spends no idle a chain does not have. None:
        the caller does not route (a baseline, a test of other limits), only the total is checked.

        ``plan_cost_usd`` (with ``bridges``): what the plan says moving to ``x`` costs; below the
        checker's own price (:class:`optimizer.checker_rules.CostPricer`: the same cost curves,
        priced here from the raw inputs) by more than the tolerance, rule ``cost_pricing`` fails."""
        rep = CheckReport()
        with contextlib.suppress(_Enough):
            self._check(rep, x, idle_usd, costs_usd, unknown_targets, first_only)
            if bridges is not None:
                self._check_chains(
                    rep, np.asarray(x, dtype=float), bridges, home_spend_usd, first_only
                )
                if plan_cost_usd is not None:
                    self._check_pricing(rep, np.asarray(x, dtype=float), bridges, plan_cost_usd)
        return rep

    def _check_pricing(
        self,
        rep: CheckReport,
        x: np.ndarray,
        bridges: Sequence[tuple[str, str, float]],
        plan_cost_usd: float,
    ) -> None:
        if self._pricer is None:
            self._pricer = CostPricer(
                self.snaps, self.x0, self.settings, self.home_chain, facts=self.static
            )
        own = self._pricer.price_usd(x, bridges)
        tol = self.settings.check_tolerance_ratio * max(float(self.portfolio.nav_usd), 1.0)
        rep.utilization["cost_pricing"] = _ratio(own, max(plan_cost_usd, 0.0))
        if not plan_cost_usd >= own - tol:
            rep.add(
                f"cost_pricing: the plan prices its moves at {plan_cost_usd:,.2f} USD, the checker at"
                f" {own:,.2f} USD (gas, fees, zaps' price impact, the bridge fee curve)",
                (own - plan_cost_usd) / own if own > 0 else math.inf,
            )

    def _check_chains(
        self,
        rep: CheckReport,
        x: np.ndarray,
        bridges: Sequence[tuple[str, str, float]],
        home_spend_usd: float,
        first_only: bool,
    ) -> None:
        tol = self.settings.check_tolerance_ratio * max(float(self.portfolio.nav_usd), 1.0)
        delta = x - self.x0
        # idle a move takes (or gives: < 0)
        spent = np.where(self.queued, np.maximum(delta, 0.0), delta) if self.any_queued else delta
        after = {c: float(u) for c, u in self.idle_on.items()}
        by_chain = np.bincount(self.chain_of, weights=spent, minlength=len(self.chain_names))
        for c, u in zip(self.chain_strs, by_chain.tolist(), strict=True):
            after[c] = after.get(c, 0.0) - u
        moved_in: dict[str, float] = {}
        for origin, dest, usd in bridges:
            if not usd >= 0:
                rep.add(f"bridge: leg {origin} -> {dest} moves {usd} USD")
                if first_only:
                    raise _Enough
                continue
            after[origin] = after.get(origin, 0.0) - float(usd)
            after[dest] = after.get(dest, 0.0) + float(usd)
            moved_in[dest] = moved_in.get(dest, 0.0) + float(usd)
        after[self.home_chain] = after.get(self.home_chain, 0.0) - float(home_spend_usd)
        floors = self.limits.min_idle_by_chain_usd
        for c in sorted(after):
            need = float(floors.get(c, 0.0))
            if c in floors:
                rep.utilization[f"chain_idle:{c}"] = _ratio(need, max(after[c], 0.0))
            if after[c] < need - tol:
                on = (
                    self.chain_of == int(np.searchsorted(self.chain_names, c))
                    if c in set(self.chain_names)
                    else np.zeros(len(self.ids), dtype=bool)
                )
                deposits = float(np.maximum(delta, 0.0)[on].sum())
                what = f"floor {need:,.2f} USD" if need > 0 else "0"
                rep.add(
                    f"chain_idle[{c}]: idle on {c} after the plan would be {after[c]:,.2f} USD, below"
                    f" {what} (idle {self.idle_on.get(c, 0.0):,.2f}, deposits {deposits:,.2f},"
                    f" bridged in {moved_in.get(c, 0.0):,.2f} USD): the plan spends idle {c} does"
                    " not have",
                    (need - after[c]) / need if need > 0 else math.inf,
                )
                if first_only:
                    raise _Enough

    def _check(
        self,
        rep: CheckReport,
        x: np.ndarray,
        idle_usd: float,
        costs_usd: float,
        unknown_targets: Mapping[str, float] | None,
        first_only: bool,
    ) -> None:
        portfolio, limits, settings = self.portfolio, self.limits, self.settings
        ids, x0, stay, exit_liq = self.ids, self.x0, self.stay, self.exit_liq
        x = np.asarray(x, dtype=float)
        nav = float(portfolio.nav_usd) - float(costs_usd)
        tol = settings.check_tolerance_ratio * max(nav, 1.0)
        locked = self.locked

        def bad(message: str, excess: float = math.inf) -> None:
            rep.add(message, excess)
            if first_only:
                raise _Enough

        def over(used: float, allowed: float) -> float:
            return (used - allowed) / allowed if allowed > 0 else math.inf

        def under(need: float, have: float) -> float:
            return (need - have) / need if need > 0 else math.inf

        # a withdrawal from a queued venue is in flight after the plan, not idle
        own_exit = self.own_exit
        if self.any_queued:
            new_flight = np.where(self.queued, np.maximum(x0 - x, 0.0), 0.0)
            flight_usd = total(new_flight)
        else:
            new_flight, flight_usd = self.no_flight, 0.0
        summed = total(x) + idle_usd + locked + float(portfolio.in_flight_usd) + flight_usd
        if abs(summed - nav) > tol:
            if flight_usd > tol and abs(summed - flight_usd - nav) <= tol:
                names = ", ".join(
                    f"{ids[i]} ({new_flight[i]:,.2f} USD, {own_exit[i]:g} d)"
                    for i in np.nonzero(new_flight > 0)[0][:5]
                )
                bad(
                    f"queued_withdrawal: idle {idle_usd:,.2f} USD counts {flight_usd:,.2f} USD withdrawn from queued venues "
                    f"({names}), which is in flight until it settles, not idle"
                )
            else:
                bad(f"conservation: allocation sums to {summed:,.2f} USD but NAV is {nav:,.2f} USD")
        if idle_usd < -tol:
            bad(f"conservation: idle is negative ({idle_usd:,.2f} USD)")
        locked_targets = unknown_targets or {}
        for vid in sorted(locked_targets):
            if abs(float(locked_targets[vid]) - float(portfolio.positions_usd.get(vid, 0.0))) > tol:
                bad(f"locked: venue {vid} has no snapshot and must hold, but its target moves")
        frozen, capacity = self.frozen, self.capacity
        for i in (x < -tol).nonzero()[0]:
            bad(f"non_negative: venue {ids[i]} target {x[i]:,.2f} USD")
        for i in (x0 - x > self.withdrawable + tol).nonzero()[0]:
            bad(
                f"withdrawal_bound: venue {ids[i]} withdraws {x0[i] - x[i]:,.2f} USD, exit liquidity is {exit_liq[i]:,.2f} USD"
            )
        for i in (frozen & (x > x0 + tol)).nonzero()[0] if self.any_frozen else ():
            bad(
                f"frozen: venue {ids[i]} is frozen ({self.snaps[int(i)].frozen_reason}) and grows {x0[i]:,.2f} -> {x[i]:,.2f} USD"
            )
        # capacity bounds growth, not holdings: above a capacity that shrank the position may stay (x0 >= stay)
        room = self.room
        for i in (x > room + tol).nonzero()[0]:
            bad(
                f"capacity: venue {ids[i]} grows {x0[i]:,.2f} -> {x[i]:,.2f} USD above capacity {capacity[i]:,.2f} USD",
                over(x[i], room[i]),
            )

        def per_venue(
            name: str, allowed: np.ndarray, what: Callable[[], str], positive: bool = False
        ) -> None:
            # allowed = max(cap, what cannot leave); utilisation x / allowed (0 / inf where allowed = 0)
            # (``positive``: the caller knows every allowed is > 0; ``what``: the limit in words)
            if positive or (allowed > 0).all():
                util = x / allowed
            else:
                util = np.where(x <= 0, 0.0, np.inf)
                np.divide(x, allowed, out=util, where=allowed > 0)
            rep.utilization[f"{name}:max"] = float(util.max()) if len(util) else 0.0
            for i in (x > allowed + tol).nonzero()[0]:
                bad(
                    f"{name}: venue {ids[i]} holds {x[i]:,.2f} USD above {what()} ({allowed[i]:,.2f} USD)",
                    over(x[i], allowed[i]),
                )

        if self.venue_usd_allowed is not None:
            per_venue(
                "venue_usd",
                self.venue_usd_allowed,
                lambda: f"max_venue_usd {limits.max_venue_usd:,.0f}",
            )
        ratio_cap = limits.max_venue_ratio * nav
        per_venue(
            "venue_ratio",
            np.maximum(ratio_cap, stay),
            lambda: f"max_venue_ratio {limits.max_venue_ratio:g} of NAV",
            ratio_cap > 0 and self.stay_known,
        )
        if self.venue_tvl_allowed is not None:
            per_venue(
                "venue_tvl",
                self.venue_tvl_allowed,
                lambda: f"max_venue_tvl_ratio {limits.max_venue_tvl_ratio:g} of TVL after us",
                self.venue_tvl_positive,
            )

        if self.groups:
            exposures = self.G @ x
            for k, (family, key, ratio, sel) in enumerate(self.groups):
                exposure = float(exposures[k])
                allowed = max(ratio * nav, float(self.forced_group[k]))
                rep.utilization[f"{family}:{key}"] = _ratio(exposure, allowed)
                if exposure > allowed + tol:
                    names = ", ".join(ids[i] for i in np.nonzero(sel & (x > 0))[0][:5])
                    bad(
                        f"max_{family}_ratio[{key}]: exposure {exposure:,.2f} USD above {ratio:g} of NAV ({allowed:,.2f} USD); venues {names}",
                        over(exposure, allowed),
                    )

        if limits.max_avg_risk_score is not None:
            scores = self.scores
            used = float(scores @ x) + UNKNOWN_SCORE * locked
            allowed = max(limits.max_avg_risk_score * nav, self.stay_score + UNKNOWN_SCORE * locked)
            rep.utilization["risk_score"] = _ratio(used, allowed)
            if used > allowed + tol * 10:
                bad(
                    f"max_avg_risk_score: NAV-weighted risk score {used / nav:.4f} above {limits.max_avg_risk_score:g}",
                    over(used, allowed),
                )

        need_idle = limits.min_idle_ratio * nav
        rep.utilization["min_idle"] = _ratio(need_idle, idle_usd) if need_idle > 0 else 0.0
        if idle_usd < need_idle - tol:
            bad(
                f"min_idle_ratio: idle {idle_usd:,.2f} USD below {limits.min_idle_ratio:g} of NAV ({need_idle:,.2f} USD)",
                under(need_idle, idle_usd),
            )

        if limits.liquidity_floors:
            liquid_part = np.minimum(np.maximum(x, 0.0), exit_liq)
            longest, known_usd = self.longest_exit, self.known_usd
            for f, within, known_within in zip(
                limits.liquidity_floors, self.floor_masks, self.known_within, strict=True
            ):
                landing = (float(new_flight[within].sum()) if self.any_queued else 0.0) + (
                    known_within
                )
                if f.days >= longest:
                    landing += max(float(portfolio.in_flight_usd) - known_usd, 0.0)
                liquid = idle_usd + landing + total(liquid_part[within])
                need = f.min_ratio * nav
                rep.utilization[f"liquidity:{f.days:g}d"] = (
                    _ratio(need, liquid) if need > 0 else 0.0
                )
                if liquid < need - tol:
                    bad(
                        f"liquidity_floors[{f.days:g}d]: {liquid:,.2f} USD withdrawable within {f.days:g} days, below {f.min_ratio:g} of NAV ({need:,.2f} USD)",
                        under(need, liquid),
                    )

        if limits.max_turnover_ratio is not None:
            moved = total(np.abs(x - x0))
            allowed = limits.max_turnover_ratio * nav
            rep.utilization["turnover"] = _ratio(moved, allowed)
            if moved > allowed + tol:
                bad(
                    f"max_turnover_ratio: moves {moved:,.2f} USD, above {limits.max_turnover_ratio:g} of NAV ({allowed:,.2f} USD)",
                    over(moved, allowed),
                )
        check_state_rules(rep, self.snaps, ids, x, x0, stay, limits, tol)
