"""The API server's guard (vault/httpguard.py) on a real loopback socket: half-open connections
are closed after the header timeout, connections beyond the cap get 503 at once, and ordinary
requests are served as before."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from vault.httpguard import GuardLimits, start_guarded_site


async def serve(limits: GuardLimits) -> tuple[web.AppRunner, asyncio.Server, int, object]:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server, stats = await start_guarded_site(runner, "127.0.0.1", 0, limits)
    return runner, server, server.sockets[0].getsockname()[1], stats


async def test_half_open_connections_are_closed_after_the_header_timeout():
    runner, server, port, stats = await serve(GuardLimits(header_timeout_seconds=0.5))
    try:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        # half of them send half a request line, the other half nothing at all
        for i, (_, writer) in enumerate(conns):
            if i % 2:
                writer.write(b"GET /heal")
                await writer.drain()
        started = time.monotonic()
        closed = await asyncio.wait_for(
            asyncio.gather(*(reader.read() for reader, _ in conns)), timeout=5
        )
        assert all(data == b"" for data in closed)  # closed by the server, nothing answered
        assert time.monotonic() - started < 2.0
        assert stats.timed_out == 50 and stats.open_connections == 0
        async with (  # the server is still fine
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200
        for _, writer in conns:
            writer.close()
    finally:
        server.close()
        await runner.cleanup()


async def test_connections_beyond_the_cap_get_503_at_once():
    runner, server, port, stats = await serve(
        GuardLimits(header_timeout_seconds=30, max_connections=5)
    )
    try:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), timeout=2)
        assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"too many open connections")
        assert stats.refused == 1
        for _, w in held:
            w.close()
        writer.close()
        await asyncio.sleep(0.1)
        async with (  # slots free again
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200 and (await resp.json()) == {"ok": True}
    finally:
        server.close()
        await runner.cleanup()
