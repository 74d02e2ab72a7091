"""DefiLlama-shaped routes: yields (``/defillama/pools``, ``/defillama/chart/{pool}``) and coins
(``/coins/prices/current/{coins}``, ``/coins/chart/{coins}``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mockfeeds.market import Market, MarketError
from mockfeeds.routes.common import market_of, query_number, reply


# --- DefiLlama yields ------------------------------------------------------------------------
async def defillama_pools(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    rows = m.defillama_rows()
    payload = {"status": "success", "data": [r for _, r in rows]}
    return await reply(
        request,
        payload,
        venues=frozenset(m.by_id),
        rows=rows,
        cached_body=m.defillama_pools_bytes(),
    )


async def defillama_chart(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    pool = request.match_info["pool"]
    vid = m.by_pool.get(pool)
    if vid is None:
        raise MarketError("pool", f"unknown pool {pool!r}", 404)
    rows = m.chart_rows(vid)
    return await reply(request, {"status": "success", "data": rows}, venues=frozenset({vid}))


# --- DefiLlama coins -------------------------------------------------------------------------
def _coin_index(m: Market) -> dict[str, tuple[str, str]]:
    def build() -> dict[str, tuple[str, str]]:
        idx = {m.coin_key(c, s): (c, s) for c, s in m.tokens}
        return idx

    return m.cached("coin_index", build)


def _coin_venues(m: Market) -> dict[str, set[str]]:
    def build() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for v in m.venues:
            keys: list[tuple[str, str]] = []
            if v.kind == "lp":
                keys = [(v.chain, v.c.token0_symbol), (v.chain, v.c.token1_symbol)]  # type: ignore[attr-defined]
            elif v.kind == "bridge_arb":
                c = v.c  # type: ignore[attr-defined]
                keys = [(c.origin_chain, c.token), (c.destination_chain, c.token)]
            elif v.asset in m.cfg.chains[v.chain].tokens:
                keys = [(v.chain, v.asset)]
            for chain, sym in keys:
                out.setdefault(m.coin_key(chain, sym), set()).add(v.id)
        return out

    return m.cached("coin_venues", build)


def _parse_coins(m: Market, raw: str) -> list[tuple[str, tuple[str, str] | None]]:
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise MarketError("coins", "give at least one chain:address", 400)
    if len(keys) > 200:
        raise MarketError("coins", "at most 200 coins per request", 400)
    idx = _coin_index(m)
    out: list[tuple[str, tuple[str, str] | None]] = []
    for k in keys:
        chain, _, addr = k.partition(":")
        norm = f"{chain}:{addr.lower()}"
        if k == "coingecko:ethereum":
            out.append((k, None))
        elif norm in idx:
            out.append((k, idx[norm]))
    return out


async def coins_current(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    coins: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, dict[str, Any]]] = []
    venues: set[str] = set()
    cv = _coin_venues(m)
    ts = int(m.state_time)
    for key, ref in _parse_coins(m, request.match_info["coins"]):
        if ref is None:
            coins[key] = {"price": m.eth_usd, "symbol": "ETH", "timestamp": ts, "confidence": 0.99}
            continue
        chain, sym = ref
        tok = m.cfg.chains[chain].tokens[sym]
        coins[key] = {
            "decimals": tok.decimals,
            "symbol": sym,
            "price": m.token_price(chain, sym),
            "timestamp": ts,
            "confidence": 0.99,
        }
        for vid in cv.get(m.coin_key(chain, sym), set()):
            venues.add(vid)
            rows.append((vid, coins[key]))
    return await reply(request, {"coins": coins}, venues=frozenset(venues), rows=rows)


_PERIODS = {"1h": 1, "2h": 2, "4h": 4, "6h": 6, "12h": 12, "1d": 24, "24h": 24}


async def coins_chart(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    span = int(query_number(request, "span", 24, lo=1, hi=2000))
    period = request.query.get("period", "1h")
    if period not in _PERIODS:
        raise MarketError("period", f"one of {sorted(_PERIODS)}", 400)
    step = _PERIODS[period]
    cv = _coin_venues(m)
    out = {}
    venues: set[str] = set()
    for key, ref in _parse_coins(m, request.match_info["coins"]):
        if ref is None:
            continue
        chain, sym = ref
        tok = m.cfg.chains[chain].tokens[sym]
        hist = list(m.price_history[f"{chain}:{sym}"])[::-1][::step][:span][::-1]
        out[key] = {
            "symbol": sym,
            "decimals": tok.decimals,
            "confidence": 0.99,
            "prices": [{"timestamp": int(t), "price": p} for t, p in hist],
        }
        venues |= cv.get(m.coin_key(chain, sym), set())
    return await reply(request, {"coins": out}, venues=frozenset(venues))
