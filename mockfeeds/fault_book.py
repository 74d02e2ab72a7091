"""The market's fault rules: added from the YAML or ``/admin/v1/faults``, matched per request
(probability drawn from the seeded fault RNG, counts consumed). What a fault does to a response
is :mod:`mockfeeds.faults`; serving it is :mod:`mockfeeds.routes.common`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockfeeds.faults import FaultRule
from mockfeeds.state import MarketError, MarketState


class FaultBook(MarketState):
    """Adds, removes and matches :class:`mockfeeds.faults.FaultRule` s."""

    def add_fault(self, spec: Mapping[str, Any], *, fault_id: str | None = None) -> dict[str, Any]:
        if not isinstance(spec, Mapping):
            raise MarketError(None, "body must be a JSON object")
        allowed = set(FaultRule.__dataclass_fields__) - {"id", "hits", "frozen"}
        unknown = set(spec) - allowed
        if unknown:
            raise MarketError(sorted(unknown)[0], f"unknown field; allowed: {sorted(allowed)}")
        venue = spec.get("venue")
        if venue is not None and venue not in self.by_id:
            raise MarketError("venue", f"unknown venue {venue!r}")
        if fault_id is None:
            self._seq += 1
            fault_id = f"f-{self._seq}"
        try:
            rule = FaultRule(
                id=fault_id,
                **{
                    k: v
                    for k, v in spec.items()
                    if v is not None or k in ("venue", "path_prefix", "count")
                },
            )
        except (TypeError, ValueError) as exc:
            msg = str(exc)
            field = next(
                (f for f in allowed if msg.startswith(f)), "mode" if "mode" in msg else None
            )
            raise MarketError(field, msg) from None
        self.faults[fault_id] = rule
        self.version += 1
        self.dirty = True
        return rule.public()

    def remove_fault(self, fault_id: str) -> dict[str, Any]:
        rule = self.faults.pop(fault_id, None)
        if rule is None:
            raise MarketError("fault_id", f"unknown fault {fault_id!r}", 404)
        self.dirty = True
        return rule.public()

    def matching_faults(self, path: str, venues: set[str] | frozenset[str]) -> list[FaultRule]:
        """Rules that hit this request (probability drawn from the seeded fault RNG; counts consumed)."""
        hits: list[FaultRule] = []
        if not self.faults:
            return hits
        for fid, rule in list(self.faults.items()):
            if not rule.matches(path, venues):
                continue
            if rule.probability < 1.0 and self.fault_rng.random() >= rule.probability:
                continue
            rule.hits += 1
            hits.append(rule)
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    del self.faults[fid]
            self.dirty = True
        return hits
