"""The simulated market over real loopback HTTP: every read endpoint's shape, paper execution, and
the two headline behaviours (a deposit lowers the next polled Aave rate by the model's amount;
a withdrawal beyond available liquidity is refused with a clear error)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mockfeeds.app import create_app
from mockfeeds.generate import generate_market
from mockfeeds.market import Market
from protocols import aave, compound
from protocols.aave import from_ray
from tests.llama_fields import LLAMA_POOL_FIELDS

DAY = 86_400.0
ARB_ROUTE = {
    "inputToken": "0xaf88d065e77c8cc2239327c5edb3a432268e5831",
    "outputToken": "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
    "originChainId": "42161",
    "destinationChainId": "8453",
}


async def post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    r = await client.post(path, json=body)
    return r.status, await r.json()


def strategy_of(res: dict[str, Any]) -> aave.AaveRateStrategy:
    return aave.AaveRateStrategy(
        from_ray(res["baseVariableBorrowRate"]),
        from_ray(res["variableRateSlope1"]),
        from_ray(res["variableRateSlope2"]),
        from_ray(res["optimalUsageRatio"]),
        int(res["reserveFactor"]) / 10_000,
    )


def pool_state(res: dict[str, Any]) -> tuple[float, float]:
    scale = 10 ** res["decimals"]
    debt = int(res["totalScaledVariableDebt"]) * from_ray(res["variableBorrowIndex"]) / scale
    return debt, int(res["availableLiquidity"]) / scale


async def test_deposit_lowers_the_next_polled_aave_rate_by_what_the_model_predicts(
    mk: tuple[Market, Any],
) -> None:
    _, client = mk
    before = (await (await client.get("/aave/v3/ethereum/reserves")).json())["reservesData"][0]
    s = strategy_of(before)
    debt, avail = pool_state(before)
    rate0 = from_ray(before["liquidityRate"])
    assert rate0 == pytest.approx(aave.supply_apr(s, aave.utilization(debt, avail)), rel=1e-9)
    status, body = await post(
        client,
        "/paper/v1/deposit",
        {
            "venue": "aave-v3-usdc-ethereum",
            "amount_usd": "1000000.000000",
            "idempotency_key": "dep-1",
        },
    )
    assert status == 200 and body["position_usd"] == "1000000.000000"
    after = (await (await client.get("/aave/v3/ethereum/reserves")).json())["reservesData"][0]
    rate1 = from_ray(after["liquidityRate"])
    predicted = aave.supply_apr_after_deposit(s, debt, avail, 1_000_000.0)
    assert rate1 == pytest.approx(predicted, rel=1e-9)
    assert rate0 - rate1 > 5e-5  # $1M moves the rate by ~0.8 bp: a little, but measurably
    assert pool_state(after)[1] == pytest.approx(avail + 1_000_000, abs=1.0)
    # DefiLlama shows the same lower rate
    rows = (await (await client.get("/defillama/pools")).json())["data"]
    row = next(r for r in rows if r["pool"] == "aa70268e-4b52-42bf-a116-608b370f9501")
    assert row["apyBase"] == pytest.approx(rate1 * 100, rel=1e-9)


async def test_withdrawal_beyond_available_liquidity_is_refused(mk: tuple[Market, Any]) -> None:
    m, client = mk
    await post(
        client,
        "/paper/v1/deposit",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "2000000.000000", "idempotency_key": "d"},
    )
    status, _ = await post(
        client,
        "/admin/v1/scenarios",
        {
            "name": "liquidity_crunch",
            "venue": "aave-v3-usdc-ethereum",
            "params": {"available_fraction": 0.001},
        },
    )
    assert status == 201
    res = (await (await client.get("/aave/v3/ethereum/reserves")).json())["reservesData"][0]
    avail = pool_state(res)[1]
    assert 700_000 < avail < 900_000
    status, body = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "1500000.000000", "idempotency_key": "w1"},
    )
    assert status == 422
    assert body["error"]["field"] == "amount_usd"
    assert body["error"]["reason"].startswith("exceeds available liquidity ")
    assert float(body["error"]["reason"].rsplit(" ", 1)[1]) == pytest.approx(avail, abs=1.0)
    assert m.position_usd("aave-v3-usdc-ethereum") == "2000000.000000"  # nothing moved
    status, body = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "500000.000000", "idempotency_key": "w2"},
    )
    assert (
        status == 200 and body["position_usd"] == "1500000.000000" and body["status"] == "completed"
    )


async def test_defillama_pools_and_chart(mk: tuple[Market, Any]) -> None:
    _m, client = mk
    body = await (await client.get("/defillama/pools")).json()
    assert body["status"] == "success" and len(body["data"]) == 8
    for row in body["data"]:
        assert set(row) == LLAMA_POOL_FIELDS
        assert row["apy"] == pytest.approx(max(0.0, row["apyBase"] + (row["apyReward"] or 0.0)))
        assert row["count"] == 30
    lp = next(r for r in body["data"] if r["project"] == "uniswap-v2")
    assert lp["ilRisk"] == "yes" and lp["exposure"] == "multi"
    assert lp["apyBase"] == pytest.approx(
        lp["volumeUsd1d"] * 0.003 * 365 / lp["tvlUsd"] * 100, rel=1e-9
    )
    chart = await (await client.get("/defillama/chart/747c1d2a-c668-4682-b9f9-296708a3dd90")).json()
    assert chart["status"] == "success" and len(chart["data"]) == 31
    assert set(chart["data"][0]) == {
        "timestamp",
        "tvlUsd",
        "apy",
        "apyBase",
        "apyReward",
        "il7d",
        "apyBase7d",
    }
    assert chart["data"][-1]["timestamp"] == "2026-02-01T00:00:00.000Z"
    missing = await client.get("/defillama/chart/nope")
    assert missing.status == 404 and (await missing.json())["error"]["field"] == "pool"


async def test_pools_body_is_built_once_per_tick(mk: tuple[Market, Any]) -> None:
    m, client = mk
    first = m.defillama_pools_bytes()
    assert m.defillama_pools_bytes() is first
    await client.get("/defillama/pools")
    assert m.defillama_pools_bytes() is first
    m.advance(900)
    assert m.defillama_pools_bytes() is not first


async def test_coins_prices_and_chart(mk: tuple[Market, Any]) -> None:
    m, client = mk
    m.advance(6 * 3600)
    keys = "arbitrum:0xaf88d065e77c8cc2239327c5edb3a432268e5831,base:0x833589FCD6EDB6E08F4C7C32D4F71B54BDA02913,ethereum:0xdeadbeef"
    body = await (await client.get(f"/coins/prices/current/{keys}")).json()
    assert set(body["coins"]) == {
        "arbitrum:0xaf88d065e77c8cc2239327c5edb3a432268e5831",
        "base:0x833589FCD6EDB6E08F4C7C32D4F71B54BDA02913",
    }
    usdc = body["coins"]["arbitrum:0xaf88d065e77c8cc2239327c5edb3a432268e5831"]
    assert usdc["symbol"] == "USDC" and usdc["decimals"] == 6 and abs(usdc["price"] - 1) < 0.01
    assert usdc["timestamp"] == int(m.state_time)
    chart = await (
        await client.get(
            "/coins/chart/ethereum:0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2?span=4&period=1h"
        )
    ).json()
    prices = chart["coins"]["ethereum:0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"]["prices"]
    assert len(prices) == 4 and [p["timestamp"] for p in prices] == sorted(
        p["timestamp"] for p in prices
    )
    assert prices[-1]["timestamp"] - prices[-2]["timestamp"] == 3600
    assert prices[-1]["price"] == pytest.approx(m.token_price("ethereum", "WETH"))


async def test_lido_endpoints(mk: tuple[Market, Any]) -> None:
    _m, client = mk
    sma = await (await client.get("/lido/v1/protocol/steth/apr/sma")).json()
    aprs = sma["data"]["aprs"]
    assert len(aprs) == 7 and all(2.0 < a["apr"] < 4.0 for a in aprs)
    assert sma["data"]["smaApr"] == pytest.approx(sum(a["apr"] for a in aprs) / 7)
    assert sma["meta"] == {
        "symbol": "stETH",
        "address": "0xae7ab96520de3a18e5e111b5eaab095312d7fe84",
        "chainId": 1,
    }
    wq = await (await client.get("/lido/v2/request-time/calculate?amount=100")).json()
    assert wq["status"] == "calculated" and wq["requestInfo"]["type"] in (
        "buffer",
        "exitValidators",
    )
    assert 0 < wq["requestInfo"]["finalizationIn"] <= 10 * 86_400_000
    bad = await client.get("/lido/v2/request-time/calculate?amount=abc")
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "amount"


async def test_aave_reserves_shape_and_incentives(mk: tuple[Market, Any]) -> None:
    _, client = mk
    body = await (await client.get("/aave/v3/ethereum/reserves")).json()
    res = body["reservesData"][0]
    assert res["symbol"] == "USDC" and res["decimals"] == 6 and res["reserveFactor"] == "1000"
    assert res["variableRateSlope1"] == "50000000000000000000000000"  # 5 % in RAY
    assert res["optimalUsageRatio"] == "920000000000000000000000000"
    assert body["baseCurrencyData"]["marketReferenceCurrencyDecimals"] == 8
    inc = await (await client.get("/aave/v3/ethereum/incentives")).json()
    info = inc[0]["aIncentiveData"]["rewardsTokenInformation"][0]
    assert info["rewardTokenSymbol"] == "AAVE" and int(info["emissionPerSecond"]) > 0
    assert (await client.get("/aave/v3/polygon/reserves")).status == 404


async def test_compound_comet_endpoint(aiohttp_client: Any) -> None:
    c = generate_market(20, seed=3)
    c["time_scale"] = 0
    m = Market.from_config(c)
    client = await aiohttp_client(create_app(m))
    v = next(v for v in m.venues if getattr(v, "is_compound", False))
    body = await (await client.get(f"/compound/v3/{v.chain}/{v.c.comet}")).json()
    u = int(body["utilization"]) / 1e18
    assert u == pytest.approx(v.utilization(), abs=1e-15)
    assert int(body["totalBorrow"]) / int(body["totalSupply"]) == pytest.approx(u, rel=1e-9)
    assert int(body["supplyRate"]) * compound.SECONDS_PER_YEAR / 1e18 == pytest.approx(
        compound.comet_supply_apr(compound.PRESET_CUSDCV3, u), rel=1e-6
    )
    assert body["supplyKink"] == str(10**17 * 9)


async def test_across_endpoints_and_paper_bridge_agree(mk: tuple[Market, Any]) -> None:
    m, client = mk
    q = dict(ARB_ROUTE, amount=str(50_000 * 10**6))
    fees = await (await client.get("/across/api/suggested-fees", params=q)).json()
    total = int(fees["totalRelayFee"]["pct"]) / 1e18
    parts = sum(int(fees[k]["pct"]) for k in ("lpFee", "relayerCapitalFee", "relayerGasFee")) / 1e18
    assert total == pytest.approx(parts, rel=1e-9)
    assert int(fees["relayerCapitalFee"]["pct"]) == 10**14  # USDC: flat 1 bp
    assert fees["limits"]["maxDepositInstant"] == str(500_000 * 10**6)  # the arb route's capacity
    limits = await (await client.get("/across/api/limits", params=ARB_ROUTE)).json()
    assert limits == fees["limits"]
    status, tr = await post(
        client,
        "/paper/v1/bridge",
        {
            "from_chain": "arbitrum",
            "to_chain": "base",
            "amount_usd": "50000.000000",
            "idempotency_key": "br",
        },
    )
    assert status == 200 and tr["status"] == "in_flight"
    assert float(tr["fee_usd"]) == pytest.approx(total * 50_000, abs=0.01)
    assert float(tr["received_usd"]) + float(tr["fee_usd"]) == 50_000
    m.advance(900)
    done = await (await client.get(f"/paper/v1/bridge/{tr['transfer_id']}")).json()
    assert done["status"] == "filled" and done["received_usd"] == tr["received_usd"]
    bad = await client.get(
        "/across/api/suggested-fees",
        params=dict(ARB_ROUTE, inputToken="0x" + "1" * 40, amount="1000"),
    )
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "inputToken"


async def test_earn_product_list(mk: tuple[Market, Any]) -> None:
    _, client = mk
    body = await (await client.get("/earn/sapi/v1/simple-earn/flexible/list?asset=USDT")).json()
    assert body["total"] == 1
    row = body["rows"][0]
    assert row["productId"] == "USDT001" and row["latestAnnualPercentageRate"] == "0.04500000"
    assert row["canPurchase"] and row["canRedeem"] and row["status"] == "PURCHASING"
    assert (await (await client.get("/earn/sapi/v1/simple-earn/flexible/list?asset=BTC")).json())[
        "rows"
    ] == []


async def test_queued_withdrawals_and_positions(mk: tuple[Market, Any]) -> None:
    m, client = mk
    await post(
        client,
        "/paper/v1/deposit",
        {"venue": "lido-steth", "amount_usd": "100000.000000", "idempotency_key": "l"},
    )
    await post(
        client,
        "/paper/v1/deposit",
        {"venue": "earn-usdt-flexible", "amount_usd": "100000.000000", "idempotency_key": "e"},
    )
    wq = await (
        await client.get(
            "/lido/v2/request-time/calculate", params={"amount": str(40_000 / m.eth_usd)}
        )
    ).json()
    status, w = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "lido-steth", "amount_usd": "40000.000000", "idempotency_key": "lw"},
    )
    assert status == 200 and w["status"] == "queued" and w["position_usd"] == "60000.000000"
    assert w["settles_at"] == wq["requestInfo"]["finalizationAt"]
    status, e = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "earn-usdt-flexible", "amount_usd": "100000.000000", "idempotency_key": "ew"},
    )
    assert e["status"] == "queued" and e["settles_at"] == "2026-02-02T00:00:00.000Z"
    pos = await (await client.get("/paper/v1/positions")).json()
    by = {p["venue"]: p for p in pos["positions"]}
    assert by["lido-steth"]["pending_withdrawal_usd"] == "40000.000000"
    m.advance(DAY)
    assert (await (await client.get(f"/paper/v1/withdrawals/{e['withdrawal_id']}")).json())[
        "status"
    ] == "settled"
    assert (await (await client.get(f"/paper/v1/withdrawals/{w['withdrawal_id']}")).json())[
        "status"
    ] == "pending"
    m.advance(12 * DAY)
    listed = await (await client.get("/paper/v1/withdrawals")).json()
    assert {x["status"] for x in listed["withdrawals"]} == {"settled"}


async def test_http_errors_are_json_with_field_and_reason(mk: tuple[Market, Any]) -> None:
    _, client = mk
    r = await client.post(
        "/paper/v1/deposit", data=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status == 400 and (await r.json())["error"]["reason"] == "body is not valid JSON"
    status, body = await post(
        client,
        "/paper/v1/deposit",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": 5, "idempotency_key": "x"},
    )
    assert status == 422 and body["error"]["field"] == "amount_usd"
    status, body = await post(
        client,
        "/paper/v1/deposit",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "5", "idempotency_key": "x"},
    )
    status, body = await post(
        client,
        "/paper/v1/deposit",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "6", "idempotency_key": "x"},
    )
    assert status == 409 and body["error"]["field"] == "idempotency_key"
    r = await client.get("/nothing/here")
    assert r.status == 404 and "error" in await r.json()


async def test_admin_clock_and_state(mk: tuple[Market, Any]) -> None:
    _m, client = mk
    status, body = await post(client, "/admin/v1/clock", {"advance_seconds": 3600})
    assert status == 200 and body["ticks"] == 4 and body["sim_time"] == "2026-02-01T01:00:00.000Z"
    status, body = await post(client, "/admin/v1/clock", {"advance_seconds": -1})
    assert status == 422 and body["error"]["field"] == "advance_seconds"
    state = await (await client.get("/admin/v1/state")).json()
    assert state["sim_time"] == "2026-02-01T01:00:00.000Z" and len(state["venues"]) == 8
    json.dumps(state)


async def test_lp_deposit_dilutes_the_fee_apr_the_next_poll_reports(mk: tuple[Market, Any]) -> None:
    from protocols import uniswap

    _, client = mk
    lp_pool = "6e2fd0b3-6b7c-4a5e-9f43-1c2d3e4f5a6b"

    async def row() -> dict[str, Any]:
        rows = (await (await client.get("/defillama/pools")).json())["data"]
        return next(r for r in rows if r["pool"] == lp_pool)

    before = await row()
    status, body = await post(
        client,
        "/paper/v1/deposit",
        {
            "venue": "uniswap-v2-usdc-weth-ethereum",
            "amount_usd": "10000000.000000",
            "idempotency_key": "lp",
        },
    )
    assert status == 200
    applied = float(body["applied_usd"])
    cost = uniswap.single_sided_entry_cost_fraction(10_000_000, before["tvlUsd"])
    assert applied == pytest.approx(
        10_000_000 * (1 - cost), abs=0.01
    )  # the zap pays the swap fee and impact
    after = await row()
    assert after["tvlUsd"] == pytest.approx(before["tvlUsd"] + applied, rel=1e-12)
    assert after["apyBase"] == pytest.approx(
        uniswap.fee_apr(before["volumeUsd1d"], before["tvlUsd"] + applied) * 100, rel=1e-9
    )
    assert after["apyBase"] < before["apyBase"]


async def test_arb_route_apr_shrinks_with_our_inventory(mk: tuple[Market, Any]) -> None:
    m, client = mk
    v = m.by_id["across-usdc-arbitrum-base"]
    # force a clear price gap: base USDC 5 bp above arbitrum USDC
    m.basis_bps["arbitrum:USDC"], m.basis_bps["base:USDC"] = 0.0, 5.0
    small = v.base_apr(m)
    assert small > 0
    await post(
        client,
        "/paper/v1/deposit",
        {"venue": v.id, "amount_usd": "2000000.000000", "idempotency_key": "arb"},
    )
    assert v.base_apr(m) < small / 3  # capped at q* = C (1 - fee/s) < 500k: the rest earns nothing
