"""What a cycle reads before it fits anything: the venue set's facts that no snapshot changes
(chains, queued venues, exit times: :class:`VenueSetFacts`, kept while the set stays), the one-off
cost rates of moving in, out and across chains, the capital in flight that lands within a horizon,
and every per-venue cap on the position (:func:`upper_bounds_usd`), in NumPy. :mod:`optimizer.cycle`
puts them together with the PWL fit into one :class:`optimizer.cycle.CycleData`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.types import Venue, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.costs import ConvexCost, ZapPools, leg_gas_usd
from optimizer.pwl import evaluate_curves
from optimizer.state_rules import state_caps_usd
from optimizer.venue_arrays import VenueArrays

FloatArray = NDArray[np.float64]

_UNBOUNDED = np.array([np.inf])  # the bridge legs' last piece

#: below this many venues, per-venue arithmetic of one decide runs on Python floats (the same IEEE
#: operations as NumPy's, without its ~1-5 µs a call: most of a 4-venue decide's cost was such calls)
SMALL_SET = 8


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
    widths = np.concatenate((curve.widths_usd() / nav_usd, _UNBOUNDED))  # (np.append: 4x the cost)
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


def _plain(v: float) -> bool:
    """A float the small path takes as NumPy does: not NaN, not ``-0.0`` (``np.minimum`` and
    ``min`` may keep different zeros)."""
    return v == v and not (v == 0.0 and math.copysign(1.0, v) < 0.0)


def bounds_small_usd(
    snaps: Sequence[VenueSnapshot],
    x0_usd: list[float],
    columns: list[list[float]],
    limits: RiskLimits,
    nav_usd: float,
    buffer: float,
    investable_usd: float,
) -> tuple[list[float], list[float], list[float]] | None:
    """``(exit liquidity, lb, ub)`` USD per venue, the arithmetic of :func:`build_cycle`'s bounds
    (:func:`usable`, the withdrawal floor, the minimum of :func:`upper_bounds_usd`'s caps in their
    order, the investable cap, ``max(ub, lb)``) on Python floats for a handful of venues: the same
    IEEE operations, so the same numbers; ``None`` (use the NumPy path) for an input where ``min``
    and ``np.minimum`` could part (a NaN, a ``-0.0``, an infinite position, a cap that is NaN).
    ``columns``: :func:`snapshot_columns` as lists."""
    keep = 1.0 - buffer
    if not keep > 0.0 or not all(_plain(x) and math.isfinite(x) for x in x0_usd):
        return None
    if not all(_plain(v) or v != v for row in columns for v in row):
        return None  # (a NaN feed value is fine: usable() maps it; a -0.0 is not)
    by_state = state_caps_usd(snaps, np.array(x0_usd, dtype=float), limits)
    state = by_state.tolist() if by_state is not None else None
    ratio_cap = (keep if limits.max_venue_ratio < 1 else 1.0) * limits.max_venue_ratio * nav_usd
    usd_cap = keep * limits.max_venue_usd if limits.max_venue_usd is not None else None
    r = limits.max_venue_tvl_ratio
    top = max(investable_usd, 0.0)
    exit_out: list[float] = []
    lb_out: list[float] = []
    ub_out: list[float] = []
    for i, (x0, (liq, capacity, tvl, frozen)) in enumerate(zip(x0_usd, columns, strict=True)):
        liq = 0.0 if liq != liq else (liq if liq > 0.0 else 0.0)  # usable()
        capacity = 0.0 if capacity != capacity else (capacity if capacity > 0.0 else 0.0)
        lb = x0 - min(x0, liq)
        lb = lb if lb > 0.0 else 0.0
        caps = [max(keep * capacity, x0), x0 if frozen > 0 else math.inf]
        if usd_cap is not None:
            caps.append(usd_cap)
        caps.append(ratio_cap)
        if r is not None:
            t = 0.0 if tvl != tvl else (tvl if tvl > 0.0 else 0.0)
            caps.append(math.inf if r >= 1 else keep * r * t / (1.0 - r))
        if state is not None:
            caps.append(state[i])
        ub = math.inf
        for c in caps:
            if not _plain(c):
                return None
            ub = c if c < ub else ub
        ub = top if top < ub else ub
        ub = lb if lb > ub else ub
        exit_out.append(liq)
        lb_out.append(lb)
        ub_out.append(ub)
    return exit_out, lb_out, ub_out
