"""Run the simulated market as an HTTP server: in-process (``start``/``stop``, used by the daemon's
embedded market and by tests) or standalone (``run_forever``, behind ``yieldvault mock-feeds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from pathlib import Path

from aiohttp import web

from mockfeeds.app import create_app
from mockfeeds.config import DEFAULT_MARKET_PATH, load_market_yaml
from mockfeeds.market import Market


async def start(
    market: Market, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout_seconds: float = 2.0
) -> tuple[web.AppRunner, str]:
    """Serve ``market`` on ``host:port`` (port 0 = an ephemeral port, read back from the socket).

    Returns the runner (pass it to :func:`stop`) and the base URL, e.g. ``http://127.0.0.1:40123``.
    On stop, requests still in flight (a ``timeout`` fault sleeps 30 s) are cancelled after
    ``shutdown_timeout_seconds``.
    """
    runner = web.AppRunner(
        create_app(market),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout_seconds,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addrs = runner.addresses
    if not addrs:
        await runner.cleanup()
        raise RuntimeError(f"mock feeds did not bind to {host}:{port}")
    bound_host, bound_port = addrs[0][0], addrs[0][1]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"


async def stop(runner: web.AppRunner) -> None:
    """Stop serving; the app's cleanup saves the market state."""
    await runner.cleanup()


def parse_listen(listen: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:9600"`` for IPv6) -> (host, port); ValueError naming the problem."""
    host, sep, port_s = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"listen port must be an integer, got {port_s!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"listen port must be in 0..65535, got {port}")
    return host, port


async def serve_until_signal(
    config_path: Path | str | None, listen: str, state_path: Path | str | None
) -> None:
    """Load the market, serve it, and stop cleanly (state saved) on SIGTERM or SIGINT."""
    host, port = parse_listen(listen)
    cfg = load_market_yaml(config_path or DEFAULT_MARKET_PATH)
    market = Market.from_config(cfg, state_path=Path(state_path) if state_path else None)
    runner, url = await start(market, host, port)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_event.set)
            installed.append(sig)
    print(
        f"mock feeds: {len(market.venues)} venues at {url} (sim time x{market.clock.time_scale:g})",
        flush=True,
    )
    try:
        await stop_event.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await stop(runner)
        print(
            "mock feeds: stopped, state saved" if market.state_path else "mock feeds: stopped",
            flush=True,
        )


def run_forever(config_path: Path | str | None, listen: str, state_path: Path | str | None) -> int:
    """Blocking entry point for ``yieldvault mock-feeds --listen HOST:PORT [--market FILE] [--state FILE]``.

    ``config_path`` None uses ``config/market.default.yaml``. Returns the process exit code (0 on
    a clean SIGTERM / Ctrl-C shutdown). Raises ValueError for a bad listen address or market file.
    """
    try:
        asyncio.run(serve_until_signal(config_path, listen, state_path))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0


class ServedInThread:
    """A market served by its own event loop in a daemon thread: the embedded market of
    ``yieldvault run``. Its ticks, fills and feed renders then never stall the daemon's loop (a
    remote market would not either); the two share only the GIL, which Python hands over every
    switch interval.

    ``await ServedInThread.start(market)`` binds (port 0 = ephemeral) and returns with ``url``
    set; ``await served.stop()`` stops serving (the app's cleanup saves the market state) and
    joins the thread."""

    def __init__(self, market: Market, host: str, port: int) -> None:
        self.market = market
        self.url = ""
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="market", daemon=True)

    @classmethod
    async def start(cls, market: Market, host: str = "127.0.0.1", port: int = 0) -> ServedInThread:
        served = cls(market, host, port)
        served._thread.start()
        try:
            served._runner, served.url = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(start(market, host, port), served._loop)
            )
        except BaseException:
            served._loop.call_soon_threadsafe(served._loop.stop)
            await asyncio.to_thread(served._thread.join, 10.0)
            raise
        return served

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(stop(self._runner), self._loop)
            )
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10.0)
        self._loop.close()
