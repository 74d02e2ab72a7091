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
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from core.types import Venue
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import UNKNOWN_RISK_SCORE, CycleData, effective_exit_days

FloatArray = NDArray[np.float64]


def put(param: cp.Parameter, value: object) -> None:
    """Set a Parameter's value without cvxpy's validation (shape, sign: ~5 ms a cycle at 1k venues,
    more than the simplex). The segment simplex reads the values as they are; before the cvxpy
    path solves, :func:`validate_parameters` runs cvxpy's own checks on every value once."""
    param.save_value(np.asarray(value, dtype=float).reshape(param.shape))


def validate_parameters(problem: cp.Problem) -> None:
    """cvxpy's validation of every Parameter value set by :func:`put` (raises ``ValueError``
    naming the Parameter's shape or sign, as ``Parameter.value = ...`` would)."""
    for p in problem.parameters():
        if p.value is not None:
            p.value = p.value


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
        put(self.lb, d.lb)
        put(self.ub, np.maximum(d.ub, d.lb))


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
        put(self.rhs, self.ratio * (1.0 + d.buffer) + d.idle_reserve)


class ChainIdle(Limit):
    """Idle per chain (README §4c): what a plan spends on a chain is there or bridged there.

    Chains ``c`` (home first), ``I_c`` idle on ``c``, ``m_c`` its floor (``min_idle_by_chain_usd``),
    bridge legs ``o_c`` (home -> c) and ``r_c`` (c -> home), ``≥ 0``, for every chain but home:

        idle_after_c = I_c + Σ_{i on c} (x0_i - x_i) - Σ_{i on c, queued} w_i + inflow_c >= m_c
        inflow_c = o_c - r_c  (c ≠ home),    inflow_home = Σ_c (r_c - o_c)

    i.e. ``G_c x + G_c^Q w - T (o - r) <= I_c + G_c x0 - m_c`` (``G`` the 0/1 chain membership, ``T``
    the routing through home; the right-hand side is a Parameter). Every leg ``l`` costs a convex
    piecewise-linear ``κ_l(a) = max_j (s_lj a + b_lj)`` (the Across fee curve plus the leg's gas
    over the reference move, :func:`optimizer.cycle.bridge_pieces`; one piece at ``bridge_fee_bps``
    under ``cost_model: linear``), annualised, held by an epigraph variable ``u_l >= s_lj a_l +
    b_lj`` (``j < BRIDGE_PIECES``; fewer pieces repeat the last), so the optimum bridges only what a
    chain lacks. Bridges go through home, as the executor's legs do. The
    total floor (:class:`MinIdle`) is unchanged; idle on a chain with no venue counts there only.
    The plan's own gas is paid from home idle: the cost reserve (``CycleData.idle_reserve``) is
    also kept on the home chain.
    Inactive (no rows, no variables) when every venue is on the home chain and no chain has a floor.
    """

    name = "chain_idle"

    def __init__(self, limits: RiskLimits):
        self.floors_cfg = dict(limits.min_idle_by_chain_usd)
        self.active = False

    def build(self, m: ModelVars) -> list[cp.Constraint]:
        from optimizer.cycle import model_chains

        self.chains = model_chains(m.venues, m.home_chain)
        C, n = len(self.chains), len(m.venues)
        self.active = C > 1 or any(c in self.floors_cfg for c in self.chains)
        if not self.active:
            return []
        where = {c: j for j, c in enumerate(self.chains)}
        cols = np.array([where[v.chain] for v in m.venues], dtype=np.int64)
        self.G = sp.csr_matrix((np.ones(n), (cols, np.arange(n))), shape=(C, n))
        self.avail = cp.Parameter(C, name="chain_idle_available")
        lhs = self.G @ m.x
        if m.flight is not None and m.queued_idx is not None and len(m.queued_idx):
            lhs = lhs + self.G[:, m.queued_idx] @ m.flight
        self.legs = C - 1
        self.annual = 365.0 / m.settings.holding_horizon_days
        self.rate = cp.Parameter(nonneg=True, name="bridge_rate")
        if self.legs == 0:
            self.out = self.back = None
            self.cost: cp.Expression = cp.Constant(0.0)
            return [lhs <= self.avail]
        T = np.zeros((C, C - 1))
        T[0, :] = -1.0
        T[np.arange(1, C), np.arange(C - 1)] = 1.0
        self.out = cp.Variable(C - 1, nonneg=True, name="bridge_out")
        self.back = cp.Variable(C - 1, nonneg=True, name="bridge_back")
        L, J = 2 * (C - 1), BRIDGE_PIECES
        self.leg_slope = cp.Parameter((L, J), nonneg=True, name="bridge_slope")
        self.leg_intercept = cp.Parameter((L, J), name="bridge_intercept")
        self.leg_cost = cp.Variable(L, name="bridge_cost")
        both = cp.reshape(cp.hstack([self.out, self.back]), (L, 1), order="C")
        epigraph = cp.multiply(self.leg_slope, both) + self.leg_intercept <= cp.reshape(
            self.leg_cost, (L, 1), order="C"
        )
        self.cost = cp.sum(self.leg_cost)
        return [lhs - T @ (self.out - self.back) <= self.avail, epigraph]

    def update(self, d: CycleData) -> None:
        if not self.active:
            return
        assert d.idle_chain is not None and d.min_idle_chain is not None
        avail = d.idle_chain + self.G @ d.x0 - d.min_idle_chain
        avail[0] -= d.idle_reserve  # the plan's own gas is paid from home idle (README §7a)
        put(self.avail, avail)
        put(self.rate, self.annual * d.bridge_rate)
        if self.legs:
            slope, intercept = leg_lines(d, self.legs)
            put(self.leg_slope, self.annual * slope)
            put(self.leg_intercept, self.annual * intercept)


