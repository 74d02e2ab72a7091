"""What the daemon's jobs write and its HTTP API reads (a module of its own, so that the API sees
the daemon only through :class:`vault.api.DaemonView` and neither imports the other's module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from adapters import PollReport
from optimizer import Decision
from vault.cycle import CycleOutcome
from vault.executor import MoveResult


@dataclass
class CycleState:
    """What the HTTP API and readiness probe read; written only by the jobs."""

    report: PollReport | None = None
    last_poll_monotonic: float | None = None
    decision: Decision | None = None
    last_rebalance_at: datetime | None = None
    last_outcome: str | None = None
    cycles: int = 0
    results: list[MoveResult] = field(default_factory=list)
    outcome: CycleOutcome | None = None  # the last cycle's, whole
    hold_reason: str | None = None  # why the last cycle moved nothing before deciding
