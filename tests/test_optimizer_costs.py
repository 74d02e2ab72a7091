"""Size-dependent move costs (optimizer/costs.py, README §3a): the curves are convex, the Across
fee curve the adapter samples matches the simulated market's own bridge fills at sizes between
the samples, an LP zap's cost is the x*y=k swap of half the amount (and the market's fill), the
model's pieces stay concave with the costs folded in, and the checker prices a plan on its own."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import numpy as np
import pytest

from adapters import FeedPoller, FeedSettings
from core.config import VenueConfig
from core.types import PortfolioState, VenueCosts, VenueKind
from mockfeeds.generate import daemon_venues, generate_market
from mockfeeds.market import Market
from mockfeeds.server import start, stop
from optimizer import Optimizer
from optimizer.checker import CheckContext
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.costs import ConvexCost, ZapPools, bridge_fee_curve
from optimizer.cycle import build_cycle
from optimizer.testing import LPCurve, make_snapshot
from protocols import uniswap

FAST = {
    "timeout_seconds": 2.0,
    "retry": {"attempts": 1, "backoff_base_seconds": 0.0, "backoff_max_seconds": 0.0},
}
ROUTE = "across-usdc-ethereum-arbitrum"
LP = "uniswap-v2-usdc-weth-ethereum"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_convex_cost_is_the_lower_hull_of_its_samples() -> None:
    # a sample above the chord of its neighbours is dropped; the slopes never fall
    c = ConvexCost.from_samples([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 4.0, 8.0])
    assert np.all(np.diff(c.slopes()) >= 0)
    assert c.amounts_usd.tolist() == [0.0, 1.0, 3.0, 4.0]
    assert float(c(2.0)) == pytest.approx(2.5)  # on the chord 1 -> 3
    assert float(c(5.0)) == pytest.approx(12.0)  # beyond the last sample at its slope
    assert float(c(0.0)) == 0.0


@pytest.mark.parametrize("exit", [False, True])
def test_zap_cost_is_convex_and_is_the_constant_product_swap(exit: bool) -> None:
    tvl, fee = 4_000_000.0, 0.003
    a = np.linspace(0.0, 1_500_000.0, 301)
    cost = uniswap.zap_cost_usd(a, np.full_like(a, tvl), np.full_like(a, fee), exit=exit)
    assert cost[0] == 0.0
    assert np.all(np.diff(cost, 2) >= -1e-6)  # convex
    # x*y=k: half the amount goes in (fee taken from the input), k holds with the fee-adjusted input
    for amount in (10_000.0, 400_000.0, 1_200_000.0):
        r = (tvl - amount) / 2 if exit else tvl / 2
        half = amount / 2
        out = half - float(
            uniswap.zap_cost_usd(np.array([amount]), np.array([tvl]), np.array([fee]), exit=exit)[0]
        )
        assert (r + half * (1 - fee)) * (r - out) == pytest.approx(r * r, rel=1e-12)
        scalar = (
            uniswap.single_sided_exit_cost_fraction(amount, tvl, fee)
            if exit
            else uniswap.single_sided_entry_cost_fraction(amount, tvl, fee)
        )
        assert (half - out) == pytest.approx(scalar * amount, rel=1e-12)


def test_objective_pieces_stay_concave_with_zap_costs() -> None:
    nav = 50_000_000.0
    snap = make_snapshot(
        "lp", LPCurve(fees_usd=0.15 * 5e6, tvl_usd=5e6, sigma=0.1), kind=VenueKind.LP, tvl_usd=5e6
    )
    snap = dataclasses.replace(snap, state={"swap_fee": 0.003})
    other = make_snapshot("lend", apr=0.04)
    portfolio = PortfolioState(positions_usd={"lp": 1_000_000.0}, idle_usd=nav - 1_000_000.0)
    limits, settings = RiskLimits(), OptimizerSettings()
    cycle = build_cycle([snap, other], portfolio, limits, settings, "ethereum")
    assert cycle.impact_usd is not None and cycle.zap is not None and cycle.zap[0]
    a, _ = cycle.objective_pieces(settings)
    width = np.diff(cycle.pwl.breakpoints[0])
    assert np.all(np.diff(a[0][width > 0]) <= 1e-12)  # concave
    linear = build_cycle(
        [snap, other], portfolio, limits, OptimizerSettings(cost_model="linear"), "ethereum"
    )
    assert linear.impact_usd is None
    # the zap's cost at each breakpoint is the pool's: x*y=k against TVL without us plus our position
    zap = ZapPools.of([snap], settings)
    bp = cycle.pwl.breakpoints[:1]
    np.testing.assert_allclose(cycle.impact_usd[:1], zap.impact_usd(np.array([1e6]), bp))


def test_the_checker_prices_a_plan_on_its_own() -> None:
    snap = make_snapshot(
        "lp",
        LPCurve(fees_usd=0.15 * 5e6, tvl_usd=5e6, sigma=0.1),
        kind=VenueKind.LP,
        tvl_usd=5e6,
        costs=VenueCosts(deposit_usd=3.0, withdraw_usd=3.0, fee_bps=15.0),
    )
    snap = dataclasses.replace(snap, state={"swap_fee": 0.003})
    portfolio = PortfolioState(positions_usd={}, idle_usd=10_000_000.0)
    settings = OptimizerSettings()
    ctx = CheckContext([snap], portfolio, RiskLimits(), settings, "ethereum")
    x = np.array([1_000_000.0])
    zap = float(
        uniswap.zap_cost_usd(np.array([1e6]), np.array([5e6]), np.array([0.003]), exit=False)[0]
    )
    exact = 3.0 + zap  # fee_bps is not added to a zap: the swap is the fee
    ok = ctx.check(x, 9_000_000.0, bridges=[], plan_cost_usd=exact)
    assert not [v for v in ok.violations if v.startswith("cost_pricing")]
    # the linear stand-in (15 bp) under-prices a $1M zap into a $5M pool
    low = ctx.check(x, 9_000_000.0, bridges=[], plan_cost_usd=3.0 + 15e-4 * 1e6)
    assert any(v.startswith("cost_pricing") for v in low.violations), low.violations
    # a held venue the plan leaves where it is, a float hair off the books (x0 went through NAV
    # units and back), is no move: no gas charged for it (at 10k venues that failed every plan)
    held = make_snapshot("held", apr=0.03, costs=VenueCosts(deposit_usd=5.0, withdraw_usd=5.0))
    pf = PortfolioState(positions_usd={"held": 1_234_567.891}, idle_usd=10_000_000.0)
    tight = OptimizerSettings(check_tolerance_ratio=1e-9)  # 0.01 USD of slack: 5 USD of gas shows
    ctx2 = CheckContext([snap, held], pf, RiskLimits(), tight, "ethereum")
    hair = np.array([1_000_000.0, 1_234_567.891 * (1 + 1e-15) + 1e-9])
    ok2 = ctx2.check(hair, 9_000_000.0, bridges=[], plan_cost_usd=exact)
    assert not [v for v in ok2.violations if v.startswith("cost_pricing")], ok2.violations


def test_a_large_zap_is_sized_by_its_impact() -> None:
    """$50M against one $5M pool paying 15 % fees: the linear model fills it to its cap and
    predicts 15 bp; the convex model stops where the zap's marginal cost eats the fee share, and
    its predicted cost of the deposit is the pool's x*y=k cost."""
    nav = 50_000_000.0
    snap = make_snapshot(
        "lp",
        LPCurve(fees_usd=0.15 * 5e6, tvl_usd=5e6, sigma=0.05),
        kind=VenueKind.LP,
        tvl_usd=5e6,
        exit_liquidity_usd=5e6,
        costs=VenueCosts(deposit_usd=3.0, withdraw_usd=3.0, fee_bps=15.0),
    )
    snap = dataclasses.replace(snap, state={"swap_fee": 0.003})
    cash = make_snapshot("lend", apr=0.03)
    portfolio = PortfolioState(positions_usd={}, idle_usd=nav)
    limits = RiskLimits(max_venue_ratio=0.5)
    out = {}
    for model in ("convex", "linear"):
        s = OptimizerSettings(cost_model=model)
        d = Optimizer(limits, s, "ethereum").decide([snap, cash], portfolio, T0)
        assert d.status == "optimal", d.reason
        dep = next(m for m in d.plan.moves if m.venue_id == "lp")
        out[model] = dep
    convex, linear = out["convex"], out["linear"]
    assert convex.amount_usd < linear.amount_usd
    zap = float(
        uniswap.zap_cost_usd(
            np.array([convex.amount_usd]), np.array([5e6]), np.array([0.003]), exit=False
        )[0]
    )
    assert convex.cost_usd == pytest.approx(3.0 + zap, rel=1e-9)
    assert linear.cost_usd == pytest.approx(3.0 + 15e-4 * linear.amount_usd, rel=1e-9)


