"""One cycle's numbers, in NumPy, ready to be poured into the Parameters of the cvxpy problem.

Everything the solver sees is in *NAV units* (USD / NAV) so that the problem is scaled the same
whether the vault holds $10k or $1bn; APRs are dimensionless and stay as they are. The venue-set
facts, cost rates and per-venue caps it reads are in :mod:`optimizer.cycle_facts` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.types import PortfolioState, Venue, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.costs import ConvexCost, ZapPools, bridge_fee_curve, depeg_discount
from optimizer.cycle_facts import (
    SMALL_SET,
    VenueSetFacts,
    bounds_small_usd,
    bridge_pieces,
    bridge_rate,
    cost_rates,
    effective_exit_days,
    in_flight_liquid_usd,
    model_chains,
    queued_exits,
    snapshot_columns,
    upper_bounds_usd,
    usable,
    venue_set_facts,
    zap_peak_usd,
)
from optimizer.pwl import FitCache, PiecewiseLinear, fit_pwl
from optimizer.sums import total
from optimizer.venue_arrays import VenueArrays

__all__ = [
    "UNKNOWN_RISK_SCORE",
    "CycleData",
    "VenueSetFacts",
    "bridge_pieces",
    "bridge_rate",
    "build_cycle",
    "cost_rates",
    "effective_exit_days",
    "in_flight_liquid_usd",
    "model_chains",
    "queued_exits",
    "snapshot_columns",
    "upper_bounds_usd",
    "usable",
    "venue_set_facts",
    "zap_peak_usd",
]

FloatArray = NDArray[np.float64]

#: risk score charged for a position whose venue the optimizer has never seen a snapshot of
UNKNOWN_RISK_SCORE = 10.0


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
    # the bridge leg's fee curve of these snapshots (:func:`optimizer.costs.bridge_fee_curve`), for
    # the plan's prices; None: the plan builds its own
    bridge_fee: ConvexCost | None = None
    # some venue in queued (False only when build_cycle knows none is)
    any_queued: bool = True
    # the rate forecast's level shift per venue, APR (optimizer/forecast.py, README §3b): the objective
    # values venue i at f_i(x) + rate_shift_i x; None: spot (no shift)
    rate_shift: FloatArray | None = None
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

        With a rate forecast (``rate_shift`` ``s_i``, README §3b) every piece's slope of venue ``i``
        rises by ``s_i``: ``f̂_i(x) + s_i x`` is the PWL of ``f_i(x) + s_i x``, a level shift that keeps
        the curve's shape, its concavity and its fit error.

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
        if self.rate_shift is not None:
            slope = slope + self.rate_shift[:, None]
        intercept = self.pwl.intercept / self.nav_usd
        left = self.pwl.breakpoints[:, :-1] / self.nav_usd
        x0 = self.x0[:, None]
        right_of_x0 = left >= x0 - 1e-12
        c_in = (annual * self.cost_in)[:, None]
        c_out = (annual * self.cost_out)[:, None]
        a = np.where(right_of_x0, slope - c_in, slope + c_out)
        b = np.where(right_of_x0, intercept + c_in * x0, intercept - c_out * x0)
        return a, b


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
    rate_shift: FloatArray | None = None,
) -> CycleData:
    """This cycle's bounds, costs and PWL fit; ``linear[i]`` fits venue ``i`` with two chords only.
    ``fit_cache``: refit only the venues whose fit inputs changed since the cached call (README §2).

    ``buffer`` (default ``settings.limit_buffer_ratio``): how far inside each limit the plan aims.
    ``rate_shift``: the rate forecast's level shift per venue (APR, :mod:`optimizer.forecast`).
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
    small = (
        bounds_small_usd(
            snaps, x0_usd.tolist(), columns.tolist(), limits, nav, buffer, investable_usd
        )
        if len(snaps) < SMALL_SET
        else None
    )
    if small is not None:  # a handful of venues: the same arithmetic on Python floats
        exit_liq, lb_usd, ub_usd = (np.array(a, dtype=float) for a in small)
    else:
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
    fee_curve = bridge_fee_curve(routes, settings, home_chain)
    widths, slopes = bridge_pieces(fee_curve, settings, chains, nav)
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
        bridge_fee=fee_curve,
        rate_shift=None if rate_shift is None else np.asarray(rate_shift, dtype=float),
    )
