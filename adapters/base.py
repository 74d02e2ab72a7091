"""What every adapter shares: endpoints, the per-cycle build context, and the checks.

An adapter is a small object that says which endpoints a venue needs (so venues sharing an
endpoint cost one request per cycle) and turns the fetched payloads plus our current position
into a :class:`~core.types.VenueSnapshot`. It never does I/O itself; the poller fetches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.coins import chart_from, price_from, volatility_from
from adapters.config import FeedSettings
from adapters.errors import FeedError
from adapters.http import Endpoint, Fetched
from adapters.models import CoinChart, CoinPrice, FeedModel, parse
from core.config import VenueConfig
from core.types import VenueKind, VenueSnapshot

SECONDS_PER_YEAR = 31_536_000


class Params(BaseModel):
    """Base of each adapter's ``feed.params`` model: unknown keys are config errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(slots=True)
class _Parsed:
    version: int
    model: Any
    rows: dict[Any, Any] = field(default_factory=dict)


class BuildContext:
    """Everything a venue build may read this cycle: fetched payloads (or their failures),
    coin prices and price histories, the settings and the clock's ``now``.

    Parsed models are cached across cycles by (url, body version), so an unchanged or 304
    payload is validated once.
    """

    def __init__(
        self,
        settings: FeedSettings,
        now: datetime,
        results: Mapping[Endpoint, Fetched | FeedError],
        coin_endpoint: Mapping[str, Endpoint],
        chart_endpoint: Mapping[str, Endpoint],
        parsed_cache: dict[str, _Parsed],
    ) -> None:
        self.settings = settings
        self.now = now
        self._results = results
        self._coin_endpoint = coin_endpoint
        self._chart_endpoint = chart_endpoint
        self._parsed = parsed_cache

    def fetched(self, endpoint: Endpoint) -> Fetched:
        result = self._results[endpoint]
        if isinstance(result, FeedError):
            raise result
        return result

    def model(self, endpoint: Endpoint, model: type[FeedModel], where: str) -> Any:
        """The endpoint's payload validated as ``model`` (cached per body version)."""
        fetched = self.fetched(endpoint)
        entry = self._parsed.get(fetched.url)
        if entry is None or entry.version != fetched.version:
            entry = _Parsed(fetched.version, None)
            self._parsed[fetched.url] = entry
        if entry.model is None:
            try:
                entry.model = parse(model, fetched.payload, where)
            except FeedError as exc:
                entry.model = exc
        if isinstance(entry.model, FeedError):
            raise entry.model
        return entry.model

    def row(
        self, endpoint: Endpoint, key: Any, raw: Any, model: type[FeedModel], where: str
    ) -> Any:
        """One row of an endpoint's payload validated as ``model``, cached with the body version."""
        fetched = self.fetched(endpoint)
        entry = self._parsed.get(fetched.url)
        if entry is None or entry.version != fetched.version:
            entry = _Parsed(fetched.version, None)
            self._parsed[fetched.url] = entry
        hit = entry.rows.get((model, key))
        if hit is None:
            try:
                hit = parse(model, raw, where)
            except FeedError as exc:
                hit = exc
            entry.rows[(model, key)] = hit
        if isinstance(hit, FeedError):
            raise hit
        return hit

    def index(self, endpoint: Endpoint, name: str, build: Any) -> Any:
        """A lookup table derived from an endpoint's payload (e.g. pool id -> raw row), cached."""
        fetched = self.fetched(endpoint)
        entry = self._parsed.get(fetched.url)
        if entry is None or entry.version != fetched.version:
            entry = _Parsed(fetched.version, None)
            self._parsed[fetched.url] = entry
        key = ("index", name)
        if key not in entry.rows:
            try:
                entry.rows[key] = build(fetched)
            except FeedError as exc:
                entry.rows[key] = exc
        hit = entry.rows[key]
        if isinstance(hit, FeedError):
            raise hit
        return hit

    def price(self, coin: str) -> CoinPrice:
        """Current USD price of ``coin`` ("chain:address") from the coins API, freshness-checked."""
        endpoint = self._coin_endpoint[coin.lower()]
        price = price_from(self, endpoint, coin)
        self.check_time("coins", price.timestamp, f"coins {coin} timestamp", endpoint)
        return price

    def volatility(self, coin: str) -> float:
        """Realized annual volatility of ``coin`` from its hourly price history (cached per body)."""
        return volatility_from(self, self._chart_endpoint[coin.lower()], coin)

    def chart(self, coin: str) -> CoinChart:
        """``coin``'s hourly price history (the ``volatility_span_hours`` window)."""
        return chart_from(self, self._chart_endpoint[coin.lower()], coin)

    def received_at(self, endpoint: Endpoint) -> datetime:
        """When this cycle got the endpoint's payload (network or cache)."""
        fetched = self.fetched(endpoint)
        return fetched.received_at or self.now

    def check_time(self, feed: str, observed_at: datetime, where: str, endpoint: Endpoint) -> None:
        """Refuse data stamped in the future (beyond the skew tolerance) or older than the feed's
        staleness limit, judged at the moment its payload arrived (``received_at``): under an
        accelerated simulated clock a cycle's own duration must not age the data it fetched."""
        age = (self.received_at(endpoint) - observed_at).total_seconds()
        if -age > self.settings.future_tolerance_seconds:
            raise FeedError(
                "future_timestamp",
                f"{where} {observed_at.isoformat()} is {-age:.0f}s ahead of now",
                feed=feed,
            )
        limit = self.settings.staleness_for(feed)
        if age > limit:
            raise FeedError(
                "stale",
                f"{where} {observed_at.isoformat()} is {age:.0f}s old > {limit:g}s",
                feed=feed,
            )

    def check_apr(self, value: float, where: str) -> float:
        """Refuse non-finite APRs and APRs above the configured sanity bound (decimal)."""
        if not math.isfinite(value):
            raise FeedError("nan", f"{where} is {value}")
        if value > self.settings.max_apr:
            raise FeedError(
                "out_of_range", f"{where} {value:.4g} > max_apr {self.settings.max_apr:g}"
            )
        return value

    def check_amount(self, value: float, where: str) -> float:
        if not math.isfinite(value):
            raise FeedError("nan", f"{where} is {value}")
        if value < 0:
            raise FeedError("out_of_range", f"{where} {value:.6g} is negative")
        return value


