"""Risk limits as small objects that compile into the cvxpy problem once and refresh each cycle.

The shape follows cvxportfolio's constraints: ``build(m)`` creates the limit's Parameters and
returns its constraints, written against the model's variables ``x`` (positions, NAV units) and
the expression ``idle = B - Σ x``; ``update(d)`` pours this cycle's numbers into the Parameters.
Only Parameter *values* change per cycle; the structure (which venues belong to which group,
which venues may count as liquid) is fixed by the venue set, and a new venue set rebuilds.

All limits here are linear in ``x`` with constant coefficients; every Parameter sits on a right
hand side, so each limit is DPP and cheap for cvxpy's parameter map. Caps are *effective* caps
``max(cap, forced)``, where ``forced`` is the exposure of what cannot be withdrawn this cycle:
a limit already broken by positions we cannot exit is not a fault of this plan, and the plan may
not make it worse (the independent checker applies the same rule).

The model aims inside the limits by ``CycleData.buffer`` (``limit_buffer_ratio``): caps are
``(1 - buffer)`` of the limit, floors ``(1 + buffer)`` plus ``CycleData.idle_reserve`` (idle set
aside for the plan's own gas and fees). The checker checks the hard limits (README §7a).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from core.types import Venue, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import UNKNOWN_RISK_SCORE, CycleData, effective_exit_days

FloatArray = NDArray[np.float64]


@dataclass
class ModelVars:
    """What limits write their constraints against."""

    x: cp.Variable  # positions / NAV
    idle: cp.Expression  # idle / NAV = B - Σ x - Σ_queued w: what is idle right after the plan
    venues: tuple[Venue, ...]
    settings: OptimizerSettings
    home_chain: str
    # withdrawals from queued venues (in flight, not idle): w >= x0 - x, w >= 0, for venues queued_idx
    flight: cp.Variable | None = None
    queued_idx: NDArray[np.int64] | None = None


class Limit(abc.ABC):
    name: str

    @abc.abstractmethod
    def build(self, m: ModelVars) -> list[cp.Constraint]:
        """Create Parameters, return constraints. Called once per venue set."""

    @abc.abstractmethod
    def update(self, d: CycleData) -> None:
        """Refresh Parameter values for this cycle."""


class VenueBox(Limit):
    """``lb_i <= x_i <= ub_i``.

    ``ub_i = min(max_venue_usd, max_venue_ratio NAV, r TVL_i/(1-r), max(capacity_i, x0_i), x0_i if frozen, B)``
    (capacity bounds growth only: a position above a capacity that shrank may stay)
    and ``lb_i = x0_i - min(x0_i, exit_liquidity_i)`` (withdrawals bounded by what the venue lets
    us take now), both computed in NumPy (:func:`optimizer.cycle.build_cycle`): one pair of rows
    per venue instead of one per cap, and no products of Parameters.
    """

    name = "venue_box"

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        n = len(m.venues)
        self.lb = cp.Parameter(n, nonneg=True, name="lb")
        self.ub = cp.Parameter(n, nonneg=True, name="ub")
        return [m.x >= self.lb, m.x <= self.ub]

    def update(self, d: CycleData) -> None:
        self.lb.value = d.lb
        self.ub.value = np.maximum(d.ub, d.lb)


class MinIdle(Limit):
    """``idle = B - Σ_i x_i >= min_idle_ratio (1 + buffer) + reserve`` (home-chain idle, NAV units).

    ``reserve`` is idle set aside for the plan's own gas and fees (README §7), 0 unless the first
    plan of the cycle could not pay for them above the floor.
    """

    name = "min_idle"

    def __init__(self, limits: RiskLimits):
        self.ratio = limits.min_idle_ratio

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        self.rhs = cp.Parameter(nonneg=True, name="min_idle")
        return [m.idle >= self.rhs]

    def update(self, d: CycleData) -> None:
        self.rhs.value = self.ratio * (1.0 + d.buffer) + d.idle_reserve


class GroupCaps(Limit):
    """``Σ_{i in g} x_i <= max(cap_g, Σ_{i in g} lb_i)`` for each configured group ``g`` of a family.

    Families: ``kind``, ``chain``, ``protocol`` (a venue belongs to one group each) and
    ``dependency`` (a venue counts against its own protocol *and* every dependency, so an stETH
    lending market counts against ``lido``). ``G`` is a constant 0/1 sparse matrix.
    """

    def __init__(self, family: str, caps: dict[str, float]):
        self.name = family
        self.family = family
        self.caps_cfg = {str(k): float(v) for k, v in caps.items()}

    @staticmethod
    def members(family: str, v: Venue) -> tuple[str, ...]:
        if family == "kind":
            return (str(v.kind),)
        if family == "chain":
            return (v.chain,)
        if family == "protocol":
            return (v.protocol,)
        return v.exposures

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        rows, cols = [], []
        self.keys = [
            k for k in self.caps_cfg if any(k in self.members(self.family, v) for v in m.venues)
        ]
        index = {k: r for r, k in enumerate(self.keys)}
        for i, v in enumerate(m.venues):
            for k in self.members(self.family, v):
                if k in index:
                    rows.append(index[k])
                    cols.append(i)
        if not self.keys:
            return []
        self.G = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(self.keys), len(m.venues))
        )
        self.cap = cp.Parameter(len(self.keys), nonneg=True, name=f"cap_{self.family}")
        self.cap_cfg = np.array([self.caps_cfg[k] for k in self.keys])
        return [self.G @ m.x <= self.cap]

    def update(self, d: CycleData) -> None:
        if self.keys:
            # a share of 1 is no limit to drift past
            keep = np.where(self.cap_cfg < 1.0, 1.0 - d.buffer, 1.0)
            self.cap.value = np.maximum(self.cap_cfg * keep, self.G @ d.lb)


class IlliquidCap(GroupCaps):
    """``Σ_{i: kind_i in K} x_i <= max(max_illiquid_ratio, Σ_{i in K} lb_i)``: the venues of the
    illiquid kinds ``K`` (``limits.illiquid_kinds``, default ``nft_rental``: NFTs take days to sell
    below floor) together. One group row, like a kind cap over several kinds."""

    def __init__(self, limits: RiskLimits):
        super().__init__("illiquid", {"illiquid": float(limits.max_illiquid_ratio or 0.0)})
        self.kinds = frozenset(str(k) for k in limits.illiquid_kinds)

    def members(self, family: str, v: Venue) -> tuple[str, ...]:  # type: ignore[override]
        # an instance method here (the parent's is static): membership depends on the config
        return ("illiquid",) if str(v.kind) in self.kinds else ()


def state_caps_usd(
    snaps: Sequence[VenueSnapshot], x0_usd: FloatArray, limits: RiskLimits
) -> FloatArray | None:
    """Per-venue caps of the limits on a venue's *state* (rules on each snapshot, folded into the
    per-venue upper bound ``ub`` rather than written as LP rows), ``None`` when none is set.

    For a venue of kind ``nft_rental``: ``floor_drawdown > max_nft_floor_drawdown`` (the floor
    oracle below its 7-day high by more than that): cap 0, sell (a stop-loss on the floor).

    For a venue of kind ``loop`` (its snapshot's ``state``):

    - ``health_factor < min_loop_health_factor`` or ``leverage > max_loop_leverage`` (our account
      now, e.g. after an stETH discount): cap 0, i.e. exit as far as the exit liquidity lets us
      (the box's ``max(ub, lb)`` keeps what cannot leave this cycle);
    - ``target_health_factor < min_loop_health_factor`` or ``target_leverage > max_loop_leverage``
      (the leverage new deposits would open at), or the collateral more than
      ``max_loop_collateral_discount`` below par (``steth_eth_price``): cap ``x0``, hold but never
      grow (a loop re-opened into a widening discount is the one that gets liquidated);
    - otherwise no cap. A loop snapshot without these state keys counts as unhealthy (cap 0): a
      loop whose risk cannot be read is not one to hold.
    """
    hf_min, lev_max = limits.min_loop_health_factor, limits.max_loop_leverage
    dd_max, disc_max = limits.max_nft_floor_drawdown, limits.max_loop_collateral_discount
    if hf_min is None and lev_max is None and dd_max is None and disc_max is None:
        return None
    caps = np.full(len(snaps), np.inf)
    for i, s in enumerate(snaps):
        st = s.state
        if str(s.venue.kind) == "nft_rental" and dd_max is not None:
            if not float(st.get("floor_drawdown", 1.0)) <= dd_max:
                caps[i] = 0.0
            continue
        if str(s.venue.kind) != "loop" or (hf_min is None and lev_max is None):
            continue
        hf = float(st.get("health_factor", 0.0))
        lev = float(st.get("leverage", np.inf))
        thf = float(st.get("target_health_factor", 0.0))
        tlev = float(st.get("target_leverage", np.inf))
        if (hf_min is not None and not hf >= hf_min) or (
            lev_max is not None and not lev <= lev_max
        ):
            caps[i] = 0.0
        elif (
            (hf_min is not None and not thf >= hf_min)
            or (lev_max is not None and not tlev <= lev_max)
            or (disc_max is not None and not float(st.get("steth_eth_price", 0.0)) >= 1 - disc_max)
        ):
            caps[i] = x0_usd[i]
    return caps


class RiskBudget(Limit):
    """``(Σ_i r_i x_i + 10 locked) / NAV <= max(R, forced)``: NAV-weighted risk score, idle scores 0.

    Positions whose venue was never seen (no snapshot) count at the worst score 10.
    """

    name = "risk_score"

    def __init__(self, limits: RiskLimits):
        self.max_score = float(limits.max_avg_risk_score)  # type: ignore[arg-type]

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        self.r = np.array([v.risk_score for v in m.venues], dtype=float)
        self.rhs = cp.Parameter(nonneg=True, name="risk_rhs")
        return [self.r @ m.x <= self.rhs]

    def update(self, d: CycleData) -> None:
        locked = UNKNOWN_RISK_SCORE * d.locked_usd / d.nav_usd
        self.rhs.value = max(self.max_score * (1.0 - d.buffer) - locked, float(self.r @ d.lb), 0.0)


class LiquidityFloors(Limit):
    """For each floor ``(D, φ)``: ``idle + Σ_{i queued, e_i <= D} w_i + Σ_{i: e_i <= D} min(x_i, L_i) >= φ - F_D``.

    ``w_i`` is what the plan withdraws from a queued venue (in flight, lands after ``e_i``), ``F_D`` the
    capital already in flight that lands within ``D``.

    ``e_i`` is the venue's exit time plus the bridge time off the home chain, ``L_i`` its exit
    liquidity now. ``min(x, L)`` is concave, so ``z_i <= x_i, z_i <= L_i`` with ``z`` in the sum
    is exact at the optimum; ``z`` exists only for venues liquid within the longest ``D``.
    """

    name = "liquidity"

    def __init__(self, limits: RiskLimits):
        self.floors = sorted(limits.liquidity_floors, key=lambda f: f.days)

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        exit_days = effective_exit_days(m.venues, m.settings, m.home_chain)
        self.exit_days = exit_days
        longest = max(f.days for f in self.floors)
        self.idx = np.nonzero(exit_days <= longest)[0]
        self.floor = cp.Parameter(len(self.floors), nonneg=True, name="liquidity_floor")
        # a withdrawal in flight lands within D days if its venue's exit time is <= D
        landing = None
        if m.flight is not None and m.queued_idx is not None:
            fmask = np.array(
                [(exit_days[m.queued_idx] <= f.days).astype(float) for f in self.floors]
            )
            if fmask.any():
                landing = sp.csr_matrix(fmask) @ m.flight
        if len(self.idx) == 0:
            if landing is None:
                return [m.idle >= self.floor[j] for j in range(len(self.floors))]
            return [landing + m.idle >= self.floor]
        mask = np.array([(exit_days[self.idx] <= f.days).astype(float) for f in self.floors])
        self.L = cp.Parameter(len(self.idx), nonneg=True, name="exit_liquidity")
        z = cp.Variable(len(self.idx), name="liquid")
        xs = m.x[self.idx]
        have = sp.csr_matrix(mask) @ z + m.idle
        if landing is not None:
            have = have + landing
        return [z <= xs, z <= self.L, have >= self.floor]

    def update(self, d: CycleData) -> None:
        # capital already in flight that lands within D counts toward the floor (README §4)
        self.floor.value = np.array(
            [
                max(
                    f.min_ratio * (1.0 + d.buffer)
                    + d.idle_reserve
                    - d.in_flight_liquid(f.days, self.exit_days),
                    0.0,
                )
                for f in self.floors
            ]
        )
        if len(self.idx):
            self.L.value = d.exit_liquidity[self.idx]


class Turnover(Limit):
    """``Σ_i |x_i - x0_i| <= T`` via ``u_i >= ±(x_i - x0_i)``."""

    name = "turnover"

    def __init__(self, limits: RiskLimits):
        self.max_ratio = float(limits.max_turnover_ratio)  # type: ignore[arg-type]

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        n = len(m.venues)
        self.x0 = cp.Parameter(n, nonneg=True, name="x0_turnover")
        u = cp.Variable(n, name="turnover")
        return [u >= m.x - self.x0, u >= self.x0 - m.x, cp.sum(u) <= self.max_ratio]

    def update(self, d: CycleData) -> None:
        self.x0.value = d.x0


def limits_from_config(limits: RiskLimits) -> list[Limit]:
    """The limit objects a config asks for (a key that is absent is no limit)."""
    out: list[Limit] = [VenueBox(), MinIdle(limits)]
    for family, caps in (
        ("kind", {str(k): v for k, v in limits.max_kind_ratio.items()}),
        ("chain", limits.max_chain_ratio),
        ("protocol", limits.max_protocol_ratio),
        ("dependency", limits.max_dependency_ratio),
    ):
        if caps:
            out.append(GroupCaps(family, dict(caps)))
    if limits.max_illiquid_ratio is not None:
        out.append(IlliquidCap(limits))
    if limits.max_avg_risk_score is not None:
        out.append(RiskBudget(limits))
    if limits.liquidity_floors:
        out.append(LiquidityFloors(limits))
    if limits.max_turnover_ratio is not None:
        out.append(Turnover(limits))
    return out
