"""Every fault mode happens as specified, per venue and per path, through the admin API and config."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import aiohttp
import pytest

from mockfeeds.app import create_app
from mockfeeds.market import Market
from tests.mockfeeds_world import cfg

AAVE_POOL = "aa70268e-4b52-42bf-a116-608b370f9501"
LIDO_POOL = "747c1d2a-c668-4682-b9f9-296708a3dd90"


async def add_fault(client: Any, **spec: Any) -> dict[str, Any]:
    r = await client.post("/admin/v1/faults", json=spec)
    body = await r.json()
    assert r.status == 201, body
    return body


def rows_by_pool(text: str) -> dict[str, dict[str, Any]]:
    return {r.get("pool"): r for r in json.loads(text)["data"]}


async def test_latency(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, venue="lido-steth", mode="latency", latency_ms=300)
    t0 = time.perf_counter()
    r = await client.get("/lido/v1/protocol/steth/apr/sma")
    assert r.status == 200 and (await r.json())["data"]["aprs"]
    assert time.perf_counter() - t0 >= 0.3
    t0 = time.perf_counter()
    await client.get("/aave/v3/ethereum/reserves")  # other venues are unaffected
    assert time.perf_counter() - t0 < 0.3


async def test_timeout(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, path_prefix="/earn/", mode="timeout", timeout_seconds=1.0)
    with pytest.raises(asyncio.TimeoutError):
        await client.get(
            "/earn/sapi/v1/simple-earn/flexible/list", timeout=aiohttp.ClientTimeout(total=0.2)
        )
    r = await client.get("/earn/sapi/v1/simple-earn/flexible/list")  # waited out: 504
    assert r.status == 504 and (await r.json())["error"]["reason"] == "injected fault: timeout"


async def test_http_5xx_with_count_then_recovers(mk: tuple[Market, Any]) -> None:
    m, client = mk
    rule = await add_fault(
        client, venue="aave-v3-usdc-ethereum", mode="http_5xx", status=502, count=2
    )
    for _ in range(2):
        r = await client.get("/aave/v3/ethereum/reserves")
        assert r.status == 502 and (await r.json())["error"]["reason"] == "injected fault: 502"
    assert (await client.get("/aave/v3/ethereum/reserves")).status == 200
    assert rule["id"] not in m.faults


async def test_probability_is_seeded(mk: tuple[Market, Any]) -> None:
    _m, client = mk
    await add_fault(client, path_prefix="/lido/", mode="http_5xx", probability=0.5)
    statuses = [(await client.get("/lido/v1/protocol/steth/apr/sma")).status for _ in range(40)]
    assert 8 <= statuses.count(503) <= 32
    m2 = Market.from_config(cfg())
    m2.add_fault({"path_prefix": "/lido/", "mode": "http_5xx", "probability": 0.5})
    again = [
        503 if m2.matching_faults("/lido/v1/protocol/steth/apr/sma", frozenset()) else 200
        for _ in range(40)
    ]
    assert again == statuses  # same seed, same draws


async def test_malformed_json(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, path_prefix="/defillama/pools", mode="malformed_json")
    r = await client.get("/defillama/pools")
    assert r.status == 200 and r.content_type == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(await r.text())


async def test_nan_hits_only_the_venues_row(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, venue="aave-v3-usdc-ethereum", mode="nan")
    rows = rows_by_pool(await (await client.get("/defillama/pools")).text())
    assert math.isnan(rows[AAVE_POOL]["apy"]) and math.isnan(rows[AAVE_POOL]["tvlUsd"])
    assert math.isfinite(rows[LIDO_POOL]["apy"])
    res = (await (await client.get("/aave/v3/ethereum/reserves")).json())["reservesData"][0]
    assert res["liquidityRate"] == "NaN" and res["availableLiquidity"] == "NaN"
    assert res["symbol"] == "USDC"


async def test_value_faults_on_two_venues_of_one_response_both_apply(
    mk: tuple[Market, Any],
) -> None:
    m, client = mk
    before = rows_by_pool(m.defillama_pools_bytes().decode())[LIDO_POOL]
    await add_fault(client, venue="aave-v3-usdc-ethereum", mode="nan")
    await add_fault(client, venue="lido-steth", mode="absurd")
    rows = rows_by_pool(await (await client.get("/defillama/pools")).text())
    assert math.isnan(rows[AAVE_POOL]["apy"])
    assert rows[LIDO_POOL]["apy"] == pytest.approx(before["apy"] * 1e6)


async def test_absurd_values(mk: tuple[Market, Any]) -> None:
    m, client = mk
    before = rows_by_pool(m.defillama_pools_bytes().decode())[LIDO_POOL]
    await add_fault(client, venue="lido-steth", mode="absurd")
    rows = rows_by_pool(await (await client.get("/defillama/pools")).text())
    assert rows[LIDO_POOL]["apy"] == pytest.approx(before["apy"] * 1e6)
    assert rows[LIDO_POOL]["tvlUsd"] < 0
    sma = await (await client.get("/lido/v1/protocol/steth/apr/sma")).json()
    assert sma["data"]["smaApr"] > 1e5


async def test_stale_freezes_values_and_ages_timestamps(mk: tuple[Market, Any]) -> None:
    m, client = mk
    fresh = await (await client.get("/lido/v1/protocol/steth/apr/sma")).json()
    await add_fault(client, venue="lido-steth", mode="stale", stale_seconds=3 * 86_400)
    stale = await (await client.get("/lido/v1/protocol/steth/apr/sma")).json()
    assert [a["timeUnix"] for a in stale["data"]["aprs"]] == [
        a["timeUnix"] - 3 * 86_400 for a in fresh["data"]["aprs"]
    ]
    m.advance(3 * 86_400)
    later = await (await client.get("/lido/v1/protocol/steth/apr/sma")).json()
    assert later == stale  # frozen while the world moves on
    fees = await (
        await client.get(
            "/across/api/suggested-fees",
            params={"originChainId": "42161", "destinationChainId": "8453", "amount": "1000000000"},
        )
    ).json()
    assert int(fees["timestamp"]) == int(m.state_time)  # other feeds stay fresh
    await add_fault(client, venue="aave-v3-usdc-ethereum", mode="stale", stale_seconds=600)
    chart = await (await client.get(f"/defillama/chart/{AAVE_POOL}")).json()
    assert chart["data"][-1]["timestamp"] == "2026-02-03T23:50:00.000Z"


async def test_schema_drift(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, venue="earn-usdt-flexible", mode="schema_drift")
    row = (await (await client.get("/earn/sapi/v1/simple-earn/flexible/list")).json())["rows"][0]
    assert (
        "latestAnnualPercentageRate" not in row
        and row["latest_annual_percentage_rate"] == "0.04500000"
    )
    assert "productId" not in row and row["product_id"] == "USDT001"
    rows = rows_by_pool(await (await client.get("/defillama/pools")).text())
    drifted = next(
        r
        for r in json.loads(await (await client.get("/defillama/pools")).text())["data"]
        if "tvlUsd" not in r
    )
    assert isinstance(drifted["tvl_usd"], str) and "tvlUsd" not in drifted
    assert "tvlUsd" in rows[AAVE_POOL]


async def test_oversized_body(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, path_prefix="/coins/", mode="oversized", size_bytes=3_000_000)
    r = await client.get("/coins/prices/current/base:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913")
    body = await r.read()
    assert len(body) >= 3_000_000 - 64
    assert (
        json.loads(body)["coins"]["base:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"]["symbol"]
        == "USDC"
    )


async def test_faults_from_config_and_admin_listing(aiohttp_client: Any) -> None:
    m = Market.from_config(
        cfg(faults=[{"venue": "earn-usdt-flexible", "mode": "http_5xx", "status": 500}])
    )
    client = await aiohttp_client(create_app(m))
    assert (await client.get("/earn/sapi/v1/simple-earn/flexible/list")).status == 500
    listed = (await (await client.get("/admin/v1/faults")).json())["faults"]
    assert listed[0]["id"] == "cfg-0" and listed[0]["hits"] == 1
    assert (await client.delete("/admin/v1/faults/cfg-0")).status == 200
    assert (await client.get("/earn/sapi/v1/simple-earn/flexible/list")).status == 200
    assert (await client.delete("/admin/v1/faults/cfg-0")).status == 404
    with pytest.raises(ValueError, match=r"faults\.0\.venue"):
        Market.from_config(cfg(faults=[{"venue": "ghost", "mode": "nan"}]))


async def test_bad_fault_specs_are_refused(mk: tuple[Market, Any]) -> None:
    _, client = mk
    for spec, field in [
        ({"venue": "lido-steth", "mode": "gremlins"}, "mode"),
        ({"mode": "nan"}, None),
        ({"venue": "ghost", "mode": "nan"}, "venue"),
        ({"path_prefix": "/admin/v1", "mode": "http_5xx"}, "path_prefix"),
        ({"venue": "lido-steth", "mode": "http_5xx", "status": 404}, "status"),
        ({"venue": "lido-steth", "mode": "nan", "colour": "red"}, "colour"),
    ]:
        r = await client.post("/admin/v1/faults", json=spec)
        body = await r.json()
        assert r.status == 422, spec
        assert body["error"]["field"] == field, body


async def test_a_lost_paper_response_is_recovered_by_retrying_the_key(
    mk: tuple[Market, Any],
) -> None:
    m, client = mk
    await add_fault(client, path_prefix="/paper/v1/deposit", mode="http_5xx", count=1)
    body = {
        "venue": "aave-v3-usdc-ethereum",
        "amount_usd": "1000.000000",
        "idempotency_key": "retry-me",
    }
    assert (await client.post("/paper/v1/deposit", json=body)).status == 503  # applied, answer lost
    r = await client.post("/paper/v1/deposit", json=body)
    assert r.status == 200 and (await r.json())["position_usd"] == "1000.000000"
    assert m.position_usd("aave-v3-usdc-ethereum") == "1000.000000"  # counted once


async def test_admin_endpoints_are_never_faulted(mk: tuple[Market, Any]) -> None:
    _, client = mk
    await add_fault(client, path_prefix="/", mode="http_5xx")
    assert (await client.get("/admin/v1/state")).status == 200
    assert (await client.get("/defillama/pools")).status == 503
    assert (await client.delete("/admin/v1/faults")).status == 200
    assert (await client.get("/defillama/pools")).status == 200
