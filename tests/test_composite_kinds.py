"""The three composite kinds end to end: the simulated market serves them, the adapters build
their curves, the optimizer (with the embedded default's limits) allocates to them when they pay
and within every limit, and each one's scenario makes it reduce or exit before the damage:
a loop leaves before an stETH discount liquidates it, a hedged LP leaves when funding flips, an
NFT rental sells on a floor crash and, over a long enough horizon, in a rental drought."""

from __future__ import annotations

import pytest

from optimizer.checker import check_allocation
from optimizer.engine import Optimizer
from tests.composite_world import HEDGED, LOOP, NFT, market_config, world

pytestmark = pytest.mark.slow

PAYING = {
    "uniswap_v2_usdc_weth_hedged": {
        "hedge": {"funding_8h": 0.00025, "funding_mean_8h": 0.00025, "funding_sigma_8h": 0.00002}
    },
    "azuki_rental": {"nft_rental": {"daily_rent_eth": 0.012, "rent_sigma": 0.02}},
}


async def test_allocates_to_all_three_when_they_pay_within_every_limit() -> None:
    async with world(market_config(**PAYING)) as w:
        report, d = await w.decide()
        assert not report.rejections, report.rejections
        assert d.status == "optimal" and d.plan.execute, d.reason
        assert d.allocation is not None
        target = d.allocation.target_usd
        for vid in (LOOP, HEDGED, NFT):
            assert target[vid] > 1_000, (vid, target)
        nav = w.portfolio().nav_usd
        limits = w.settings.limits
        assert target[NFT] <= limits.max_illiquid_ratio * nav * (1 + 1e-6)  # type: ignore[operator]
        assert target[LOOP] + target.get("lido-steth", 0.0) <= 0.40 * nav * (1 + 1e-6)
        # the independent checker agrees, and the market takes the plan
        rep = check_allocation(
            list(report.snapshots.values()),
            w.portfolio(),
            target,
            d.allocation.idle_usd,
            limits,
            w.settings.optimizer,
            w.settings.vault.home_chain,
        )
        assert rep.ok, rep.violations
        w.execute(d.plan.moves)
        held = w.positions()
        for vid in (LOOP, HEDGED, NFT):
            assert held[vid] > 0
        # the loop's own borrowing is in the borrow rate it sees next cycle
        again = await w.poll()
        assert again.snapshots[LOOP].state["our_debt_eth"] > 0
        assert again.snapshots[LOOP].state["health_factor"] == pytest.approx(1.08, abs=0.01)


async def test_steth_discount_exits_the_loop_before_liquidation() -> None:
    async with world() as w:
        await w.cycle()
        assert w.positions().get(LOOP, 0.0) > 100_000
        loop_venue = w.market.by_id[LOOP]
        w.market.start_scenario(
            {
                "name": "steth_discount",
                "venue": LOOP,
                "params": {"discount": 0.09},
                "duration_seconds": 4 * 86_400,
            }
        )
        exited_at_hf = None
        for _ in range(72):
            w.market.advance(3600)
            hf = loop_venue.health_factor(w.market)
            await w.cycle()
            if w.positions().get(LOOP, 0.0) < 1.0 and exited_at_hf is None:
                exited_at_hf = hf
        assert exited_at_hf is not None, "the loop was never exited"
        # it left when the first loop limit broke: leverage 10 is HF 0.95 x 10 / 9 = 1.0556 here,
        # above min_loop_health_factor 1.04; within an hour's move of it, and well above 1
        limits = w.settings.limits
        lev_max = limits.max_loop_leverage
        first = max(limits.min_loop_health_factor or 0.0, 0.95 * lev_max / (lev_max - 1.0))  # type: ignore[operator]
        assert 1.0 < exited_at_hf <= first + 0.005
        assert loop_venue.liquidations == 0
        # the discount went on to where the loop opened at HF 1.08 would have been liquidated
        assert loop_venue.price(w.market) < 1 / 1.08


async def test_funding_flip_makes_the_optimizer_leave_the_hedge() -> None:
    async with world(
        market_config(**{k: v for k, v in PAYING.items() if k.startswith("uni")})
    ) as w:
        await w.cycle()
        before = w.positions().get(HEDGED, 0.0)
        assert before > 50_000
        w.market.start_scenario(
            {
                "name": "funding_flip",
                "venue": HEDGED,
                "params": {"funding_8h": -0.0003},
                "duration_seconds": 10 * 86_400,
            }
        )
        for _ in range(24):  # the adapter averages 21 settlements (7 days): 8 days see it all
            w.market.advance(8 * 3600)
            await w.cycle()
        snap = (await w.poll()).snapshots[HEDGED]
        # the short pays more than the fees bring: a (fee APR + carry) < 0 at any size
        assert snap.state["carry_apr"] < -snap.state["fee_apr"] < 0
        assert snap.curve.capacity_usd == 0.0
        assert w.positions().get(HEDGED, 0.0) < 0.05 * before


async def test_floor_crash_sells_the_nfts_before_the_floor_halves() -> None:
    async with world(
        market_config(**{k: v for k, v in PAYING.items() if k.startswith("azuki")})
    ) as w:
        await w.cycle()
        held = w.positions().get(NFT, 0.0)
        assert held > 10_000
        nft = w.market.by_id[NFT]
        floor0 = nft.floor()
        w.market.start_scenario(
            {
                "name": "floor_crash",
                "venue": NFT,
                "params": {"drop": 0.5, "ramp_seconds": 4 * 86_400},
                "duration_seconds": 6 * 86_400,
            }
        )
        sold_at = None
        for _ in range(96):
            w.market.advance(3600)
            await w.cycle()
            view = w.market.positions_view()
            row = next((r for r in view["positions"] if r["venue"] == NFT), None)
            if sold_at is None and row is not None and float(row["position_usd"]) < 0.05 * held:
                sold_at = nft.floor() / floor0
        assert sold_at is not None, "the NFTs were never sold"
        assert sold_at > 0.7  # sold on the 20 % stop, well before the floor halved
        sales = [x for x in w.market.withdrawals.values() if x["venue"] == NFT]
        assert sales  # a sale takes days (queued), paid 6 % below the floor


async def test_rental_drought_sells_when_the_horizon_pays_the_haircut() -> None:
    async with world(
        market_config(**{k: v for k, v in PAYING.items() if k.startswith("azuki")})
    ) as w:
        await w.cycle()
        held = w.positions().get(NFT, 0.0)
        assert held > 10_000
        w.market.start_scenario(
            {
                "name": "rental_drought",
                "venue": NFT,
                "params": {"demand_fraction": 0.02},
                "duration_seconds": 30 * 86_400,
            }
        )
        w.market.advance(3600)
        snap = (await w.poll()).snapshots[NFT]
        assert snap.state["occupancy"] < 0.1
        # a month's horizon does not pay the 6 % exit haircut back: the optimizer holds ...
        await w.cycle()
        assert w.positions().get(NFT, 0.0) > 0.9 * held
        # ... two years' does: it sells rather than sit on NFTs nobody rents (3 % of lending on
        # the proceeds for two years beats 1.5 x the 3 % the model charges a sale)
        settings = w.settings.optimizer.model_copy(update={"holding_horizon_days": 730.0})
        w.optimizer = Optimizer(w.settings.limits, settings, w.settings.vault.home_chain)
        await w.cycle()
        assert w.positions().get(NFT, 0.0) < 0.1 * held
