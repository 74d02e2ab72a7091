"""Generated markets (>= 1,000 venues across chains) and the daemon venue configs that match them."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import VenueConfig
from mockfeeds.app import create_app
from mockfeeds.generate import daemon_venues, generate_market
from mockfeeds.market import Market

ROOT = Path(__file__).resolve().parent.parent


def test_generated_market_is_deterministic_and_valid() -> None:
    a, b = generate_market(1000, seed=11), generate_market(1000, seed=11)
    assert a == b
    assert generate_market(1000, seed=12) != a
    kinds = Counter(v["kind"] for v in a["venues"])
    assert kinds == {"lending": 400, "lp": 250, "staking": 100, "bridge_arb": 150, "fixed": 100}
    assert len({v["chain"] for v in a["venues"]}) == 16
    assert len({v["id"] for v in a["venues"]}) == 1000
    with pytest.raises(ValueError, match="n_venues"):
        generate_market(0, seed=1)


def test_daemon_venues_validate_and_point_at_the_right_feeds() -> None:
    market = generate_market(1000, seed=5)
    venues = daemon_venues(market)
    assert [v["id"] for v in venues] == [v["id"] for v in market["venues"]]
    adapters = Counter(v["feed"]["adapter"] for v in venues)
    assert adapters["lido"] == 1 and adapters["across"] == 150 and adapters["fixed"] == 100
    assert adapters["aave_v3"] + adapters["compound_v3"] == 400 and adapters["compound_v3"] == 100
    assert adapters["defillama"] == 250 + 99
    for v in venues:
        VenueConfig.model_validate(v)


# feed params that are the daemon's choice, not a fact of the market: the sizes the Across fee
# quote is sampled at (one request each; the default config samples its one route, generated
# configs of 1,000 venues leave it off)
DAEMON_TUNING = {"quote_amounts_usd"}


def test_daemon_venues_of_the_default_market_match_config_default_yaml() -> None:
    market = yaml.safe_load((ROOT / "config" / "market.default.yaml").read_text())
    daemon = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())["venues"]
    ours = {v["id"]: v for v in daemon_venues(market)}
    for want in daemon:
        got = ours[want["id"]]
        assert (got["kind"], got["chain"], got["protocol"], got["asset"]) == (
            want["kind"],
            want["chain"],
            want["protocol"],
            want["asset"],
        )
        assert got["feed"]["adapter"] == want["feed"]["adapter"]
        for key, value in want["feed"].get("params", {}).items():
            if key in DAEMON_TUNING:
                continue
            assert got["feed"]["params"][key] == value, (want["id"], key)


async def test_a_thousand_venue_market_serves_every_row(aiohttp_client: Any) -> None:
    c = generate_market(1000, seed=5)
    c["time_scale"] = 0
    m = Market.from_config(c)
    client = await aiohttp_client(create_app(m))
    body = json.loads(await (await client.get("/defillama/pools")).text())
    assert len(body["data"]) == 1000
    assert len({r["pool"] for r in body["data"]}) == 1000
    first = m.defillama_pools_bytes()
    await client.get("/defillama/pools")
    assert m.defillama_pools_bytes() is first  # built once per tick, not per request
    by_market: Counter[str] = Counter(
        v.c.market for v in m.venues if v.kind == "lending" and not v.is_compound
    )  # type: ignore[attr-defined]
    market_name, n = by_market.most_common(1)[0]
    reserves = await (await client.get(f"/aave/v3/{market_name}/reserves")).json()
    assert len(reserves["reservesData"]) == n
    route = next(v for v in daemon_venues(c) if v["feed"]["adapter"] == "across")["feed"]["params"]
    q = {
        "originChainId": route["origin_chain_id"],
        "destinationChainId": route["destination_chain_id"],
        "inputToken": route["input_token"],
        "outputToken": route["output_token"],
        "amount": "1000000000",
    }
    assert (await client.get("/across/api/suggested-fees", params=q)).status == 200
    fixed = await (await client.get("/earn/sapi/v1/simple-earn/flexible/list")).json()
    assert fixed["total"] == 100 and len(fixed["rows"]) == 100
    m.advance(3600)
    assert m.ticks >= 1
    copy.deepcopy(m.dump_state())


def test_generate_cli_prints_a_loadable_market_and_its_daemon_venues(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mockfeeds.generate import main

    main(["--venues", "12", "--seed", "4"])
    market = yaml.safe_load(capsys.readouterr().out)
    assert len(Market.from_config(market).venues) == 12
    main(["--venues", "12", "--seed", "4", "--daemon-venues"])
    venues = yaml.safe_load(capsys.readouterr().out)["venues"]
    assert [v["id"] for v in venues] == [v["id"] for v in market["venues"]]
