"""Binance USD-M futures routes of the hedged-LP venues (the perpetual that shorts the LP's ETH):

- ``GET /binance/fapi/v1/fundingRate?symbol=ETHUSDT&limit=N`` (live
  ``https://fapi.binance.com/fapi/v1/fundingRate``): ``[{"symbol","fundingTime" (ms),
  "fundingRate" (decimal string per interval),"markPrice" (string)},…]`` oldest first, the last
  ``limit`` (default 100, at most 1000) settlements;
- ``GET /binance/fapi/v1/premiumIndex?symbol=ETHUSDT``: ``{"symbol","markPrice","indexPrice",
  "estimatedSettlePrice","lastFundingRate","interestRate","nextFundingTime","time"}``.

Positive rates: longs pay shorts (the hedge receives). Unknown symbol: 400 naming ``symbol``."""

from __future__ import annotations

from aiohttp import web

from mockfeeds.market import Market, MarketError
from mockfeeds.routes.common import market_of, query_number, reply
from mockfeeds.venues import HedgedLpVenue


def _hedge(m: Market, symbol: str | None) -> HedgedLpVenue:
    for v in m.venues:
        if isinstance(v, HedgedLpVenue) and v.h.symbol == symbol:
            return v
    raise MarketError("symbol", f"unknown symbol {symbol!r}", 400)


async def funding_rate(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    v = _hedge(m, request.query.get("symbol"))
    limit = int(query_number(request, "limit", 100, lo=1, hi=1000))
    rows = [
        {
            "symbol": v.h.symbol,
            "fundingTime": int(t),
            "fundingRate": f"{rate:.8f}",
            "markPrice": f"{price:.8f}",
        }
        for t, rate, price in list(v.funding_history)[-limit:]
    ]
    return await reply(request, rows, venues=frozenset({v.id}))


async def premium_index(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    v = _hedge(m, request.query.get("symbol"))
    price = m.token_price(v.chain, v.c.token1_symbol)
    last = v.funding_history[-1][1] if v.funding_history else v.funding_8h
    payload = {
        "symbol": v.h.symbol,
        "markPrice": f"{price:.8f}",
        "indexPrice": f"{price:.8f}",
        "estimatedSettlePrice": f"{price:.8f}",
        "lastFundingRate": f"{last:.8f}",
        "interestRate": "0.00010000",
        "nextFundingTime": int(v.next_funding * 1000),
        "time": int(m.state_time * 1000),
    }
    return await reply(request, payload, venues=frozenset({v.id}))
