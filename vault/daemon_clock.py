"""Where the daemon's time comes from: the wall clock, an embedded simulated market's clock, or
a simulated market served by URL (``yieldvault mock-feeds``) that it follows, re-anchored at
every poll. Feed data is judged by this clock (``Daemon.now``), never by the wall's when a
simulated market stamps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

if TYPE_CHECKING:
    from vault.settings import Settings

log = structlog.get_logger("vault.daemon")


def wall_clock() -> datetime:
    return datetime.now(UTC)


class FollowedClock:
    """The simulated time of a market served by ``yieldvault mock-feeds``, re-anchored at every poll.

    sim_now = sim_at_anchor + (monotonic_now - monotonic_at_anchor) x time_scale

    The anchor's monotonic time is the moment the request that read the market's clock was
    *sent* (``sent_at``): the market read its clock somewhere within the round trip, so this
    clock runs ahead of the market's by at most one round trip x time_scale (its data looks that
    much older, a few seconds against an hour's staleness limit) and never behind it. Anchored
    at the answer's arrival instead, it lagged by the round trip x time_scale: on a loaded box
    (80 ms at 3600x) fresh data was judged 47 s "in the future" and refused. A resync never moves
    the clock back (the market's clock never goes back either).
    """

    def __init__(self, state: dict[str, Any], sent_at: float | None = None):
        self._anchored = False
        self.resync(state, sent_at)

    def resync(self, state: dict[str, Any], sent_at: float | None = None) -> None:
        # The market's clock now, not its last tick: data is stamped up to the clock, so anchoring on
        # the tick lagged by up to a tick (900 s) and judged fresh data "future".
        anchor = state.get("clock_time", state["sim_time"])
        sim = datetime.fromisoformat(str(anchor).replace("Z", "+00:00"))
        mono = time.monotonic() if sent_at is None else sent_at
        if self._anchored:
            sim = max(sim, self._at(mono))
        self.sim_at_anchor, self.mono_at_anchor = sim, mono
        self.time_scale = float(state["time_scale"])
        self._anchored = True

    def _at(self, mono: float) -> datetime:
        return self.sim_at_anchor + timedelta(
            seconds=(mono - self.mono_at_anchor) * self.time_scale
        )

    def __call__(self) -> datetime:
        return self._at(time.monotonic())


async def read_market_clock(
    session: aiohttp.ClientSession, root_url: str
) -> tuple[str, dict[str, Any] | None, float]:
    """Ask ``root_url`` for a simulated market's clock.

    Returns ("market", {"sim_time", "time_scale"}, sent_at) for a simulated market, ("live",
    None, sent_at) for a host that answers without one, ("unreachable", None, sent_at) when
    nothing answers (ask again later); ``sent_at`` is ``time.monotonic()`` as the request left.
    """
    sent_at = time.monotonic()
    try:
        async with session.get(
            f"{root_url.rstrip('/')}/admin/v1/state", timeout=aiohttp.ClientTimeout(total=3)
        ) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else None
    except (TimeoutError, aiohttp.ClientConnectionError):
        return "unreachable", None, sent_at
    except (aiohttp.ClientError, ValueError):
        return "live", None, sent_at
    if isinstance(body, dict) and "sim_time" in body and "time_scale" in body:
        return "market", body, sent_at
    return "live", None, sent_at


class ClockHooks:
    """The daemon's clock: settled at start (an embedded market, or the answer of ``root_url``)
    and re-anchored before every poll. A mixin of :class:`vault.daemon.Daemon`."""

    settings: Settings
    config_dir: Path
    clock: Callable[[], datetime]
    time_scale: float  # feed seconds per wall second (the embedded market runs accelerated)
    poller_root: str
    feeds_url: str | None
    _followed: FollowedClock | None
    _clock_unsettled: bool
    _market: Any
    _market_runner: Any

    if TYPE_CHECKING:  # a resource of vault.daemon.Daemon

        @property
        def session(self) -> aiohttp.ClientSession: ...

    def now(self) -> datetime:
        """The time feed data is judged by: wall clock, or a simulated market's clock."""
        return self.clock()

    async def _settle_clock(self) -> None:
        if not (self._clock_unsettled or self._followed is not None):
            return
        kind, state, sent_at = await read_market_clock(self.session, self.poller_root)
        if kind == "market" and state is not None:
            if self._followed is None:
                self._followed = FollowedClock(state, sent_at)
                self.clock = self._followed
                log.info(
                    "following_market_clock",
                    sim_time=state["sim_time"],
                    time_scale=state["time_scale"],
                )
            else:
                self._followed.resync(state, sent_at)
            self.time_scale = self._followed.time_scale or 1.0
            self._clock_unsettled = False
        elif kind == "live" and self._clock_unsettled:
            if self.settings.vault.clock == "market":
                raise OSError(
                    f"vault.clock is 'market' but {self.poller_root} serves no simulated market clock"
                )
            self._clock_unsettled = False  # a live host: the wall clock it is

    async def _start_market(self) -> None:
        market_path = self.settings.market_path(self.config_dir)
        if market_path is None:
            return
        from mockfeeds.market import Market
        from mockfeeds.server import ServedInThread
        from vault.settings import read_yaml

        self._market = Market.from_config(
            read_yaml(market_path), state_path=self.settings.data_dir / "market-state.json"
        )
        # its own loop in its own thread: the market's work never stalls this loop's /healthz
        self._market_runner = await ServedInThread.start(self._market, "127.0.0.1", 0)
        self.feeds_url = self._market_runner.url
        # Feeds stamp their data in simulated time; judge staleness by the same clock.
        sim_clock = self._market.clock
        self.clock = lambda: datetime.fromtimestamp(sim_clock.now(), UTC)
        self.time_scale = sim_clock.time_scale or 1.0  # 0 = frozen clock
        log.info("embedded_market_started", url=self.feeds_url, market=str(market_path))
