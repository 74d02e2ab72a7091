"""A hedged LP in the simulated market: a Uniswap v2 stable/WETH position (its own pool) whose ETH
delta is shorted on a perpetual future with Binance-style 8-hourly funding (protocols.hedged_lp)."""

from __future__ import annotations

import math
from collections import deque

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import DAY, ou_step
from mockfeeds.venues.lp import LpVenue
from mockfeeds.view import MarketView
from protocols import hedged_lp


class HedgedLpVenue(LpVenue):
    """The capital splits into LP worth ``a`` of it and perp margin ``1 - a``
    (``hedged_lp.lp_share``). Per tick the LP part grows as an LP valued against HODL (so the
    short's P&L offsets the LP's ETH delta; what is left is fees minus the convexity loss), the
    short receives ``f N`` at each funding time (pays when ``f < 0``), and every
    ``rebalance_hours`` the hedge is resized, paying ``taker_fee`` on ``(a/4) |ln r|`` of the
    position. The 8-hour funding rate is OU (``HedgeConfig``); a ``funding_flip`` scenario pins it."""

    kind = "hedged_lp"
    STATE_FIELDS = (
        *LpVenue.STATE_FIELDS,
        "funding_8h",
        "funding_pin",
        "funding_history",
        "next_funding",
        "hedge_price",
        "next_rebalance",
        "rebalance_cost_usd",
        "funding_received_usd",
    )

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        h = cfg.hedge
        assert h is not None
        self.h = h
        self.a = hedged_lp.lp_share(h.perp_leverage)
        self.funding_8h = h.funding_8h
        self.funding_pin: float | None = None
        # [fundingTime ms, rate, markPrice] per settlement, 30 days
        self.funding_history: deque[list[float]] = deque(
            maxlen=int(30 * 24 / h.funding_interval_hours) + 1
        )
        interval = h.funding_interval_hours * 3600.0
        self.next_funding = math.floor(epoch0 / interval) * interval + interval
        self.hedge_price: float | None = None
        self.next_rebalance = epoch0 + h.rebalance_hours * 3600.0
        self.rebalance_cost_usd = 0.0
        self.funding_received_usd = 0.0

    def pool_tvl(self) -> float:
        return self.tvl_others + self.a * self.ours_usd

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        lp_growth = super().step(t, dt, z, m)  # the LP part, hedged against HODL
        dd = dt / DAY
        h = self.h
        mean = self.funding_pin if self.funding_pin is not None else h.funding_mean_8h
        self.funding_8h = ou_step(
            self.funding_8h, mean, h.funding_sigma_8h, h.funding_reversion_per_day, dd, z[2]
        )
        if self.funding_pin is not None:
            self.funding_8h = self.funding_pin
        price = m.token_price(self.chain, self.c.token1_symbol)
        funding = 0.0
        interval = h.funding_interval_hours * 3600.0
        while self.next_funding <= t + dt + 1e-6:
            self.funding_history.append([self.next_funding * 1000.0, self.funding_8h, price])
            funding += self.funding_8h  # the short receives the rate on its notional a/2
            self.next_funding += interval
        cost = 0.0
        if self.hedge_price is None:
            self.hedge_price = price
        if t + dt >= self.next_rebalance - 1e-6:
            cost = h.taker_fee * (self.a / 4.0) * abs(math.log(price / self.hedge_price))
            self.hedge_price = price
            self.next_rebalance += h.rebalance_hours * 3600.0
        self.rebalance_cost_usd += cost * self.ours_usd
        self.funding_received_usd += funding * self.a / 2.0 * self.ours_usd
        return self.a * lp_growth + (1.0 - self.a) + funding * self.a / 2.0 - cost

    def funding_apr(self) -> float:
        return hedged_lp.annual_funding_rate(self.funding_8h, self.h.funding_interval_hours)

    def hedged_net_apr(self, m: MarketView) -> float:
        """Net APR of a small hedged position: ``a (fee APR + carry)`` (the /pools row, like the
        pool's own on DefiLlama, shows the LP's fee APR: ``base_apr``)."""
        fee_apr = super().base_apr(m)
        carry = hedged_lp.carry_apr(
            self.funding_apr(), self.sigma, self.h.rebalance_hours / 24.0, self.h.taker_fee
        )
        return self.a * (fee_apr + carry)