@dataclass(frozen=True, slots=True)
class VenuePlan:
    """A venue, its adapter and validated params, and the endpoints and coins it reads."""

    config: VenueConfig
    adapter: Adapter
    params: Any
    base_url: str
    endpoints: tuple[Endpoint, ...]
    coins: tuple[str, ...] = ()
    chart_coins: tuple[str, ...] = ()
    optional_coins: tuple[str, ...] = ()  # priced if possible (reward tokens); failure is not fatal


class Adapter:
    """One feed shape. Subclasses set the class attributes and implement :meth:`plan` and
    :meth:`build`."""

    name: ClassVar[str]  # FeedRef.adapter
    feed: ClassVar[str]  # metric label
    prefix: ClassVar[str]  # mock path prefix under root_url
    live_base_url: ClassVar[str]  # documented live host
    kinds: ClassVar[frozenset[VenueKind]]
    params_model: ClassVar[type[Params]]

    def parse_params(self, venue: VenueConfig) -> Any:
        if venue.kind not in self.kinds:
            raise ValueError(
                f"venue {venue.id}: adapter {self.name} serves kinds {sorted(k.value for k in self.kinds)}, not {venue.kind.value}"
            )
        try:
            return self.params_model.model_validate(venue.feed.params)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"venue {venue.id}: feed.params.{loc}: {first['msg']}") from None

    def plan(
        self, venue: VenueConfig, params: Any, base_url: str, settings: FeedSettings
    ) -> VenuePlan:
        raise NotImplementedError

    def build(self, plan: VenuePlan, ctx: BuildContext, position_usd: float) -> VenueSnapshot:
        raise NotImplementedError


def reward_price_usd(
    ctx: BuildContext, symbol: str, coin: str | None, fallback: float | None = None
) -> float | None:
    """Price of a reward token: the coins API when configured and answering, else ``fallback``
    (a price the feed itself sends), else the static price, else None (the emission is then not
    counted: an unpriced reward is worth nothing to the optimizer)."""
    if coin:
        try:
            return ctx.price(coin).price
        except (FeedError, KeyError):
            pass
    if fallback is not None:
        return fallback
    return ctx.settings.emissions.static_prices_usd.get(symbol.upper())


def emission_allowed(settings: FeedSettings, *tokens: str) -> bool:
    """False when emissions are off or every named reward token is excluded."""
    if not settings.emissions.enabled:
        return False
    excluded = {t.upper() for t in settings.emissions.exclude_tokens}
    names = [t for t in tokens if t]
    return not names or any(t.upper() not in excluded for t in names)


def index_rows(rows: Iterable[Any], key: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """``{row[key]: (position, row)}`` for the dict rows of a list payload that carry a string
    ``key``; the first row wins a repeated key. Rows are validated later, one venue at a time,
    so one bad row never refuses the others."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, raw in enumerate(rows):
        if isinstance(raw, dict) and isinstance(raw.get(key), str):
            out.setdefault(raw[key], (i, raw))
    return out