@pytest.fixture
async def world() -> AsyncIterator[tuple[Market, dict[str, object]]]:
    cfg = {**generate_market(30, seed=1), "time_scale": 0}  # a still clock
    market = Market.from_config(cfg)
    runner, url = await start(market)
    raw = [v for v in daemon_venues(cfg) if v["id"] in (ROUTE, LP)]
    for v in raw:
        if v["id"] == ROUTE:
            v["feed"]["params"]["quote_amounts_usd"] = [100_000.0, 1_000_000.0, 5_000_000.0]
    pick = [VenueConfig.model_validate(v) for v in raw]
    try:
        async with aiohttp.ClientSession() as session:
            poller = FeedPoller(
                pick,
                FeedSettings.model_validate(FAST),
                session,
                root_url=url,
                clock=lambda: datetime.fromtimestamp(market.clock.now(), UTC),
            )
            report = await poller.poll({})
            assert report.rejections == ()
            yield market, dict(report.snapshots)
    finally:
        await stop(runner)


async def test_across_fee_curve_matches_the_market_fill(world) -> None:
    market, snaps = world
    route = snaps[ROUTE]
    assert route.state["quote_amount_usd_3"] == 5_000_000.0
    gas = market.cfg.chains["arbitrum"].fill_gas_usd
    settings = OptimizerSettings(bridge_gas_by_chain_usd={"arbitrum": gas})
    curve = bridge_fee_curve([route], settings)
    assert np.all(np.diff(curve.slopes()) >= -1e-15)
    for k, amount in enumerate((30_000.0, 400_000.0, 2_500_000.0, 4_000_000.0)):
        fill = market.bridge("ethereum", "arbitrum", f"{amount:.2f}", f"cost-test-{k}")
        paid = float(fill["fee_usd"])
        predicted = float(curve(amount)) + gas
        assert predicted == pytest.approx(paid, rel=0.02), (amount, predicted, paid)


