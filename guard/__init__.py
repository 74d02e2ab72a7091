"""Protocol-health guards: signals over snapshots and their history -> freeze / exit / pause.

Pure (no I/O); see guard/README.md. The cycle calls :class:`Guards` once per rebalance.
"""

from guard.breaker import Breaker, BreakerState, Event, EventKind
from guard.config import GuardSettings
from guard.engine import EMPTY, GUARDS, PORTFOLIO, Guards, GuardState, apply_resume, directives

__all__ = [
    "EMPTY",
    "GUARDS",
    "PORTFOLIO",
    "Breaker",
    "BreakerState",
    "Event",
    "EventKind",
    "GuardSettings",
    "GuardState",
    "Guards",
    "apply_resume",
    "directives",
]
