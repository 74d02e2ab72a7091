"""Scenarios: named stress events started from ``/admin/v1/scenarios`` or the YAML's schedule,
ended by ``DELETE`` or when their simulated duration is over.

This layer validates the common fields (``name``, ``duration_seconds``, ``params``), numbers and
records each scenario, starts the scheduled ones when their time comes and expires the finished
ones after every tick. What each name does is a :class:`mockfeeds.scenario_kinds.ScenarioKind`
in :data:`SCENARIO_KINDS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mockfeeds.incidents import INCIDENT_KINDS
from mockfeeds.scenario_kinds import BASIC_KINDS, Params, ScenarioKind
from mockfeeds.scenario_kinds_composite import COMPOSITE_KINDS
from mockfeeds.state import MarketError, iso
from mockfeeds.stepping import Stepping

#: every scenario name the market knows, in the order ``GET /admin/v1/scenarios`` lists them
SCENARIO_KINDS: dict[str, ScenarioKind] = {**BASIC_KINDS, **INCIDENT_KINDS, **COMPOSITE_KINDS}
SCENARIOS: tuple[str, ...] = tuple(SCENARIO_KINDS)


class Scenarios(Stepping):
    """Start, end, schedule and expire scenarios (records in ``self.scenarios``)."""

    def start_scenario(self, spec: Mapping[str, Any], *, sync: bool = True) -> dict[str, Any]:
        """Start a named stress event (see mockfeeds/README.md "Scenarios"); returns its record."""
        if sync:
            self.sync()
        if not isinstance(spec, Mapping):
            raise MarketError(None, "body must be a JSON object")
        name = spec.get("name")
        if not isinstance(name, str) or name not in SCENARIO_KINDS:
            raise MarketError("name", f"unknown scenario {name!r}; known: {list(SCENARIOS)}")
        duration = spec.get("duration_seconds", 86_400.0)
        if (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not math.isfinite(duration)
            or duration <= 0
        ):
            raise MarketError("duration_seconds", "must be a number > 0 (simulated seconds)")
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise MarketError("params", "must be an object")
        self._seq += 1
        sid = f"s-{self._seq}"
        now = self.state_time
        rec: dict[str, Any] = {
            "scenario_id": sid,
            "name": name,
            "started_at": iso(now),
            "ends_at": iso(now + duration),
            "ends_at_ts": now + duration,
            "started_at_ts": now,
            "active": True,
        }
        SCENARIO_KINDS[name].start(self, spec, rec, Params(params))
        for v in self.venues:
            if any(v.id in b for b in self.books().values()):
                v.ours_usd = self.ours_total_usd(v.id)
        self.scenarios[sid] = rec
        self.version += 1
        self.dirty = True
        return self.scenario_public(rec)

    @staticmethod
    def scenario_public(rec: dict[str, Any]) -> dict[str, Any]:
        """A scenario record as the API shows it (internal ``*_ts`` fields dropped)."""
        return {k: v for k, v in rec.items() if not k.endswith("_ts")}

    def end_scenario(self, scenario_id: str) -> dict[str, Any]:
        """End a scenario now (``DELETE /admin/v1/scenarios/{id}``); returns its record."""
        rec = self.scenarios.get(scenario_id)
        if rec is None:
            raise MarketError("scenario_id", f"unknown scenario {scenario_id!r}", 404)
        if rec["active"]:
            self._revert(rec)
        return self.scenario_public(rec)

    def _after_tick(self) -> None:
        """After each tick: settle (below), unfold the active scenarios that move with time, then
        expire finished and start scheduled ones."""
        super()._after_tick()
        self._tick_scenarios()
        self._expire_scenarios()
        self._start_scheduled()

    def _tick_scenarios(self) -> None:
        """Move the incidents that unfold over time (``ScenarioKind.tick``) to this tick."""
        ticked = False
        for rec in self.scenarios.values():
            kind = SCENARIO_KINDS.get(rec["name"])
            if rec["active"] and kind is not None and kind.tick is not None:
                kind.tick(self, rec)
                ticked = True
        if ticked:
            for v in self.venues:
                if v.id in self.positions:
                    v.ours_usd = float(self.position_usd_dec(v.id))

    def _start_scheduled(self) -> None:
        """Start the YAML's ``scenarios:`` whose ``at`` has come (each once, in config order)."""
        for i, sc in enumerate(self.cfg.scenarios):
            if i in self.scheduled_started or sc.at.timestamp() > self.state_time:
                continue
            self.scheduled_started.append(i)
            spec = {k: v for k, v in sc.model_dump().items() if k != "at" and v is not None}
            spec["duration_seconds"] = max(
                1.0, sc.at.timestamp() + sc.duration_seconds - self.state_time
            )
            self.start_scenario(spec, sync=False)

    def _expire_scenarios(self) -> None:
        for rec in self.scenarios.values():
            if rec["active"] and rec["ends_at_ts"] <= self.state_time:
                self._revert(rec)

    def _revert(self, rec: dict[str, Any]) -> None:
        rec["active"] = False
        rec["ended_at"] = iso(self.state_time)
        SCENARIO_KINDS[rec["name"]].revert(self, rec)
        for v in self.venues:
            if any(v.id in b for b in self.books().values()):
                v.ours_usd = self.ours_total_usd(v.id)
        self.version += 1
        self.dirty = True
