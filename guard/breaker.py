"""A breaker per (venue, guard): closed -> tripped -> cooling -> closed, as values.

```
closed  --fires for for_seconds-->  tripped   (counted, logged with the evidence)
tripped --clear-->                  cooling
cooling --fires-->                  tripped   (the same trip, not counted again)
cooling --clear for cooldown_seconds, and for exit/pause an operator's resume--> closed
```

While tripped or cooling the breaker's action holds (freeze / exit / pause). ``resume`` is the
operator's acknowledgement: it lets an exit or pause breaker close once its cool-down has passed
(immediately if it already has); it does not override a signal that still fires. Almanak's
``CircuitBreaker`` (closed / open / half-open / paused, operator-confirmed resume) is the model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from guard.config import Action
from guard.signals import Reading


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    COOLING = "cooling"
    TRIPPED = "tripped"

    @property
    def code(self) -> int:
        """The value of ``yieldvault_guard_state``: 0 closed, 1 cooling, 2 tripped."""
        return {"closed": 0, "cooling": 1, "tripped": 2}[self.value]


class EventKind(enum.StrEnum):
    TRIP = "trip"
    CLEAR = "clear"  # tripped -> cooling
    REFIRE = "refire"  # cooling -> tripped
    CLOSE = "close"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class Breaker:
    action: Action
    state: BreakerState = BreakerState.CLOSED
    pending_since: float | None = None  # the signal has fired on every reading since then
    tripped_at: float | None = None
    last_fired_at: float | None = None
    resumed: bool = False
    trips: int = 0
    evidence: str = ""

    @property
    def active(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def needs_resume(self) -> bool:
        return self.action in ("exit", "pause")


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    venue: str  # "*" for the portfolio
    guard: str
    action: Action
    at: float
    detail: str
    evidence: tuple[tuple[str, float], ...] = ()


def step(
    b: Breaker,
    reading: Reading | None,
    now: float,
    *,
    for_seconds: float,
    cooldown_seconds: float,
) -> tuple[Breaker, EventKind | None]:
    """The breaker after one reading at ``now`` (``None``: no data, nothing changes)."""
    if reading is None:
        return b, None
    if reading.firing:
        since = b.pending_since if b.pending_since is not None else now
        b = replace(b, pending_since=since, evidence=reading.detail)
        if b.state is BreakerState.CLOSED:
            if now - since >= for_seconds:
                return replace(
                    b,
                    state=BreakerState.TRIPPED,
                    tripped_at=now,
                    last_fired_at=now,
                    resumed=False,
                    trips=b.trips + 1,
                ), EventKind.TRIP
            return b, None
        kind = EventKind.REFIRE if b.state is BreakerState.COOLING else None
        return replace(b, state=BreakerState.TRIPPED, last_fired_at=now), kind
    b = replace(b, pending_since=None)
    if b.state is BreakerState.TRIPPED:
        b = replace(b, state=BreakerState.COOLING)
        if _may_close(b, now, cooldown_seconds):
            return _closed(b), EventKind.CLOSE
        return b, EventKind.CLEAR
    if b.state is BreakerState.COOLING and _may_close(b, now, cooldown_seconds):
        return _closed(b), EventKind.CLOSE
    return b, None


def _may_close(b: Breaker, now: float, cooldown_seconds: float) -> bool:
    fired = b.last_fired_at if b.last_fired_at is not None else now
    return now - fired >= cooldown_seconds and (b.resumed or not b.needs_resume())


def _closed(b: Breaker) -> Breaker:
    return replace(b, state=BreakerState.CLOSED, resumed=False, evidence="")


def resume(b: Breaker) -> Breaker:
    """The operator's resume: an active breaker may close once its cool-down has passed."""
    return replace(b, resumed=True) if b.active else b
