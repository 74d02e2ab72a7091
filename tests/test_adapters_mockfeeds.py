"""Integration: FeedPoller against the real simulated market (mockfeeds) on loopback, for every
adapter, and for every fault mode the market can inject through ``POST /admin/v1/faults``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml

from adapters import FeedPoller, FeedSettings, PollReport
from core.config import VenueConfig
from core.types import VenueKind
from mockfeeds.config import DEFAULT_MARKET_PATH, load_market_yaml
from mockfeeds.generate import daemon_venues, generate_market
from mockfeeds.market import Market
from mockfeeds.server import start, stop

ROOT = Path(__file__).resolve().parents[1]
FAST = {
    "timeout_seconds": 5.0,  # generous: a loaded 2-core box; the timeout cases set a short one
    "retry": {"attempts": 1, "backoff_base_seconds": 0.0, "backoff_max_seconds": 0.0},
}

#: one venue per adapter in the generated market
PICK = {
    "lido": "lido-steth",
    "aave_v3": "aave-usdc-ethereum",
    "compound_v3": "compound-usde-ethereum",
    "defillama": "uniswap-v2-usdc-weth-ethereum",
    "across": "across-usdc-ethereum-arbitrum",
    "fixed": "earn-usdc001",
}
PREFIX = {
    "lido": "/lido",
    "aave_v3": "/aave",
    "compound_v3": "/compound",
    "defillama": "/defillama",
    "across": "/across",
    "fixed": "/earn",
}


class World:
    def __init__(
        self, market: Market, url: str, venues: list[VenueConfig], session: aiohttp.ClientSession
    ) -> None:
        self.market, self.url, self.venues, self.session = market, url, venues, session

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.market.clock.now(), UTC)

    def poller(self, venues: list[VenueConfig] | None = None, **settings: Any) -> FeedPoller:
        s = FeedSettings.model_validate({**FAST, **settings})
        return FeedPoller(venues or self.venues, s, self.session, root_url=self.url, clock=self.now)

    async def fault(self, **spec: Any) -> str:
        async with self.session.post(f"{self.url}/admin/v1/faults", json=spec) as resp:
            assert resp.status == 201, await resp.text()
            return str((await resp.json())["id"])

    async def clear_faults(self) -> None:
        async with self.session.delete(f"{self.url}/admin/v1/faults") as resp:
            assert resp.status == 200


async def _world(cfg: dict[str, Any], venues: list[VenueConfig]) -> AsyncIterator[World]:
    cfg = {**cfg, "time_scale": 0}  # a still clock: tests move it explicitly
    market = Market.from_config(cfg)
    runner, url = await start(market)
    try:
        async with aiohttp.ClientSession() as session:
            yield World(market, url, venues, session)
    finally:
        await stop(runner)


@pytest.fixture
async def generated() -> AsyncIterator[World]:
    cfg = generate_market(30, seed=1)
    venues = [VenueConfig.model_validate(v) for v in daemon_venues(cfg)]
    async for w in _world(cfg, venues):
        yield w


@pytest.fixture
async def default_market() -> AsyncIterator[World]:
    venues = [
        VenueConfig.model_validate(v)
        for v in yaml.safe_load((ROOT / "config/default.yaml").read_text())["venues"]
    ]
    async for w in _world(load_market_yaml(DEFAULT_MARKET_PATH), venues):
        yield w


async def test_default_config_against_default_market(default_market: World) -> None:
    report = await default_market.poller().poll({})
    assert report.rejections == ()
    assert {s.venue.kind for s in report.snapshots.values()} == set(VenueKind)
    m = default_market.market
    for vid, snap in report.snapshots.items():
        model = m.by_id[vid]
        # with no position our marginal real APR is the market's own base APR (LP: minus its IL model)
        if snap.venue.kind in (VenueKind.LENDING, VenueKind.STAKING, VenueKind.FIXED):
            assert snap.real_apr == pytest.approx(model.base_apr(m), rel=2e-3, abs=1e-6), vid
    lido_state = report.snapshots["lido-steth"].state
    assert lido_state["sma_apr_recomputed"] == pytest.approx(lido_state["sma_apr"], rel=1e-9)
    fixed = report.snapshots["earn-usdt-flexible"]
    assert fixed.curve.capacity_usd == pytest.approx(m.by_id["earn-usdt-flexible"].c.quota_usd)


async def test_every_adapter_against_generated_market(generated: World) -> None:
    poller = generated.poller()
    report = await poller.poll({})
    assert report.rejections == ()
    assert set(report.snapshots) == {v.id for v in generated.venues}
    assert {v.feed.adapter for v in generated.venues} == set(PICK)
    m = generated.market
    for vid, snap in report.snapshots.items():
        income = snap.curve.income_usd(np.array([0.0, 1e4, 1e6]))
        assert income[0] == 0.0 and np.all(np.diff(income) >= -1e-9)
        model = m.by_id[vid]
        if snap.venue.kind in (VenueKind.LENDING, VenueKind.STAKING, VenueKind.FIXED):
            # with no position our marginal rates are the market's own (Aave, Comet, LSTs, earn)
            assert snap.real_apr == pytest.approx(model.base_apr(m), rel=2e-3, abs=1e-6), vid
            assert snap.emission_apr == pytest.approx(model.reward_apr(m), rel=2e-3, abs=1e-6), vid
        if snap.venue.kind == VenueKind.BRIDGE_ARB:
            # the curve is the market's own income model for the route (same fee, gas, capacity, trips)
            x = 10_000.0
            ours = float(snap.curve.real_income_usd(np.array([x]))[0])
            exact = model.income_per_year(x, m)
            if exact > 0 and not snap.curve.bridges:
                assert ours == pytest.approx(exact, rel=2e-2), vid
    # shared endpoints: one /pools, one reserves per Aave market, all coins in one batch
    assert report.requests == len(poller.endpoints())


async def test_positions_from_paper_deposits_are_excluded(default_market: World) -> None:
    w = default_market
    async with w.session.post(
        f"{w.url}/paper/v1/deposit",
        json={"venue": "aave-v3-usdc-ethereum", "amount_usd": "50000000", "idempotency_key": "t1"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        position = float((await resp.json())["position_usd"])
    before = w.market.by_id["aave-v3-usdc-ethereum"].base_apr(w.market)
    report = await w.poller().poll({"aave-v3-usdc-ethereum": position})
    snap = report.snapshots["aave-v3-usdc-ethereum"]
    # the feed shows the pool with our 50M; at x = our position the curve earns what we earn now
    assert float(snap.curve.exact_real_income_usd([position])[0]) / position == pytest.approx(
        before, rel=1e-4
    )
    # and its marginal rate (without us) is higher than the pool's current rate
    assert snap.real_apr > before


VALUE_FAULTS = {
    "nan": {a: "nan" for a in PICK},
    "absurd": {a: "out_of_range" for a in PICK},
    "schema_drift": {a: "schema" for a in PICK},
    # timestamp-less feeds (DefiLlama /pools rows, Binance earn rows) cannot show a frozen body as
    # stale; Across stamps its quote with a string, the mock shifts only numbers: its coins go stale
    "stale": {
        "lido": "stale",
        "aave_v3": "stale",
        "compound_v3": "stale",
        "across": "stale",
        "defillama": None,
        "fixed": None,
    },
}


@pytest.mark.parametrize("mode", sorted(VALUE_FAULTS))
async def test_value_faults_per_venue(generated: World, mode: str) -> None:
    # one venue rule at a time: the mock applies only the first of several venue rules that hit
    # the same shared response (mockfeeds.routes.common._replace_rows matches rows by identity)
    poller = generated.poller()
    await poller.poll({})
    for adapter, venue in PICK.items():
        await generated.fault(mode=mode, venue=venue)
        report = await poller.poll({})
        got = {r.venue_id: r for r in report.rejections}
        expected = VALUE_FAULTS[mode][adapter]
        if expected is None:
            assert venue not in got, (adapter, got.get(venue))
        else:
            assert venue in got and got[venue].reason == expected, (adapter, got.get(venue))
            assert report.snapshots[venue].frozen
            if adapter == "aave_v3":
                # a venue rule spoils only that venue's row of the market's shared reserves list
                # (it also spoils coins rows it shares: the USDC price bridge routes read too)
                same_market = {
                    v.id
                    for v in generated.venues
                    if v.feed.adapter == adapter and v.chain == "ethereum"
                }
                assert set(got) & same_market == {venue}, sorted(got)
        await generated.clear_faults()
    healed = await poller.poll({})
    assert healed.rejections == ()


REQUEST_FAULTS = {
    "http_5xx": ({"status": 503}, "http_5xx"),
    "malformed_json": ({}, "malformed_json"),
    "oversized": ({"size_bytes": 300_000}, "too_large"),
    "timeout": ({"timeout_seconds": 1.0}, "timeout"),
}


@pytest.mark.parametrize("mode", sorted(REQUEST_FAULTS))
async def test_request_faults_per_feed(generated: World, mode: str) -> None:
    spec, reason = REQUEST_FAULTS[mode]
    # every feed under test hangs in the timeout case (the coins feed is not faulted there, nor
    # needed to judge a venue whose own feed timed out): only then is a short timeout safe
    short = {"timeout_seconds": 0.4} if mode == "timeout" else {}
    poller = generated.poller(max_response_bytes=200_000, retry={"attempts": 0}, **short)
    await poller.poll({})
    for prefix in PREFIX.values():
        await generated.fault(mode=mode, path_prefix=prefix, **spec)
    report = await poller.poll({})
    by_venue = {r.venue_id: r for r in report.rejections}
    for adapter in PREFIX:
        affected = [v.id for v in generated.venues if v.feed.adapter == adapter]
        for vid in affected:
            assert by_venue[vid].reason == reason, (adapter, by_venue[vid])
            assert report.snapshots[vid].frozen
    await generated.clear_faults()


async def test_coins_faults_are_blamed_on_coins(generated: World) -> None:
    poller = generated.poller(retry={"attempts": 0})
    await poller.poll({})
    await generated.fault(mode="http_5xx", path_prefix="/coins")
    report = await poller.poll({})
    blamed = {(r.feed, r.reason) for r in report.rejections}
    assert blamed == {("coins", "http_5xx")}
    kinds = {report.snapshots[r.venue_id].venue.kind for r in report.rejections}
    # bridges need both chains' prices, LPs the price history; comets price COMP only optionally
    assert kinds == {VenueKind.BRIDGE_ARB, VenueKind.LP}


async def test_latency_below_the_timeout_is_served(generated: World) -> None:
    poller = generated.poller(timeout_seconds=2.0)
    await generated.fault(mode="latency", path_prefix="/lido", latency_ms=150)
    report = await poller.poll({})
    assert report.rejections == ()
    assert report.feed_durations_seconds["lido"] >= 0.15


async def test_one_transient_failure_is_retried_away(generated: World) -> None:
    poller = generated.poller(
        retry={"attempts": 2, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02}
    )
    await generated.fault(mode="http_5xx", path_prefix="/earn", count=1)
    report = await poller.poll({})
    assert report.rejections == ()
    assert poller.client.stats.retries == 1


async def test_breaker_opens_against_a_failing_feed(generated: World) -> None:
    # the lido venue reads two endpoints under /lido: two failures per cycle
    poller = generated.poller(
        retry={"attempts": 0}, circuit_breaker={"failures_to_open": 4, "cooldown_seconds": 300}
    )
    await generated.fault(mode="http_5xx", path_prefix="/lido")
    reasons = []
    for _ in range(3):
        report: PollReport = await poller.poll({})
        reasons.append({r.reason for r in report.rejections if r.feed == "lido"})
    assert reasons == [{"http_5xx"}, {"http_5xx"}, {"circuit_open"}]


async def test_time_moves_and_snapshots_follow(generated: World) -> None:
    poller = generated.poller()
    first = await poller.poll({})
    async with generated.session.post(
        f"{generated.url}/admin/v1/clock", json={"advance_seconds": 6 * 3600}
    ) as resp:
        assert resp.status == 200
    second = await poller.poll({})
    assert second.rejections == ()
    vid = PICK["aave_v3"]
    assert second.snapshots[vid].observed_at > first.snapshots[vid].observed_at


async def _scenario(w: World, **spec: Any) -> None:
    async with w.session.post(f"{w.url}/admin/v1/scenarios", json=spec) as resp:
        assert resp.status in (200, 201), await resp.text()


async def test_scenarios_move_the_curves_not_the_daemon(default_market: World) -> None:
    """Stress events are valid data: they change snapshots (or freeze a halted route), never crash."""
    w = default_market
    poller = w.poller()
    calm = await poller.poll({})
    assert calm.rejections == ()
    await _scenario(
        w, name="rate_spike", venue="aave-v3-usdc-ethereum", params={"utilization": 0.97}
    )
    await _scenario(w, name="slashing", venue="lido-steth", params={"validators": 500})
    await _scenario(w, name="exploit", venue="earn-usdt-flexible", params={"loss_fraction": 0.1})
    await _scenario(w, name="bridge_halt", chain="base")
    report = await poller.poll({})
    reasons = {r.venue_id: r.reason for r in report.rejections}
    assert reasons == {"across-usdc-arbitrum-base": "http_4xx"}  # a halted route answers 422
    assert report.snapshots["across-usdc-arbitrum-base"].frozen
    aave_snap = report.snapshots["aave-v3-usdc-ethereum"]
    assert aave_snap.state["utilization_without_us"] == pytest.approx(0.97, abs=0.01)
    assert aave_snap.real_apr > 2 * calm.snapshots["aave-v3-usdc-ethereum"].real_apr
    assert aave_snap.curve.bridges  # our deposit would push U back through the kink
    assert report.snapshots["lido-steth"].venue.exit_days > 14  # bunker mode
    earn = report.snapshots["earn-usdt-flexible"]
    assert (
        earn.curve.capacity_usd == 0.0 and earn.exit_liquidity_usd == 0.0
    )  # paused, cannot redeem


async def test_depeg_and_liquidity_crunch(default_market: World) -> None:
    w = default_market
    poller = w.poller()
    await poller.poll({})
    await _scenario(
        w,
        name="liquidity_crunch",
        venue="aave-v3-usdc-ethereum",
        params={"available_fraction": 0.001},
    )
    await _scenario(w, name="depeg", chain="arbitrum", token="USDC", params={"price": 0.95})
    report = await poller.poll({})
    aave_snap = report.snapshots["aave-v3-usdc-ethereum"]
    assert aave_snap.exit_liquidity_usd < 0.002 * aave_snap.state["total_debt_usd"]
    # a 5 % gap repriced twice a day is more than the 1000 % sanity bound: refused, not believed
    assert {r.venue_id: r.reason for r in report.rejections} == {
        "across-usdc-arbitrum-base": "out_of_range"
    }


async def test_earn_list_is_paged() -> None:
    cfg = generate_market(1100, seed=2)  # 110 fixed products: two pages of at most 100
    venues = [
        VenueConfig.model_validate(v) for v in daemon_venues(cfg) if v["feed"]["adapter"] == "fixed"
    ]
    assert len(venues) == 110
    async for w in _world(cfg, venues):
        poller = w.poller()
        report = await poller.poll({})
        assert report.rejections == () and len(report.snapshots) == 110
        assert report.requests == 2
        quotas = {v.id: w.market.by_id[v.id].c.quota_usd for v in venues}
        assert all(
            report.snapshots[k].curve.capacity_usd == pytest.approx(q) for k, q in quotas.items()
        )


async def test_a_slow_feed_does_not_age_the_others_under_a_fast_clock() -> None:
    """At 3600 simulated seconds per second, a feed answering 1 s late is an hour late in
    simulated time; the other feeds' data must still be judged at its own arrival."""
    venues = [
        VenueConfig.model_validate(v)
        for v in yaml.safe_load((ROOT / "config/default.yaml").read_text())["venues"]
    ]
    market = Market.from_config({**load_market_yaml(DEFAULT_MARKET_PATH), "time_scale": 3600})
    runner, url = await start(market)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/admin/v1/faults",
                json={"mode": "latency", "path_prefix": "/lido", "latency_ms": 1000},
            ) as resp:
                assert resp.status == 201
            settings = FeedSettings.model_validate(
                {**FAST, "timeout_seconds": 3.0, "staleness_seconds": 2000}
            )
            poller = FeedPoller(
                venues,
                settings,
                session,
                root_url=url,
                clock=lambda: datetime.fromtimestamp(market.clock.now(), UTC),
            )
            report = await poller.poll({})
    finally:
        await stop(runner)
    assert report.rejections == ()
    assert report.feed_durations_seconds["lido"] >= 1.0


