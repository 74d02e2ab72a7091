"""The seeded markets and limits the benchmarks run on: every limit family active
(:func:`all_limits`), the quality scenarios (stale and exit bounds, composite kinds) and the
rate drift of one cycle (:func:`drift`)."""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from core.types import PortfolioState, VenueKind, VenueSnapshot, YieldCurve
from optimizer.config import LiquidityFloor, OptimizerSettings, RiskLimits
from optimizer.engine import Optimizer
from optimizer.testing import (
    CHAINS,
    DilutionCurve,
    FlatCurve,
    LPCurve,
    Market,
    make_snapshot,
    random_market,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: the quality markets' LP pools pay a zap (Uniswap v2 fee) on every move (README §3a)
LP_SWAP_FEE = 0.003


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def all_limits(market: Market) -> RiskLimits:
    """Every limit family active, with caps that bind on the random markets."""
    snaps = market.snapshots
    nav = market.portfolio.nav_usd
    protocols = sorted({s.venue.protocol for s in snaps})
    return RiskLimits(
        min_idle_ratio=0.02,
        max_venue_usd=0.05 * nav,
        max_venue_ratio=0.04,
        max_venue_tvl_ratio=0.2,
        max_kind_ratio={
            VenueKind.STAKING: 0.3,
            VenueKind.LENDING: 0.5,
            VenueKind.LP: 0.2,
            VenueKind.BRIDGE_ARB: 0.1,
            VenueKind.FIXED: 0.2,
        },
        max_chain_ratio={c: (0.6 if c == CHAINS[0] else 0.15) for c in CHAINS},
        max_protocol_ratio={p: 0.25 for p in protocols},
        max_dependency_ratio={"lido": 0.3},
        max_avg_risk_score=4.0,
        liquidity_floors=(
            LiquidityFloor(days=1, min_ratio=0.3),
            LiquidityFloor(days=7, min_ratio=0.5),
        ),
        max_turnover_ratio=0.5,
    )


def drift(
    snaps: Sequence[VenueSnapshot],
    rng: np.random.Generator,
    at: datetime,
    vol: float = 0.03,
    share: float = 1.0,
) -> tuple[VenueSnapshot, ...]:
    """The next cycle's market: every rate moves by a lognormal factor (sd ``vol``); with ``share`` < 1
    only that share of the venues (drawn each cycle), the others' feeds say what they said."""
    out = []
    factors = rng.lognormal(0.0, vol, len(snaps))
    if share < 1.0:
        factors = np.where(rng.random(len(snaps)) < share, factors, 1.0)
    for s, k in zip(snaps, factors, strict=True):
        c = s.curve
        nc: YieldCurve
        if isinstance(c, DilutionCurve):
            nc = DilutionCurve(c.interest_usd * k, c.supply_usd, c.emission_usd * k, c.capacity_usd)
        elif isinstance(c, LPCurve):
            nc = LPCurve(c.fees_usd * k, c.tvl_usd, c.sigma, c.emission_usd * k)
        elif isinstance(c, FlatCurve):
            nc = FlatCurve(c.apr_value * k, c.capacity_usd, c.emission_apr * k)
        else:
            nc = c
        out.append(
            VenueSnapshot(
                venue=s.venue,
                observed_at=at,
                curve=nc,
                real_apr=s.real_apr * k,
                emission_apr=s.emission_apr * k,
                tvl_usd=s.tvl_usd,
                exit_liquidity_usd=s.exit_liquidity_usd,
                frozen=s.frozen,
                frozen_reason=s.frozen_reason,
            )
        )
    return tuple(out)


def _stale(market: Market, limits: RiskLimits, seed: int, exit_share: float = 1.0) -> Market:
    """The same venues, held in the allocation that was optimal before rates moved (30 % lognormal
    drift), i.e. a start that respects the limits, as the daemon's previous cycle would leave it.
    Then frozen venues keep their flag and exit liquidity is cut to ``exit_share`` of the position."""
    rng = np.random.default_rng(seed + 1000)
    thawed = [dataclasses.replace(s, frozen=False) for s in market.snapshots]
    before = drift(thawed, rng, T0, vol=0.3)
    free = OptimizerSettings(
        min_trade_usd=0.0,
        min_benefit_cost_ratio=0.0,
        hysteresis_apr=0.0,
        limit_buffer_ratio=0.0,
        cost_reserve_passes=0,
    )  # the scenarios stay what they were before README §7a
    d = Optimizer(limits.model_copy(update={"max_turnover_ratio": None}), free, CHAINS[0]).decide(
        before, market.portfolio, T0
    )
    assert d.allocation is not None, d.reason
    positions = {k: v for k, v in d.allocation.target_usd.items() if v > 1.0}
    snaps = tuple(
        dataclasses.replace(
            s,
            exit_liquidity_usd=min(
                s.exit_liquidity_usd, exit_share * positions.get(s.venue.id, 0.0)
            ),
        )
        if exit_share < 1.0
        else s
        for s in market.snapshots
    )
    return Market(
        snaps,
        PortfolioState(
            positions_usd=positions, idle_usd=market.portfolio.nav_usd - sum(positions.values())
        ),
    )


def quality_scenarios(seed: int) -> list[tuple[str, Market, RiskLimits]]:
    out = []
    m = random_market(30, seed, nav_usd=10_000_000.0, lp_swap_fee=LP_SWAP_FEE)
    out.append(("loose", m, RiskLimits(min_idle_ratio=0.02, max_venue_ratio=0.5)))
    m = random_market(40, seed + 1, nav_usd=10_000_000.0, lp_swap_fee=LP_SWAP_FEE)
    out.append(("binding_limits", m, all_limits(m).model_copy(update={"max_turnover_ratio": None})))
    m = random_market(40, seed + 2, nav_usd=10_000_000.0, lp_swap_fee=LP_SWAP_FEE)
    limits = all_limits(m).model_copy(update={"max_turnover_ratio": 0.3})
    out.append(("rebalance_with_turnover", _stale(m, limits, seed + 2), limits))
    m = random_market(25, seed + 3, nav_usd=50_000_000.0, lp_swap_fee=LP_SWAP_FEE)
    out.append(
        (
            "heavy_rate_impact",
            m,
            RiskLimits(
                min_idle_ratio=0.02,
                max_venue_ratio=0.3,
                liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.4),),
            ),
        )
    )
    m = random_market(30, seed + 4, nav_usd=10_000_000.0, frozen_share=0.2, lp_swap_fee=LP_SWAP_FEE)
    limits = all_limits(m)
    out.append(("frozen_and_exit_bounds", _stale(m, limits, seed + 4, exit_share=0.3), limits))
    m = composite_market(seed + 5, nav_usd=10_000_000.0)
    out.append(("composite_kinds", m, composite_limits(m)))
    return out


