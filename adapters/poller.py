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
class Rejection:
    """Why a venue got no fresh snapshot this cycle. ``reason`` is from :data:`adapters.errors.REASONS`."""

    venue_id: str
    feed: str
    reason: str
    detail: str


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

    def _build_all(
        self, ctx: BuildContext, positions_usd: Mapping[str, float]
    ) -> tuple[dict[str, VenueSnapshot], list[Rejection]]:
        """Every plan's snapshot from the fetched payloads (parsing, validation, curve fitting:
        CPU only, no I/O), or the reason it was refused."""
        snapshots: dict[str, VenueSnapshot] = {}
        rejections: list[Rejection] = []
        for plan in self._plans:
            vid = plan.config.id
            position = _position(positions_usd, vid)
            try:
                snapshot = plan.adapter.build(plan, ctx, position)
            except FeedError as exc:
                rejections.append(Rejection(vid, _feed_of(exc, plan), exc.reason, exc.detail))
            except (
                KeyError
            ) as exc:  # an endpoint or coin the plan did not register: a bug, not data
                rejections.append(
                    Rejection(vid, plan.adapter.feed, "schema", f"missing input {exc}")
                )
                _log().exception("adapter_bug", venue=vid)
            except Exception as exc:
                rejections.append(
                    Rejection(vid, plan.adapter.feed, "schema", f"{type(exc).__name__}: {exc}")
                )
                _log().exception("adapter_build_failed", venue=vid, feed=plan.adapter.feed)
            else:
                snapshot = _with_peg_prices(ctx, plan, snapshot)
                self._last_good[vid] = snapshot
                snapshots[vid] = snapshot
                if vid in self._last_reason:
                    _log().info(
                        "feed_recovered",
                        venue=vid,
                        feed=plan.adapter.feed,
                        was=self._last_reason.pop(vid),
                    )
        return snapshots, rejections

    async def poll(self, positions_usd: Mapping[str, float]) -> PollReport:
        started = time.perf_counter()
        polled_at = self._clock()
        requests_before = self._client.stats.requests
        results, durations = await self._fetch_all()
        # each payload's age is judged at its own arrival (Fetched.received_at), not here
        ctx = BuildContext(
            self._settings,
            self._clock(),
            results,
            self._coin_endpoint,
            self._chart_endpoint,
            self._parsed,
        )

        # CPU-bound (a bridge route's curve alone takes tens of ms): in a worker thread, so the
        # event loop keeps serving /healthz and the API while the snapshots are built
        snapshots, rejections = await asyncio.to_thread(self._build_all, ctx, positions_usd)

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

        # parsed payloads are kept only where the next cycle can reuse them (a 304 or a max-age hit);
        # the rest would only sit in the cyclic GC's way until the next cycle replaces them
        for result in results.values():
            if isinstance(result, Fetched) and not self._client.is_cached(result.url):
                self._parsed.pop(result.url, None)

        # a feed that stays down would otherwise log one line per venue per cycle
        for (feed, reason), venue_ids in repeated.items():
            _log().info(
                "feed_rejected_again",
                feed=feed,
                reason=reason,
                venues=len(venue_ids),
                venue_ids=venue_ids,
            )

        return PollReport(
            snapshots=snapshots,
            rejections=tuple(rejections),
            feed_durations_seconds=durations,
            feed_last_success=dict(self._feed_last_success),
            polled_at=polled_at,
            requests=self._client.stats.requests - requests_before,
            wall_seconds=time.perf_counter() - started,
        )

    async def _fetch_all(self) -> tuple[dict[Endpoint, Fetched | FeedError], dict[str, float]]:
        endpoints = self.endpoints()
        spans: dict[str, list[float]] = {}

        async def one(ep: Endpoint) -> Fetched | FeedError:
            t0 = time.perf_counter()
            try:
                fetched = await (
                    self._get_paged(ep)
                    if ep.paged
                    else self._client.get_json(ep.feed, ep.url, ep.query)
                )
            except FeedError as exc:
                if exc.feed is None:
                    exc.feed = ep.feed
                result: Fetched | FeedError = exc
            except Exception as exc:
                _log().exception("fetch_failed", feed=ep.feed, url=ep.url)
                result = FeedError("connection", f"{type(exc).__name__}: {exc}", feed=ep.feed)
            else:
                result = fetched
                if fetched.requests > 0:  # the feed answered (200 or 304), not just our cache
                    self._feed_last_success[ep.feed] = self._clock()
            t1 = time.perf_counter()
            span = spans.setdefault(ep.feed, [math.inf, -math.inf])
            span[0], span[1] = min(span[0], t0), max(span[1], t1)
            return result

        fetch_start = time.perf_counter()
        tasks = {ep: asyncio.ensure_future(one(ep)) for ep in endpoints}
        deadline = self._settings.cycle_deadline()
        if tasks:
            _, pending = await asyncio.wait(tasks.values(), timeout=deadline)
            for task in pending:  # one slow feed must not hold every other venue's fresh data back
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        results: dict[Endpoint, Fetched | FeedError] = {}
        cut_at = time.perf_counter()
        for ep, task in tasks.items():
            if task.cancelled():
                results[ep] = FeedError(
                    "timeout",
                    f"{ep.url} not done within the cycle deadline {deadline:g}s",
                    feed=ep.feed,
                )
                span = spans.setdefault(ep.feed, [math.inf, -math.inf])
                span[0], span[1] = min(span[0], fetch_start), max(span[1], cut_at)
            else:
                results[ep] = task.result()
        durations = {
            feed: max(t1 - t0, 0.0) for feed, (t0, t1) in spans.items() if math.isfinite(t0)
        }
        return results, durations

    async def _get_paged(self, ep: Endpoint) -> Fetched:
        """Page 1, then the pages its ``total`` calls for, merged as one ``{"rows", "total"}``."""
        query = dict(ep.query or {})
        first = await self._client.get_json(
            ep.feed, ep.url, {**query, "current": "1", "size": str(PAGE_SIZE)}
        )
        payload = first.payload
        total = payload.get("total") if isinstance(payload, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= PAGE_SIZE:
            return first
        pages = min(math.ceil(total / PAGE_SIZE), MAX_PAGES)
        rest = await asyncio.gather(
            *(
                self._client.get_json(
                    ep.feed, ep.url, {**query, "current": str(n), "size": str(PAGE_SIZE)}
                )
                for n in range(2, pages + 1)
            )
        )
        rows: list[object] = []
        for page in (first, *rest):
            page_rows = page.payload.get("rows") if isinstance(page.payload, dict) else None
            if not isinstance(page_rows, list):
                raise FeedError("schema", f"{page.url}: field rows: expected a list", feed=ep.feed)
            rows.extend(page_rows)
        return Fetched(
            url=ep.url,
            payload={"rows": rows, "total": total},
            fetched_at=min(p.fetched_at for p in (first, *rest)),
            from_cache=all(p.from_cache for p in (first, *rest)),
            version=hash(tuple(p.version for p in (first, *rest))),
            requests=sum(p.requests for p in (first, *rest)),
            received_at=max(
                (p.received_at for p in (first, *rest) if p.received_at is not None), default=None
            ),
        )


PAGE_SIZE = 100
MAX_PAGES = 50


def _peg_coins(plan: VenuePlan) -> tuple[str, ...]:
    feed = plan.config.feed
    return tuple(c for c in (feed.asset_coin, feed.peg_coin) if c)


def _with_peg_prices(ctx: BuildContext, plan: VenuePlan, snapshot: VenueSnapshot) -> VenueSnapshot:
    """``asset_price_usd`` and ``peg_price_usd`` from the coins feed for the guards, where the
    venue names its ``feed.asset_coin`` / ``feed.peg_coin``; an unpriced coin is left out (the
    depeg guard then has nothing to judge), never a rejection of the venue."""
    feed = plan.config.feed
    extra: dict[str, float] = {}
    for key, coin in (("asset_price_usd", feed.asset_coin), ("peg_price_usd", feed.peg_coin)):
        if not coin:
            continue
        try:
            extra[key] = ctx.price(coin).price
        except (FeedError, KeyError):
            continue
    if not extra:
        return snapshot
    return dataclasses.replace(snapshot, state={**snapshot.state, **extra})


def _position(positions_usd: Mapping[str, float], venue_id: str) -> float:
    try:
        value = float(positions_usd.get(venue_id, 0.0))
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _feed_of(exc: FeedError, plan: VenuePlan) -> str:
    """The feed a failure belongs to: a coins failure is the coins feed's, not the venue's."""
    return exc.feed or plan.adapter.feed
