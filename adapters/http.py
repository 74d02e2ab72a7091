"""One resilient JSON GET: shared session, bounded concurrency, timeouts, retries, breaker, cache.

:class:`FeedClient` is the only place the adapters touch the network. For each request it

- fails fast with ``circuit_open`` while the feed's :class:`CircuitBreaker` is open;
- holds one slot of a shared semaphore (``max_concurrency``) while the request is in flight;
- bounds the whole request by the feed's timeout and the body by ``max_response_bytes``;
- retries transient failures (timeout, connection, 5xx; 429 honouring ``Retry-After``) with
  exponential backoff and full jitter, and never retries a 4xx, a bad body or a too-large body;
- honours ``Cache-Control: max-age`` (no request while fresh), ``no-store`` / ``no-cache``, and
  revalidates with ``If-None-Match`` / ``If-Modified-Since`` so an unchanged feed answers 304.

Every failure surfaces as a :class:`~adapters.errors.FeedError` with a bounded reason.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import jiter

from adapters.config import FeedSettings
from adapters.errors import FeedError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One GET, shared by every venue that names it. ``feed`` is the metric label."""

    feed: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    # Binance-style ``current``/``size`` pages, merged into one {"rows","total"}
    paged: bool = False

    @property
    def query(self) -> dict[str, str] | None:
        return dict(self.params) if self.params else None


