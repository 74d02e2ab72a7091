"""One cycle's numbers, in NumPy, ready to be poured into the Parameters of the cvxpy problem.

Everything the solver sees is in *NAV units* (USD / NAV) so that the problem is scaled the same
whether the vault holds $10k or $1bn; APRs are dimensionless and stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.types import PortfolioState, Venue, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.costs import (
    ConvexCost,
    ZapPools,
    bridge_fee_curve,
    depeg_discount,
    leg_gas_usd,
)
from optimizer.pwl import FitCache, PiecewiseLinear, evaluate_curves, fit_pwl
from optimizer.state_rules import state_caps_usd
from optimizer.sums import total
from optimizer.venue_arrays import VenueArrays

FloatArray = NDArray[np.float64]

#: risk score charged for a position whose venue the optimizer has never seen a snapshot of
UNKNOWN_RISK_SCORE = 10.0


def usable(values: Sequence[float] | FloatArray, missing: float = 0.0) -> FloatArray:
    """Non-negative amounts from a feed; NaN (a bad feed value) becomes ``missing``, i.e. 0: a venue
    whose TVL or exit liquidity is unknown can neither grow nor shrink this cycle. ``inf`` stays."""
    a = np.asarray(values, dtype=float)
    return np.maximum(np.where(np.isnan(a), missing, a), 0.0)


def cost_rates(
    venues: Sequence[Venue],
    settings: OptimizerSettings,
    home_chain: str,
    nav_usd: float,
    zap: NDArray[np.bool_] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per-USD one-off cost of moving into / out of each venue (fractions of the amount moved).

    ``c_in = fee_bps/1e4 + deposit_gas/(g NAV)``, ``c_out`` likewise with the withdrawal gas, where
    ``g = gas_reference_ratio`` amortises the fixed gas charge over a reference move of ``g NAV`` USD.
    ``zap``: venues priced by their pool's reserves (:class:`optimizer.costs.ZapPools`): no
    ``fee_bps`` (the zap's convex cost replaces it, :meth:`CycleData.objective_pieces`).
    Bridging is not a venue's cost: idle is booked per chain and the bridge legs are variables of
    their own (:func:`bridge_pieces`, README §4c), paid only when a chain lacks the idle it spends.
    """
    ref = max(settings.gas_reference_ratio * nav_usd, 1e-9)
    facts = VenueArrays.of(venues)
    fee = facts.fee
    if zap is not None:
        fee = np.where(zap, 0.0, fee)
    c_in = fee + facts.gas_in / ref
    c_out = fee + facts.gas_out / ref
    return c_in, c_out


def bridge_rate(settings: OptimizerSettings, nav_usd: float) -> float:
    """One-off cost per USD bridged, as a fraction: ``bridge_fee_bps/1e4 + bridge_gas_usd/(g NAV)``."""
    ref = max(settings.gas_reference_ratio * nav_usd, 1e-9)
    return settings.bridge_fee_bps / 1e4 + settings.bridge_gas_usd / ref


def bridge_pieces(
    curve: ConvexCost,
    settings: OptimizerSettings,
    chains: Sequence[str],
    nav_usd: float,
) -> tuple[FloatArray, FloatArray]:
    """The bridge legs' convex cost on segments, NAV units: widths ``(J,)`` (the last one
    unbounded) and slopes ``(2 (C-1), J)`` per NAV unit moved, rows ``home -> c`` for each chain
    ``c`` but home, then ``c -> home``. Slope = the fee curve's slope on the piece + the leg's gas
    (onto its destination) amortised over the reference move ``g NAV``."""
    ref = max(settings.gas_reference_ratio * nav_usd, 1e-9)
    fee = curve.slopes()
    widths = np.append(curve.widths_usd() / nav_usd, np.inf)
    home = chains[0] if chains else ""
    gas = [leg_gas_usd(settings, c) for c in chains[1:]] + [
        leg_gas_usd(settings, home) for _ in chains[1:]
    ]
    return widths, fee[None, :] + np.array(gas, dtype=float)[:, None] / ref


