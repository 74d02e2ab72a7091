"""``core.types.Directives`` applied to one cycle's snapshots (pure; no I/O).

``freeze`` and ``no_new_deposits`` act like a bad feed does: the venue's snapshot is frozen, so
the optimizer may shrink the position and never grow it (``optimizer/cycle.py``: a frozen venue's
upper bound is its current position). ``exit`` is applied inside ``Optimizer.decide`` (upper bound
0, and holdings there count as a broken limit); ``hold_all`` by the caller (nothing executes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.types import Directives, VenueSnapshot


def freeze_reason(directives: Directives, venue_id: str) -> str | None:
    """Why ``venue_id`` may not grow this cycle, or None when it may."""
    if venue_id in directives.freeze:
        return directives.reasons.get(venue_id) or directives.reasons.get("*") or "frozen"
    if directives.no_new_deposits:
        return directives.reasons.get("*") or "no new deposits"
    return None


def apply_freeze(snapshots: Sequence[VenueSnapshot], directives: Directives) -> list[VenueSnapshot]:
    """The snapshots with every venue that may not grow frozen, its reason prefixed ``directive:``.

    A snapshot that is already frozen (a bad feed) keeps its own reason, the directive's added.
    Idempotent: applying it twice changes nothing more.
    """
    if not directives.freeze and not directives.no_new_deposits:
        return list(snapshots)
    out = []
    for s in snapshots:
        why = freeze_reason(directives, s.venue.id)
        if why is None:
            out.append(s)
            continue
        tag = f"directive: {why}"
        if tag in s.frozen_reason:
            out.append(s)
            continue
        reason = f"{s.frozen_reason}; {tag}" if s.frozen and s.frozen_reason else tag
        out.append(dataclasses.replace(s, frozen=True, frozen_reason=reason))
    return out
