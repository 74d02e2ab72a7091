"""Feed polling settings: the daemon's YAML ``feeds:`` section *is* :class:`FeedSettings`.

Every field has a default that works against the embedded mock market; the live hosts of the
same APIs are documented in ``adapters/README.md``. Units are in the names.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Lido's APR is stamped at the daily oracle report, so a point up to a day old is current data.
# Feeds that publish on a heartbeat rather than continuously: lido's APR is a daily oracle report
# (2 days = one missed report); a Chainlink NFT floor feed publishes a round each heartbeat (the
# simulated one hourly, as a round crosses the hour) plus on deviation, so a limit equal to the
# heartbeat refuses a round that is seconds late: allow one missed round (Chainlink's guidance is
# to compare updatedAt with the feed's heartbeat plus a margin).
DEFAULT_FEED_STALENESS_SECONDS: dict[str, float] = {"lido": 2 * 86_400.0, "chainlink": 2 * 3_600.0}

Seconds = Annotated[float, Field(gt=0, le=3600)]
NonNegativeSeconds = Annotated[float, Field(ge=0, le=86_400 * 30)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CircuitBreakerSettings(_Strict):
    """Per feed (adapter name at one host): after ``failures_to_open`` consecutive transient
    failures the breaker opens and requests fail fast for ``cooldown_seconds``; then one trial
    request is let through (half-open) and its outcome closes or re-opens the breaker."""

    failures_to_open: Annotated[int, Field(ge=1, le=1000)] = 5
    cooldown_seconds: Seconds = 30.0


class RetrySettings(_Strict):
    """Retries for transient errors only (timeouts, connection errors, 5xx, 429).

    Delay before retry ``n`` (1-based) is ``uniform(0, min(max, base * 2**(n-1)))`` ("full
    jitter", AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
    """

    attempts: Annotated[int, Field(ge=0, le=10)] = 2  # retries after the first try
    backoff_base_seconds: Annotated[float, Field(ge=0, le=60)] = 0.1
    backoff_max_seconds: Annotated[float, Field(ge=0, le=600)] = 2.0


class EmissionSettings(_Strict):
    """Where reward-token yield comes from and which reward tokens are believed at all.

    Emission yield is always kept apart from real yield in every curve; the optimizer's
    ``emission_haircut`` scales it. Here the operator can drop tokens entirely (points, illiquid
    governance tokens) and say how tokens the feed does not price are priced.
    """

    enabled: bool = True
    exclude_tokens: frozenset[str] = frozenset()  # reward token symbols never counted (upper case)
    # Reward tokens priced through the coins API (``{coins_url}/prices/current/{key}``): symbol -> key.
    price_coins: dict[str, str] = Field(
        default_factory=lambda: {"COMP": "ethereum:0xc00e94cb662c3520282e6f5717214004a7f26888"}
    )
    # Last-resort static prices (USD) for reward tokens neither the feed nor the coins API prices.
    static_prices_usd: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)


class FeedSettings(_Strict):
    """How every feed is polled, validated and turned into snapshots."""

    embedded_market: str | None = None  # a market YAML the daemon starts in-process; carried only
    root_url: str | None = None  # base of the mock market: venue URL = f"{root_url}/{prefix}"
    coins_url: str | None = None  # DefiLlama coins API; None: f"{root_url}/coins"

    timeout_seconds: Seconds = 5.0  # whole request, connect to last byte
    feed_timeout_seconds: dict[str, Seconds] = Field(default_factory=dict)  # per feed override
    # data older than this (feed time) freezes
    staleness_seconds: Annotated[float, Field(gt=0)] = 600.0
    # per-feed overrides; without one, lido and chainlink use DEFAULT_FEED_STALENESS_SECONDS
    feed_staleness_seconds: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # clock skew allowed before "future_timestamp"
    future_tolerance_seconds: NonNegativeSeconds = 30.0
    max_concurrency: Annotated[int, Field(ge=1, le=1024)] = 32  # requests in flight at once
    # Whatever has not answered this long after a cycle starts (retries included) is cut off with
    # reason "timeout", so one slow feed cannot hold back every other venue's data.
    # None: 2 x timeout_seconds.
    cycle_deadline_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    retry: RetrySettings = RetrySettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    # Bodies above this are refused ("too_large"). The live DefiLlama /pools body is larger than
    # the default: raise it for that feed with feed_max_response_bytes: {defillama: 67108864}.
    max_response_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    feed_max_response_bytes: dict[str, Annotated[int, Field(ge=1024)]] = Field(default_factory=dict)
    max_apr: Annotated[float, Field(gt=0)] = 10.0  # sanity bound, decimal (10.0 = 1000 %)
    honour_cache_headers: bool = True  # ETag / Last-Modified revalidation and Cache-Control max-age
    # coins per /coins request (URL length)
    coins_batch_size: Annotated[int, Field(ge=1, le=500)] = 100
    # price history for LP IL
    volatility_span_hours: Annotated[int, Field(ge=4, le=24 * 90)] = 24 * 7
    emissions: EmissionSettings = EmissionSettings()
    # How often a bridge route's price gap reopens and pays a round (the feeds cannot say; the
    # fill time bounds it from above). A venue's params.round_trips_per_day overrides it.
    bridge_round_trips_per_day: Annotated[float, Field(gt=0, le=10_000)] = 2.0

    @model_validator(mode="after")
    def _backoff_order(self) -> FeedSettings:
        if self.retry.backoff_max_seconds < self.retry.backoff_base_seconds:
            raise ValueError("retry.backoff_max_seconds must be >= retry.backoff_base_seconds")
        return self

    def max_bytes_for(self, feed: str) -> int:
        return self.feed_max_response_bytes.get(feed, self.max_response_bytes)

    def cycle_deadline(self) -> float:
        return (
            self.cycle_deadline_seconds
            if self.cycle_deadline_seconds is not None
            else 2.0 * self.timeout_seconds
        )

    def timeout_for(self, feed: str) -> float:
        return self.feed_timeout_seconds.get(feed, self.timeout_seconds)

    def staleness_for(self, feed: str) -> float:
        if feed in self.feed_staleness_seconds:
            return self.feed_staleness_seconds[feed]
        return max(self.staleness_seconds, DEFAULT_FEED_STALENESS_SECONDS.get(feed, 0.0))
