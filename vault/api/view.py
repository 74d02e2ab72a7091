"""What the API reads and calls of the daemon: a narrow Protocol, so the API never imports the
daemon's module (which serves this one; ``tests/test_import_cycles.py`` keeps it so)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from core.types import Directives, Venue
from vault.control import OperatorStore
from vault.integrity import LedgerWatch
from vault.ledger import Ledger
from vault.metrics import Metrics
from vault.operations import Operations
from vault.settings import Settings
from vault.state import CycleState


class DaemonView(Protocol):
    settings: Settings
    metrics: Metrics
    state: CycleState
    started_monotonic: float
    clock: Callable[[], datetime]
    vault_id: str | None
    ledger_watch: LedgerWatch | None
    exit_only: Directives  # venues kept in the books only to be exited
    operations: Operations  # every operator action (vault/operations.py)

    @property
    def venues(self) -> Mapping[str, Venue]: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def store(self) -> OperatorStore: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...

    def expire_plans(self) -> None: ...
