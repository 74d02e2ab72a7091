"""Why a feed response or a venue's data was refused: a small bounded set of reasons.

The reason is a metric label (``yieldvault_feed_errors_total{feed,reason}``), so the set is
closed; the free-text ``detail`` names the field and the value.
"""

from __future__ import annotations

from typing import Final, Literal

Reason = Literal[
    "timeout",
    "http_5xx",
    "http_4xx",
    "malformed_json",
    "schema",
    "nan",
    "out_of_range",
    "stale",
    "future_timestamp",
    "too_large",
    "circuit_open",
    "connection",
]

REASONS: Final[frozenset[str]] = frozenset(Reason.__args__)  # type: ignore[attr-defined]

#: failures worth retrying and counted by the circuit breaker: the server may answer next time
TRANSIENT: Final[frozenset[str]] = frozenset({"timeout", "http_5xx", "connection"})


class FeedError(Exception):
    """A refused response or payload. ``reason`` is one of :data:`REASONS`."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        retry_after_seconds: float | None = None,
        feed: str | None = None,
    ) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown feed error reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds
        self.feed = feed  # the feed at fault when it is not the venue's own (e.g. "coins")

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT
