"""The poll cycle: fetch every endpoint once, build every venue's snapshot, freeze the bad ones.

One :class:`FeedPoller` per daemon. Each :meth:`FeedPoller.poll`

1. collects the distinct endpoints of all venues (venues sharing ``/defillama/pools`` or an Aave
   market's ``/reserves`` share one request) plus batched coins requests;
2. fetches them concurrently through :class:`~adapters.http.FeedClient` (bounded concurrency,
   timeouts, retries, breakers, cache headers);
3. builds each venue's :class:`~core.types.VenueSnapshot` from the payloads and our current
   position, yielding the event loop every few milliseconds of CPU;
4. for a venue whose data failed, keeps its last good snapshot with ``frozen=True`` and the
   reason, and reports a :class:`Rejection` (logged; the daemon counts it in
   ``yieldvault_feed_errors_total{feed,reason}``).

Nothing here raises on bad feed data: the worst a feed can do is freeze its venues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import structlog

from adapters import coins
from adapters.aave import AaveAdapter
from adapters.across import AcrossAdapter
from adapters.base import Adapter, BuildContext, Endpoint, VenuePlan, _Parsed
from adapters.compound import CompoundAdapter
from adapters.config import FeedSettings
from adapters.defillama import DefiLlamaAdapter
from adapters.errors import FeedError
from adapters.fixed import FixedAdapter
from adapters.hedged_lp import HedgedLpAdapter
from adapters.http import FeedClient, Fetched
from adapters.lido import LidoAdapter
from adapters.loop import LoopAdapter
from adapters.nft_rental import NftRentalAdapter
from adapters.poll_steps import (
    Rejection as Rejection,  # re-exported: adapters.Rejection
)
from adapters.poll_steps import _peg_coins, build_plans, get_paged
from core.config import VenueConfig
from core.types import VenueSnapshot


def _log() -> structlog.typing.FilteringBoundLogger:
    # a fresh proxy per use, so logging reconfigured after import (the daemon, tests) applies
    return structlog.get_logger("adapters")


#: FeedRef.adapter -> adapter
ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        DefiLlamaAdapter(),
        LidoAdapter(),
        AaveAdapter(),
        CompoundAdapter(),
        AcrossAdapter(),
        FixedAdapter(),
        LoopAdapter(),
        HedgedLpAdapter(),
        NftRentalAdapter(),
    )
}


@dataclass(frozen=True, slots=True)
class PollReport:
    """One cycle's outcome. ``snapshots`` has every venue that has ever had good data; those whose
    latest data failed are their last good snapshot with ``frozen=True``."""

    snapshots: dict[str, VenueSnapshot]
    rejections: tuple[Rejection, ...]
    feed_durations_seconds: dict[str, float]
    feed_last_success: dict[str, datetime]
    polled_at: datetime
    requests: int = 0  # HTTP requests made this cycle (0 for a feed served fresh from cache)
    wall_seconds: float = 0.0
    # URLs whose fetch was still out when this poll returned (carried into the next poll)
    in_flight: tuple[str, ...] = ()
    partial: bool = False  # an on_partial report: more venues are still being fetched


@dataclass(slots=True, eq=False)
class _Flight:
    """One endpoint's fetch, which may outlive the poll that started it (until its deadline)."""

    started: float  # perf_counter at start
    budget_seconds: float  # the cycle deadline it is judged by, from its own start
    task: asyncio.Future[None] = dataclasses.field(init=False)
    result: Fetched | FeedError | None = None
    finished: float = math.inf

    @property
    def deadline(self) -> float:
        return self.started + self.budget_seconds


