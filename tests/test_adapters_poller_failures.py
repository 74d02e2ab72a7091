"""FeedPoller failures against a feed server on loopback: every rejection reason, freezing, the
breaker, timeouts, the cycle deadline, and a hung feed judged on its own."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters import FeedPoller, FeedSettings, PollReport
from adapters.testing import COMET, FakeFeeds
from tests.poller_harness import DEFAULT_VENUES, FAST, VENUES, Harness
from tests.poller_harness import h_fixture as h_fixture  # the `h` fixture


def _set(payloads: dict[str, Any], path: str, keys: list[Any], value: Any) -> None:
    obj = payloads[path]
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


CASES = [
    # (venue, path, keys, value, reason, text in detail)
    (
        "aave-v3-usdc-ethereum",
        "/aave/v3/ethereum/reserves",
        ["reservesData", 0, "liquidityRate"],
        "NaN",
        "nan",
        "liquidityRate",
    ),
    (
        "uniswap-v2-usdc-weth-ethereum",
        "/defillama/pools",
        ["data", 0, "tvlUsd"],
        math.nan,
        "nan",
        "tvlUsd",
    ),
    (
        "uniswap-v2-usdc-weth-ethereum",
        "/defillama/pools",
        ["data", 0, "apyBase"],
        math.inf,
        "nan",
        "apyBase",
    ),
    (
        "uniswap-v2-usdc-weth-ethereum",
        "/defillama/pools",
        ["data", 0, "tvlUsd"],
        -5.0,
        "out_of_range",
        "tvlUsd",
    ),
    (
        "uniswap-v2-usdc-weth-ethereum",
        "/defillama/pools",
        ["data", 0, "apyBase"],
        1500.0,
        "out_of_range",
        "apyBase",
    ),
    (
        "earn-usdt-flexible",
        "/earn/sapi/v1/simple-earn/flexible/list",
        ["rows", 0, "latestAnnualPercentageRate"],
        "12.5",
        "out_of_range",
        "latestAnnualPercentageRate",
    ),
    (
        "aave-v3-usdc-ethereum",
        "/aave/v3/ethereum/reserves",
        ["reservesData", 0, "availableLiquidity"],
        "-1",
        "out_of_range",
        "availableLiquidity",
    ),
    (
        "compound-v3-usdc-ethereum",
        f"/compound/v3/ethereum/{COMET}",
        ["timestamp"],
        "STALE",
        "stale",
        "timestamp",
    ),
    (
        "across-usdc-arbitrum-base",
        "/across/api/suggested-fees",
        ["timestamp"],
        "FUTURE",
        "future_timestamp",
        "timestamp",
    ),
    ("lido-steth", "/lido/v1/protocol/steth/apr/sma", ["data", "smaApr"], None, "schema", "smaApr"),
    (
        "compound-v3-usdc-ethereum",
        f"/compound/v3/ethereum/{COMET}",
        ["totalSupply"],
        "lots",
        "schema",
        "totalSupply",
    ),
]


@pytest.mark.parametrize(
    ("venue", "path", "keys", "value", "reason", "field"),
    CASES,
    ids=[f"{c[4]}-{c[5]}" for c in CASES],
)
async def test_bad_values_are_rejected_and_the_venue_frozen(
    h: Harness, venue: str, path: str, keys: list[Any], value: Any, reason: str, field: str
) -> None:
    poller = h.poller()
    good = await poller.poll({})
    assert good.snapshots[venue].frozen is False
    if value == "STALE":
        value = int((h.fake.now - timedelta(hours=2)).timestamp())
    elif value == "FUTURE":
        value = str(int((h.fake.now + timedelta(hours=1)).timestamp()))
    _set(h.fake.payloads, path, keys, value)
    report = await poller.poll({})
    rejected = [r for r in report.rejections if r.venue_id == venue]
    assert len(rejected) == 1, report.rejections
    assert rejected[0].reason == reason and field in rejected[0].detail
    frozen = report.snapshots[venue]
    assert frozen.frozen and frozen.frozen_reason.startswith(reason)
    assert frozen.observed_at == good.snapshots[venue].observed_at  # the last good data, kept
    # the loop reads Lido's APR too: a bad Lido payload freezes it with the staking venue
    readers = {"lido-steth": {"aave-v3-steth-loop"}}.get(venue, set())
    others = {v for v in report.snapshots if v != venue and v not in readers}
    assert all(not report.snapshots[v].frozen for v in others)
    h.fake.reset()
    recovered = await poller.poll({})
    assert not recovered.snapshots[venue].frozen and recovered.rejections == ()


@pytest.mark.parametrize(
    ("knob", "value", "reason"),
    [
        ("status", 503, "http_5xx"),
        ("status", 404, "http_4xx"),
        ("delay_seconds", 2.0, "timeout"),
        ("raw_body", b'{"reservesData": [', "malformed_json"),
        ("raw_body", b'{"pad": "' + b"x" * 20_000 + b'"}', "too_large"),
    ],
)
async def test_request_failures_freeze_every_venue_of_the_endpoint(
    h: Harness, knob: str, value: Any, reason: str
) -> None:
    venues = [v for v in VENUES if v.feed.adapter in ("aave_v3", "lido")]
    # a delayed Aave times out at 0.3 s; every other feed keeps FAST's generous timeout
    short = {"feed_timeout_seconds": {"aave": 0.3}} if knob == "delay_seconds" else {}
    poller = h.poller(venues, max_response_bytes=16_384, **short)
    await poller.poll({})
    getattr(h.fake, knob)["/aave/v3/ethereum/reserves"] = value
    report = await poller.poll({})
    assert [(r.venue_id, r.feed, r.reason) for r in report.rejections] == [
        ("aave-v3-usdc-ethereum", "aave", reason)
    ]
    assert report.snapshots["aave-v3-usdc-ethereum"].frozen
    assert not report.snapshots["lido-steth"].frozen


async def test_breaker_opens_after_repeated_failures(h: Harness) -> None:
    venues = [v for v in VENUES if v.feed.adapter == "fixed"]
    poller = h.poller(
        venues,
        retry={"attempts": 0},
        circuit_breaker={"failures_to_open": 2, "cooldown_seconds": 600},
    )
    h.fake.status["/earn"] = 500
    reasons = [(await poller.poll({})).rejections[0].reason for _ in range(4)]
    assert reasons == ["http_5xx", "http_5xx", "circuit_open", "circuit_open"]
    assert h.fake.hits["/earn/sapi/v1/simple-earn/flexible/list"] == 2


async def test_connection_refused_and_never_good_venue(h: Harness, unused_tcp_port: int) -> None:
    dead = DEFAULT_VENUES[0].model_copy(
        update={
            "feed": DEFAULT_VENUES[0].feed.model_copy(
                update={"base_url": f"http://127.0.0.1:{unused_tcp_port}/lido"}
            )
        }
    )
    report = await h.poller([dead]).poll({})
    assert report.snapshots == {}
    assert [(r.reason, r.feed) for r in report.rejections] == [("connection", "lido")]


async def test_coins_failure_is_blamed_on_coins(h: Harness) -> None:
    venues = [v for v in VENUES if v.feed.adapter == "across"]
    h.fake.status["/coins"] = 502
    report = await h.poller(venues).poll({})
    assert [(r.feed, r.reason) for r in report.rejections] == [("coins", "http_5xx")]


async def test_stale_price_rejects_bridge_venue(h: Harness) -> None:
    venues = [v for v in VENUES if v.feed.adapter == "across"]
    poller = h.poller(venues)
    await poller.poll({})
    h.fake.coin_timestamp = h.fake.now - timedelta(hours=1)
    report = await poller.poll({})
    assert [(r.feed, r.reason) for r in report.rejections] == [("coins", "stale")]


async def test_per_feed_timeout(h: Harness) -> None:
    h.fake.delay_seconds["/lido"] = 0.2
    venues = [v for v in VENUES if v.feed.adapter in ("lido", "fixed")]
    report = await h.poller(venues, timeout_seconds=5.0, feed_timeout_seconds={"lido": 0.05}).poll(
        {}
    )
    assert [(r.venue_id, r.reason) for r in report.rejections] == [("lido-steth", "timeout")]


async def test_rejections_are_logged_with_venue_and_reason(h: Harness) -> None:
    from structlog.testing import capture_logs

    venues = [v for v in VENUES if v.feed.adapter == "fixed"]
    poller = h.poller(venues)
    h.fake.status["/earn"] = 404
    with capture_logs() as logs:
        await poller.poll({})
        await poller.poll({})
        h.fake.status.clear()
        await poller.poll({})
    events = [(e["event"], e.get("venue"), e.get("reason")) for e in logs]
    assert ("feed_rejected", "earn-usdt-flexible", "http_4xx") in events
    again = [e for e in logs if e["event"] == "feed_rejected_again"]
    assert again and again[0]["venue_ids"] == ["earn-usdt-flexible"] and again[0]["feed"] == "earn"
    assert ("feed_recovered", "earn-usdt-flexible", None) in events


async def test_cycle_deadline_cuts_a_slow_feed_off(h: Harness) -> None:
    # margins wide enough for a cold first request on a loaded 2-core box (0.3 s once flaked in CI)
    h.fake.delay_seconds["/lido"] = 6.0
    venues = [v for v in VENUES if v.feed.adapter in ("lido", "fixed")]
    poller = h.poller(venues, timeout_seconds=10.0, cycle_deadline_seconds=1.5)
    t0 = asyncio.get_running_loop().time()
    report = await poller.poll({})
    assert asyncio.get_running_loop().time() - t0 < 4.0  # cut at the deadline, not at the 6 s feed
    assert [(r.venue_id, r.reason) for r in report.rejections] == [("lido-steth", "timeout")]
    assert "cycle deadline" in report.rejections[0].detail
    assert not report.snapshots["earn-usdt-flexible"].frozen
    assert report.feed_durations_seconds["lido"] >= 1.5


async def test_a_hung_feed_is_judged_on_its_own(aiohttp_server: Any) -> None:
    """One endpoint (Lido) hangs with its connection open. The others' snapshots reach the caller
    at once (``on_partial``) and every poll returns within its wait, so the next cycle is never
    delayed; the hung fetch is requested once, carried from poll to poll, and cut with reason
    ``timeout`` no earlier than its own deadline after it started, freezing only its venues.

    The bounds are generous (half the deadline); the code guarantees the lower one (the cut)."""
    deadline_seconds, wait_seconds = 6.0, 0.5
    fake = FakeFeeds()
    release, hung = asyncio.Event(), asyncio.Event()
    hung_requests: list[str] = []

    @web.middleware
    async def hang(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/lido") and hung.is_set():
            hung_requests.append(request.path)
            await release.wait()  # the socket stays open: no byte, no close
        return await handler(request)

    app = web.Application(middlewares=[hang])
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    server = await aiohttp_server(app)
    venues = [v for v in VENUES if v.feed.adapter in ("lido", "fixed", "aave_v3")]
    settings = FeedSettings.model_validate(
        {**FAST, "timeout_seconds": 60.0, "cycle_deadline_seconds": deadline_seconds}
    )
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        poller = FeedPoller(
            venues, settings, session, root_url=str(server.make_url("")), clock=lambda: fake.now
        )
        good = await poller.poll({})
        assert good.rejections == () and set(good.snapshots) == {v.id for v in venues}
        hung.set()
        hung_at = loop.time()
        partials: list[tuple[float, PollReport]] = []
        polls: list[tuple[float, float, PollReport]] = []
        try:
            while not any(r.venue_id == "lido-steth" for _, _, p in polls for r in p.rejections):
                assert len(polls) < 60, "the hung fetch was never cut"
                t0 = loop.time()
                report = await poller.poll(
                    {},
                    wait_seconds=wait_seconds,
                    on_partial=lambda r: partials.append((loop.time() - hung_at, r)),
                )
                polls.append((t0 - hung_at, loop.time() - t0, report))
        finally:
            release.set()
            await poller.close()

    # the others arrived at once, while Lido was still out
    first_at, first = partials[0]
    assert first_at < deadline_seconds / 2 and first.partial
    assert not first.snapshots["earn-usdt-flexible"].frozen
    assert first.snapshots["earn-usdt-flexible"].observed_at == fake.now
    # no poll waited for the hung feed beyond its own wait: the next one started on time
    assert all(took < deadline_seconds / 2 for _, took, _ in polls)
    *carried, (cut_started, _, cut) = polls
    assert carried and all(p.in_flight and not p.rejections for _, _, p in carried)
    assert all(not p.snapshots["earn-usdt-flexible"].frozen for _, _, p in polls)
    assert all(not p.snapshots["aave-v3-usdc-ethereum"].frozen for _, _, p in polls)
    # requested once while in flight, not once per poll
    # each of Lido's endpoints (APR, withdrawal queue) once, while dozens of polls ran
    assert "/lido/v1/protocol/steth/apr/sma" in hung_requests
    assert len(hung_requests) == len(set(hung_requests)) and len(polls) > len(hung_requests)
    # cut at its own deadline, with the reason, and only its venues frozen
    assert cut_started + polls[-1][1] >= deadline_seconds
    lido = [r for r in cut.rejections if r.venue_id == "lido-steth"]
    assert lido and lido[0].reason == "timeout" and "cycle deadline" in lido[0].detail
    assert cut.snapshots["lido-steth"].frozen
    assert cut.snapshots["lido-steth"].frozen_reason.startswith("timeout")
    assert cut.in_flight == () and "lido" in cut.feed_durations_seconds
    assert cut.feed_durations_seconds["lido"] >= deadline_seconds
    assert not cut.snapshots["earn-usdt-flexible"].frozen
