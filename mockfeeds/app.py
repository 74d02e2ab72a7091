"""The simulated market over HTTP: read endpoints in the live APIs' shapes, paper execution,
scenarios, faults and the clock. Every endpoint is documented in ``mockfeeds/README.md``.

``create_app(market)`` builds the application; it runs a background task that keeps the world
in step with the clock and saves the state file every ``save_interval_seconds`` (and on
shutdown). Errors are ``{"error": {"field", "reason"}}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mockfeeds.faults import REQUEST_MODES, FaultRule, apply_value_fault
from mockfeeds.market import Market, MarketError, iso
from mockfeeds.venues import FixedVenue, LendingVenue, StakingVenue
from protocols import aave, across, compound

MARKET_KEY = web.AppKey("market", Market)
TASK_KEY = web.AppKey("ticker", asyncio.Task)
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def error(field: str | None, reason: str, status: int = 422) -> web.Response:
    return web.json_response({"error": {"field": field, "reason": reason}}, status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except MarketError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            reason = "no such endpoint" if exc.status == 404 else (exc.reason or "error")
            return error(None, f"{reason}: {request.method} {request.path}", exc.status)
        raise


async def reply(
    request: web.Request,
    payload: Any,
    *,
    venues: frozenset[str] = frozenset(),
    rows: list[tuple[str, dict[str, Any]]] | None = None,
    cached_body: bytes | None = None,
    status: int = 200,
) -> web.StreamResponse:
    """Serialize ``payload`` after the fault rules that hit this request.

    ``rows`` are (venue id, row dict) pairs that live inside ``payload`` (by identity): a venue
    rule's value fault replaces only its rows. ``cached_body`` is served as is when no fault hits.
    """
    market = request.app[MARKET_KEY]
    rules = market.matching_faults(request.path, venues)
    if not rules and cached_body is not None:
        return web.Response(body=cached_body, status=status, content_type="application/json")
    body_obj = payload
    # Venue rules go first and in one pass: rows are found by identity, which a rebuild would lose.
    per_row: dict[int, list[FaultRule]] = {}
    for rule in rules:
        if rule.mode not in REQUEST_MODES and rule.venue is not None and rows is not None:
            for vid, r in rows:
                if vid == rule.venue:
                    per_row.setdefault(id(r), []).append(rule)

    def corrupt(row: dict[str, Any]) -> Any:
        for rule in per_row[id(row)]:
            row = apply_value_fault(rule, row, f"{request.path}#{rule.venue}")
        return row

    body_obj = _replace_rows(body_obj, set(per_row), corrupt)
    for rule in rules:
        if rule.mode not in REQUEST_MODES and (rule.venue is None or rows is None):
            body_obj = apply_value_fault(rule, body_obj, f"{request.path}?{request.query_string}")
    for rule in rules:
        if rule.mode == "latency":
            await asyncio.sleep(rule.latency_ms / 1000.0)
        elif rule.mode == "timeout":
            await asyncio.sleep(rule.timeout_seconds)
            return error(None, "injected fault: timeout", 504)
        elif rule.mode == "http_5xx":
            return web.json_response(
                {"error": {"field": None, "reason": f"injected fault: {rule.status}"}},
                status=rule.status,
            )
    text = json.dumps(body_obj, separators=(",", ":"), allow_nan=True)
    for rule in rules:
        if rule.mode == "malformed_json":
            text = text[: max(1, len(text) // 2)] + '",{'
        elif rule.mode == "oversized":
            pad = max(0, rule.size_bytes - len(text) - 16)
            if text.startswith("{") and text.endswith("}"):
                text = (
                    text[:-1] + ("," if len(text) > 2 else "") + '"_padding":"' + "x" * pad + '"}'
                )
            else:
                text = '{"data":' + text + ',"_padding":"' + "x" * pad + '"}'
    return web.Response(text=text, status=status, content_type="application/json")


def _replace_rows(obj: Any, targets: set[int], fn: Callable[[dict[str, Any]], Any]) -> Any:
    if not targets:
        return obj
    if isinstance(obj, dict):
        if id(obj) in targets:
            return fn(obj)
        return {k: _replace_rows(v, targets, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [
            fn(v) if isinstance(v, dict) and id(v) in targets else _replace_rows(v, targets, fn)
            for v in obj
        ]
    return obj


def _market(request: web.Request) -> Market:
    m = request.app[MARKET_KEY]
    m.sync()
    return m


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MarketError(None, "body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise MarketError(None, "body must be a JSON object", 400)
    return data


def _query_number(
    request: web.Request,
    name: str,
    default: float | None = None,
    *,
    lo: float = -math.inf,
    hi: float = math.inf,
) -> float:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise MarketError(name, "required query parameter", 400)
        return default
    try:
        val = float(raw)
    except ValueError:
        raise MarketError(name, f"not a number: {raw!r}", 400) from None
    if not math.isfinite(val) or not lo <= val <= hi:
        raise MarketError(name, f"must be in [{lo}, {hi}]", 400)
    return val


# --- DefiLlama yields ------------------------------------------------------------------------
async def defillama_pools(request: web.Request) -> web.StreamResponse:
    m = _market(request)
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
    m = _market(request)
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
    m = _market(request)
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
    m = _market(request)
    span = int(_query_number(request, "span", 24, lo=1, hi=2000))
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


# --- Lido --------------------------------------------------------------------------------------
def _lido(m: Market) -> StakingVenue:
    for v in m.venues:
        if isinstance(v, StakingVenue) and v.cfg.protocol == "lido":
            return v
    raise MarketError("venue", "this market has no lido venue", 404)


def _lido_meta(v: StakingVenue) -> dict[str, Any]:
    return {"symbol": "stETH", "address": v.c.token_address, "chainId": 1}


async def lido_sma(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    v = _lido(m)
    recent = list(v.aprs)[-7:]
    aprs = [{"timeUnix": int(t), "apr": a * 100.0} for t, a in recent]
    sma = sum(a["apr"] for a in aprs) / len(aprs) if aprs else v.base_apr(m) * 100.0
    payload = {"data": {"aprs": aprs, "smaApr": sma}, "meta": _lido_meta(v)}
    return await reply(request, payload, venues=frozenset({v.id}))


async def lido_last(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    v = _lido(m)
    if not v.aprs:
        raise MarketError(None, "no oracle report yet", 404)
    t, a = v.aprs[-1]
    payload = {"data": {"timeUnix": int(t), "apr": a * 100.0}, "meta": _lido_meta(v)}
    return await reply(request, payload, venues=frozenset({v.id}))


async def lido_request_time(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    v = _lido(m)
    amount_eth = _query_number(request, "amount", lo=1e-18, hi=1e9)
    now = m.state_time
    from protocols import lido as lido_math

    wait = lido_math.withdrawal_wait_seconds(
        amount_eth, v.queue_eth, v.c.buffer_eth, v.next_report_after(now) - now, bunker=v.bunker
    )
    kind = "buffer" if v.queue_eth + amount_eth <= v.c.buffer_eth else "exitValidators"
    if v.bunker:
        kind = "bunker"
    payload = {
        "requestInfo": {
            "finalizationIn": int(wait * 1000),
            "finalizationAt": iso(now + wait),
            "type": kind,
        },
        "status": "calculated",
        "nextCalculationAt": iso(now + 60),
    }
    return await reply(request, payload, venues=frozenset({v.id}))


# --- Aave --------------------------------------------------------------------------------------
def _aave_venues(m: Market, market_name: str) -> list[LendingVenue]:
    out = [
        v
        for v in m.venues
        if isinstance(v, LendingVenue) and not v.is_compound and v.c.market == market_name
    ]
    if not out:
        raise MarketError("market", f"unknown Aave market {market_name!r}", 404)
    return out


def _aave_reserve(m: Market, v: LendingVenue) -> dict[str, Any]:
    c = v.c
    scale = 10**c.decimals
    debt = v.debt()
    avail = max(0.0, v.total_supply() - debt)
    u = v.utilization()
    s = v.strategy
    price = m.token_price(v.chain, v.asset)
    return {
        "id": f"{c.underlying}0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2".lower(),
        "underlyingAsset": c.underlying,
        "name": v.asset,
        "symbol": v.asset,
        "decimals": c.decimals,
        "isActive": True,
        "isFrozen": False,
        "isPaused": v.paused,
        "borrowingEnabled": True,
        "reserveFactor": str(round(s.reserve_factor * 10_000)),
        "liquidityIndex": aave.to_ray(v.liquidity_index),
        "variableBorrowIndex": aave.to_ray(v.borrow_index),
        "liquidityRate": aave.to_ray(v.supply_apr_at(u)),
        "variableBorrowRate": aave.to_ray(v.borrow_apr_at(u)),
        "lastUpdateTimestamp": int(m.state_time),
        "availableLiquidity": str(int(avail * scale)),
        "virtualUnderlyingBalance": str(int(avail * scale)),
        "totalScaledVariableDebt": str(int(debt / v.borrow_index * scale)),
        "unbacked": "0",
        "accruedToTreasury": "0",
        "priceInMarketReferenceCurrency": str(int(round(price * 1e8))),
        "baseVariableBorrowRate": aave.to_ray(s.base_variable_borrow_apr),
        "variableRateSlope1": aave.to_ray(s.slope1_apr),
        "variableRateSlope2": aave.to_ray(s.slope2_apr),
        "optimalUsageRatio": aave.to_ray(s.optimal_usage_ratio),
        "supplyCap": str(int(c.supply_cap_tokens)),
        "borrowCap": str(int(c.borrow_cap_tokens)),
    }


async def aave_reserves(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    name = request.match_info["market"]
    vs = _aave_venues(m, name)
    rows = [(v.id, _aave_reserve(m, v)) for v in vs]
    payload = {
        "reservesData": [r for _, r in rows],
        "baseCurrencyData": {
            "marketReferenceCurrencyDecimals": 8,
            "marketReferenceCurrencyPriceInUsd": "100000000",
            "networkBaseTokenPriceInUsd": str(int(round(m.eth_usd * 1e8))),
            "networkBaseTokenPriceDecimals": 8,
        },
    }
    return await reply(request, payload, venues=frozenset(v.id for v in vs), rows=rows)


async def aave_incentives(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    vs = _aave_venues(m, request.match_info["market"])
    rows = []
    for v in vs:
        inc = v.c.incentives
        per_second_tokens = v.emission_usd_per_day(m.state_time) / 86_400.0 / inc.reward_price_usd
        infos = []
        if inc.usd_per_day > 0:
            infos.append(
                {
                    "rewardTokenSymbol": inc.reward_symbol,
                    "rewardTokenAddress": inc.reward_address,
                    "rewardTokenDecimals": inc.reward_decimals,
                    "emissionPerSecond": str(int(per_second_tokens * 10**inc.reward_decimals)),
                    "emissionEndTimestamp": int(m.state_time + 365 * 86_400),
                    "rewardPriceFeed": str(int(round(inc.reward_price_usd * 1e8))),
                    "priceFeedDecimals": 8,
                }
            )
        row = {
            "underlyingAsset": v.c.underlying,
            "aIncentiveData": {"tokenAddress": v.c.underlying, "rewardsTokenInformation": infos},
            "vIncentiveData": {"tokenAddress": v.c.underlying, "rewardsTokenInformation": []},
        }
        rows.append((v.id, row))
    return await reply(request, [r for _, r in rows], venues=frozenset(v.id for v in vs), rows=rows)


# --- Compound v3 ---------------------------------------------------------------------------
async def compound_comet(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    chain, comet = request.match_info["chain"], request.match_info["comet"].lower()
    v = next(
        (
            x
            for x in m.venues
            if isinstance(x, LendingVenue)
            and x.is_compound
            and x.chain == chain
            and (x.c.comet or "").lower() == comet
        ),
        None,
    )
    if v is None:
        raise MarketError("comet", f"no Comet {comet} on {chain}", 404)
    c, cv = v.c, v.curve
    scale = 10**c.decimals
    u = v.utilization()
    f = compound.onchain_per_second_factor
    inc = c.incentives
    payload = {
        "comet": c.comet,
        "baseToken": c.underlying,
        "baseTokenSymbol": v.asset,
        "decimals": c.decimals,
        "totalSupply": str(int(v.total_supply() * scale)),
        "totalBorrow": str(int(v.debt() * scale)),
        "utilization": str(compound.to_factor(u)),
        "supplyRate": str(compound.to_factor(v.supply_apr_at(u)) // compound.SECONDS_PER_YEAR),
        "borrowRate": str(compound.to_factor(v.borrow_apr_at(u)) // compound.SECONDS_PER_YEAR),
        "supplyKink": str(compound.to_factor(cv.supply_kink)),
        "supplyPerSecondInterestRateSlopeLow": str(f(cv.supply_slope_low)),
        "supplyPerSecondInterestRateSlopeHigh": str(f(cv.supply_slope_high)),
        "supplyPerSecondInterestRateBase": str(f(cv.supply_base)),
        "borrowKink": str(compound.to_factor(cv.borrow_kink)),
        "borrowPerSecondInterestRateSlopeLow": str(f(cv.borrow_slope_low)),
        "borrowPerSecondInterestRateSlopeHigh": str(f(cv.borrow_slope_high)),
        "borrowPerSecondInterestRateBase": str(f(cv.borrow_base)),
        # COMP per second scaled by trackingIndexScale (1e15), from the decaying USD emission
        "baseTrackingSupplySpeed": str(
            int(v.emission_usd_per_day(m.state_time) / 86_400.0 / inc.reward_price_usd * 1e15)
        ),
        "trackingIndexScale": "1000000000000000",
        "baseMinForRewards": str(1_000_000 * scale),
        "rewardTokenPriceUsd": inc.reward_price_usd,
        "isPaused": v.paused,
        "timestamp": int(m.state_time),
    }
    return await reply(request, payload, venues=frozenset({v.id}))


# --- Across -----------------------------------------------------------------------------------
def _route(m: Market, request: web.Request) -> tuple[str, str, int]:
    ids = {ch.chain_id: name for name, ch in m.cfg.chains.items()}
    origin_id = int(_query_number(request, "originChainId", lo=1))
    dest_id = int(_query_number(request, "destinationChainId", lo=1))
    if origin_id not in ids:
        raise MarketError("originChainId", f"unsupported chain {origin_id}", 400)
    if dest_id not in ids:
        raise MarketError("destinationChainId", f"unsupported chain {dest_id}", 400)
    origin, dest = ids[origin_id], ids[dest_id]
    if origin == dest:
        raise MarketError("destinationChainId", "must differ from originChainId", 400)
    token = m.cfg.bridge.token
    for field, chain in (("inputToken", origin), ("outputToken", dest)):
        tok = m.cfg.chains[chain].tokens.get(token)
        given = request.query.get(field)
        if tok is None:
            raise MarketError(field, f"{token} is not bridged on {chain}", 400)
        if given is not None and given.lower() != tok.address.lower():
            raise MarketError(
                field,
                f"unsupported token {given} on chain {ids[origin_id if field == 'inputToken' else dest_id]}; route token is {tok.address}",
                400,
            )
    decimals = m.cfg.chains[origin].tokens[token].decimals
    return origin, dest, decimals


def _limits_body(lim: dict[str, float], decimals: int) -> dict[str, str]:
    return {k: str(int(v * 10**decimals)) for k, v in lim.items()}


async def across_limits(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    origin, dest, decimals = _route(m, request)
    rv = m.route_venue(origin, dest)
    return await reply(
        request,
        _limits_body(m.route_limits_usd(origin, dest), decimals),
        venues=frozenset({rv.id} if rv else set()),
    )


async def across_suggested_fees(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    origin, dest, decimals = _route(m, request)
    raw = request.query.get("amount")
    if raw is None or not raw.isdigit() or int(raw) <= 0:
        raise MarketError(
            "amount", "required: a positive integer in the input token's base units", 400
        )
    units = int(raw)
    amount = units / 10**decimals
    lim = m.route_limits_usd(origin, dest)
    if lim["maxDeposit"] == 0:
        raise MarketError("originChainId", f"route {origin}->{dest} is halted", 422)
    if amount > lim["maxDeposit"]:
        raise MarketError("amount", f"exceeds maxDeposit {lim['maxDeposit']}", 400)
    b = m.cfg.bridge
    model = m.route_rate_model(origin, dest) or across.RateModel(
        b.rate_model.ubar, b.rate_model.r0, b.rate_model.r1, b.rate_model.r2
    )
    liquid = b.hub_liquidity_usd * (1.0 - m.hub_u)
    utilized = b.hub_liquidity_usd * m.hub_u
    lp = across.lp_fee_pct(model, m.hub_u, across.utilization_after(liquid, utilized, amount))
    cap = across.capital_fee_pct(
        amount,
        across.CapitalFeeConfig(
            b.capital_fee.lower_bound, b.capital_fee.upper_bound, b.capital_fee.cutoff
        ),
    )
    gas_usd = m.cfg.chains[dest].fill_gas_usd
    gas = across.gas_fee_pct(gas_usd, amount)
    total = lp + cap + gas
    fill = across.fill_time_seconds(
        amount,
        m.cfg.chains[origin].instant_fill_seconds,
        lim["maxDepositInstant"],
        lim["maxDepositShortDelay"],
    )

    def fee(p: float) -> dict[str, str]:
        return {"pct": str(int(p * 1e18)), "total": str(int(p * units))}

    rv = m.route_venue(origin, dest)
    payload = {
        "estimatedFillTimeSec": int(fill),
        "expectedFillTimeSec": int(fill),
        "capitalFeePct": str(int(cap * 1e18)),
        "capitalFeeTotal": str(int(cap * units)),
        "relayGasFeePct": str(int(gas * 1e18)),
        "relayGasFeeTotal": str(int(gas * units)),
        "relayFeePct": str(int((cap + gas) * 1e18)),
        "relayFeeTotal": str(int((cap + gas) * units)),
        "lpFeePct": str(int(lp * 1e18)),
        "timestamp": str(int(m.state_time)),
        "isAmountTooLow": amount < lim["minDeposit"] or total >= 1.0,
        "quoteBlock": str(19_000_000 + m.ticks),
        "exclusiveRelayer": ZERO_ADDRESS,
        "exclusivityDeadline": 0,
        "fillDeadline": str(int(m.state_time) + 4 * 3600),
        "outputAmount": str(max(0, units - int(total * units))),
        "totalRelayFee": fee(total),
        "relayerCapitalFee": fee(cap),
        "relayerGasFee": fee(gas),
        "lpFee": fee(lp),
        "limits": _limits_body(lim, decimals),
    }
    return await reply(request, payload, venues=frozenset({rv.id} if rv else set()))


# --- fixed-rate earn product --------------------------------------------------------------------
async def earn_list(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    asset = request.query.get("asset")
    current = int(_query_number(request, "current", 1, lo=1, hi=1e6))
    size = int(_query_number(request, "size", 100, lo=1, hi=100))  # live default is 10; see README
    vs = [v for v in m.venues if isinstance(v, FixedVenue) and (asset is None or v.asset == asset)]
    page = vs[(current - 1) * size : current * size]
    rows = []
    for v in page:
        fc = v.c
        sold_out = v.ours_usd >= fc.quota_usd
        rows.append(
            (
                v.id,
                {
                    "asset": v.asset,
                    "latestAnnualPercentageRate": f"{v.apr:.8f}",
                    "tierAnnualPercentageRate": {},
                    "airDropPercentageRate": "0",
                    "canPurchase": not v.paused and not sold_out,
                    "canRedeem": v.can_redeem,
                    "isSoldOut": sold_out,
                    "hot": False,
                    "minPurchaseAmount": f"{fc.min_purchase_usd:g}",
                    "maxPurchaseAmountPerUser": f"{fc.quota_usd:.2f}",
                    "productId": fc.product_id,
                    "subscriptionStartTime": int(m.epoch0 * 1000),
                    "status": "PURCHASING" if not v.paused else "END",
                },
            )
        )
    return await reply(
        request,
        {"rows": [r for _, r in rows], "total": len(vs)},
        venues=frozenset(v.id for v in page),
        rows=rows,
    )


# --- paper execution ------------------------------------------------------------------------
async def _paper(
    request: web.Request, result: dict[str, Any], venues: frozenset[str] = frozenset()
) -> web.StreamResponse:
    m = request.app[MARKET_KEY]
    m.save_if_dirty()  # a paper write is durable before it is acknowledged
    return await reply(request, result, venues=venues)


async def paper_deposit(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    b = await _json_body(request)
    return await _paper(
        request, m.deposit(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
    )


async def paper_withdraw(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    b = await _json_body(request)
    return await _paper(
        request, m.withdraw(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
    )


async def paper_bridge(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    b = await _json_body(request)
    return await _paper(
        request,
        m.bridge(
            b.get("from_chain"), b.get("to_chain"), b.get("amount_usd"), b.get("idempotency_key")
        ),
    )


async def paper_transfer(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    return await reply(request, m.transfer(request.match_info["transfer_id"]))


async def paper_positions(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    return await reply(request, m.positions_view())


async def paper_withdrawals(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    rows = [m.withdrawal(w) for w in m.withdrawals]
    return await reply(request, {"withdrawals": rows, "sim_time": iso(m.state_time)})


async def paper_withdrawal(request: web.Request) -> web.StreamResponse:
    m = _market(request)
    return await reply(request, m.withdrawal(request.match_info["withdrawal_id"]))


# --- admin ------------------------------------------------------------------------------------
async def admin_state(request: web.Request) -> web.Response:
    return web.json_response(_market(request).summary())


async def admin_clock(request: web.Request) -> web.Response:
    m = _market(request)
    b = await _json_body(request)
    unknown = set(b) - {"advance_seconds", "time_scale"}
    if unknown:
        raise MarketError(
            sorted(unknown)[0], "unknown field; allowed: advance_seconds, time_scale", 400
        )
    ticks = 0
    if "time_scale" in b:
        ts = b["time_scale"]
        if (
            isinstance(ts, bool)
            or not isinstance(ts, (int, float))
            or not math.isfinite(ts)
            or ts < 0
            or ts > 1e7
        ):
            raise MarketError("time_scale", "must be a number in [0, 1e7]")
        m.clock.set_time_scale(float(ts))
    if "advance_seconds" in b:
        adv = b["advance_seconds"]
        if (
            isinstance(adv, bool)
            or not isinstance(adv, (int, float))
            or not math.isfinite(adv)
            or adv < 0
            or adv > 400 * 86_400
        ):
            raise MarketError(
                "advance_seconds", "must be a number in [0, 34560000] (400 simulated days)"
            )
        ticks = m.advance(float(adv))
    m.save_if_dirty()
    return web.json_response(
        {"sim_time": iso(m.state_time), "time_scale": m.clock.time_scale, "ticks": ticks}
    )


async def admin_scenarios_post(request: web.Request) -> web.Response:
    m = _market(request)
    rec = m.start_scenario(await _json_body(request))
    m.save_if_dirty()
    return web.json_response(rec, status=201)


async def admin_scenarios_get(request: web.Request) -> web.Response:
    m = _market(request)
    return web.json_response(
        {
            "scenarios": [m.scenario_public(s) for s in m.scenarios.values()],
            "names": [
                "rate_spike",
                "exploit",
                "depeg",
                "slashing",
                "bridge_halt",
                "liquidity_crunch",
            ],
        }
    )


async def admin_scenario_delete(request: web.Request) -> web.Response:
    m = _market(request)
    rec = m.end_scenario(request.match_info["scenario_id"])
    m.save_if_dirty()
    return web.json_response(rec)


async def admin_faults_post(request: web.Request) -> web.Response:
    m = _market(request)
    rec = m.add_fault(await _json_body(request))
    m.save_if_dirty()
    return web.json_response(rec, status=201)


async def admin_faults_get(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    return web.json_response({"faults": [r.public() for r in m.faults.values()]})


async def admin_fault_delete(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    rec = m.remove_fault(request.match_info["fault_id"])
    m.save_if_dirty()
    return web.json_response(rec)


async def admin_faults_clear(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    n = len(m.faults)
    m.faults.clear()
    m.dirty = True
    m.save_if_dirty()
    return web.json_response({"removed": n})


async def admin_save(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    path = m.save()
    return web.json_response({"saved": str(path) if path else None, "sim_time": iso(m.state_time)})


async def healthz(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    return web.json_response(
        {"status": "ok", "sim_time": iso(m.state_time), "venues": len(m.venues)}
    )


# --- lifecycle ----------------------------------------------------------------------------------
async def _ticker(app: web.Application) -> None:
    """Keep the world in step with the clock and save it every ``save_interval_seconds``."""
    m = app[MARKET_KEY]
    loop = asyncio.get_running_loop()
    last_save = loop.time()
    while True:
        await asyncio.sleep(0.25)
        try:
            m.sync()
            if loop.time() - last_save >= m.cfg.save_interval_seconds:
                m.save_if_dirty()
                last_save = loop.time()
        except Exception:
            await asyncio.sleep(1.0)


async def _on_startup(app: web.Application) -> None:
    app[TASK_KEY] = asyncio.create_task(_ticker(app))


async def _on_cleanup(app: web.Application) -> None:
    task = app.get(TASK_KEY)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    m = app[MARKET_KEY]
    m.sync()
    m.save()


def create_app(market: Market) -> web.Application:
    """The aiohttp application serving every endpoint of ``mockfeeds/README.md``."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024**2)
    app[MARKET_KEY] = market
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/defillama/pools", defillama_pools)
    r.add_get("/defillama/chart/{pool}", defillama_chart)
    r.add_get("/coins/prices/current/{coins}", coins_current)
    r.add_get("/coins/chart/{coins}", coins_chart)
    r.add_get("/lido/v1/protocol/steth/apr/sma", lido_sma)
    r.add_get("/lido/v1/protocol/steth/apr/last", lido_last)
    r.add_get("/lido/v2/request-time/calculate", lido_request_time)
    r.add_get("/aave/v3/{market}/reserves", aave_reserves)
    r.add_get("/aave/v3/{market}/incentives", aave_incentives)
    r.add_get("/compound/v3/{chain}/{comet}", compound_comet)
    r.add_get("/across/api/suggested-fees", across_suggested_fees)
    r.add_get("/across/api/limits", across_limits)
    r.add_get("/earn/sapi/v1/simple-earn/flexible/list", earn_list)
    r.add_post("/paper/v1/deposit", paper_deposit)
    r.add_post("/paper/v1/withdraw", paper_withdraw)
    r.add_post("/paper/v1/bridge", paper_bridge)
    r.add_get("/paper/v1/bridge/{transfer_id}", paper_transfer)
    r.add_get("/paper/v1/positions", paper_positions)
    r.add_get("/paper/v1/withdrawals", paper_withdrawals)
    r.add_get("/paper/v1/withdrawals/{withdrawal_id}", paper_withdrawal)
    r.add_get("/admin/v1/state", admin_state)
    r.add_post("/admin/v1/clock", admin_clock)
    r.add_get("/admin/v1/scenarios", admin_scenarios_get)
    r.add_post("/admin/v1/scenarios", admin_scenarios_post)
    r.add_delete("/admin/v1/scenarios/{scenario_id}", admin_scenario_delete)
    r.add_get("/admin/v1/faults", admin_faults_get)
    r.add_post("/admin/v1/faults", admin_faults_post)
    r.add_delete("/admin/v1/faults", admin_faults_clear)
    r.add_delete("/admin/v1/faults/{fault_id}", admin_fault_delete)
    r.add_post("/admin/v1/save", admin_save)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app
