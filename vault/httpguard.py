"""The API server's guard against connections that hold a slot and never finish a request.

aiohttp's server keeps a connection that sent nothing, or half a request line, for as long as
the peer likes (issue 12: 200 half-open connections were still open after 22 s), and idle
keep-alive connections for an hour. :func:`start_guarded_site` serves the same aiohttp
application with three bounds:

* ``header_timeout_seconds``: a connection must deliver a complete request head
  (``\\r\\n\\r\\n``) within this long of opening, or it is closed;
* ``keepalive_timeout_seconds``: an idle keep-alive connection is closed after this long;
* ``max_connections``: a connection beyond this many open ones is answered
  ``503 Service Unavailable`` and closed at once, so the loop and the file descriptors stay free.

(A slow head on the second request of a kept-alive connection is bounded by the keep-alive
timeout only.)
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

_BUSY_BODY = b"too many open connections"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BUSY_BODY
)


@dataclass
class GuardStats:
    open_connections: int = 0
    refused: int = 0  # beyond max_connections
    timed_out: int = 0  # no complete request head in time
    handlers: set[Any] = field(default_factory=set)


class _GuardedHandler(RequestHandler):
    __slots__ = ("_guard", "_guard_stats", "_head_tail", "_head_timer", "_over")
    _guard: GuardLimits
    _guard_stats: GuardStats
    _head_tail: bytes
    _head_timer: asyncio.TimerHandle | None
    _over: bool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        stats: GuardStats = self._guard_stats
        limits: GuardLimits = self._guard
        stats.open_connections += 1
        self._over = stats.open_connections > limits.max_connections
        self._head_tail = b""
        self._head_timer = None
        if self._over:
            stats.refused += 1
            assert isinstance(transport, asyncio.Transport)
            transport.write(BUSY)
            transport.close()
            return
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(limits.header_timeout_seconds, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        self._guard_stats.timed_out += 1
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._over:
            return
        if self._head_timer is not None:
            seen = self._head_tail + data
            if b"\r\n\r\n" in seen:
                self._head_timer.cancel()
                self._head_timer = None
            else:
                self._head_tail = seen[-3:]
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._guard_stats.open_connections -= 1
        super().connection_lost(exc)


@dataclass(frozen=True, slots=True)
class GuardLimits:
    header_timeout_seconds: float = 5.0
    keepalive_timeout_seconds: float = 15.0
    max_connections: int = 256


async def start_guarded_site(
    runner: web.AppRunner,
    host: str,
    port: int,
    limits: GuardLimits,
    sock: socket.socket | None = None,
) -> tuple[asyncio.Server, GuardStats]:
    """Serve ``runner``'s (set-up) application on ``host:port`` under ``limits`` (or on ``sock``,
    a listening socket bound earlier: see :func:`bind_listener`).

    Close the returned server before ``runner.cleanup()``.
    """
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None, "runner.setup() first"
    stats = GuardStats()
    kwargs = {**server._kwargs, "keepalive_timeout": limits.keepalive_timeout_seconds}

    def factory() -> _GuardedHandler:
        handler = _GuardedHandler(server, loop=loop, **kwargs)
        handler._guard = limits
        handler._guard_stats = stats
        return handler

    if sock is not None:
        return await loop.create_server(factory, sock=sock), stats
    return await loop.create_server(factory, host, port, reuse_address=True), stats


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``, as ``create_server`` would set),
    not yet listening. Binding it before anything else in the process opens a port (the embedded
    market's OS-picked one) keeps that port from landing on the address the API was given."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
