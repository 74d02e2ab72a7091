"""Protocol-shaped routes: Lido's APR and withdrawal-queue APIs, Aave v3 reserves and incentives,
Compound v3 comets, Across fees and limits, and the custodial earn product list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mockfeeds.market import Market, MarketError, iso
from mockfeeds.routes.common import ZERO_ADDRESS, market_of, query_number, reply
from mockfeeds.routes.loop import loop_reserve_rows, loop_venues
from mockfeeds.venues import FixedVenue, LendingVenue, StakingVenue
from protocols import aave, across, compound


# --- Lido --------------------------------------------------------------------------------------
def _lido(m: Market) -> StakingVenue:
    for v in m.venues:
        if isinstance(v, StakingVenue) and v.cfg.protocol == "lido":
            return v
    raise MarketError("venue", "this market has no lido venue", 404)


def _lido_meta(v: StakingVenue) -> dict[str, Any]:
    return {"symbol": "stETH", "address": v.c.token_address, "chainId": 1}


async def lido_sma(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    v = _lido(m)
    recent = list(v.aprs)[-7:]
    aprs = [{"timeUnix": int(t), "apr": a * 100.0} for t, a in recent]
    sma = sum(a["apr"] for a in aprs) / len(aprs) if aprs else v.base_apr(m) * 100.0
    payload = {"data": {"aprs": aprs, "smaApr": sma}, "meta": _lido_meta(v)}
    return await reply(request, payload, venues=frozenset({v.id}))


async def lido_last(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    v = _lido(m)
    if not v.aprs:
        raise MarketError(None, "no oracle report yet", 404)
    t, a = v.aprs[-1]
    payload = {"data": {"timeUnix": int(t), "apr": a * 100.0}, "meta": _lido_meta(v)}
    return await reply(request, payload, venues=frozenset({v.id}))


async def lido_request_time(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    v = _lido(m)
    amount_eth = query_number(request, "amount", lo=1e-18, hi=1e9)
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
def _aave_venues(m: Market, market_name: str, *, allow_empty: bool = False) -> list[LendingVenue]:
    out = [
        v
        for v in m.venues
        if isinstance(v, LendingVenue) and not v.is_compound and v.c.market == market_name
    ]
    if not out and not allow_empty:
        raise MarketError("market", f"unknown Aave market {market_name!r}", 404)
    return out


def _aave_reserve(m: Market, v: LendingVenue) -> dict[str, Any]:
    c = v.c
    scale = 10**c.decimals
    debt = v.debt()
    avail = max(0.0, v.total_supply() - debt)
    u = v.utilization()
    s = v.strategy
    # the pool's own oracle; an exploit_path incident pushes it off the market (mockfeeds/incidents.py)
    price = m.token_price(v.chain, v.asset) * (1.0 + v.oracle_offset_bps / 10_000)
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
        "priceInMarketReferenceCurrency": str(round(price * 1e8)),
        "baseVariableBorrowRate": aave.to_ray(s.base_variable_borrow_apr),
        "variableRateSlope1": aave.to_ray(s.slope1_apr),
        "variableRateSlope2": aave.to_ray(s.slope2_apr),
        "optimalUsageRatio": aave.to_ray(s.optimal_usage_ratio),
        "supplyCap": str(int(c.supply_cap_tokens)),
        "borrowCap": str(int(c.borrow_cap_tokens)),
    }


async def aave_reserves(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    name = request.match_info["market"]
    loops = loop_venues(m, name)
    vs = _aave_venues(m, name) if not loops else _aave_venues(m, name, allow_empty=True)
    rows = [(v.id, _aave_reserve(m, v)) for v in vs]
    rows += [(v.id, r) for v in loops for r in loop_reserve_rows(m, v)]
    payload = {
        "reservesData": [r for _, r in rows],
        "baseCurrencyData": {
            "marketReferenceCurrencyDecimals": 8,
            "marketReferenceCurrencyPriceInUsd": "100000000",
            "networkBaseTokenPriceInUsd": str(round(m.eth_usd * 1e8)),
            "networkBaseTokenPriceDecimals": 8,
        },
    }
    return await reply(request, payload, venues=frozenset(v.id for v in (*vs, *loops)), rows=rows)


async def aave_incentives(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
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
                    "rewardPriceFeed": str(round(inc.reward_price_usd * 1e8)),
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
    m = market_of(request)
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
    origin_id = int(query_number(request, "originChainId", lo=1))
    dest_id = int(query_number(request, "destinationChainId", lo=1))
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
    m = market_of(request)
    origin, dest, decimals = _route(m, request)
    rv = m.route_venue(origin, dest)
    return await reply(
        request,
        _limits_body(m.route_limits_usd(origin, dest), decimals),
        venues=frozenset({rv.id} if rv else set()),
    )


async def across_suggested_fees(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
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
    m = market_of(request)
    asset = request.query.get("asset")
    current = int(query_number(request, "current", 1, lo=1, hi=1e6))
    size = int(query_number(request, "size", 100, lo=1, hi=100))  # live default is 10; see README
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
