"""Every named stress scenario does what mockfeeds/README.md says, and ends when it should."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mockfeeds.market import Market
from protocols import aave, lido
from protocols.aave import from_ray
from tests.mockfeeds_world import DEFAULT

DAY = 86_400.0


async def post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    r = await client.post(path, json=body)
    return r.status, await r.json()


async def deposit(client: Any, venue: str, usd: str, key: str) -> dict[str, Any]:
    status, body = await post(
        client, "/paper/v1/deposit", {"venue": venue, "amount_usd": usd, "idempotency_key": key}
    )
    assert status == 200, body
    return body


async def aave_reserve(client: Any) -> dict[str, Any]:
    return (await (await client.get("/aave/v3/ethereum/reserves")).json())["reservesData"][0]


async def test_rate_spike_pins_utilization_then_mean_reverts(mk: tuple[Market, Any]) -> None:
    m, client = mk
    status, sc = await post(
        client,
        "/admin/v1/scenarios",
        {
            "name": "rate_spike",
            "venue": "aave-v3-usdc-ethereum",
            "params": {"utilization": 0.97},
            "duration_seconds": DAY,
        },
    )
    assert status == 201 and sc["active"] and sc["ends_at"] == "2026-02-02T00:00:00.000Z"
    s = aave.PRESETS["ethereum-usdc-2026-02"]
    res = await aave_reserve(client)
    assert from_ray(res["liquidityRate"]) == pytest.approx(
        aave.supply_apr(s, 0.97), rel=1e-9
    )  # 8.0 % + ...
    assert from_ray(res["variableBorrowRate"]) == pytest.approx(0.05 + 0.10 * 0.05 / 0.08)
    m.advance(DAY)
    assert not m.scenarios[sc["scenario_id"]]["active"]
    m.advance(10 * DAY)
    assert m.by_id["aave-v3-usdc-ethereum"].utilization() < 0.95  # demand reverts to its mean
    status, body = await post(
        client, "/admin/v1/scenarios", {"name": "rate_spike", "venue": "lido-steth"}
    )
    assert status == 422 and body["error"]["field"] == "venue"


async def test_exploit_drains_the_pool_and_pauses_it(mk: tuple[Market, Any]) -> None:
    m, client = mk
    await deposit(client, "aave-v3-usdc-ethereum", "1000000.000000", "d")
    tvl0 = m.by_id["aave-v3-usdc-ethereum"].total_supply()
    status, sc = await post(
        client,
        "/admin/v1/scenarios",
        {
            "name": "exploit",
            "venue": "aave-v3-usdc-ethereum",
            "params": {"loss_fraction": 0.4},
            "duration_seconds": 2 * DAY,
        },
    )
    assert status == 201
    assert m.position_usd("aave-v3-usdc-ethereum") == "600000.000000"
    assert m.by_id["aave-v3-usdc-ethereum"].total_supply() == pytest.approx(0.6 * tvl0)
    assert (await aave_reserve(client))["isPaused"] is True
    status, body = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "1.000000", "idempotency_key": "w"},
    )
    assert (
        status == 422 and body["error"]["field"] == "venue" and "paused" in body["error"]["reason"]
    )
    status, _ = await post(
        client,
        "/paper/v1/deposit",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "1.000000", "idempotency_key": "d2"},
    )
    assert status == 422
    r = await client.delete(f"/admin/v1/scenarios/{sc['scenario_id']}")
    assert r.status == 200 and (await r.json())["active"] is False
    status, body = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "aave-v3-usdc-ethereum", "amount_usd": "1.000000", "idempotency_key": "w"},
    )
    assert status == 200


async def test_exploit_freezes_the_custodial_product(mk: tuple[Market, Any]) -> None:
    _m, client = mk
    await post(
        client,
        "/admin/v1/scenarios",
        {"name": "exploit", "venue": "earn-usdt-flexible", "params": {"loss_fraction": 0.0}},
    )
    row = (await (await client.get("/earn/sapi/v1/simple-earn/flexible/list")).json())["rows"][0]
    assert row["canRedeem"] is False and row["canPurchase"] is False and row["status"] == "END"


async def test_depeg_marks_positions_and_prices_on_one_chain(mk: tuple[Market, Any]) -> None:
    m, client = mk
    await deposit(client, "aave-v3-usdc-ethereum", "100000.000000", "a")
    await deposit(client, "across-usdc-arbitrum-base", "100000.000000", "b")
    status, _sc = await post(
        client,
        "/admin/v1/scenarios",
        {
            "name": "depeg",
            "chain": "ethereum",
            "token": "USDC",
            "params": {"price": 0.92},
            "duration_seconds": 3600,
        },
    )
    assert status == 201
    assert Decimal(m.position_usd("aave-v3-usdc-ethereum")) == Decimal("92000.000000")
    assert (
        m.position_usd("across-usdc-arbitrum-base") == "100000.000000"
    )  # USDC on arbitrum holds its peg
    prices = (
        await (
            await client.get(
                "/coins/prices/current/ethereum:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,arbitrum:0xaf88d065e77c8cc2239327c5edb3a432268e5831"
            )
        ).json()
    )["coins"]
    assert prices["ethereum:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"]["price"] == pytest.approx(
        0.92, abs=0.005
    )
    assert prices["arbitrum:0xaf88d065e77c8cc2239327c5edb3a432268e5831"]["price"] == pytest.approx(
        1.0, abs=0.005
    )
    m.advance(3600)  # recovers at the end
    assert Decimal(m.position_usd("aave-v3-usdc-ethereum")) > Decimal("100000")
    status, body = await post(
        client, "/admin/v1/scenarios", {"name": "depeg", "chain": "ethereum", "token": "WETH"}
    )
    assert status == 422 and body["error"]["field"] == "token"


async def test_slashing_is_socialised_at_the_next_report(mk: tuple[Market, Any]) -> None:
    m, client = mk
    v = m.by_id["lido-steth"]
    await deposit(client, "lido-steth", "1000000.000000", "s")
    status, sc = await post(
        client,
        "/admin/v1/scenarios",
        {
            "name": "slashing",
            "venue": "lido-steth",
            "params": {"validators": 10000},
            "duration_seconds": 5 * DAY,
        },
    )
    assert status == 201
    loss = sc["params"]["loss_fraction"]
    assert loss == pytest.approx(lido.slashing_loss_fraction(10000, v.total_pooled_eth, 34_000_000))
    assert sc["params"]["applied_at_next_report"] == "2026-02-01T12:00:00.000Z"
    assert m.position_usd("lido-steth") == "1000000.000000"  # not yet
    wq = await (await client.get("/lido/v2/request-time/calculate?amount=10")).json()
    assert (
        wq["requestInfo"]["type"] == "bunker"
        and wq["requestInfo"]["finalizationIn"] >= 14 * 86_400_000
    )
    m.advance(12 * 3600)
    reward = 1 + v.protocol_apr * 0.9 / 365  # roughly one day's rebase
    assert float(m.position_usd("lido-steth")) == pytest.approx(1e6 * (1 - loss) * reward, rel=2e-4)
    sma = await (await client.get("/lido/v1/protocol/steth/apr/sma")).json()
    assert sma["data"]["aprs"][-1]["apr"] < 0  # the report shows the loss


async def test_bridge_halt_stops_bridging_and_the_arb_route(mk: tuple[Market, Any]) -> None:
    m, client = mk
    await deposit(client, "across-usdc-arbitrum-base", "100000.000000", "a")
    status, tr = await post(
        client,
        "/paper/v1/bridge",
        {
            "from_chain": "ethereum",
            "to_chain": "base",
            "amount_usd": "1000.000000",
            "idempotency_key": "t1",
        },
    )
    assert tr["status"] == "in_flight"
    status, _sc = await post(
        client,
        "/admin/v1/scenarios",
        {"name": "bridge_halt", "chain": "base", "duration_seconds": 2 * 3600},
    )
    assert status == 201
    status, body = await post(
        client,
        "/paper/v1/bridge",
        {
            "from_chain": "arbitrum",
            "to_chain": "base",
            "amount_usd": "1000.000000",
            "idempotency_key": "t2",
        },
    )
    assert (
        status == 422
        and body["error"]["field"] == "to_chain"
        and "halted" in body["error"]["reason"]
    )
    status, body = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "across-usdc-arbitrum-base", "amount_usd": "1.000000", "idempotency_key": "w"},
    )
    assert status == 422 and "halted" in body["error"]["reason"]
    route = {
        "inputToken": "0xaf88d065e77c8cc2239327c5edb3a432268e5831",
        "outputToken": "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
        "originChainId": "42161",
        "destinationChainId": "8453",
    }
    limits = await (await client.get("/across/api/limits", params=route)).json()
    assert limits["maxDeposit"] == "0" and limits["maxDepositInstant"] == "0"
    r = await client.get("/across/api/suggested-fees", params=dict(route, amount="1000000000"))
    assert r.status == 422
    pos = m.position_usd("across-usdc-arbitrum-base")
    m.advance(3600)
    assert m.position_usd("across-usdc-arbitrum-base") == pos  # no income while halted
    held = await (await client.get(f"/paper/v1/bridge/{tr['transfer_id']}")).json()
    assert held["status"] == "in_flight" and held["arrives_at"] == "2026-02-01T02:00:00.000Z"
    m.advance(3600)
    assert (await (await client.get(f"/paper/v1/bridge/{tr['transfer_id']}")).json())[
        "status"
    ] == "filled"
    status, _ = await post(
        client,
        "/paper/v1/withdraw",
        {"venue": "across-usdc-arbitrum-base", "amount_usd": "1.000000", "idempotency_key": "w"},
    )
    assert status == 200


async def test_liquidity_crunch_caps_lp_withdrawals(mk: tuple[Market, Any]) -> None:
    m, client = mk
    await deposit(client, "uniswap-v2-usdc-weth-ethereum", "100000.000000", "l")
    status, _sc = await post(
        client,
        "/admin/v1/scenarios",
        {
            "name": "liquidity_crunch",
            "venue": "uniswap-v2-usdc-weth-ethereum",
            "params": {"cap_usd": 10000},
            "duration_seconds": DAY,
        },
    )
    assert status == 201
    status, body = await post(
        client,
        "/paper/v1/withdraw",
        {
            "venue": "uniswap-v2-usdc-weth-ethereum",
            "amount_usd": "20000.000000",
            "idempotency_key": "w1",
        },
    )
    assert status == 422 and body["error"]["reason"] == "exceeds available liquidity 10000.00"
    status, _ = await post(
        client,
        "/paper/v1/withdraw",
        {
            "venue": "uniswap-v2-usdc-weth-ethereum",
            "amount_usd": "10000.000000",
            "idempotency_key": "w2",
        },
    )
    assert status == 200
    m.advance(DAY)
    status, _ = await post(
        client,
        "/paper/v1/withdraw",
        {
            "venue": "uniswap-v2-usdc-weth-ethereum",
            "amount_usd": "20000.000000",
            "idempotency_key": "w3",
        },
    )
    assert status == 200


async def test_unknown_scenario_and_listing(mk: tuple[Market, Any]) -> None:
    _, client = mk
    status, body = await post(client, "/admin/v1/scenarios", {"name": "meteor"})
    assert status == 422 and body["error"]["field"] == "name"
    status, body = await post(
        client,
        "/admin/v1/scenarios",
        {"name": "exploit", "venue": "aave-v3-usdc-ethereum", "duration_seconds": 0},
    )
    assert status == 422 and body["error"]["field"] == "duration_seconds"
    listing = await (await client.get("/admin/v1/scenarios")).json()
    assert set(listing["names"]) == {
        "rate_spike",
        "exploit",
        "depeg",
        "slashing",
        "bridge_halt",
        "liquidity_crunch",
        "depeg_path",
        "exploit_path",
        "bank_run",
        "steth_discount",
        "funding_flip",
        "floor_crash",
        "rental_drought",
    }


def test_scheduled_scenarios_from_the_market_yaml(tmp_path: Path) -> None:
    c = copy.deepcopy(DEFAULT)
    c["time_scale"] = 0
    c["scenarios"] = [
        {
            "at": "2026-02-02T06:00:00Z",
            "name": "depeg",
            "chain": "ethereum",
            "token": "USDT",
            "params": {"price": 0.9},
            "duration_seconds": 6 * 3600,
        },
        {
            "at": "2026-02-03T00:00:00Z",
            "name": "rate_spike",
            "venue": "aave-v3-usdc-ethereum",
            "params": {"utilization": 0.99},
        },
    ]
    state = tmp_path / "s.json"
    m = Market.from_config(c, state_path=state)
    m.deposit("earn-usdt-flexible", "100000.000000", "e")
    m.advance(DAY + 5 * 3600)
    assert not m.scenarios and m.position_usd("earn-usdt-flexible") > "100000"
    m.advance(3600)
    assert [s["name"] for s in m.scenarios.values()] == ["depeg"]
    assert float(m.position_usd("earn-usdt-flexible")) == pytest.approx(
        90_000 * (1 + 0.045 * 30 / 8760), rel=1e-6
    )  # 30 h of interest, marked at 0.9
    m.save()
    resumed = Market.from_config(c, state_path=state)  # a restart does not start it twice
    resumed.advance(DAY)
    assert [s["name"] for s in resumed.scenarios.values()] == ["depeg", "rate_spike"]
    assert [s["active"] for s in resumed.scenarios.values()] == [False, True]
    assert resumed.by_id["aave-v3-usdc-ethereum"].utilization() == pytest.approx(0.99)
    bad = copy.deepcopy(c)
    bad["scenarios"] = [
        {"at": "2026-02-03T00:00:00Z", "name": "slashing", "venue": "aave-v3-usdc-ethereum"}
    ]
    with pytest.raises(
        ValueError, match=r"scenarios\.0\.venue: slashing applies to staking venues"
    ):
        Market.from_config(bad)
