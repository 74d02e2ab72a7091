"""Pricing a candidate target in one cycle (:class:`PlanContext`: true incomes, each venue's exact
move cost, the bridge legs and their cost) and booking a plan ahead the way the executor does
(:func:`after_costs`), so that its own gas and fees are budgeted. Costs: :mod:`optimizer.costs`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.types import VenueSnapshot, YieldCurve
from optimizer.config import OptimizerSettings
from optimizer.costs import ConvexCost, ZapPools, bridge_fee_curve, leg_gas_usd
from optimizer.pwl import evaluate_curves
from optimizer.routing import bridge_legs
from optimizer.sums import total
from optimizer.venue_arrays import VenueArrays

FloatArray = NDArray[np.float64]


class PlanContext:
    """One cycle's per-venue cost arrays and true incomes, so that pricing a candidate target (the
    pruning tries a dozen, the plan and the predicted APR read the final one) is NumPy over all
    venues, with the true curves evaluated once per venue and point (batched per curve class,
    :func:`optimizer.pwl.evaluate_curves`).

    Exact costs per venue, as the executor books them: a deposit ``gas_in + fee·δ``, a withdrawal
    ``gas_out + fee·|δ|``; and per bridge leg (:meth:`legs`, README §4c) ``bridge_gas_usd +
    bridge_fee_bps·amount``. ``idle_on``: idle per chain now (default: all on home, unlimited, i.e.
    a chain's deficit always comes from home); ``min_on``: the per-chain floors.
    """

    def __init__(
        self,
        snaps: Sequence[VenueSnapshot],
        x0_usd: FloatArray,
        settings: OptimizerSettings,
        home_chain: str,
        idle_on: dict[str, float] | None = None,
        min_on: dict[str, float] | None = None,
        queued: NDArray[np.bool_] | None = None,
        zap: ZapPools | None = None,
        bridge_fee: ConvexCost | None = None,
        rate_shift: FloatArray | None = None,
    ) -> None:
        """``zap``, ``bridge_fee``: the cycle's :class:`optimizer.costs.ZapPools` and bridge fee curve
        (:func:`optimizer.costs.bridge_fee_curve`) of these snapshots, if known. ``rate_shift``: the
        rate forecast's level shift per venue (APR, :mod:`optimizer.forecast`), which the gains over
        the horizon add; the incomes (:meth:`income_usd`) stay at today's rates."""
        self.snaps = snaps
        self.settings = settings
        self.home_chain = home_chain
        self.x0 = np.asarray(x0_usd, dtype=float)
        facts = VenueArrays.of(tuple(s.venue for s in snaps))
        # LP zaps: the convex cost of the swap replaces the venue's linear fee (optimizer/costs.py)
        self.zap = zap if zap is not None else ZapPools.of(snaps, settings)
        self._any_zap = bool(self.zap.mask.any())
        self.fee = np.where(self.zap.mask, 0.0, facts.fee)
        # only Across routes carry fee quotes
        self.bridge_fee = (
            bridge_fee
            if bridge_fee is not None
            else bridge_fee_curve([snaps[i] for i in facts.across.tolist()], settings, home_chain)
        )
        self.gas_in = facts.gas_in
        self.gas_out = facts.gas_out
        self.chains = facts.chains
        self.idle_on = {home_chain: math.inf} if idle_on is None else dict(idle_on)
        self.min_on = dict(min_on or {})
        # (bridge_legs bridges only between home and the chains in chains or idle_on)
        self._home_only = all(c == home_chain for c in self.chains) and all(
            c == home_chain for c in self.idle_on
        )
        self.queued = queued
        self.rate_shift = None if rate_shift is None else np.asarray(rate_shift, dtype=float)
        self._curves = [s.curve for s in snaps]
        self._f0: FloatArray | None = None
        # the last point each venue was evaluated at, and its income
        self._xc = np.full(len(snaps), np.nan)
        self._fc = np.zeros(len(snaps))
        # per target (its bytes): its costs, gas and bridge legs, which one decide asks for a few
        # times each (the check, the post-cost state, the moves, the allocation)
        self._per_target: dict[tuple[str, bytes], object] = {}

    def income_usd(self, x_usd: FloatArray) -> FloatArray:
        """True annual income of each venue at ``x_usd`` (emission haircut applied)."""
        x = np.asarray(x_usd, dtype=float)
        h = self.settings.emission_haircut
        if self._f0 is None:
            # the holdings and the first target in one batched evaluation
            both = _evaluate(self._curves, np.stack([self.x0, x], axis=1), h)
            self._f0, self._fc, self._xc = both[:, 0], both[:, 1].copy(), x.copy()
        at_x0 = x == self.x0
        miss = ~at_x0 & (x != self._xc)
        if miss.any():
            idx = np.nonzero(miss)[0]
            self._fc[idx] = _evaluate([self._curves[i] for i in idx], x[idx][:, None], h)[:, 0]
            self._xc[idx] = x[idx]
        return np.where(at_x0, self._f0, self._fc)

    def _key(self, name: str, target: FloatArray) -> tuple[str, bytes]:
        return name, np.ascontiguousarray(target, dtype=float).tobytes()

    def costs_usd(self, target_usd: FloatArray) -> FloatArray:
        """Each venue's move cost (gas and fee), USD; 0 where nothing moves. Bridging is the plan's,
        not a venue's (:meth:`legs_cost_usd`). Read-only (kept per target)."""
        key = self._key("costs", target_usd)
        hit = self._per_target.get(key)
        if hit is None:
            hit = self._costs_usd(np.asarray(target_usd, dtype=float))
            hit.flags.writeable = False
            self._per_target[key] = hit
        assert isinstance(hit, np.ndarray)
        return hit

    def _costs_usd(self, target: FloatArray) -> FloatArray:
        delta = target - self.x0
        gas = np.where(delta > 0, self.gas_in, self.gas_out)
        cost = gas + self.fee * np.abs(delta)
        if self._any_zap:
            cost = cost + self.zap.impact_usd(self.x0, target)
        return np.where(delta != 0.0, cost, 0.0)

    def impact_usd(self, target_usd: FloatArray) -> FloatArray:
        """Each venue's zap cost (the swapped half's fee and price impact), USD; 0 for the others."""
        if not self._any_zap:
            return np.zeros(len(self.x0))
        return self.zap.impact_usd(self.x0, np.asarray(target_usd, dtype=float))

    def gas_usd(self, target_usd: FloatArray) -> float:
        """The venue moves' gas, paid from home idle."""
        key = self._key("gas", target_usd)
        hit = self._per_target.get(key)
        if hit is None:
            delta = np.asarray(target_usd, dtype=float) - self.x0
            hit = total(np.where(delta > 0, self.gas_in, np.where(delta < 0, self.gas_out, 0.0)))
            self._per_target[key] = hit
        assert isinstance(hit, float)
        return hit

    def legs(self, target_usd: FloatArray) -> list[tuple[str, str, float]]:
        """The bridge legs the target needs (:func:`bridge_legs`), home keeping the plan's gas."""
        key = self._key("legs", target_usd)
        hit = self._per_target.get(key)
        if hit is None:
            hit = tuple(self._legs(np.asarray(target_usd, dtype=float)))
            self._per_target[key] = hit
        assert isinstance(hit, tuple)
        return list(hit)

    def _legs(self, target: FloatArray) -> list[tuple[str, str, float]]:
        if self._home_only:
            return []  # every venue and all idle on home: no chain to bridge to or from
        return bridge_legs(
            self.chains,
            self.x0,
            target,
            self.queued,
            self.idle_on,
            self.min_on,
            self.home_chain,
            home_spend_usd=self.gas_usd(target),
            leg_gas_usd=self.settings.bridge_gas_usd,
        )

    def leg_fee_usd(self, amount_usd: float) -> float:
        """The fee a leg of ``amount_usd`` loses on the way (no gas): the Across fee curve."""
        return float(self.bridge_fee(amount_usd))

    def leg_cost_usd(self, amount_usd: float, to_chain: str = "") -> float:
        """A leg's predicted cost: its fee plus the gas of its fill on ``to_chain``."""
        return leg_gas_usd(self.settings, to_chain) + self.leg_fee_usd(amount_usd)

    def legs_cost_usd(self, target_usd: FloatArray) -> float:
        return float(sum(self.leg_cost_usd(u, d) for _, d, u in self.legs(target_usd)))

    def gains_usd(self, target_usd: FloatArray) -> FloatArray:
        """Gain of each venue's move over the holding horizon: ``(f(target) - f(x0)) · H/365``; with
        a rate forecast (``rate_shift`` ``s``) ``(f(target) - f(x0) + s (target - x0)) · H/365``."""
        horizon = self.settings.holding_horizon_days / 365.0
        target = np.asarray(target_usd, dtype=float)
        moved = target != self.x0
        if not moved.any():
            return np.zeros(len(target))
        f = self.income_usd(target)
        assert self._f0 is not None
        gain = f - self._f0
        if self.rate_shift is not None:
            gain = gain + self.rate_shift * (target - self.x0)
        return np.where(moved, gain * horizon, 0.0)

    def values_usd(self, target_usd: FloatArray) -> FloatArray:
        """Exact value of each venue's move on its own: gain minus its gas and fee."""
        return self.gains_usd(target_usd) - self.costs_usd(target_usd)


def _evaluate(
    curves: Sequence[YieldCurve], x_usd: FloatArray, emission_haircut: float
) -> FloatArray:
    """:func:`optimizer.pwl.evaluate_curves`, without its grouping when every curve is of one class
    with its own ``batch_income_usd`` (a replay's Aave reserves): that one call on all rows in order
    is what ``evaluate_curves`` makes then, so the values are the same; its grouping, row indexing
    and scatter were ~35 µs of the ~60 µs a 4-venue evaluation cost."""
    if curves:
        cls = type(curves[0])
        batch = cls.__dict__.get("batch_income_usd")
        if batch is not None and all(type(c) is cls for c in curves):
            out = np.asarray(batch.__get__(None, cls)(curves, x_usd, emission_haircut), dtype=float)
            if out.shape == x_usd.shape:
                if not np.isfinite(out).all():
                    bad = int(np.argwhere(~np.isfinite(out))[0][0])
                    raise ValueError(f"yield curve {bad} returned a non-finite income")
                return out
    return evaluate_curves(curves, x_usd, emission_haircut)


@dataclass(frozen=True, slots=True)
class AfterCosts:
    """The state a plan leaves once the executor has booked it (vault/executor.py)."""

    positions_usd: FloatArray  # per venue, after fees and bridge fees on the way in
    idle_usd: float  # the allocation's idle minus the gas and the fees paid out of idle
    # what the plan takes out of idle beyond the allocation: gas, fees on the way out
    idle_cost_usd: float
    cost_usd: float  # all NAV the plan spends: idle_cost + fees taken from deposits


def after_costs(
    snaps: Sequence[VenueSnapshot],
    x0_usd: FloatArray,
    target_usd: FloatArray,
    idle_usd: float,
    settings: OptimizerSettings,
    home_chain: str,
    queued: NDArray[np.bool_] | None = None,
    ctx: PlanContext | None = None,
) -> AfterCosts:
    """Book the plan the way the executor does, ahead of time.

    ``idle_usd`` is the allocation's idle right after the moves (a withdrawal from a ``queued`` venue
    is in flight, not in it). A deposit of ``δ`` takes ``δ`` from idle and lands ``δ (1 - fee)`` in
    the venue; a withdrawal of ``δ`` from an instant venue lands ``δ (1 - fee)`` in idle; a withdrawal
    from a queued venue goes in flight whole (what it loses on the way is taken when it settles and is
    not counted here: the checker counts the in-flight amount gross); a zap (LP priced by its
    reserves) loses its convex cost instead of the fee; every deposit and withdrawal
    pays its gas from home-chain idle *after* the move; every bridge leg of the plan
    (:meth:`PlanContext.legs`) loses its fee (the Across curve; ``bridge_fee_bps`` under
    ``cost_model: linear``) on the way and (conservatively, the paper executor does not book it)
    pays ``bridge_gas_usd``.
    """
    ctx = ctx or PlanContext(snaps, x0_usd, settings, home_chain)
    delta = np.asarray(target_usd, dtype=float) - np.asarray(x0_usd, dtype=float)
    kept = 1.0 - ctx.fee  # share of a moved USD that arrives
    impact = ctx.impact_usd(np.asarray(target_usd, dtype=float))  # zaps: lost on the way
    dep, wd = delta > 0, delta < 0
    gas = np.where(dep, ctx.gas_in, 0.0) + np.where(wd, ctx.gas_out, 0.0)
    legs = ctx.legs(target_usd)
    # each leg pays its gas from home idle and loses its fee on the way: a leg home lands short in
    # home idle; a leg out lands short on its chain, so that chain's deposits (which it funds) get
    # less, pro rata (the executor deposits what is there). Convex costs: Across takes the fill's gas
    # out of the amount too (counted on the way as well: conservative)
    convex = settings.cost_model != "linear"

    def lost(usd: float, dest: str) -> float:
        return ctx.leg_fee_usd(usd) + (leg_gas_usd(settings, dest) if convex else 0.0)

    legs_gas = settings.bridge_gas_usd * len(legs)
    home_fees = float(sum(lost(u, d) for o, d, u in legs if d == home_chain))
    positions = np.where(dep, x0_usd + delta * kept - impact, target_usd)
    chains = np.asarray(ctx.chains, dtype=object)
    for origin, dest, usd in legs:
        if origin != home_chain:
            continue
        on = dep & (chains == dest)
        deposited = float(delta[on].sum())
        if deposited > 0:
            positions = np.where(on, positions - lost(usd, dest) * delta / deposited, positions)
    instant_wd = wd if queued is None else wd & ~np.asarray(queued, dtype=bool)
    idle_cost = (
        float(gas.sum())
        + legs_gas
        + home_fees
        + float((-delta[instant_wd] * (1.0 - kept[instant_wd]) + impact[instant_wd]).sum())
    )
    deposit_fees = float((x0_usd + delta - positions)[dep].sum())
    return AfterCosts(positions, idle_usd - idle_cost, idle_cost, idle_cost + deposit_fees)