class FeedPoller:
    """Polls every venue's feed and turns the payloads into snapshots. See the module docstring."""

    def __init__(
        self,
        venues: Sequence[VenueConfig],
        settings: FeedSettings,
        session: aiohttp.ClientSession,
        *,
        root_url: str,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._root_url = root_url.rstrip("/") if root_url else ""
        self._client = FeedClient(session, settings, clock=clock, monotonic=monotonic, sleep=sleep)  # type: ignore[arg-type]
        self._plans: list[VenuePlan] = []
        seen: set[str] = set()
        for venue in venues:
            if venue.id in seen:
                raise ValueError(f"venue {venue.id}: duplicate id")
            seen.add(venue.id)
            adapter = ADAPTERS.get(venue.feed.adapter)
            if adapter is None:
                raise ValueError(
                    f"venue {venue.id}: feed.adapter {venue.feed.adapter!r} unknown; known: {sorted(ADAPTERS)}"
                )
            params = adapter.parse_params(venue)
            base_url = (venue.feed.base_url or self._prefix_url(venue.id, adapter.prefix)).rstrip(
                "/"
            )
            self._plans.append(adapter.plan(venue, params, base_url, settings))
        coins_url = (settings.coins_url or self._prefix_url("coins", coins.PREFIX)).rstrip("/")
        self._coin_endpoint = coins.price_endpoints(
            coins_url,
            [c for p in self._plans for c in (*p.coins, *p.optional_coins, *_peg_coins(p))],
            settings.coins_batch_size,
        )
        self._chart_endpoint = coins.chart_endpoints(
            coins_url,
            [c for p in self._plans for c in p.chart_coins],
            settings.volatility_span_hours,
        )
        self._last_good: dict[str, VenueSnapshot] = {}
        self._last_reason: dict[str, str] = {}
        self._feed_last_success: dict[str, datetime] = {}
        self._parsed: dict[str, _Parsed] = {}
        self._inflight: dict[Endpoint, _Flight] = {}
        self._shown: dict[str, VenueSnapshot] = {}  # what the last poll reported per venue
        self._needs: dict[str, tuple[Endpoint, ...]] = {
            p.config.id: self._needs_of(p) for p in self._plans
        }
        self._readers: dict[Endpoint, list[str]] = {}  # endpoint -> the venues that read it
        for vid, needs in self._needs.items():
            for ep in needs:
                self._readers.setdefault(ep, []).append(vid)
        self._wake: asyncio.Event | None = None  # set by each fetch that finishes during a poll

    def _needs_of(self, plan: VenuePlan) -> tuple[Endpoint, ...]:
        """Every endpoint a venue's build reads: its own, its coins' price batches, its charts."""
        coins_read = {c.lower() for c in (*plan.coins, *plan.optional_coins, *_peg_coins(plan))}
        coin_eps = [self._coin_endpoint[c] for c in sorted(coins_read) if c in self._coin_endpoint]
        charts = {c.lower() for c in plan.chart_coins}
        chart_eps = [self._chart_endpoint[c] for c in sorted(charts) if c in self._chart_endpoint]
        return tuple(dict.fromkeys((*plan.endpoints, *coin_eps, *chart_eps)))

    def _prefix_url(self, what: str, prefix: str) -> str:
        if not self._root_url:
            raise ValueError(f"{what}: no feed.base_url and no root_url to derive one from")
        return f"{self._root_url}/{prefix}"

    @property
    def client(self) -> FeedClient:
        return self._client

    @property
    def plans(self) -> tuple[VenuePlan, ...]:
        return tuple(self._plans)

    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every distinct endpoint one cycle requests (coins batches included)."""
        seen: dict[Endpoint, None] = {}
        for plan in self._plans:
            for ep in plan.endpoints:
                seen.setdefault(ep, None)
        for ep in (*self._coin_endpoint.values(), *self._chart_endpoint.values()):
            seen.setdefault(ep, None)
        return tuple(seen)

    async def poll(
        self,
        positions_usd: Mapping[str, float],
        *,
        wait_seconds: float | None = None,
        on_partial: Callable[[PollReport], None] | None = None,
    ) -> PollReport:
        """One cycle. Each endpoint is judged on its own: a venue's snapshot is built as soon as
        every endpoint it reads has answered (``on_partial`` receives the report so far each time
        more venues are ready, so a decision can use them while a slow feed is still out), and a
        fetch still unanswered :meth:`FeedSettings.cycle_deadline` after *its own* start is cut
        with reason ``timeout``.

        ``wait_seconds`` (default: the cycle deadline) bounds how long this call waits. A fetch
        still in flight then is not cancelled and not requested again: it carries into the next
        poll, and its venues keep the snapshot they had until it answers or its deadline cuts it.
        So a hung feed costs the other venues nothing and never delays the next cycle.
        """
        started = time.perf_counter()
        polled_at = self._clock()
        requests_before = self._client.stats.requests
        self._launch()
        wait = self._settings.cycle_deadline() if wait_seconds is None else max(wait_seconds, 0.0)
        wait_until = time.perf_counter() + wait
        results: dict[Endpoint, Fetched | FeedError] = {}
        snapshots: dict[str, VenueSnapshot] = {}
        rejections: list[Rejection] = []
        # a venue is built once every endpoint it reads has a result: count what each still misses.
        # Built in one go when everything is in; while fetches are still arriving, building in
        # between would only hold the next requests back, so what is ready waits until no fetch
        # has finished for QUIET_SECONDS: the ones still out are slow, the rest go on without them.
        missing = {vid: len(needs) for vid, needs in self._needs.items()}
        todo = {p.config.id: p for p in self._plans}
        staged = [todo.pop(vid) for vid in [v for v, n in missing.items() if n == 0]]
        wake = self._wake = asyncio.Event()
        quiet = False
        while True:
            wake.clear()
            self._cut_overdue()
            for ep, flight in self._inflight.items():
                if flight.result is not None and ep not in results:
                    results[ep] = flight.result
                    for vid in self._readers.get(ep, ()):
                        missing[vid] -= 1
                        if missing[vid] == 0:
                            staged.append(todo.pop(vid))
            deadlines = [f.deadline for f in self._inflight.values() if f.result is None]
            now = time.perf_counter()
            if staged and (not todo or not deadlines or quiet or now >= wait_until):
                ready, staged = staged, []
                await self._build(ready, positions_usd, results, snapshots, rejections)
                if todo and on_partial is not None:
                    on_partial(
                        PollReport(
                            snapshots={**self._shown, **snapshots},
                            rejections=tuple(rejections),
                            feed_durations_seconds={},
                            feed_last_success=dict(self._feed_last_success),
                            polled_at=polled_at,
                            partial=True,
                        )
                    )
                now = time.perf_counter()
            if (not todo and not staged) or now >= wait_until:
                break
            if not deadlines:  # answered while we were building: collect them on the next pass
                continue
            # woken by the next fetch to finish (_fetch_one sets it), at the next deadline, or
            # when nothing has finished for QUIET_SECONDS while venues are ready to build
            timeout = max(min(wait_until, min(deadlines)) - now, 0.0)
            if staged:
                timeout = min(timeout, QUIET_SECONDS)
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
                quiet = False
            except TimeoutError:
                quiet = True
        self._wake = None

        # a venue still waiting on a fetch in flight keeps what it showed (judged when it answers)
        for vid in todo:
            if vid in self._shown:
                snapshots[vid] = self._shown[vid]
        self._freeze_rejected(rejections, snapshots)
        self._shown = dict(snapshots)

        durations: dict[str, list[float]] = {}
        for ep in results:
            flight = self._inflight.pop(ep)
            span = durations.setdefault(ep.feed, [math.inf, -math.inf])
            span[0], span[1] = min(span[0], flight.started), max(span[1], flight.finished)
            # parsed payloads are kept only where the next cycle can reuse them (a 304 or a
            # max-age hit); the rest would only sit in the cyclic GC's way until replaced
            result = results[ep]
            if isinstance(result, Fetched) and not self._client.is_cached(result.url):
                self._parsed.pop(result.url, None)
        # a feed with a fetch still out is reported when that fetch is judged, not half now
        out = {ep.feed for ep in self._inflight}
        return PollReport(
            snapshots=snapshots,
            rejections=tuple(rejections),
            feed_durations_seconds={
                feed: max(t1 - t0, 0.0) for feed, (t0, t1) in durations.items() if feed not in out
            },
            feed_last_success=dict(self._feed_last_success),
            polled_at=polled_at,
            requests=self._client.stats.requests - requests_before,
            wall_seconds=time.perf_counter() - started,
            in_flight=tuple(sorted({ep.url for ep in self._inflight})),
        )

    async def close(self) -> None:
        """Cancel every fetch still in flight (the daemon's stop, before its session closes)."""
        tasks = [f.task for f in self._inflight.values() if not f.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()

    def _launch(self) -> None:
        """Start a fetch for every endpoint that has none in flight; each gets its own deadline."""
        deadline = self._settings.cycle_deadline()
        for ep in self.endpoints():
            if ep in self._inflight:
                continue
            flight = _Flight(time.perf_counter(), deadline)
            flight.task = asyncio.ensure_future(self._fetch_one(ep, flight))
            self._inflight[ep] = flight

    def _cut_overdue(self) -> None:
        """A fetch past its own deadline is cancelled and judged ``timeout`` now."""
        now = time.perf_counter()
        for ep, flight in self._inflight.items():
            if flight.result is None and now >= flight.deadline:
                flight.task.cancel()
                flight.finished = now
                flight.result = FeedError(
                    "timeout",
                    f"{ep.url} not done within the cycle deadline {flight.budget_seconds:g}s",
                    feed=ep.feed,
                )

    async def _fetch_one(self, ep: Endpoint, flight: _Flight) -> None:
        try:
            fetched = await (
                get_paged(self._client, ep)
                if ep.paged
                else self._client.get_json(ep.feed, ep.url, ep.query)
            )
        except FeedError as exc:
            if exc.feed is None:
                exc.feed = ep.feed
            result: Fetched | FeedError = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log().exception("fetch_failed", feed=ep.feed, url=ep.url)
            result = FeedError("connection", f"{type(exc).__name__}: {exc}", feed=ep.feed)
        else:
            result = fetched
            if fetched.requests > 0:  # the feed answered (200 or 304), not just our cache
                self._feed_last_success[ep.feed] = self._clock()
        if flight.result is None:  # not already cut at its deadline
            flight.result = result
            flight.finished = time.perf_counter()
            if self._wake is not None:
                self._wake.set()

    async def _build(
        self,
        plans: Sequence[VenuePlan],
        positions_usd: Mapping[str, float],
        results: Mapping[Endpoint, Fetched | FeedError],
        snapshots: dict[str, VenueSnapshot],
        rejections: list[Rejection],
    ) -> None:
        """Build ``plans`` (every endpoint they read has a result). CPU-bound (a bridge route's
        curve alone takes tens of ms): in a worker thread, so the event loop keeps serving
        /healthz and the API, and the fetches still out keep arriving, meanwhile. Each payload's
        age is judged at its own arrival (``Fetched.received_at``), not here."""
        ctx = BuildContext(
            self._settings,
            self._clock(),
            dict(results),  # a copy: the loop collects more results while the thread builds
            self._coin_endpoint,
            self._chart_endpoint,
            self._parsed,
        )
        built, refused = await asyncio.to_thread(
            build_plans, plans, ctx, positions_usd, self._last_good, self._last_reason
        )
        snapshots.update(built)
        rejections.extend(refused)

    def _freeze_rejected(
        self, rejections: Sequence[Rejection], snapshots: dict[str, VenueSnapshot]
    ) -> None:
        """Log each rejection once (a feed that stays down would otherwise log one line per venue
        per cycle) and show the venue's last good snapshot with ``frozen=True``."""
        repeated: dict[tuple[str, str], list[str]] = {}
        for rej in rejections:
            if self._last_reason.get(rej.venue_id) != rej.reason:
                _log().warning(
                    "feed_rejected",
                    venue=rej.venue_id,
                    feed=rej.feed,
                    reason=rej.reason,
                    detail=rej.detail,
                )
                self._last_reason[rej.venue_id] = rej.reason
            else:
                repeated.setdefault((rej.feed, rej.reason), []).append(rej.venue_id)
            last = self._last_good.get(rej.venue_id)
            if last is not None:
                snapshots[rej.venue_id] = dataclasses.replace(
                    last, frozen=True, frozen_reason=f"{rej.reason}: {rej.detail}"
                )
        for (feed, reason), venue_ids in repeated.items():
            _log().info(
                "feed_rejected_again",
                feed=feed,
                reason=reason,
                venues=len(venue_ids),
                venue_ids=venue_ids,
            )


#: no fetch finished for this long while venues are ready: the ones still out are slow
QUIET_SECONDS = 0.05