#: affine pieces of a bridge leg's cost the cvxpy model holds (a fee curve with more is cut to
#: its first BRIDGE_PIECES - 1 knots, the last piece extended)
BRIDGE_PIECES = 8


def leg_pieces(d: CycleData, legs: int) -> tuple[FloatArray, FloatArray]:
    """Widths ``(J,)`` and slopes ``(2 legs, J)`` of the legs' cost, NAV units, ``J <= BRIDGE_PIECES``
    (the cycle's :func:`optimizer.cycle.bridge_pieces`, else one piece at ``bridge_rate``)."""
    if d.bridge_widths is None or d.bridge_slopes is None:
        return np.array([np.inf]), np.full((2 * legs, 1), float(d.bridge_rate))
    w, s = d.bridge_widths, d.bridge_slopes
    if len(w) > BRIDGE_PIECES:
        w = np.append(w[: BRIDGE_PIECES - 1], np.inf)
        s = np.concatenate([s[:, : BRIDGE_PIECES - 1], s[:, -1:]], axis=1)
    return w, s


def leg_lines(d: CycleData, legs: int) -> tuple[FloatArray, FloatArray]:
    """The legs' convex cost as ``BRIDGE_PIECES`` lines ``s_j a + b_j`` (NAV units, not annualised):
    ``b_j = Σ_{i<j} (s_i - s_j) w_i`` (the cost at knot ``j`` minus ``s_j`` times the knot), so
    the maximum of the lines is the piecewise-linear cost; fewer pieces repeat the last line."""
    w, s = leg_pieces(d, legs)
    J = s.shape[1]
    wf = np.where(np.isfinite(w), w, 0.0)
    b = np.zeros_like(s)
    for j in range(1, J):
        b[:, j] = ((s[:, :j] - s[:, j : j + 1]) * wf[None, :j]).sum(axis=1)
    pad = BRIDGE_PIECES - J
    if pad:
        s = np.concatenate([s, np.repeat(s[:, -1:], pad, axis=1)], axis=1)
        b = np.concatenate([b, np.repeat(b[:, -1:], pad, axis=1)], axis=1)
    return s, b


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
            put(self.cap, np.maximum(self.cap_cfg * keep, self.G @ d.lb))


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
        put(self.rhs, max(self.max_score * (1.0 - d.buffer) - locked, float(self.r @ d.lb), 0.0))


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
        floor = [
            max(
                f.min_ratio * (1.0 + d.buffer)
                + d.idle_reserve
                - d.in_flight_liquid(f.days, self.exit_days),
                0.0,
            )
            for f in self.floors
        ]
        put(self.floor, np.array(floor))
        if len(self.idx):
            put(self.L, d.exit_liquidity[self.idx])


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
        put(self.x0, d.x0)  # validated before a cvxpy solve (validate_parameters)


def limits_from_config(limits: RiskLimits) -> list[Limit]:
    """The limit objects a config asks for (a key that is absent is no limit)."""
    out: list[Limit] = [VenueBox(), MinIdle(limits), ChainIdle(limits)]
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
