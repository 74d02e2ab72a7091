"""FeedClient against real aiohttp servers on loopback: retries, breaker, timeouts, size cap, cache."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from adapters.config import FeedSettings
from adapters.errors import FeedError
from adapters.http import CircuitBreaker, FeedClient

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def settings(**kw: object) -> FeedSettings:
    base: dict[str, object] = {
        "timeout_seconds": 5.0,  # generous for a loaded box; the timeout test sets 0.1
        "retry": {"attempts": 2, "backoff_base_seconds": 0.0, "backoff_max_seconds": 0.0},
        "circuit_breaker": {"failures_to_open": 3, "cooldown_seconds": 60},
    }
    base.update(kw)
    return FeedSettings.model_validate(base)


class Script:
    """A server whose answers follow a script: a list of (status, body, headers) or 'sleep'."""

    def __init__(self, steps: list[object]) -> None:
        self.steps = list(steps)
        self.requests: list[web.Request] = []
        self.last = steps[-1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else self.last
        if step == "sleep":
            await asyncio.sleep(2)
            return web.json_response({})
        status, body, headers = step  # type: ignore[misc]
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return web.Response(
            status=status, body=body, headers={"Content-Type": "application/json", **headers}
        )


async def serve(aiohttp_server, script: Script) -> str:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", script.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/feed"))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_retries_transient_5xx_then_succeeds(aiohttp_server) -> None:
    script = Script([(503, b"{}", {}), (502, b"{}", {}), (200, {"ok": 1}, {})])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        fetched = await client.get_json("f", url)
    assert fetched.payload == {"ok": 1}
    assert len(script.requests) == 3 and client.stats.retries == 2


async def test_gives_up_after_retries_with_reason(aiohttp_server) -> None:
    script = Script([(500, b"{}", {})])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", url)
    assert err.value.reason == "http_5xx" and len(script.requests) == 3


async def test_4xx_is_not_retried(aiohttp_server) -> None:
    script = Script([(404, b"{}", {})])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", url)
    assert err.value.reason == "http_4xx" and len(script.requests) == 1


async def test_429_is_retried_honouring_retry_after(aiohttp_server) -> None:
    script = Script([(429, b"{}", {"Retry-After": "0.05"}), (200, {"ok": 2}, {})])
    url = await serve(aiohttp_server, script)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async with aiohttp.ClientSession() as session:
        client = FeedClient(
            session,
            settings(
                retry={"attempts": 2, "backoff_base_seconds": 0.0, "backoff_max_seconds": 1.0}
            ),
            clock=lambda: NOW,
            sleep=sleep,
        )
        fetched = await client.get_json("f", url)
    assert fetched.payload == {"ok": 2} and slept == [0.05]


async def test_backoff_is_exponential_with_full_jitter(aiohttp_server) -> None:
    script = Script([(503, b"{}", {})])
    url = await serve(aiohttp_server, script)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    s = settings(
        retry={"attempts": 4, "backoff_base_seconds": 0.1, "backoff_max_seconds": 0.3},
        circuit_breaker={"failures_to_open": 10, "cooldown_seconds": 60},
    )
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, s, clock=lambda: NOW, sleep=sleep)
        with pytest.raises(FeedError):
            await client.get_json("f", url)
    caps = [0.1, 0.2, 0.3, 0.3]
    assert len(slept) == 4 and all(0.0 <= d <= c for d, c in zip(slept, caps, strict=False))


async def test_timeout_is_reported(aiohttp_server) -> None:
    script = Script(["sleep"])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(
            session, settings(timeout_seconds=0.1, retry={"attempts": 0}), clock=lambda: NOW
        )
        with pytest.raises(FeedError) as err:
            await client.get_json("f", url)
    assert err.value.reason == "timeout"


async def test_connection_refused_is_connection(unused_tcp_port) -> None:
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(retry={"attempts": 0}), clock=lambda: NOW)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", f"http://127.0.0.1:{unused_tcp_port}/x")
    assert err.value.reason == "connection"


async def test_breaker_opens_fails_fast_and_half_opens(aiohttp_server) -> None:
    script = Script([(503, b"{}", {})] * 3 + [(200, {"ok": 3}, {})])
    url = await serve(aiohttp_server, script)
    mono = Clock()
    async with aiohttp.ClientSession() as session:
        client = FeedClient(
            session, settings(retry={"attempts": 0}), clock=lambda: NOW, monotonic=mono
        )
        for _ in range(3):
            with pytest.raises(FeedError):
                await client.get_json("f", url)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", url)
        assert err.value.reason == "circuit_open" and len(script.requests) == 3
        mono.t += 61  # cool-down over: one trial goes through and closes the breaker
        assert (await client.get_json("f", url)).payload == {"ok": 3}
        assert client.breaker("f", url).state == "closed"


def test_breaker_trial_failure_reopens() -> None:
    mono = Clock()
    b = CircuitBreaker(2, 10, mono)
    b.record_failure()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    mono.t += 10
    assert b.allow() and not b.allow()  # exactly one trial
    b.record_failure()
    assert b.state == "open"


async def test_declared_and_streamed_size_caps(aiohttp_server) -> None:
    big = b'{"x":"' + b"a" * 5000 + b'"}'
    script = Script([(200, big, {})])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(max_response_bytes=1024), clock=lambda: NOW)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", url)
    assert err.value.reason == "too_large" and len(script.requests) == 1


async def test_streamed_body_without_length_is_capped(aiohttp_server) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"a" * 1000)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/big", chunked)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(max_response_bytes=4096), clock=lambda: NOW)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", str(server.make_url("/big")))
    assert err.value.reason == "too_large"


async def test_malformed_json_and_nan_literal(aiohttp_server) -> None:
    script = Script([(200, b'{"a": [1, 2', {}), (200, b'{"a": NaN}', {})])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        with pytest.raises(FeedError) as err:
            await client.get_json("f", url)
        assert err.value.reason == "malformed_json"
        fetched = await client.get_json("f", url)  # NaN parses; the validators reject it later
    assert fetched.payload["a"] != fetched.payload["a"]


async def test_etag_revalidation_reuses_the_body(aiohttp_server) -> None:
    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.json_response({"v": 1}, headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/e", handle)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        first = await client.get_json("f", str(server.make_url("/e")))
        second = await client.get_json("f", str(server.make_url("/e")))
    assert second.payload == {"v": 1} and second.from_cache and second.version == first.version
    assert client.stats.not_modified == 1 and client.stats.requests == 2


async def test_max_age_serves_from_cache_without_a_request(aiohttp_server) -> None:
    script = Script([(200, {"v": 1}, {"Cache-Control": "public, max-age=60"}), (200, {"v": 2}, {})])
    url = await serve(aiohttp_server, script)
    mono = Clock()
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW, monotonic=mono)
        assert (await client.get_json("f", url)).payload == {"v": 1}
        assert (await client.get_json("f", url)).payload == {"v": 1}
        assert len(script.requests) == 1
        mono.t += 61
        assert (await client.get_json("f", url)).payload == {"v": 2}


async def test_no_store_and_disabled_cache_always_fetch(aiohttp_server) -> None:
    script = Script([(200, {"v": 1}, {"Cache-Control": "no-store, max-age=60", "ETag": '"x"'})])
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        await client.get_json("f", url)
        await client.get_json("f", url)
    assert len(script.requests) == 2 and "If-None-Match" not in script.requests[1].headers


async def test_concurrency_is_bounded(aiohttp_server) -> None:
    in_flight = 0
    peak = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{n}", handle)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(max_concurrency=3), clock=lambda: NOW)
        await asyncio.gather(
            *(client.get_json("f", str(server.make_url(f"/{i}"))) for i in range(12))
        )
    assert peak == 3


async def test_max_age_is_capped_below_the_staleness_limit(aiohttp_server) -> None:
    script = Script([(200, {"v": 1}, {"Cache-Control": "max-age=86400"}), (200, {"v": 2}, {})])
    url = await serve(aiohttp_server, script)
    mono = Clock()
    async with aiohttp.ClientSession() as session:
        client = FeedClient(
            session, settings(staleness_seconds=600), clock=lambda: NOW, monotonic=mono
        )
        await client.get_json("f", url)
        mono.t += 301  # half the staleness limit: the cached copy is no longer served as fresh
        assert (await client.get_json("f", url)).payload == {"v": 2}


async def test_redirects_duplicate_keys_and_deep_nesting_are_refused(aiohttp_server) -> None:
    """Issue 12: a redirect is not followed (to any host), an object with a key twice is
    malformed_json, and so is a 100k-deep body (it was counted as a connection error)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    script = Script(
        [
            (302, b"", {"Location": "http://10.0.0.1:8080/admin"}),
            (200, b'{"a": 1, "b": 2, "a": 3}', {}),
            (200, deep, {}),
            (200, {"a": 1}, {}),
        ]
    )
    url = await serve(aiohttp_server, script)
    async with aiohttp.ClientSession() as session:
        client = FeedClient(session, settings(), clock=lambda: NOW)
        reasons = []
        for _ in range(3):
            with pytest.raises(FeedError) as err:
                await client.get_json("f", url)
            reasons.append((err.value.reason, str(err.value)))
        assert (await client.get_json("f", url)).payload == {"a": 1}
    assert reasons[0][0] == "http_4xx" and "not followed" in reasons[0][1]
    assert reasons[1][0] == "malformed_json" and "duplicate key 'a'" in reasons[1][1]
    assert reasons[2][0] == "malformed_json" and "nests too deeply" in reasons[2][1]
    assert len(script.requests) == 4  # none of them retried, the redirect target never asked
