"""The daemon's ``venues:`` entries for the composite kinds of a market (used by
:func:`mockfeeds.generate.daemon_venues`): adapter, params, dependencies, exit time and costs."""

from __future__ import annotations

from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.routes.nft import VAULT
from protocols import loop as loop_math


def composite_entry(
    v: VenueMarketConfig, cfg: MarketConfig, costs: dict[str, float]
) -> tuple[dict[str, Any], float, list[str], dict[str, float]]:
    """(feed, exit_days, dependencies, costs) of a loop, hedged_lp or nft_rental venue."""
    chain = cfg.chains[v.chain]
    if v.kind == "loop":
        lc = v.loop
        assert lc is not None
        staking = next(w for w in cfg.venues if w.id == lc.staking_venue)
        lev = loop_math.leverage_for_health_factor(
            lc.target_health_factor, lc.liquidation_threshold, lc.ltv
        )
        # an instant unwind at par: (L - 1) x the pool's swap fee
        fee_bps = round(loop_math.unwind_cost_fraction(lev, 1.0, lc.swap_fee) * 10_000 / 2, 2)
        return (
            {
                "adapter": "aave_loop",
                "params": {
                    "market": lc.market,
                    "user": lc.user,
                    "target_health_factor": lc.target_health_factor,
                    "swap_fee": lc.swap_fee,
                    "unwind_liquidity_eth": lc.unwind_liquidity_eth,
                },
            },
            0.0,
            [staking.protocol],
            {**costs, "fee_bps": fee_bps},
        )
    if v.kind == "hedged_lp":
        lp, h = v.lp, v.hedge
        assert lp is not None and h is not None
        weth = chain.tokens[lp.token1_symbol].address
        return (
            {
                "adapter": "hedged_lp",
                "params": {
                    "pool": v.pool_uuid,
                    "price_coin": f"{v.chain}:{weth}",
                    "fee": lp.fee,
                    "symbol": h.symbol,
                    "perp_leverage": h.perp_leverage,
                    "rebalance_hours": h.rebalance_hours,
                    "taker_fee": h.taker_fee,
                    "funding_interval_hours": h.funding_interval_hours,
                },
            },
            0.0,
            ["binance-futures"],
            # the zap (half the LP part swapped at the pool fee) plus opening the short
            {**costs, "fee_bps": round(lp.fee * 10_000 / 2 + h.taker_fee * 10_000 / 2, 2)},
        )
    nc = v.nft_rental
    assert nc is not None
    return (
        {
            "adapter": "nft_rental",
            "params": {
                "collection": nc.collection,
                "slug": nc.slug,
                "lender": VAULT,
                "max_share_of_sales": nc.max_share_of_sales,
                "exit_haircut": nc.exit_haircut,
            },
        },
        1.0,  # at least a day to sell; the feed's days-to-sell replaces it when larger
        [],
        {**costs, "fee_bps": round(nc.exit_haircut * 10_000 / 2, 2)},
    )