class CircuitBreaker:
    """Closed -> open after ``failures_to_open`` consecutive transient failures; open -> half-open
    after ``cooldown_seconds``, when exactly one trial request may go; its success closes the
    breaker, its failure opens it for another cool-down (Nygard, *Release It!*, ch. 5)."""

    def __init__(
        self, failures_to_open: int, cooldown_seconds: float, monotonic: Callable[[], float]
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_seconds = cooldown_seconds
        self._monotonic = monotonic
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self._monotonic() - self.opened_at >= self.cooldown_seconds:
            return "half_open"
        return "open"

    def retry_in_seconds(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_seconds - (self._monotonic() - self.opened_at))

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self._trial_in_flight or self.consecutive_failures >= self.failures_to_open:
            self.opened_at = self._monotonic()
        self._trial_in_flight = False

    def record_neutral(self) -> None:
        """The server answered but the answer was unusable (4xx, bad body): not an outage."""
        if self._trial_in_flight:
            self.record_success()


@dataclass(slots=True)
class Fetched:
    """A parsed JSON body. ``fetched_at`` is when the server last vouched for it (200 or 304);
    ``received_at`` is when this call handed it over (from the network or the cache): the time
    its age is judged at, so a slow neighbour in the same cycle cannot age it."""

    url: str
    payload: Any
    fetched_at: datetime
    from_cache: bool = False
    version: int = 0  # changes whenever the body changes; keys caches of validated models
    requests: int = 0  # HTTP requests this call made (0 when served fresh from cache)
    received_at: datetime | None = None


@dataclass(slots=True)
class _CacheEntry:
    payload: Any
    fetched_at: datetime
    version: int
    etag: str | None = None
    last_modified: str | None = None
    fresh_until: float = -math.inf  # monotonic
    must_revalidate: bool = False


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    cache_hits: int = 0
    not_modified: int = 0
    retries: int = 0
    by_feed: dict[str, int] = field(default_factory=dict)


def _parse_cache_control(value: str | None) -> tuple[bool, bool, float | None]:
    """(no_store, no_cache, max_age_seconds) from a Cache-Control header (RFC 9111 §5.2.2)."""
    if not value:
        return False, False, None
    no_store = no_cache = False
    max_age: float | None = None
    for part in value.split(","):
        token = part.strip().lower()
        if token == "no-store":
            no_store = True
        elif token in ("no-cache", "must-revalidate"):
            no_cache = no_cache or token == "no-cache"
        elif token.startswith("max-age="):
            try:
                max_age = max(0.0, float(token[8:].strip('"')))
            except ValueError:
                max_age = None
    return no_store, no_cache, max_age


class FeedClient:
    """Resilient JSON GETs over one shared :class:`aiohttp.ClientSession`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: FeedSettings,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._semaphore = asyncio.Semaphore(settings.max_concurrency)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._cache: dict[str, _CacheEntry] = {}
        self._version = 0
        self.stats = _Stats()

    def is_cached(self, full_url: str) -> bool:
        """Whether the body of ``full_url`` is kept for revalidation or max-age reuse."""
        return full_url in self._cache

    def breaker(self, feed: str, url: str) -> CircuitBreaker:
        """The breaker of ``feed`` at the host of ``url`` (one per adapter per host)."""
        key = f"{feed}@{urlsplit(url).netloc}"
        breaker = self._breakers.get(key)
        if breaker is None:
            cb = self._settings.circuit_breaker
            breaker = self._breakers[key] = CircuitBreaker(
                cb.failures_to_open, cb.cooldown_seconds, self._monotonic
            )
        return breaker

    async def get_json(
        self, feed: str, url: str, params: Mapping[str, str] | None = None
    ) -> Fetched:
        """GET ``url`` (with ``params``) and return its parsed JSON, or raise :class:`FeedError`."""
        full_url = f"{url}?{urlencode(sorted(params.items()))}" if params else url
        entry = self._cache.get(full_url)
        if (
            entry is not None
            and not entry.must_revalidate
            and self._monotonic() < entry.fresh_until
        ):
            self.stats.cache_hits += 1
            return Fetched(
                full_url,
                entry.payload,
                entry.fetched_at,
                from_cache=True,
                version=entry.version,
                received_at=self._clock(),
            )

        breaker = self.breaker(feed, full_url)
        retry = self._settings.retry
        requests = 0
        for attempt in range(retry.attempts + 1):
            if not breaker.allow():
                raise FeedError(
                    "circuit_open",
                    f"{feed} breaker open after {breaker.consecutive_failures} consecutive failures; "
                    f"next trial in {breaker.retry_in_seconds():.1f}s",
                )
            try:
                requests += 1
                fetched = await self._once(feed, full_url)
            except FeedError as exc:
                retryable = exc.transient or exc.retry_after_seconds is not None
                if exc.transient:
                    breaker.record_failure()
                else:
                    breaker.record_neutral()
                if not retryable or attempt == retry.attempts:
                    raise
                delay = self._rng.uniform(
                    0.0, min(retry.backoff_max_seconds, retry.backoff_base_seconds * 2**attempt)
                )
                if exc.retry_after_seconds is not None:
                    delay = max(delay, min(exc.retry_after_seconds, retry.backoff_max_seconds))
                self.stats.retries += 1
                await self._sleep(delay)
                continue
            breaker.record_success()
            fetched.requests = requests
            fetched.received_at = self._clock()
            return fetched
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, feed: str, full_url: str) -> Fetched:
        settings = self._settings
        entry = self._cache.get(full_url) if settings.honour_cache_headers else None
        headers = {"Accept": "application/json"}
        if entry is not None:
            if entry.etag:
                headers["If-None-Match"] = entry.etag
            if entry.last_modified:
                headers["If-Modified-Since"] = entry.last_modified
        timeout_seconds = settings.timeout_for(feed)
        self.stats.requests += 1
        self.stats.by_feed[feed] = self.stats.by_feed.get(feed, 0) + 1
        try:
            async with self._semaphore:
                async with asyncio.timeout(timeout_seconds):
                    async with self._session.get(
                        full_url, headers=headers, allow_redirects=False
                    ) as resp:
                        status = resp.status
                        if 300 <= status < 400 and status != 304:
                            # A feed is read from the host it is configured at: a redirect could
                            # send the poller to any host and port (an internal one included).
                            raise FeedError(
                                "http_4xx",
                                f"HTTP {status} from {full_url}: redirect to "
                                f"{resp.headers.get('Location', '?')!r} not followed",
                            )
                        if status == 304 and entry is not None:
                            self.stats.not_modified += 1
                            self._store(feed, full_url, resp.headers, entry.payload, same_body=True)
                            new = self._cache.get(full_url, entry)
                            return Fetched(
                                full_url,
                                entry.payload,
                                new.fetched_at,
                                from_cache=True,
                                version=entry.version,
                            )
                        if status >= 500:
                            raise FeedError("http_5xx", f"HTTP {status} from {full_url}")
                        if status == 429:
                            raise FeedError(
                                "http_4xx",
                                f"HTTP 429 from {full_url}",
                                retry_after_seconds=_retry_after(resp.headers.get("Retry-After")),
                            )
                        if status >= 400 or status < 200 or status == 304:
                            raise FeedError("http_4xx", f"HTTP {status} from {full_url}")
                        body = await _read_capped(resp, settings.max_bytes_for(feed), full_url)
                        resp_headers = resp.headers
        except FeedError:
            raise
        except TimeoutError:
            raise FeedError(
                "timeout", f"no complete answer from {full_url} within {timeout_seconds:g}s"
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            raise FeedError("connection", f"{type(exc).__name__} from {full_url}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise FeedError("connection", f"{type(exc).__name__} from {full_url}: {exc}") from None
        try:
            payload = parse_feed_json(body)
        except RecursionError:
            raise FeedError(
                "malformed_json", f"body of {full_url} nests too deeply to be a feed"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise FeedError("malformed_json", f"body of {full_url} is not JSON: {exc}") from None
        if settings.honour_cache_headers:
            self._store(feed, full_url, resp_headers, payload, same_body=False)
        cached = self._cache.get(full_url)
        if cached is not None and cached.payload is payload:
            return Fetched(full_url, payload, cached.fetched_at, version=cached.version)
        self._version += 1
        return Fetched(full_url, payload, self._clock(), version=self._version)

    def _store(
        self, feed: str, full_url: str, headers: Mapping[str, str], payload: Any, *, same_body: bool
    ) -> None:
        no_store, no_cache, max_age = _parse_cache_control(headers.get("Cache-Control"))
        if max_age is not None:
            # never trust a cached body so long that it would go stale before we ask again
            max_age = min(max_age, self._settings.staleness_for(feed) / 2.0)
        etag = headers.get("ETag")
        last_modified = headers.get("Last-Modified")
        if no_store or (max_age is None and not etag and not last_modified):
            self._cache.pop(full_url, None)
            return
        age = _float_or_none(headers.get("Age")) or 0.0
        old = self._cache.get(full_url)
        if same_body and old is not None:
            version = old.version
        else:
            self._version += 1
            version = self._version
        self._cache[full_url] = _CacheEntry(
            payload=payload,
            fetched_at=self._clock(),
            version=version,
            etag=etag or (old.etag if same_body and old else None),
            last_modified=last_modified or (old.last_modified if same_body and old else None),
            fresh_until=self._monotonic() + max_age - age if max_age is not None else -math.inf,
            must_revalidate=no_cache,
        )


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise FeedError(
            "too_large", f"{url} declares {declared} bytes > max_response_bytes {limit}"
        )
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise FeedError("too_large", f"{url} sent more than max_response_bytes {limit}")
    return bytes(buf)


_DUPLICATE_KEY = re.compile(r'^Detected duplicate key "(.*)" at (line \d+ column \d+)$', re.S)
#: jiter's nesting limit (about 200 levels; no feed nests past 10)
_TOO_DEEP = "recursion limit exceeded"


def parse_feed_json(body: bytes) -> Any:
    """A feed body as Python objects, refusing what is ambiguous or absurd.

    * A key twice in one object is ambiguous (parsers keep the first or the last):
      ``ValueError("duplicate key 'k' at line L column C")``.
    * Nesting past jiter's limit (~200 levels; a feed nests < 10): ``RecursionError``.
    * ``NaN`` / ``Infinity`` literals parse as floats, which the validators refuse with reason
      ``nan`` naming the field (json accepts them too: a feed sending them sends garbage numbers).
    * UTF-8 only (RFC 8259 section 8.1), a leading byte-order mark skipped; a lone surrogate
      escape is refused.

    Parsed by jiter (the Rust parser behind pydantic), which checks duplicates as it builds each
    object: ~0.6x the time of ``json.loads`` on the feeds, where ``json.loads`` with an
    ``object_pairs_hook`` checking duplicates in Python cost 1.2-5x (``adapters/bench.py``
    measures the three side by side). Floats parse to the same doubles as ``json.loads``.
    """
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    try:
        return jiter.from_json(
            body, allow_inf_nan=True, catch_duplicate_keys=True, cache_mode="keys"
        )
    except ValueError as exc:
        message = str(exc)
        dup = _DUPLICATE_KEY.match(message)
        if dup is not None:
            raise ValueError(f"duplicate key {dup.group(1)!r} at {dup.group(2)}") from None
        if message.startswith(_TOO_DEEP):
            raise RecursionError(message) from None
        raise


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(value: str | None) -> float:
    seconds = _float_or_none(value)
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else 1.0
