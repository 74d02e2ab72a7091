"""Paper accounts at the simulated market: one per vault id, so two daemons are two accounts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mockfeeds.market import Market
from mockfeeds.paper_api import paper_request
from mockfeeds.state import MarketError
from tests.mockfeeds_world import cfg

AAVE = "aave-v3-usdc-ethereum"


def positions(m: Market, account: str | None) -> dict[str, str]:
    view = paper_request(m, "GET", "/positions", None, account)
    return {r["venue"]: r["position_usd"] for r in view["positions"]}


def deposit(m: Market, account: str | None, usd: str, key: str) -> dict:
    body = {"venue": AAVE, "amount_usd": usd, "idempotency_key": key}
    return paper_request(m, "POST", "/deposit", body, account)


def test_accounts_see_only_their_own_positions_and_keys(tmp_path):
    m = Market.from_config(cfg(), state_path=tmp_path / "state.json")
    deposit(m, "v-a", "1000.000000", "k")
    # the same key in another account is another move, not a replay of the first
    deposit(m, "v-b", "250.000000", "k")
    assert positions(m, "v-a") == {AAVE: "1000.000000"}
    assert positions(m, "v-b") == {AAVE: "250.000000"}
    assert positions(m, None) == {}  # the default account (no header) holds nothing
    assert deposit(m, "v-a", "1000.000000", "k")["position_usd"] == "1000.000000"  # a replay
    # the pool sees every account's money
    assert m.by_id[AAVE].ours_usd == pytest.approx(1250.0)
    m.advance(30 * 86_400)
    a, b = Decimal(positions(m, "v-a")[AAVE]), Decimal(positions(m, "v-b")[AAVE])
    assert a > 1000 and b > 250 and abs(a / b - 4) < Decimal("0.0001")  # both accrue alike
    m.save()
    again = Market.from_config(cfg(), state_path=tmp_path / "state.json")
    assert positions(again, "v-a") == positions(m, "v-a")
    assert positions(again, "v-b") == positions(m, "v-b")


def test_a_bad_account_name_is_refused():
    m = Market.from_config(cfg())
    with pytest.raises(MarketError, match="account"):
        positions(m, "../etc")


async def test_the_header_selects_the_account_over_http(mk):
    _m, client = mk
    body = {"venue": AAVE, "amount_usd": "10.000000", "idempotency_key": "h"}
    resp = await client.post("/paper/v1/deposit", json=body, headers={"X-Paper-Account": "v-x"})
    assert resp.status == 200, await resp.text()
    mine = await (
        await client.get("/paper/v1/positions", headers={"X-Paper-Account": "v-x"})
    ).json()
    assert [r["venue"] for r in mine["positions"]] == [AAVE]
    default = await (await client.get("/paper/v1/positions")).json()
    assert default["positions"] == []


async def test_a_background_save_never_replaces_a_fill_made_durable_after_it(tmp_path):
    """The market's periodic save encodes and writes in a worker thread; a paper fill saves
    synchronously (durable before it is acknowledged). A background dump taken before the fill
    that reaches the disk after it is dropped, so the fill is what a restart loads."""
    path = tmp_path / "state.json"
    m = Market.from_config(cfg(), state_path=path)
    older = m._numbered_state()  # the ticker's dump, its thread not yet scheduled
    deposit(m, "v-a", "1000.000000", "k")  # saves at once (paper_api: save_if_dirty)
    m.write_state(older, path)  # the slow thread finally writes: dropped
    again = Market.from_config(cfg(), state_path=path)
    assert positions(again, "v-a") == {AAVE: "1000.000000"}
    # and the off-loop save itself writes what is newer
    deposit(m, "v-a", "500.000000", "k2")
    m.dirty = True
    await m.save_if_dirty_off_loop()
    assert not m.dirty
    assert positions(Market.from_config(cfg(), state_path=path), "v-a") == {AAVE: "1500.000000"}
