"""The DefiLlama adapter on payloads in the live API's documented schema: all 28 fields of a
``/pools`` row, nulls where the live API sends nulls, extra fields ignored.

The rows below are live ``https://yields.llama.fi/pools`` answers as published in public API
notes (Lido stETH, ether.fi weETH, Maple Syrup USDC) and a DEX row built field for field from
``DefiLlama/yield-server : src/utils/enrichedColumns.js`` (volume set, rewards and IL null).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from adapters import FeedPoller, FeedSettings
from adapters.curves import DilutedCurve, FlatCurve, LpCurve
from adapters.errors import FeedError
from adapters.models import LlamaChart, LlamaPool, parse
from core.config import VenueConfig
from tests.llama_fields import LLAMA_POOL_FIELDS

STETH = {
    "chain": "Ethereum",
    "project": "lido",
    "symbol": "STETH",
    "tvlUsd": 22520760573,
    "apyBase": 2.68,
    "apyReward": None,
    "apy": 2.68,
    "rewardTokens": None,
    "pool": "747c1d2a-c668-4682-b9f9-296708a3dd90",
    "apyPct1D": -0.121,
    "apyPct7D": 0.055,
    "apyPct30D": -0.121,
    "stablecoin": False,
    "ilRisk": "no",
    "exposure": "single",
    "predictions": {
        "predictedClass": "Stable/Up",
        "predictedProbability": 75,
        "binnedConfidence": 3,
    },
    "poolMeta": None,
    "mu": 3.82382,
    "sigma": 0.05232,
    "count": 1089,
    "outlier": False,
    "underlyingTokens": ["0x0000000000000000000000000000000000000000"],
    "il7d": None,
    "apyBase7d": None,
    "apyMean30d": 2.84169,
    "volumeUsd1d": None,
    "volumeUsd7d": None,
    "apyBaseInception": None,
}
WEETH = {
    "chain": "Ethereum",
    "project": "ether.fi-stake",
    "symbol": "WEETH",
    "tvlUsd": 6069862567,
    "apyBase": 2.85356,
    "apyReward": 0.52055,
    "apy": 3.37411,
    "rewardTokens": ["0x8F08B70456eb22f6109F57b8fafE862ED28E6040"],
    "pool": "46bd2bdf-6d92-4066-b482-e885ee172264",
    "apyPct1D": 0.06517,
    "apyPct7D": -0.31929,
    "apyPct30D": 0.48714,
    "stablecoin": False,
    "ilRisk": "no",
    "exposure": "single",
    "predictions": {
        "predictedClass": "Stable/Up",
        "predictedProbability": 56.00000000000001,
        "binnedConfidence": 1,
    },
    "poolMeta": None,
    "mu": 3.27357,
    "sigma": 0.04344,
    "count": 355,
    "outlier": False,
    "underlyingTokens": ["0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"],
    "il7d": None,
    "apyBase7d": 2.81486,
    "apyMean30d": 3.33796,
    "volumeUsd1d": None,
    "volumeUsd7d": None,
    "apyBaseInception": None,
}
SYRUP_USDC = {
    "chain": "Ethereum",
    "project": "maple",
    "symbol": "USDC",
    "tvlUsd": 2655534964,
    "apyBase": 6.94231,
    "apyReward": 2.2,
    "apy": 9.14231,
    "rewardTokens": ["0x643C4E15d7d62Ad0aBeC4a9BD4b001aA3Ef52d66"],
    "pool": "43641cf5-a92e-416b-bce9-27113d3c0db6",
    "apyPct1D": -0.03243,
    "apyPct7D": -0.13804,
    "apyPct30D": 6.94231,
    "stablecoin": True,
    "ilRisk": "no",
    "exposure": "single",
    "predictions": {
        "predictedClass": "Stable/Up",
        "predictedProbability": 82,
        "binnedConfidence": 3,
    },
    "poolMeta": "Syrup USDC",
    "mu": 9.14109,
    "sigma": 0.00305,
    "count": 62,
    "outlier": False,
    "underlyingTokens": ["0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"],
    "il7d": None,
    "apyBase7d": None,
    "apyMean30d": 9.26598,
    "volumeUsd1d": None,
    "volumeUsd7d": None,
    "apyBaseInception": None,
}
# a DEX row: volumes set, no rewards, il7d null (only options vaults set it), predictions null
# (the live API sends null when apy <= 0 or count < 7), a brand-new pool without mu / sigma
UNIV2 = {
    "chain": "Ethereum",
    "project": "uniswap-v2",
    "symbol": "USDC-WETH",
    "tvlUsd": 58_000_000.0,
    "apyBase": 7.55172,
    "apyReward": None,
    "apy": 7.55172,
    "rewardTokens": None,
    "pool": "6e2fd0b3-6b7c-4a5e-9f43-1c2d3e4f5a6b",
    "apyPct1D": None,
    "apyPct7D": None,
    "apyPct30D": None,
    "stablecoin": False,
    "ilRisk": "yes",
    "exposure": "multi",
    "predictions": {"predictedClass": None, "predictedProbability": None, "binnedConfidence": None},
    "poolMeta": None,
    "mu": None,
    "sigma": None,
    "count": 3,
    "outlier": False,
    "underlyingTokens": [
        "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    ],
    "il7d": None,
    "apyBase7d": 6.9,
    "apyMean30d": 7.1,
    "volumeUsd1d": 4_000_000.0,
    "volumeUsd7d": 26_000_000.0,
    "apyBaseInception": None,
}
ROWS = [STETH, WEETH, SYRUP_USDC, UNIV2]

CHART = {
    "status": "success",
    "data": [
        {
            "timestamp": "2025-05-14T23:01:10.331Z",
            "tvlUsd": 2292,
            "apy": 2624.11364,
            "apyBase": 12.21444,
            "apyReward": 2611.8992,
            "il7d": None,
            "apyBase7d": None,
        },
        {
            "timestamp": "2025-05-15T23:01:05.674Z",
            "tvlUsd": 5992,
            "apy": 952.4427,
            "apyBase": 6.93762,
            "apyReward": 945.50509,
            "il7d": None,
            "apyBase7d": None,
            "pricePerShare": None,
        },
    ],
}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["project"])
def test_every_documented_field_parses(row: dict[str, Any]) -> None:
    assert set(row) == LLAMA_POOL_FIELDS and len(LLAMA_POOL_FIELDS) == 28
    pool = parse(LlamaPool, row, "pools")
    for name in LLAMA_POOL_FIELDS:
        value = getattr(pool, name)
        if row[name] is None:
            assert value is None, name
    assert pool.tvlUsd == row["tvlUsd"]


#: what the curves read: the row is refused without them
REQUIRED = {"pool", "tvlUsd", "apyBase"}
#: read when present (emissions, LP volatility, a diagnostic)
READ_IF_PRESENT = {"apyReward", "rewardTokens", "ilRisk", "volumeUsd1d"}
NEVER_READ = sorted(LLAMA_POOL_FIELDS - REQUIRED - READ_IF_PRESENT)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_the_fields_the_curves_read_are_required(name: str) -> None:
    broken = {k: v for k, v in STETH.items() if k != name}
    with pytest.raises(FeedError) as err:
        parse(LlamaPool, broken, "pools")
    assert err.value.reason == "schema" and name in err.value.detail


@pytest.mark.parametrize("name", NEVER_READ + sorted(READ_IF_PRESENT))
def test_a_row_without_an_optional_field_parses(name: str) -> None:
    for row in ROWS:
        pool = parse(LlamaPool, {k: v for k, v in row.items() if k != name}, "pools")
        assert getattr(pool, name) is None and pool.tvlUsd == row["tvlUsd"]


def test_optional_fields_are_still_checked_and_extra_fields_are_ignored() -> None:
    assert len(NEVER_READ) == 21
    with pytest.raises(FeedError) as err:
        parse(LlamaPool, {**STETH, "apyBaseInception": float("nan")}, "pools")
    assert err.value.reason == "nan" and "apyBaseInception" in err.value.detail
    assert (
        parse(LlamaPool, {**STETH, "pricePerShare": 1.2, "url": "https://lido.fi"}, "pools").pool
        == STETH["pool"]
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("tvlUsd", float("nan"), "nan"),
        ("apyBase", float("inf"), "nan"),
        ("tvlUsd", -1.0, "out_of_range"),
        ("apyReward", -0.5, "out_of_range"),
        ("volumeUsd1d", -1.0, "out_of_range"),
        ("count", -1, "out_of_range"),
        ("stablecoin", "maybe", "schema"),
        ("underlyingTokens", "0xabc", "schema"),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        parse(LlamaPool, {**UNIV2, field: value}, "pools")
    assert err.value.reason == reason and f"field {field}" in err.value.detail


def test_chart_rows_parse_with_extra_fields() -> None:
    chart = parse(LlamaChart, CHART, "chart")
    assert chart.data[0].timestamp == datetime(2025, 5, 14, 23, 1, 10, 331000, tzinfo=UTC)


@pytest.mark.parametrize("drop", [None, *NEVER_READ, "ilRisk", "volumeUsd1d"])
async def test_adapter_on_live_shaped_pools(aiohttp_server, drop: str | None) -> None:  # type: ignore[no-untyped-def]
    """The same snapshots whether or not the rows carry a field the curves do not read (a real
    export lacked ``apyBaseInception``; the LP's volatility comes from its params without ``ilRisk``)."""
    now = datetime(2026, 2, 1, tzinfo=UTC)
    hits = {"pools": 0}
    rows = [{k: v for k, v in r.items() if k != drop} for r in copy.deepcopy(ROWS)]

    async def pools(request: web.Request) -> web.Response:
        hits["pools"] += 1
        return web.json_response({"status": "success", "data": rows})

    app = web.Application()
    app.router.add_get("/defillama/pools", pools)
    server = await aiohttp_server(app)

    def venue(vid: str, kind: str, pool: str, **params: Any) -> VenueConfig:
        return VenueConfig.model_validate(
            {
                "id": vid,
                "kind": kind,
                "protocol": "p",
                "chain": "ethereum",
                "asset": "X",
                "feed": {"adapter": "defillama", "params": {"pool": pool, **params}},
            }
        )

    venues = [
        venue("steth", "staking", STETH["pool"]),
        venue("weeth", "staking", WEETH["pool"]),
        venue("syrup", "lending", SYRUP_USDC["pool"]),
        venue("univ2", "lp", UNIV2["pool"], sigma_annual=0.6),
    ]
    async with aiohttp.ClientSession() as session:
        poller = FeedPoller(
            venues,
            FeedSettings(),
            session,
            root_url=str(server.make_url("")).rstrip("/"),
            clock=lambda: now,
        )
        report = await poller.poll({"syrup": 1e8, "univ2": 8e6})
    assert report.rejections == () and hits["pools"] == 1
    s = report.snapshots
    assert isinstance(s["steth"].curve, FlatCurve) and s["steth"].real_apr == pytest.approx(0.0268)
    assert s["weeth"].emission_apr == pytest.approx(0.0052055)
    assert float(s["weeth"].curve.emission_income_usd(np.array([1e6]))[0]) == pytest.approx(5205.5)
    syrup = s["syrup"].curve
    assert isinstance(syrup, DilutedCurve) and syrup.tvl_others_usd == pytest.approx(
        2655534964 - 1e8
    )
    # at x = our position the pool pays its own apyBase (our 100M is inside tvlUsd)
    assert float(syrup.real_income_usd(np.array([1e8]))[0]) / 1e8 == pytest.approx(0.0694231)
    lp = s["univ2"].curve
    assert isinstance(lp, LpCurve) and lp.tvl_others_usd == pytest.approx(50e6)
    # the marginal fee APR without us: the pool's fees over the others' liquidity, less sigma^2/8
    assert s["univ2"].real_apr == pytest.approx(0.0755172 * 58 / 50 - 0.6**2 / 8)
    assert s["univ2"].observed_at == now and s["univ2"].tvl_usd == pytest.approx(50e6)


async def test_stale_fetch_time_freezes_timestampless_rows(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """/pools rows carry no time: their age is how long ago the server last vouched for them,
    which a max-age cache can stretch; past the staleness limit the venue freezes."""
    clock = {"now": datetime(2026, 2, 1, tzinfo=UTC)}

    async def pools(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "success", "data": [STETH]}, headers={"Cache-Control": "max-age=100000"}
        )

    app = web.Application()
    app.router.add_get("/defillama/pools", pools)
    server = await aiohttp_server(app)
    venue = VenueConfig.model_validate(
        {
            "id": "steth",
            "kind": "staking",
            "protocol": "lido",
            "chain": "ethereum",
            "asset": "stETH",
            "feed": {"adapter": "defillama", "params": {"pool": STETH["pool"]}},
        }
    )
    async with aiohttp.ClientSession() as session:
        poller = FeedPoller(
            [venue],
            FeedSettings(staleness_seconds=600),
            session,
            root_url=str(server.make_url("")).rstrip("/"),
            clock=lambda: clock["now"],
        )
        assert (await poller.poll({})).rejections == ()
        clock["now"] += timedelta(seconds=601)
        report = await poller.poll({})
    assert [(r.reason, r.feed) for r in report.rejections] == [("stale", "defillama")]
    assert report.snapshots["steth"].frozen
