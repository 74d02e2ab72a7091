"""Concrete yield curves and a seeded random market, for tests, benchmarks and property tests.

The adapters room builds the production curves from protocol math; these are deliberately
simple, closed-form and *provably* concave so that the optimizer can be tested against them:

- :class:`DilutionCurve` (lending-like): a fixed stream of interest ``I`` USD/year shared pro rata
  with the pool's other suppliers ``S``: ``f(x) = I x / (S + x)``. The marginal APR ``I S/(S+x)²``
  falls as we deposit: the rate impact of a lending pool whose borrowers do not react.
- :class:`KinkedLendingCurve`: the same, with the interest stream given by a kinked (Aave-style)
  borrow-rate model evaluated at the utilisation *after* our deposit:
  ``f(x) = (1-rf) D r(U) x/(S+x)`` with ``U = D/(S+x)``. Crossing the kink from above makes
  ``f`` locally convex (the production adapters take a concave envelope); here ``capacity`` is
  set where the second difference first turns positive, so the curve is concave on its domain.
- :class:`LPCurve`: fee share minus impermanent loss ``f(x) = F x/(T+x) - (σ²/8) x``, capped
  where the marginal yield reaches zero.
- :class:`FlatCurve`: staking / fixed products, ``f(x) = apr x`` up to a capacity.

Like the production curves, every curve here is flat beyond its ``capacity_usd``.
- :class:`TieredCurve`: a tiered fixed-rate product, concave with one kink.

Each class has a ``batch_income_usd`` classmethod so the PWL fit evaluates a whole market in one
call per class (see :func:`optimizer.pwl.evaluate_curves`), a compiled loop
(:mod:`optimizer.testing_kernel`) as the production Aave curves have, so ``bench solver`` pays
for its curves what the daemon pays for real ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from core.types import PortfolioState, Venue, VenueCosts, VenueKind, VenueSnapshot, YieldCurve
from optimizer.testing_kernel import dilution_rows, flat_rows, lp_rows

FloatArray = NDArray[np.float64]


def _c(x_usd: FloatArray) -> FloatArray:
    """``x_usd`` as the C-contiguous float64 ``(n, m)`` array the compiled batches take."""
    return np.ascontiguousarray(np.asarray(x_usd, dtype=float).reshape(len(x_usd), -1))


def _capped(x_usd: FloatArray, capacity_usd: float) -> FloatArray:
    """Every curve is flat beyond its capacity (``income(x) = income(min(x, capacity))``), as the
    production curves are (adapters/curves.py): a position held above a capacity that shrank earns
    nothing on the excess (README §4)."""
    return np.minimum(np.asarray(x_usd, dtype=float), capacity_usd)


class DilutionCurve(YieldCurve):
    """``f(x) = I x/(S+x) + (1-h) E x/(S+x)``: interest ``I`` and emissions ``E`` shared with supply ``S``."""

    def __init__(
        self,
        interest_usd: float,
        supply_usd: float,
        emission_usd: float = 0.0,
        capacity_usd: float = math.inf,
    ):
        self.interest_usd = float(interest_usd)
        self.supply_usd = float(supply_usd)
        self.emission_usd = float(emission_usd)
        self.capacity_usd = float(capacity_usd)

    def real_income_usd(self, x_usd: FloatArray) -> FloatArray:
        x = _capped(x_usd, self.capacity_usd)
        return self.interest_usd * x / (self.supply_usd + x)

    def emission_income_usd(self, x_usd: FloatArray) -> FloatArray:
        x = _capped(x_usd, self.capacity_usd)
        return self.emission_usd * x / (self.supply_usd + x)

    @classmethod
    def batch_income_usd(
        cls, curves: Sequence[DilutionCurve], x_usd: FloatArray, emission_haircut: float
    ) -> FloatArray:
        i = np.array([c.interest_usd for c in curves])
        e = np.array([c.emission_usd for c in curves])
        s = np.array([c.supply_usd for c in curves])
        cap = np.array([c.capacity_usd for c in curves])
        # (I + (1 - h) E) min(x, cap) / (S + min(x, cap)), compiled (testing_kernel: why)
        return dilution_rows(i + (1.0 - emission_haircut) * e, s, cap, _c(x_usd))


class KinkedLendingCurve(YieldCurve):
    """Supply income with a kinked borrow rate: ``f(x) = (1-rf) D r(D/(S+x)) x/(S+x)``.

    ``r(U) = base + slope1 U/U*`` below the kink ``U*``, ``base + slope1 + slope2 (U-U*)/(1-U*)``
    above it. ``capacity_usd`` is clipped to the first point where ``f`` stops being concave and
    non-decreasing (checked on a fine grid when the curve is built).
    """

    def __init__(
        self,
        supply_usd: float,
        borrow_usd: float,
        base: float = 0.0,
        slope1: float = 0.04,
        slope2: float = 0.6,
        u_opt: float = 0.9,
        reserve_factor: float = 0.1,
        capacity_usd: float = math.inf,
    ):
        self.supply_usd = float(supply_usd)
        self.borrow_usd = float(min(borrow_usd, supply_usd))
        self.base, self.slope1, self.slope2, self.u_opt = (
            float(base),
            float(slope1),
            float(slope2),
            float(u_opt),
        )
        self.reserve_factor = float(reserve_factor)
        limit = min(capacity_usd, 20.0 * self.supply_usd)
        grid = np.linspace(0.0, limit, 4001)
        f = self._income(grid)
        d = np.diff(f)
        bad = np.nonzero((np.diff(d) > 1e-9 * (1 + np.abs(f[-1]))) | (d[1:] < 0))[0]
        self.capacity_usd = (
            float(grid[bad[0]] if len(bad) else limit) if limit < math.inf else math.inf
        )

    def _rate(self, u: FloatArray) -> FloatArray:
        below = self.base + self.slope1 * u / self.u_opt
        above = self.base + self.slope1 + self.slope2 * (u - self.u_opt) / (1.0 - self.u_opt)
        return np.where(u <= self.u_opt, below, above)

    def real_income_usd(self, x_usd: FloatArray) -> FloatArray:
        return self._income(_capped(x_usd, self.capacity_usd))

    def _income(self, x_usd: FloatArray) -> FloatArray:
        x = np.asarray(x_usd, dtype=float)
        u = self.borrow_usd / (self.supply_usd + x)
        return (
            (1.0 - self.reserve_factor)
            * self.borrow_usd
            * self._rate(u)
            * x
            / (self.supply_usd + x)
        )


class LPCurve(YieldCurve):
    """``f(x) = F x/(T+x) - (σ²/8) x``: fees ``F`` shared with liquidity ``T``, minus impermanent loss."""

    def __init__(self, fees_usd: float, tvl_usd: float, sigma: float, emission_usd: float = 0.0):
        self.fees_usd, self.tvl_usd, self.sigma = float(fees_usd), float(tvl_usd), float(sigma)
        self.emission_usd = float(emission_usd)
        il = self.sigma**2 / 8.0
        total = self.fees_usd + self.emission_usd
        # marginal (F+E) T/(T+x)^2 - il = 0; with the haircut the real cap can only be lower, which
        # the optimizer sees anyway because the curve stays concave beyond it (just decreasing)
        self.capacity_usd = (
            max(math.sqrt(total * self.tvl_usd / il) - self.tvl_usd, 0.0) if il > 0 else math.inf
        )

    def real_income_usd(self, x_usd: FloatArray) -> FloatArray:
        x = _capped(x_usd, self.capacity_usd)
        return self.fees_usd * x / (self.tvl_usd + x) - self.sigma**2 / 8.0 * x

    def emission_income_usd(self, x_usd: FloatArray) -> FloatArray:
        x = _capped(x_usd, self.capacity_usd)
        return self.emission_usd * x / (self.tvl_usd + x)

    @classmethod
    def batch_income_usd(
        cls, curves: Sequence[LPCurve], x_usd: FloatArray, emission_haircut: float
    ) -> FloatArray:
        f = np.array([c.fees_usd for c in curves])
        e = np.array([c.emission_usd for c in curves])
        t = np.array([c.tvl_usd for c in curves])
        il = np.array([c.sigma**2 / 8.0 for c in curves])
        # flat beyond capacity, as real_income_usd (this batch path used to keep falling there);
        # (F + (1 - h) E) y / (T + y) - il y at y = min(x, cap), compiled (testing_kernel: why)
        cap = np.array([c.capacity_usd for c in curves])
        return lp_rows(f + (1.0 - emission_haircut) * e, t, il, cap, _c(x_usd))


class FlatCurve(YieldCurve):
    """``f(x) = apr x`` (staking, fixed-rate products): no rate impact up to ``capacity_usd``."""

    def __init__(self, apr: float, capacity_usd: float = math.inf, emission_apr: float = 0.0):
        self.apr_value, self.capacity_usd, self.emission_apr = (
            float(apr),
            float(capacity_usd),
            float(emission_apr),
        )

    def real_income_usd(self, x_usd: FloatArray) -> FloatArray:
        return self.apr_value * _capped(x_usd, self.capacity_usd)

    def emission_income_usd(self, x_usd: FloatArray) -> FloatArray:
        return self.emission_apr * _capped(x_usd, self.capacity_usd)

    @classmethod
    def batch_income_usd(
        cls, curves: Sequence[FlatCurve], x_usd: FloatArray, emission_haircut: float
    ) -> FloatArray:
        a = np.array([c.apr_value + (1.0 - emission_haircut) * c.emission_apr for c in curves])
        return flat_rows(a, np.array([c.capacity_usd for c in curves]), _c(x_usd))


class TieredCurve(YieldCurve):
    """``f(x) = apr1 min(x, X) + apr2 (x - X)^+`` with ``apr2 <= apr1``: a tiered fixed-rate product
    (the first ``X`` USD earn more); concave with a kink at ``X``."""

    def __init__(self, apr1: float, apr2: float, tier_usd: float, capacity_usd: float = math.inf):
        self.apr1, self.apr2, self.tier_usd = float(apr1), float(min(apr2, apr1)), float(tier_usd)
        self.capacity_usd = float(capacity_usd)

    def real_income_usd(self, x_usd: FloatArray) -> FloatArray:
        x = _capped(x_usd, self.capacity_usd)
        return self.apr1 * np.minimum(x, self.tier_usd) + self.apr2 * np.maximum(
            x - self.tier_usd, 0.0
        )


CHAINS = ("ethereum", "arbitrum", "base", "optimism", "polygon", "avalanche", "bsc", "gnosis")
PROTOCOLS = {
    VenueKind.LENDING: ("aave-v3", "compound-v3", "morpho", "spark", "euler"),
    VenueKind.STAKING: ("lido", "rocketpool", "coinbase-staking"),
    VenueKind.LP: ("uniswap-v2", "uniswap-v3", "curve", "balancer"),
    VenueKind.BRIDGE_ARB: ("across", "stargate"),
    VenueKind.FIXED: ("binance-earn", "pendle"),
}


@dataclass(frozen=True, slots=True)
class Market:
    snapshots: tuple[VenueSnapshot, ...]
    portfolio: PortfolioState


def random_market(
    n: int,
    seed: int,
    nav_usd: float = 10_000_000.0,
    invested_share: float = 0.0,
    observed_at: datetime | None = None,
    frozen_share: float = 0.0,
    lp_swap_fee: float | None = None,
) -> Market:
    """A seeded market of ``n`` venues sized so that our NAV moves rates (pool sizes ~ NAV/n .. 50 NAV/n).

    ``invested_share`` of NAV starts spread over random venues (the rest idle);
    ``frozen_share`` of the venues have frozen snapshots. ``lp_swap_fee``: LP pools carry it in
    their state (``swap_fee``), so their moves pay a zap's fee and price impact against the pool
    (optimizer/costs.py); None: LP moves pay their linear ``fee_bps`` (the markets of the tests).
    """
    rng = np.random.default_rng(seed)
    at = observed_at or datetime(2026, 1, 1, tzinfo=UTC)
    basic = [
        VenueKind.STAKING,
        VenueKind.LENDING,
        VenueKind.LP,
        VenueKind.BRIDGE_ARB,
        VenueKind.FIXED,
    ]
    kinds = rng.choice(basic, size=n, p=[0.2, 0.4, 0.2, 0.1, 0.1])
    snaps: list[VenueSnapshot] = []
    scale = nav_usd / max(n, 1)
    for i in range(n):
        kind = VenueKind(kinds[i])
        chain = CHAINS[0] if rng.uniform() < 0.5 else str(rng.choice(CHAINS[1:]))
        protocol = str(rng.choice(PROTOCOLS[kind]))
        deps: tuple[str, ...] = ()
        if kind in (VenueKind.LENDING, VenueKind.LP) and rng.uniform() < 0.25:
            deps = ("lido",)  # an stETH market or pool
        pool = scale * float(rng.lognormal(1.5, 1.0))
        emission = 0.0
        if kind == VenueKind.LENDING:
            apr0 = float(rng.uniform(0.01, 0.09))
            if rng.uniform() < 0.5:
                emission = pool * float(rng.uniform(0.0, 0.03))
            curve: YieldCurve = DilutionCurve(
                interest_usd=apr0 * pool, supply_usd=pool, emission_usd=emission
            )
            exit_days = 0.0
        elif kind == VenueKind.LP:
            fee_apr = float(rng.uniform(0.03, 0.2))
            curve = LPCurve(
                fees_usd=fee_apr * pool, tvl_usd=pool, sigma=float(rng.uniform(0.05, 0.5))
            )
            exit_days = 0.0
        elif kind == VenueKind.BRIDGE_ARB:
            curve = DilutionCurve(
                interest_usd=float(rng.uniform(0.02, 0.15)) * pool * 0.3, supply_usd=pool * 0.3
            )
            exit_days = 0.01
        elif kind == VenueKind.STAKING:
            curve = FlatCurve(apr=float(rng.uniform(0.025, 0.045)), capacity_usd=math.inf)
            exit_days = float(rng.choice([1.0, 3.0, 7.0, 21.0]))
        else:
            curve = FlatCurve(
                apr=float(rng.uniform(0.03, 0.08)), capacity_usd=pool * float(rng.uniform(0.2, 1.0))
            )
            exit_days = float(rng.choice([0.0, 1.0, 30.0]))
        venue = Venue(
            id=f"v{i:05d}-{kind.value}",
            kind=kind,
            protocol=protocol,
            chain=chain,
            asset="USDC",
            risk_score=float(np.round(rng.uniform(1, 8), 1)),
            dependencies=deps,
            exit_days=exit_days,
            costs=VenueCosts(
                deposit_usd=float(rng.uniform(0.5, 8)),
                withdraw_usd=float(rng.uniform(0.5, 8)),
                fee_bps=float(rng.choice([0.0, 0.0, 2.0, 15.0])),
            ),
        )
        marginal = float(np.asarray(curve.apr(np.array([1e-6]))).ravel()[0])
        snaps.append(
            VenueSnapshot(
                venue=venue,
                observed_at=at,
                curve=curve,
                real_apr=marginal,
                emission_apr=0.0,
                tvl_usd=pool,
                exit_liquidity_usd=pool * float(rng.uniform(0.05, 1.0)),
                frozen=bool(rng.uniform() < frozen_share),
                frozen_reason="test",
                state=(
                    {"swap_fee": float(lp_swap_fee)}
                    if lp_swap_fee is not None and kind == VenueKind.LP
                    else {}
                ),
            )
        )
    positions: dict[str, float] = {}
    if invested_share > 0 and n:
        picks = rng.choice(n, size=max(1, n // 3), replace=False)
        w = rng.dirichlet(np.ones(len(picks)))
        for j, wj in zip(picks, w, strict=True):
            positions[snaps[j].venue.id] = float(invested_share * nav_usd * wj)
    idle = nav_usd - sum(positions.values())
    return Market(
        snapshots=tuple(snaps), portfolio=PortfolioState(positions_usd=positions, idle_usd=idle)
    )


def make_snapshot(
    venue_id: str,
    curve: YieldCurve | None = None,
    *,
    apr: float = 0.05,
    kind: VenueKind = VenueKind.LENDING,
    protocol: str = "aave-v3",
    chain: str = "ethereum",
    risk_score: float = 2.0,
    dependencies: tuple[str, ...] = (),
    exit_days: float = 0.0,
    costs: VenueCosts | None = None,
    tvl_usd: float = 1e12,
    exit_liquidity_usd: float = 1e12,
    frozen: bool = False,
    observed_at: datetime | None = None,
) -> VenueSnapshot:
    """A snapshot with sensible defaults (flat ``apr`` curve, huge TVL and exit liquidity, no costs)."""
    curve = curve if curve is not None else FlatCurve(apr)
    venue = Venue(
        id=venue_id,
        kind=kind,
        protocol=protocol,
        chain=chain,
        asset="USDC",
        risk_score=risk_score,
        dependencies=dependencies,
        exit_days=exit_days,
        costs=costs or VenueCosts(),
    )
    marginal = float(np.asarray(curve.apr(np.array([1e-6]))).ravel()[0])
    return VenueSnapshot(
        venue=venue,
        observed_at=observed_at or datetime(2026, 1, 1, tzinfo=UTC),
        curve=curve,
        real_apr=marginal,
        emission_apr=0.0,
        tvl_usd=tvl_usd,
        exit_liquidity_usd=exit_liquidity_usd,
        frozen=frozen,
        frozen_reason="test" if frozen else "",
    )