def model_chains(venues: Sequence[Venue], home_chain: str) -> tuple[str, ...]:
    """The chains the model books idle on: home first, then every venue's chain, sorted."""
    return (home_chain, *sorted({v.chain for v in venues} - {home_chain}))


def effective_exit_days(
    venues: Sequence[Venue], settings: OptimizerSettings, home_chain: str
) -> FloatArray:
    """Days until capital in the venue is idle on the home chain: unbonding plus the bridge off-home."""
    facts = VenueArrays.of(venues)
    return facts.own_exit_days + np.where(facts.not_on(home_chain), settings.bridge_days, 0.0)


def queued_exits(venues: Sequence[Venue], settings: OptimizerSettings) -> NDArray[np.bool_]:
    """Venues whose withdrawals do *not* pay out at once: ``exit_days > instant_exit_days`` (a queue,
    a redemption delay). Withdrawn from them, capital goes in flight until it settles; it cannot fund
    the plan's deposits nor count as idle (README §4). The venue's own exit time, not the bridge leg:
    the executor waits for bridge fills within the plan."""
    return VenueArrays.of(venues).own_exit_days > settings.instant_exit_days


@dataclass(frozen=True, slots=True, eq=False)
class VenueSetFacts:
    """What one cycle reads of the venue set that no snapshot changes, kept while the venue set,
    the settings and the home chain stay (:func:`venue_set_facts`; read-only arrays): the model's
    chains (:func:`model_chains`), each venue's index into them, the queued venues
    (:func:`queued_exits`) and the effective exit times (:func:`effective_exit_days`)."""

    arrays: VenueArrays
    settings: OptimizerSettings
    home_chain: str
    chains: tuple[str, ...]
    where: dict[str, int]
    chain_index: NDArray[np.int64]
    queued: NDArray[np.bool_]
    any_queued: bool
    exit_days: FloatArray


def venue_set_facts(
    venues: Sequence[Venue], settings: OptimizerSettings, home_chain: str
) -> VenueSetFacts:
    """The :class:`VenueSetFacts` of ``venues`` (the last one is kept: a replay's or a daemon's venue
    set rarely changes; its key is the full input, so the facts are those a fresh build gives)."""
    arrays = VenueArrays.of(venues)
    last = _LAST_SET.facts
    if (
        last is not None
        and last.arrays is arrays
        and last.settings is settings
        and last.home_chain == home_chain
    ):
        return last
    chains = model_chains(arrays.venues, home_chain)
    where = {c: j for j, c in enumerate(chains)}
    queued = queued_exits(arrays.venues, settings)
    facts = VenueSetFacts(
        arrays=arrays,
        settings=settings,
        home_chain=home_chain,
        chains=chains,
        where=where,
        chain_index=np.array([where[c] for c in arrays.chains], dtype=np.int64),
        queued=queued,
        any_queued=bool(queued.any()),
        exit_days=effective_exit_days(arrays.venues, settings, home_chain),
    )
    for a in (facts.chain_index, facts.queued, facts.exit_days):
        a.flags.writeable = False
    _LAST_SET.facts = facts
    return facts


class _LastSet:
    """The facts of the last venue set (one reference, read and replaced whole)."""

    facts: VenueSetFacts | None = None


_LAST_SET = _LastSet()


def in_flight_liquid_usd(
    days: float,
    in_flight_usd: float,
    known: Sequence[tuple[float, float]],
    longest_exit_days: float,
) -> float:
    """What of the capital already in flight lands within ``days``: each known part ``(days left, USD)``
    at its own horizon; the rest (origin unknown) only within the longest exit time of any venue."""
    known_usd = float(sum(u for _, u in known))
    out = float(sum(u for d, u in known if d <= days))
    if days >= longest_exit_days:
        out += max(float(in_flight_usd) - known_usd, 0.0)
    return out