async def test_bridge_curve_is_the_markets_income_averaged_over_the_recent_gaps(
    default_market: World,
) -> None:
    """The route's curve is the market's own income model, averaged over the hourly gaps of the
    coins charts (plus today's): a gap that closes for a few hours must not zero a weeks-long hold."""
    w = default_market
    vid = "across-usdc-arbitrum-base"
    params = next(v for v in w.venues if v.id == vid).feed.params
    coins = f"{params['origin_price_coin']},{params['destination_price_coin']}"
    async with w.session.get(
        f"{w.url}/coins/chart/{coins}",
        params={"span": str(FAST.get("volatility_span_hours", 168)), "period": "1h"},
    ) as resp:
        charts = (await resp.json())["coins"]
    hourly = [
        {round(p["timestamp"] / 3600): p["price"] for p in charts[c.lower()]["prices"]}
        for c in coins.split(",")
    ]
    gaps = [hourly[1][h] / hourly[0][h] - 1.0 for h in sorted(hourly[0].keys() & hourly[1].keys())]
    assert len(gaps) > 24
    report = await w.poller().poll({})
    snap = report.snapshots[vid]
    model = w.market.by_id[vid]
    today = model.spread(w.market)
    real_spread = type(model).spread
    try:
        for x in (1e3, 3e4, 3e5):
            expected = 0.0
            for gap in (*gaps, today):
                type(model).spread = lambda self, m, g=gap: g  # the market's model at that gap
                expected += model.income_per_year(x, w.market)
            expected /= len(gaps) + 1
            if not snap.curve.bridges or x > max(
                b[1] for b in snap.curve.bridges
            ):  # outside chords: exact
                # 1e-3: the adapter uses the fee quoted for params.quote_amount_usd; Across' LP fee
                # grows a little with the amount's utilization move (2.4e-4 at $300k)
                assert float(snap.curve.real_income_usd(np.array([x]))[0]) == pytest.approx(
                    expected, rel=1e-3
                ), x
    finally:
        type(model).spread = real_spread
    assert snap.state["spread_samples"] == len(gaps) + 1
    # today's gap below the fee no longer zeroes a route whose history pays
    paying = [g for g in gaps if g > snap.state["fee_pct"]]
    if paying and today <= snap.state["fee_pct"]:
        assert snap.curve.capacity_usd > 0
