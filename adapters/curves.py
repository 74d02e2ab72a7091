"""Yield curves by venue kind, built with ``protocols/`` math from a venue's state *without us*.

Every curve answers "expected annual USD income if we held ``x`` USD there in total", so the
pool amounts it is built from must exclude our current position (the adapters subtract it).
All curves are concave and non-decreasing on ``[0, capacity_usd]`` and flat beyond it
(``income(x) = income(min(x, capacity_usd))``), real yield and emission yield kept apart.

Where the protocol's exact income is not concave (a lending pool whose utilization our deposit
pushes back through the kink: the rate's slope drops from slope2 to slope1, so income bends up;
a bridge route's fixed gas per round) the curve is the exact income's *least concave majorant*
(its concave envelope): exact wherever the exact income is itself on the envelope, a straight
chord across the bend. Where the exact income falls with size (past the point where our deposit
dilutes the rate faster than it adds principal), ``capacity_usd`` stops at the income's peak:
beyond it, more capital earns less, so the venue will not take it from us.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.types import YieldCurve
from protocols import aave, compound, uniswap

SECONDS_PER_YEAR = 31_536_000
_GRID_POINTS = 160
_REL_TOL = 1e-12

Vector = NDArray[np.float64]


def _as_array(x: ArrayLike) -> Vector:
    return np.asarray(x, dtype=np.float64)


def diluted_income_usd(x_usd: Vector, annual_pool_usd: float, others_usd: float) -> Vector:
    """Our share of a pool-wide annual flow when we hold ``x`` next to ``others`` USD:
    ``flow * x / (others + x)`` (fees of an LP, emissions split pro rata to supply). Concave and
    increasing in ``x``; 0 at ``x = 0``."""
    x = np.maximum(_as_array(x_usd), 0.0)
    total = others_usd + x
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0.0, x / np.where(total > 0.0, total, 1.0), 0.0)
    return annual_pool_usd * share


@dataclass(frozen=True, slots=True)
class _Bridge:
    x_a: float
    x_b: float
    f_a: float
    f_b: float


class EnvelopeCurve(YieldCurve):
    """A curve whose real income is the concave envelope of an exact, vectorised protocol function.

    ``exact_real(x)`` gives annual USD income for positions ``x`` (0 at 0). The envelope is found
    on a grid over ``[0, domain_usd]`` (geometric, plus the ``breakpoints`` where the exact
    function bends), then: ``capacity_usd`` = min(``cap_usd``, the income's peak); between
    consecutive grid points that both lie on the upper hull the curve is the exact function; across
    a hull edge that skips grid points it is that edge's chord. ``exact_emission`` must itself be
    concave and non-decreasing (pro-rata emissions are).
    """

    def __init__(
        self,
        exact_real: Callable[[Vector], Vector],
        *,
        domain_usd: float,
        cap_usd: float = math.inf,
        breakpoints: tuple[float, ...] = (),
        exact_emission: Callable[[Vector], Vector] | None = None,
    ) -> None:
        self._exact_real = exact_real
        self._exact_emission = exact_emission
        self._bridges: tuple[_Bridge, ...] = ()
        top = min(domain_usd, cap_usd)
        if not math.isfinite(top):
            raise ValueError("EnvelopeCurve needs a finite domain_usd or cap_usd")
        self.capacity_usd = 0.0
        if top <= 0.0:
            return
        # geometric near 0 (where positions usually are), linear across the range (so no step is
        # coarse anywhere), plus the bends
        grid = np.concatenate(
            (
                [0.0],
                np.geomspace(top * 1e-9, top, _GRID_POINTS),
                np.linspace(0.0, top, _GRID_POINTS // 2),
            )
        )
        # around each bend, points closing in geometrically, so a corner far smaller than the
        # curvature across one coarse step is still seen (and bridged) by the hull
        extra = [
            b * (1.0 + sign * 10.0**-k)
            for b in breakpoints
            if 0.0 < b < top and math.isfinite(b)
            for k in range(1, 8)
            for sign in (-1.0, 1.0)
        ]
        extra += [b for b in breakpoints if 0.0 < b < top and math.isfinite(b)]
        grid = np.unique(np.concatenate((grid, [e for e in extra if 0.0 < e < top])))
        values = np.asarray(exact_real(grid), dtype=np.float64)
        if float(np.max(values)) <= 0.0:
            return  # no size earns anything: the venue takes nothing from us
        # the income's peak: refine every local maximum of the grid (a narrow peak between two
        # coarse points can beat a point that looks higher on the grid), then keep the best
        interior = np.flatnonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])) + 1
        cells = [(float(grid[i - 1]), float(grid[i + 1])) for i in interior]
        if values[-1] >= values[-2]:  # rising into the last point: the peak may sit just before it
            cells.append((float(grid[-2]), float(grid[-1])))
        best_x, best_f = float(grid[-1]), float(values[-1])
        for lo, hi in cells:
            x = _argmax_in(exact_real, lo, hi, rounds=4)
            fx = float(np.asarray(exact_real(np.asarray([x])), dtype=np.float64)[0])
            if fx > best_f:
                best_x, best_f = x, fx
        if best_x < float(grid[-1]):  # income falls past its peak: capacity stops there
            grid = np.concatenate((grid[grid < best_x], [best_x]))
            values = np.asarray(exact_real(grid), dtype=np.float64)
        self.capacity_usd = float(grid[-1])
        self._bridges = tuple(_hull_bridges(exact_real, grid, values))

    def _real(self, x: Vector) -> Vector:
        xc = np.clip(x, 0.0, self.capacity_usd)
        y = np.asarray(self._exact_real(xc), dtype=np.float64)
        for b in self._bridges:
            inside = (xc > b.x_a) & (xc < b.x_b)
            if np.any(inside):
                t = (xc[inside] - b.x_a) / (b.x_b - b.x_a)
                y[inside] = b.f_a + t * (b.f_b - b.f_a)
        return y

    def real_income_usd(self, x_usd: Vector) -> Vector:
        x = _as_array(x_usd)
        return self._real(np.atleast_1d(x)).reshape(x.shape)

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        x = _as_array(x_usd)
        if self._exact_emission is None:
            return np.zeros_like(x)
        return np.asarray(
            self._exact_emission(np.clip(x, 0.0, self.capacity_usd)), dtype=np.float64
        )

    def exact_real_income_usd(self, x_usd: ArrayLike) -> Vector:
        """The protocol's own income at ``x`` (no envelope, no capacity clip); for tests and audits."""
        return np.asarray(self._exact_real(_as_array(x_usd)), dtype=np.float64)

    @property
    def bridges(self) -> tuple[tuple[float, float], ...]:
        """The ``(x_a, x_b)`` spans where the curve is a chord over a non-concave bend."""
        return tuple((b.x_a, b.x_b) for b in self._bridges)


def _argmax_in(
    f: Callable[[Vector], Vector], lo: float, hi: float, rounds: int = 6, points: int = 33
) -> float:
    """The maximiser of a unimodal ``f`` on ``[lo, hi]`` by repeated vectorised grid search: each
    round evaluates ``points`` values in one call and keeps the two cells around the best, so the
    bracket shrinks ``(points - 1) / 2`` fold a round (6 rounds: ~1e-7 of the starting width)."""
    for _ in range(rounds):
        xs = np.linspace(lo, hi, points)
        values = np.asarray(f(xs), dtype=np.float64)
        i = int(np.argmax(values))
        lo, hi = float(xs[max(i - 1, 0)]), float(xs[min(i + 1, points - 1)])
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            break
    return (lo + hi) / 2.0


def _hull_bridges(f: Callable[[Vector], Vector], xs: Vector, fs: Vector) -> list[_Bridge]:
    """Edges of the upper concave hull of ``(xs, fs)`` that skip points lying strictly below them."""
    slopes = np.diff(fs) / np.diff(xs)
    scale = max(float(np.max(np.abs(fs))), 1e-300)
    if np.all(np.diff(slopes) * np.diff(xs)[1:] <= _REL_TOL * scale):
        return []  # already concave on the grid: the fast path for most pools
    hull: list[int] = []
    for i in range(len(xs)):
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (xs[a] - xs[o]) * (fs[i] - fs[o]) - (fs[a] - fs[o]) * (xs[i] - xs[o])
            if cross >= 0.0:  # a lies on or below the chord o-i
                hull.pop()
            else:
                break
        hull.append(i)
    bridges = []
    for a, b in itertools.pairwise(hull):
        if b - a > 1:
            chord = fs[a] + (xs[a + 1 : b] - xs[a]) * (fs[b] - fs[a]) / (xs[b] - xs[a])
            if np.max(chord - fs[a + 1 : b]) > _REL_TOL * scale:
                bridges.append((a, b))
    return [_refine_bridge(f, xs, a, b) for a, b in bridges]


def _refine_bridge(f: Callable[[Vector], Vector], xs: Vector, a: int, b: int) -> _Bridge:
    """Move a hull edge's ends from grid points to the true tangent points of the common tangent,
    so the chord meets the exact curve with equal slopes (no convex corner at the junction).

    With the right end ``x_b`` fixed, the left end minimises the chord slope
    ``(f(x_b) - f(x)) / (x_b - x)`` (every point left of it lies below the line); with the left end
    fixed, the right end maximises ``(f(x) - f(x_a)) / (x - x_a)``. A few alternations converge.
    """

    def fx(v: float) -> float:
        return float(np.asarray(f(np.asarray([v])), dtype=np.float64)[0])

    lo_a, hi_a = float(xs[max(a - 1, 0)]), float(xs[a + 1])
    lo_b, hi_b = float(xs[b - 1]), float(xs[min(b + 1, len(xs) - 1)])
    xa, xb = float(xs[a]), float(xs[b])
    fa, fb = fx(xa), fx(xb)
    for _ in range(3):
        top_a = min(hi_a, xb * (1 - 1e-12))

        def left_end(v: Vector, xb: float = xb, fb: float = fb) -> Vector:
            return -(fb - np.asarray(f(v))) / (xb - v)

        xa = _argmax_in(left_end, lo_a, top_a)
        fa = fx(xa)
        bottom_b = max(lo_b, xa * (1 + 1e-12) + 1e-12)

        def right_end(v: Vector, xa: float = xa, fa: float = fa) -> Vector:
            return (np.asarray(f(v)) - fa) / (v - xa)

        xb = _argmax_in(right_end, bottom_b, hi_b)
        fb = fx(xb)
    return _Bridge(xa, xb, fa, fb)


# --- exact income functions (frozen dataclasses, not closures, so snapshots pickle) -------------------


@dataclass(frozen=True, slots=True)
class DilutedFlow:
    """``flow * x / (others + x)``: a pool-wide annual flow split pro rata."""

    flow_usd_per_year: float
    others_usd: float

    def __call__(self, x: Vector) -> Vector:
        return diluted_income_usd(x, self.flow_usd_per_year, self.others_usd)


@dataclass(frozen=True, slots=True)
class AaveSupplyIncome:
    """``x * aave.supply_apr_after_deposit(strategy, debt, liquidity, x)``."""

    strategy: aave.AaveRateStrategy
    debt_usd: float
    liquidity_usd: float

    def __call__(self, x: Vector) -> Vector:
        apr = aave.supply_apr_after_deposit(self.strategy, self.debt_usd, self.liquidity_usd, x)
        return x * np.asarray(apr, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CometSupplyIncome:
    """``x * compound.comet_supply_apr_after_deposit(curve, borrow, supply, x)``."""

    curve: compound.CometCurve
    borrow_usd: float
    supply_usd: float

    def __call__(self, x: Vector) -> Vector:
        apr = compound.comet_supply_apr_after_deposit(
            self.curve, self.borrow_usd, self.supply_usd, x
        )
        return x * np.asarray(apr, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class BridgeArbIncome:
    """``N * sum_j w_j max(0, q_j (s_j (1 - q_j/2C) - fee) - gas) / n``, ``q_j = min(x, q*_j)``,
    ``q*_j = C (1 - fee/s_j)``: the mean over ``n`` gaps a round may meet, of which the paying ones
    are ``s_j`` with multiplicity ``w_j``; vectorised over positions
    (``protocols.across.arb_income_per_year_usd`` is the scalar original for one gap)."""

    spreads: tuple[float, ...]
    weights: tuple[float, ...]
    samples: float
    fee_pct: float
    gas_usd: float
    capacity_usd: float
    round_trips_per_year: float

    def __call__(self, x: Vector) -> Vector:
        c = self.capacity_usd
        s = np.asarray(self.spreads, dtype=np.float64)
        xs = np.asarray(x, dtype=np.float64)
        if s.size == 0:
            return np.zeros_like(xs)
        # the arbitrageur stops where the marginal gap meets the fee
        q_star = c * (1.0 - self.fee_pct / s)
        q = np.minimum(np.maximum(xs, 0.0)[..., None], q_star)
        profit = q * (s * (1.0 - q / (2.0 * c)) - self.fee_pct) - self.gas_usd
        paid = np.where(q > 0.0, np.maximum(profit, 0.0), 0.0)
        return self.round_trips_per_year * (paid @ np.asarray(self.weights)) / self.samples


def _paying_gaps(
    spreads: tuple[float, ...], fee_pct: float, bins: int = 24
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The gaps above the fee, compressed to at most ``bins`` equal-count bins at their means.

    Below each ``q*`` a round's profit is linear in the gap, so a bin's mean gap earns its members'
    mean income there; gaps at or below the fee earn nothing and only count in the denominator."""
    paying = np.sort(np.asarray([v for v in spreads if v > fee_pct], dtype=np.float64))
    if paying.size <= bins:
        return tuple(paying.tolist()), (1.0,) * int(paying.size)
    groups = np.array_split(paying, bins)
    return tuple(float(g.mean()) for g in groups), tuple(float(g.size) for g in groups)


def _zero(x: Vector) -> Vector:
    return np.zeros_like(np.asarray(x, dtype=np.float64))


# --- lending -----------------------------------------------------------------------------------------


def aave_lending_curve(
    strategy: aave.AaveRateStrategy,
    total_debt_usd: float,
    available_liquidity_usd: float,
    *,
    supply_room_usd: float = math.inf,
    emission_usd_per_year: float = 0.0,
) -> EnvelopeCurve:
    """Aave v3 supply: ``real(x) = x * supply_apr_after_deposit(strategy, D, L, x)`` where ``D`` is
    the debt and ``L`` the available liquidity *without us*: our deposit adds liquidity, lowers
    ``U = D / (L + D + x)`` and with it the rate ``R_s = R_b(U) U (1 - RF)`` every supplier earns
    (protocol_math.md §1.1). Emissions: ``E * x / (D + L + x)``, the incentive APR
    ``emission * P_reward * SPY / (supply * P_asset)`` diluted by our share of supply (§1.4).
    ``supply_room_usd`` is what the supply cap leaves for us (total supply cap minus others).
    """
    debt, liquidity = float(total_debt_usd), float(available_liquidity_usd)
    others = debt + liquidity
    kink = debt / strategy.optimal_usage_ratio - others if debt > 0 else 0.0
    return EnvelopeCurve(
        AaveSupplyIncome(strategy, debt, liquidity),
        domain_usd=max(8.0 * others, 1.0),
        cap_usd=supply_room_usd,
        breakpoints=(kink,),
        exact_emission=DilutedFlow(emission_usd_per_year, others)
        if emission_usd_per_year > 0
        else None,
    )


def comet_lending_curve(
    curve: compound.CometCurve,
    total_borrow_usd: float,
    total_supply_usd: float,
    *,
    supply_room_usd: float = math.inf,
    emission_usd_per_year: float = 0.0,
) -> EnvelopeCurve:
    """Compound v3 supply: ``real(x) = x * supplyRate(B / (S + x))`` with ``B``, ``S`` the borrow
    and supply *without us* (``comet_supply_apr_after_deposit``, protocol_math.md §2.2).
    Emissions: ``COMP/s * SPY * P_COMP * x / (S + x)`` (``baseTrackingSupplySpeed`` split pro rata)."""
    borrow, supply = float(total_borrow_usd), float(total_supply_usd)
    kink = borrow / curve.supply_kink - supply if borrow > 0 else 0.0
    return EnvelopeCurve(
        CometSupplyIncome(curve, borrow, supply),
        domain_usd=max(8.0 * supply, 1.0),
        cap_usd=supply_room_usd,
        breakpoints=(kink,),
        exact_emission=DilutedFlow(emission_usd_per_year, supply)
        if emission_usd_per_year > 0
        else None,
    )


# --- flat: staking and fixed products ----------------------------------------------------------------


class FlatCurve(YieldCurve):
    """``real(x) = apr * min(x, capacity)``: a rate that does not depend on our size (Lido's
    staking APR net of the protocol fee; a custodial product's flat APR up to its quota; an LST
    whose rewards are pro rata to stake). ``emission_apr`` likewise, kept apart."""

    def __init__(
        self, apr: float, capacity_usd: float = math.inf, emission_apr: float = 0.0
    ) -> None:
        if not math.isfinite(apr) or not math.isfinite(emission_apr):
            raise ValueError(f"apr and emission_apr must be finite, got {apr!r}, {emission_apr!r}")
        self.apr_value = max(apr, 0.0)
        self.emission_apr = max(emission_apr, 0.0)
        self.capacity_usd = capacity_usd if self.apr_value > 0 or self.emission_apr > 0 else 0.0

    def real_income_usd(self, x_usd: Vector) -> Vector:
        return self.apr_value * np.clip(_as_array(x_usd), 0.0, self.capacity_usd)

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        return self.emission_apr * np.clip(_as_array(x_usd), 0.0, self.capacity_usd)


# --- LP -------------------------------------------------------------------------------------------------


class LpCurve(YieldCurve):
    """Constant-product LP: fees diluted by our share of TVL minus expected impermanent loss.

    ``real(x) = fee_income_after_deposit(x, volume, TVL_others, fee) - sigma^2/8 * x``: fee APR
    ``volume * fee * 365 / TVL`` (DefiLlama ``apyBase``) with our share ``x / (TVL + x)``
    (``uniswap.fee_income_after_deposit_usd``), minus the LVR / expected-IL rate ``sigma^2 / 8``
    (``uniswap.lvr_apr``, Milionis et al. 2022). Emissions ``E * x / (TVL + x)``.
    Concave; it peaks where the diluted marginal fee APR ``A T / (T + x)^2`` equals ``sigma^2/8``,
    at ``x* = sqrt(A T / il) - T``, which is the capacity (0 when fees never beat the loss).
    """

    def __init__(
        self,
        volume_usd_1d: float,
        fee: float,
        tvl_others_usd: float,
        sigma_annual: float,
        emission_usd_per_year: float = 0.0,
    ) -> None:
        self.volume_usd_1d = volume_usd_1d
        self.fee = fee
        self.tvl_others_usd = max(tvl_others_usd, 1.0)  # an empty pool: we would be all of it
        self.il_apr = uniswap.lvr_apr(sigma_annual)
        self.emission_usd_per_year = emission_usd_per_year
        annual_fees = volume_usd_1d * fee * uniswap.DAYS_PER_YEAR
        t = self.tvl_others_usd
        if self.il_apr <= 0.0:
            self.capacity_usd = math.inf if annual_fees > 0 else 0.0
        elif annual_fees / t <= self.il_apr:
            self.capacity_usd = 0.0
        else:
            self.capacity_usd = math.sqrt(annual_fees * t / self.il_apr) - t
        self._annual_fees = annual_fees

    def exact_real_income_usd(self, x_usd: ArrayLike) -> Vector:
        x = np.maximum(_as_array(x_usd), 0.0)
        return diluted_income_usd(x, self._annual_fees, self.tvl_others_usd) - self.il_apr * x

    def real_income_usd(self, x_usd: Vector) -> Vector:
        return self.exact_real_income_usd(np.clip(_as_array(x_usd), 0.0, self.capacity_usd))

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(_as_array(x_usd), 0.0, self.capacity_usd)
        return diluted_income_usd(x, self.emission_usd_per_year, self.tvl_others_usd)


class DilutedCurve(YieldCurve):
    """A pool-wide annual flow split pro rata (DefiLlama lending rows, where the borrow curve is
    unknown: borrowers' interest stays what it is, our deposit dilutes everyone's share):
    ``real(x) = I * x / (T + x)`` with ``I`` the pool's annual interest (its APR times its TVL as
    the feed shows it, our position included) and ``T`` the TVL without us; emissions likewise.
    Concave, increasing; at ``x`` = our current position it pays the feed's APR."""

    def __init__(
        self,
        real_usd_per_year: float,
        tvl_others_usd: float,
        emission_usd_per_year: float = 0.0,
        capacity_usd: float = math.inf,
    ) -> None:
        self.tvl_others_usd = max(tvl_others_usd, 1.0)
        self.real_usd_per_year = max(real_usd_per_year, 0.0)
        self.emission_usd_per_year = max(emission_usd_per_year, 0.0)
        self.capacity_usd = capacity_usd

    def real_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(_as_array(x_usd), 0.0, self.capacity_usd)
        return diluted_income_usd(x, self.real_usd_per_year, self.tvl_others_usd)

    def emission_income_usd(self, x_usd: Vector) -> Vector:
        x = np.clip(_as_array(x_usd), 0.0, self.capacity_usd)
        return diluted_income_usd(x, self.emission_usd_per_year, self.tvl_others_usd)


# --- bridge arbitrage -----------------------------------------------------------------------------------


def bridge_arb_curve(
    spread: float | tuple[float, ...],
    fee_pct: float,
    gas_usd: float,
    route_capacity_usd: float,
    round_trips_per_year: float,
) -> EnvelopeCurve:
    """Bridge arbitrage inventory: ``real(x) = N * mean_j max(0, q_j (s_j (1 - q_j / 2C) - fee) - gas)``
    with ``q_j = min(x, q*_j)`` (``across.arb_income_per_year_usd``): the price gap ``s`` shrinks
    linearly as the trade closes it and the trade stops at ``q* = C (1 - fee/s)``; fees ``fee``
    (LP + capital, ``totalRelayFee`` minus gas) are proportional, ``gas`` is per round, ``C`` is the
    route's instant limit and ``N`` the round trips per year.

    ``spread`` is one gap, or the gaps the rounds are expected to meet (e.g. the recent hourly
    history): a gap mean-reverts within hours while a position is held for weeks, so the expected
    income is the mean over the gap's distribution, not the income at today's gap. Its concave
    envelope bridges, with a chord, the start where a round does not yet pay its gas.

    ``real`` is the vectorised form of ``protocols.across.arb_income_per_year_usd`` (a scalar
    function; the grid and refinements evaluate thousands of points per curve). The property
    tests check the two agree at sampled points."""
    spreads = (
        (float(spread),) if isinstance(spread, (int, float)) else tuple(float(v) for v in spread)
    )
    c = float(route_capacity_usd)
    paying, weights = _paying_gaps(spreads, fee_pct)
    if c <= 0.0 or not paying or round_trips_per_year <= 0.0:
        return EnvelopeCurve(_zero, domain_usd=0.0)
    real = BridgeArbIncome(
        paying, weights, float(len(spreads)), fee_pct, gas_usd, c, round_trips_per_year
    )
    bends = set()
    for s in paying:
        bends.add(c * (1.0 - fee_pct / s))  # where this gap's round stops growing
        # where its round's profit crosses zero: q^2 s/2C - q (s - fee) + gas = 0
        a, b = s / (2.0 * c), -(s - fee_pct)
        disc = b * b - 4.0 * a * gas_usd
        if disc > 0:
            bends.add((-b - math.sqrt(disc)) / (2.0 * a))
    return EnvelopeCurve(
        real, domain_usd=c, breakpoints=tuple(sorted(v for v in bends if 0.0 < v < c))
    )