@dataclass(frozen=True, slots=True)
class CycleData:
    venues: tuple[Venue, ...]
    snapshots: tuple[VenueSnapshot, ...]
    nav_usd: float
    investable: float  # (idle + positions in the problem) / NAV: what the problem may allocate
    locked_usd: float  # positions outside the problem (no snapshot ever seen): held as they are
    in_flight_usd: float
    x0: FloatArray  # current positions / NAV
    lb: FloatArray  # lowest reachable position / NAV (withdrawal bound)
    ub: FloatArray  # highest allowed position / NAV (all per-venue caps, frozen, capacity: max(capacity, x0))
    exit_liquidity: FloatArray  # / NAV
    cost_in: FloatArray  # one-off cost per USD moved in (fraction)
    cost_out: FloatArray
    pwl: PiecewiseLinear  # USD units
    # the model aims this share of every limit inside it: caps x (1 - buffer), floors x (1 + buffer)
    buffer: float = 0.0
    # idle (NAV units) reserved for the plan's own gas and fees: idle - reserve must meet the floors
    idle_reserve: float = 0.0
    # venues whose withdrawals go in flight (exit_days > instant_exit_days): they fund no deposit
    queued: NDArray[np.bool_] | None = None
    # the part of in_flight_usd whose landing time is known: (days left, USD)
    in_flight_known: tuple[tuple[float, float], ...] = ()
    # idle per chain (README §4c): the model's chains (home first, then the venues' chains, sorted),
    # each venue's index into them, idle on each (NAV units; idle on a chain with no venue is in the
    # total only), the floor per chain (NAV units, buffered) and the annualised cost of bridging one
    # NAV unit (fee + gas amortised over the reference move)
    chains: tuple[str, ...] = ()
    chain_index: NDArray[np.int64] | None = None
    idle_chain: FloatArray | None = None
    min_idle_chain: FloatArray | None = None
    bridge_rate: float = 0.0
    # the bridge legs' convex cost on segments (:func:`bridge_pieces`): widths (J,) NAV units, slopes
    # (2 (C-1), J) per NAV unit, not annualised; None: every leg at bridge_rate
    bridge_widths: FloatArray | None = None
    bridge_slopes: FloatArray | None = None
    # convex move cost (LP zaps, README §3a) of moving each venue from x0 to each breakpoint of its
    # fit, USD (n, P+1); the fit is of the income net of it, annualised (fit_pwl cost_usd); None: none
    impact_usd: FloatArray | None = None
    # venues priced by their pool's reserves (the zap's convex cost): never fitted with two chords
    zap: NDArray[np.bool_] | None = None
    # the zap pools of these snapshots (every venue, masked), for the plan's prices
    zap_pools: ZapPools | None = None
    # some venue in queued (False only when build_cycle knows none is)
    any_queued: bool = True
    # objective_pieces by holding horizon (the model's update and the segment LP both ask); not
    # copied by dataclasses.replace, so a changed cycle computes its own
    _pieces: dict[float, tuple[FloatArray, FloatArray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def linear_fit(self) -> NDArray[np.bool_]:
        """Venues the two chords around ``x0`` serve exactly: a linear curve and no convex move cost."""
        linear = self.pwl.linear()
        return linear if self.zap is None else linear & ~self.zap

    def queued_mask(self) -> NDArray[np.bool_]:
        return np.zeros(self.n, dtype=bool) if self.queued is None else self.queued

    def idle_after_usd(self, target_usd: FloatArray) -> float:
        """Idle after moving to ``target_usd`` (before gas and fees): ``investable - Σ target - Σ_queued
        (x0 - target)⁺``; a withdrawal from a queued venue is in flight, not idle."""
        out = self.investable * self.nav_usd - total(np.asarray(target_usd, dtype=float))
        if self.queued is None or not self.any_queued:
            return out  # (nothing queued: no flight to take off)
        x0_usd = self.x0 * self.nav_usd
        return out - total(np.maximum(x0_usd - target_usd, 0.0)[self.queued])

    def in_flight_liquid(self, days: float, exit_days: FloatArray) -> float:
        """Capital already in flight that lands within ``days`` (NAV units)."""
        longest = float(exit_days.max()) if len(exit_days) else 0.0
        return (
            in_flight_liquid_usd(days, self.in_flight_usd, self.in_flight_known, longest)
            / self.nav_usd
        )

    @property
    def n(self) -> int:
        return len(self.venues)

    def objective_pieces(self, settings: OptimizerSettings) -> tuple[FloatArray, FloatArray]:
        """Slopes and intercepts (NAV units) of ``g_i(x) = f̂_i(x) - c_in (x-x0)^+ - c_out (x0-x)^+``.

        The one-off costs are annualised by ``365 / holding_horizon_days``. Since ``x0`` is a
        breakpoint of ``f̂``, every piece lies on one side of it: right of ``x0`` a piece's slope
        falls by ``c_in`` (its intercept rises by ``c_in x0``), left of it the slope rises by
        ``c_out``. ``g`` stays concave, so it is still the minimum of its pieces.

        Read-only arrays, computed once per cycle and horizon.
        """
        hit = self._pieces.get(settings.holding_horizon_days)
        if hit is None:
            hit = self._objective_pieces(settings)
            for arr in hit:
                arr.flags.writeable = False
            self._pieces[settings.holding_horizon_days] = hit
        return hit

    def _objective_pieces(self, settings: OptimizerSettings) -> tuple[FloatArray, FloatArray]:
        annual = 365.0 / settings.holding_horizon_days
        slope = self.pwl.slope
        intercept = self.pwl.intercept / self.nav_usd
        left = self.pwl.breakpoints[:, :-1] / self.nav_usd
        x0 = self.x0[:, None]
        right_of_x0 = left >= x0 - 1e-12
        c_in = (annual * self.cost_in)[:, None]
        c_out = (annual * self.cost_out)[:, None]
        a = np.where(right_of_x0, slope - c_in, slope + c_out)
        b = np.where(right_of_x0, intercept + c_in * x0, intercept - c_out * x0)
        return a, b


def zap_peak_usd(
    snaps: Sequence[VenueSnapshot],
    zap: ZapPools,
    x0_usd: FloatArray,
    lb_usd: FloatArray,
    ub_usd: FloatArray,
    annual: float,
    settings: OptimizerSettings,
) -> FloatArray:
    """The upper bounds with each zap venue's cut where its income net of the annualised zap cost
    peaks (one grid step beyond, on a grid geometric from x0): past it more capital earns less
    net of what getting it in costs, so no optimum goes there, and the fit's pieces are spent
    where the net curve bends (a $25M domain over a $5M pool would put the first breakpoint past
    the optimum). Venues without a zap, and room at or below x0, are left as they are."""
    idx = np.nonzero(zap.mask & (ub_usd > x0_usd + 1.0))[0]
    if len(idx) == 0:
        return ub_usd
    g = np.concatenate([[0.0], np.geomspace(1e-5, 1.0, 96)])
    x0 = x0_usd[idx]
    grid = x0[:, None] + (ub_usd[idx] - x0)[:, None] * g[None, :]
    f = evaluate_curves([snaps[int(i)].curve for i in idx], grid, settings.emission_haircut)
    sub = ZapPools(np.ones(len(idx), dtype=bool), zap.tvl_others_usd[idx], zap.fee[idx])
    net = f - annual * sub.impact_usd(x0, grid)
    k = np.minimum(np.argmax(net, axis=1) + 1, len(g) - 1)
    out = ub_usd.copy()
    out[idx] = np.maximum(grid[np.arange(len(idx)), k], lb_usd[idx])
    return out


def snapshot_columns(snaps: Sequence[VenueSnapshot]) -> FloatArray:
    """The snapshots' numbers a cycle's bounds read, in one pass: ``(n, 4)`` floats, columns exit
    liquidity, capacity, TVL, frozen (1.0 / 0.0); a missing number is NaN (:func:`usable`)."""
    rows = [(s.exit_liquidity_usd, s.curve.capacity_usd, s.tvl_usd, s.frozen) for s in snaps]
    return np.array(rows, dtype=float).reshape(len(snaps), 4)


def upper_bounds_usd(
    snaps: Sequence[VenueSnapshot],
    x0_usd: FloatArray,
    limits: RiskLimits,
    nav_usd: float,
    buffer: float = 0.0,
    columns: FloatArray | None = None,
) -> dict[str, FloatArray]:
    """Every per-venue cap on the position, USD, by limit name (before the withdrawal floor).
    ``columns``: the snapshots' ``(capacity, TVL, frozen)`` as ``(n, 3)`` floats, if the caller read
    them already (:func:`snapshot_columns`).

    ``buffer``: the caps the plan aims at are ``(1 - buffer)`` of the limits (capacity included;
    a frozen venue's cap is its current position, which is no limit to drift past).

    Capacity (what the venue can take from us *now*: a route's instant-fill limit, a product quota, a
    supply cap) bounds growth only: ``x <= max((1 - buffer) capacity, x0)``. A position above a capacity
    that shrank is held as long as nothing else says otherwise (the income curve is flat beyond
    capacity, so the excess earns nothing, and leaving is a choice the objective makes on its costs,
    never a forced exit). The risk caps below keep forcing (README §4).
    """
    caps: dict[str, FloatArray] = {}
    n = len(snaps)
    keep = 1.0 - buffer
    cols = snapshot_columns(snaps)[:, 1:] if columns is None else columns
    caps["capacity"] = np.maximum(keep * usable(cols[:, 0], missing=0.0), x0_usd)
    caps["frozen"] = np.where(cols[:, 2] > 0, x0_usd, math.inf)
    if limits.max_venue_usd is not None:
        caps["venue_usd"] = np.full(n, keep * limits.max_venue_usd)
    # a share of NAV of 1 or more is no limit that drift could push us past: not buffered
    caps["venue_ratio"] = np.full(
        n, (keep if limits.max_venue_ratio < 1 else 1.0) * limits.max_venue_ratio * nav_usd
    )
    if limits.max_venue_tvl_ratio is not None:
        r = limits.max_venue_tvl_ratio
        tvl = usable(cols[:, 1])
        # x <= r (TVL + x)  <=>  x <= r TVL / (1 - r)   (TVL without us)
        caps["venue_tvl"] = np.full(n, math.inf) if r >= 1 else keep * r * tvl / (1.0 - r)

    by_state = state_caps_usd(snaps, x0_usd, limits)
    if by_state is not None:
        caps["venue_state"] = by_state
    return caps


def build_cycle(
    snaps: Sequence[VenueSnapshot],
    portfolio: PortfolioState,
    limits: RiskLimits,
    settings: OptimizerSettings,
    home_chain: str,
    linear: NDArray[np.bool_] | None = None,
    hint_usd: FloatArray | None = None,
    window_usd: tuple[FloatArray, FloatArray] | None = None,
    window_share: float = 0.5,
    buffer: float | None = None,
    in_flight_known: Sequence[tuple[float, float]] = (),
    fit_cache: FitCache | None = None,
) -> CycleData:
    """This cycle's bounds, costs and PWL fit; ``linear[i]`` fits venue ``i`` with two chords only.
    ``fit_cache``: refit only the venues whose fit inputs changed since the cached call (README §2).

    ``buffer`` (default ``settings.limit_buffer_ratio``): how far inside each limit the plan aims.
    """
    buffer = settings.limit_buffer_ratio if buffer is None else float(buffer)
    venues = tuple(s.venue for s in snaps)
    nav = float(portfolio.nav_usd)
    if not nav > 0:
        raise ValueError(f"portfolio NAV must be positive, got {nav}")
    facts = VenueArrays.of(venues)
    positions = portfolio.positions_usd
    get = positions.get
    x0_usd = np.maximum(np.array([get(i, 0.0) for i in facts.ids], dtype=float), 0.0)
    ids = set(facts.ids)
    locked = float(sum(max(float(u), 0.0) for k, u in positions.items() if k not in ids))
    investable_usd = float(portfolio.idle_usd) + total(x0_usd)
    columns = snapshot_columns(snaps)
    exit_liq = usable(columns[:, 0])
    lb_usd = np.maximum(x0_usd - np.minimum(x0_usd, exit_liq), 0.0)
    ub_usd = np.full(len(venues), math.inf)
    for cap in upper_bounds_usd(snaps, x0_usd, limits, nav, buffer, columns[:, 1:]).values():
        ub_usd = np.minimum(ub_usd, cap)
    ub_usd = np.minimum(ub_usd, max(investable_usd, 0.0))
    ub_usd = np.maximum(ub_usd, lb_usd)  # a position we cannot exit stays, caps or not
    budget = None if linear is None else np.where(linear, 0, settings.pieces - 1)
    # LP zaps (optimizer/costs.py): their convex cost, annualised, is folded into the fit
    zap = ZapPools.of(snaps, settings)
    any_zap = bool(zap.mask.any())
    annual = 365.0 / settings.holding_horizon_days
    if any_zap:
        budget = None if budget is None else np.where(zap.mask, settings.pieces - 1, budget)
        ub_usd = zap_peak_usd(snaps, zap, x0_usd, lb_usd, ub_usd, annual, settings)

    def zap_cost(grid: FloatArray) -> FloatArray:
        return annual * zap.impact_usd(x0_usd, grid)

    pwl = fit_pwl(
        [s.curve for s in snaps],
        lb_usd,
        ub_usd,
        x0_usd,
        settings.pieces,
        settings.samples,
        settings.emission_haircut,
        split_budget=budget,
        method=settings.pwl_method,
        hint_usd=hint_usd,
        window_usd=window_usd,
        window_share=window_share,
        cache=fit_cache,
        cost_usd=zap_cost if any_zap else None,
    )
    c_in, c_out = cost_rates(venues, settings, home_chain, nav, zap=zap.mask)
    c_out = c_out + depeg_discount(snaps, settings.depeg_discount_band_bps)
    impact = zap.impact_usd(x0_usd, pwl.breakpoints) if any_zap else None
    set_facts = venue_set_facts(venues, settings, home_chain)
    chains, where = set_facts.chains, set_facts.where
    # only Across routes carry fee quotes: the others need not be read
    routes = [snaps[i] for i in facts.across.tolist()]
    widths, slopes = bridge_pieces(
        bridge_fee_curve(routes, settings, home_chain), settings, chains, nav
    )
    idle_on = portfolio.idle_on(home_chain)
    total_by_chain = float(sum(idle_on.values()))
    if abs(total_by_chain - float(portfolio.idle_usd)) > 1e-6 * max(nav, 1.0):
        raise ValueError(
            f"portfolio idle_by_chain_usd sums to {total_by_chain:,.2f} USD but idle_usd is"
            f" {float(portfolio.idle_usd):,.2f} USD"
        )
    idle_chain = np.zeros(len(chains))
    for chain, usd in idle_on.items():
        if chain in where:
            idle_chain[where[chain]] += max(float(usd), 0.0)
    min_chain = np.zeros(len(chains))
    for chain, usd in limits.min_idle_by_chain_usd.items():
        if chain in where:
            min_chain[where[chain]] = float(usd) * (1.0 + buffer)
    return CycleData(
        venues=venues,
        snapshots=tuple(snaps),
        nav_usd=nav,
        investable=investable_usd / nav,
        locked_usd=locked,
        in_flight_usd=float(portfolio.in_flight_usd),
        x0=x0_usd / nav,
        lb=lb_usd / nav,
        ub=ub_usd / nav,
        exit_liquidity=exit_liq / nav,
        cost_in=c_in,
        cost_out=c_out,
        pwl=pwl,
        buffer=buffer,
        queued=set_facts.queued,
        any_queued=set_facts.any_queued,
        in_flight_known=tuple((float(d), float(u)) for d, u in in_flight_known),
        chains=chains,
        chain_index=set_facts.chain_index,
        idle_chain=idle_chain / nav,
        min_idle_chain=min_chain / nav,
        bridge_rate=bridge_rate(settings, nav),
        bridge_widths=widths,
        bridge_slopes=slopes,
        impact_usd=impact,
        zap=zap.mask if any_zap else None,
        zap_pools=zap,
    )