async def test_lp_zap_matches_the_market_fill(world) -> None:
    market, snaps = world
    lp = snaps[LP]
    assert lp.state["swap_fee"] == market.by_id[LP].c.fee
    zap = ZapPools.of([lp], OptimizerSettings())
    ours = 0.0  # the pool's TVL is the others' (the snapshot's) plus what we hold
    for k, amount in enumerate((10_000.0, 250_000.0, 2_000_000.0)):
        predicted = float(zap.impact_usd(np.array([ours]), np.array([ours + amount]))[0])
        fill = market.deposit(LP, f"{amount:.2f}", f"zap-test-{k}")
        paid = float(fill["fee_usd"])
        assert predicted == pytest.approx(paid, rel=2e-3, abs=0.02), (amount, predicted, paid)
        ours += float(fill["applied_usd"])


def test_warm_segment_solves_do_not_inherit_the_cold_solves_time() -> None:
    """HiGHS checks ``time_limit`` against the instance's cumulative run time: once the solves of
    one compiled problem had run longer than ``time_limit_seconds`` in total (a 30 s cold solve at
    10k venues), every warm solve that needed more than a few pivots stopped at once and fell back
    to cvxpy. Here the total is driven past three times the limit by warm solves after large rate
    moves; each must stay on the segment simplex."""
    from optimizer.bench_markets import drift
    from optimizer.model import AllocationModel
    from optimizer.testing import random_market

    market = random_market(600, 5, invested_share=0.5)
    snaps, pf = tuple(market.snapshots), market.portfolio
    # the limit is small and the solves many, so the total passes 3x the limit on a fast box too
    settings = OptimizerSettings(time_limit_seconds=0.1)
    limits = RiskLimits(max_venue_ratio=0.1)
    model = AllocationModel(tuple(s.venue for s in snaps), limits, settings, "ethereum")
    assert model.segment is not None
    rng = np.random.default_rng(0)
    solves = 0
    while model.segment.highs.getRunTime() < 0.35 and solves < 5000:
        snaps = drift(snaps, rng, T0, vol=0.6)
        model.update(build_cycle(snaps, pf, limits, settings, "ethereum"))
        result = model.solve()
        assert result.status == "optimal" and result.detail == "segment simplex", result.detail
        solves += 1
    assert model.segment.highs.getRunTime() >= 0.35


@pytest.mark.parametrize(
    ("mark", "band_bps", "sells"),
    [(0.9625, 100.0, False), (0.9625, None, True), (0.995, 100.0, True), (1.0, 100.0, True)],
    ids=["svb-dai-kept", "no-charge-sells", "inside-band-sells", "at-peg-sells"],
)
def test_a_position_below_its_peg_is_not_sold_for_yield(
    mark: float, band_bps: float | None, sells: bool
) -> None:
    """Half the NAV in a USDC venue marked ``mark`` (DAI closed at 0.9625 on 2023-03-11, SVB),
    another venue paying 3 pt more: selling below peg forfeits ``1 - mark`` if the peg returns,
    which the model charges (annualised) beyond ``depeg_discount_band_bps``, so the position stays;
    inside the band, at par, or with the charge off (None) the optimizer moves it for the yield."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from core.types import PortfolioState
    from optimizer import Optimizer, OptimizerSettings, RiskLimits
    from optimizer.costs import depeg_discount
    from optimizer.testing import make_snapshot

    held = replace(make_snapshot("held", apr=0.03), state={"asset_price_usd": mark})
    better = make_snapshot("better", apr=0.06, protocol="other")
    settings = OptimizerSettings(
        min_trade_usd=0.0,
        min_benefit_cost_ratio=0.0,
        hysteresis_apr=0.0,
        depeg_discount_band_bps=band_bps,
    )
    d = depeg_discount([held, better], band_bps)
    assert d[1] == 0.0 and (d[0] == pytest.approx(1 - mark) if not sells else d[0] == 0.0)
    portfolio = PortfolioState(positions_usd={"held": 500_000.0}, idle_usd=0.0)
    limits = RiskLimits(max_venue_ratio=1.0, min_idle_ratio=0.0)
    decision = Optimizer(limits, settings, "ethereum").decide(
        [held, better], portfolio, datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert decision.status == "optimal", decision.reason
    target = decision.allocation.target_usd.get("held", 0.0)
    if sells:
        assert target < 1_000.0, decision.allocation
    else:
        assert target == pytest.approx(500_000.0, abs=1.0), decision.allocation