def composite_market(seed: int, nav_usd: float) -> Market:
    """A random market plus venues of the composite kinds, as the optimizer sees them (curves,
    kinds, dependencies, exit times and state; the protocol math is the adapters'): three loops
    (one whose account health factor has fallen below the limit), two hedged LPs, two NFT
    rentals that take days to sell."""
    base = random_market(24, seed, nav_usd=nav_usd, lp_swap_fee=LP_SWAP_FEE)
    rng = np.random.default_rng(seed)
    extra: list[VenueSnapshot] = []
    for i, hf in enumerate((1.08, 1.10, 1.03)):
        apr = float(rng.uniform(0.06, 0.12))
        snap = make_snapshot(
            f"loop-{i}",
            DilutionCurve(apr * 3 * nav_usd, 2 * nav_usd),  # our debt raises the borrow rate
            kind=VenueKind.LOOP,
            protocol="aave-v3",
            dependencies=("lido",),
            risk_score=4.0,
        )
        # E-mode LT 95 %: leverage = HF / (HF - 0.95) at par
        state = {
            "health_factor": hf,
            "leverage": hf / (hf - 0.95),
            "target_health_factor": 1.08,
            "target_leverage": 1.08 / (1.08 - 0.95),
            "steth_eth_price": 1.0,
        }
        extra.append(dataclasses.replace(snap, state=state))
    for i in range(2):
        extra.append(
            make_snapshot(
                f"hedged-lp-{i}",
                DilutionCurve(float(rng.uniform(0.08, 0.16)) * 2 * nav_usd, 2 * nav_usd),
                kind=VenueKind.HEDGED_LP,
                protocol="uniswap-v2",
                dependencies=("binance-futures",),
                risk_score=4.0,
            )
        )
    for i in range(2):
        snap = make_snapshot(
            f"nft-{i}",
            DilutionCurve(float(rng.uniform(0.10, 0.15)) * 0.2 * nav_usd, 0.2 * nav_usd),
            kind=VenueKind.NFT_RENTAL,
            protocol="renft",
            exit_days=float(rng.uniform(2.0, 6.0)),
            risk_score=7.0,
        )
        extra.append(dataclasses.replace(snap, state={"floor_drawdown": 0.05}))
    held = {"loop-2": 0.05 * nav_usd}  # the unhealthy loop is held and must go
    return Market(
        (*base.snapshots, *extra),
        PortfolioState(positions_usd=held, idle_usd=nav_usd - sum(held.values())),
    )


def composite_limits(market: Market) -> RiskLimits:
    """Every limit family plus the composite kinds': kind caps, the illiquid cap, the loop rules."""
    limits = all_limits(market)
    return limits.model_copy(
        update={
            "max_turnover_ratio": None,
            "max_kind_ratio": {
                **limits.max_kind_ratio,
                VenueKind.LOOP: 0.15,
                VenueKind.HEDGED_LP: 0.15,
                VenueKind.NFT_RENTAL: 0.05,
            },
            "max_illiquid_ratio": 0.04,
            "min_loop_health_factor": 1.04,
            "max_loop_leverage": 12.0,
            "max_nft_floor_drawdown": 0.2,
        }
    )
