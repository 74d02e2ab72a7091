"""The optimizer's memory across cycles, as one frozen value: in with ``decide``, out on the Decision.

``Optimizer.decide(snapshots, portfolio, now, memory=m)`` is a function of its arguments: the
compiled cvxpy/HiGHS problem it keeps on the object is a cache (a fresh ``Optimizer`` rebuilds it
and reaches the same allocation up to solver tolerance), everything else that one cycle passes to
the next is here. The cycle (``vault/cycle.py``) threads it from decision to decision, the ledger
stores it with every rebalance row (``Ledger.record_rebalance(memory=...)``) and a restarted
daemon loads the last one, so it decides as an uninterrupted daemon would.

What it holds, and why the next cycle needs it:

* ``cycle``: how many decides ran (the clock of ``keep_lost_venues_cycles``);
* ``last_snapshot``, ``last_seen``: each venue's last snapshot and the cycle it was seen in, so a
  venue whose feed drops out is kept, frozen, instead of rebuilding the problem
  (``OptimizerSettings.keep_lost_venues_cycles``);
* ``risk_series``: the last ``risk_window`` marginal APRs per venue (the factor risk model's data);
* ``rate_series``: per venue, the last ``rate_forecast_window`` (POSIX seconds, marginal APR)
  observations the rate forecast is fitted on (``optimizer/forecast.py``; recorded only under
  ``rate_forecast: mean_reversion``; a memory stored before it existed reads as empty: spot until
  the series refills);
* ``warm``: per venue (solution USD, refinement window lo, hi): where the next PWL fit is refined;
* ``model_linear``: the venue ids of the last model, in order, and whether each is fitted with two
  chords (exactly linear): a fresh optimizer builds the same model and fits it the same way;
* ``flights``: queued withdrawals this optimizer planned, as (lands at, USD), for callers whose
  books do not report landings (``PortfolioState.in_flight_landing``).

Serialised to JSON by :meth:`OptimizerMemory.to_json`; the snapshots carry yield-curve objects
of many classes (adapters' curves, test curves), so they go as a base64 pickle inside the JSON,
read back by an unpickler that builds only classes from this project's rooms, numpy, datetime
and plain containers (the ledger file is ours, but a damaged one must not run code).
"""

from __future__ import annotations

import base64
import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.types import VenueSnapshot

MEMORY_FORMAT = 1

# Modules whose classes a stored snapshot may be built from (curves live in adapters/ and, in
# tests and benches, optimizer/testing.py; protocols/ holds the rate models they wrap).
_ALLOWED_PREFIXES = ("core.", "adapters.", "optimizer.", "protocols.", "numpy")
_ALLOWED_EXACT = (
    {
        ("builtins", n)
        for n in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "float",
            "int",
            "str",
            "bool",
            "bytes",
        )
    }
    | {("datetime", n) for n in ("datetime", "timezone", "timedelta", "date")}
    | {("collections", "OrderedDict"), ("copyreg", "_reconstructor"), ("builtins", "object")}
)


class MemoryFormatError(ValueError):
    """A stored memory that cannot be read back (damaged, another format, a foreign class)."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_EXACT or module.startswith(_ALLOWED_PREFIXES):
            return super().find_class(module, name)
        raise MemoryFormatError(f"memory.last_snapshot: class {module}.{name} is not allowed")


@dataclass(frozen=True, slots=True)
class OptimizerMemory:
    """Everything one ``decide`` passes to the next (see the module docstring). Never mutated:
    ``decide`` builds a new one. The empty memory is a cold start."""

    cycle: int = 0
    last_snapshot: Mapping[str, VenueSnapshot] = field(default_factory=dict)
    last_seen: Mapping[str, int] = field(default_factory=dict)
    risk_series: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    rate_series: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    warm: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    flights: tuple[tuple[datetime, float], ...] = ()
    model_linear: tuple[tuple[str, bool], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (floats round-trip exactly through ``json``)."""
        snaps = pickle.dumps(dict(self.last_snapshot), protocol=5)
        return {
            "format": MEMORY_FORMAT,
            "cycle": self.cycle,
            "last_seen": dict(self.last_seen),
            "risk_series": {k: list(v) for k, v in self.risk_series.items()},
            "rate_series": {k: [[t, r] for t, r in v] for k, v in self.rate_series.items()},
            "warm": {k: list(v) for k, v in self.warm.items()},
            "flights": [[t.isoformat(), u] for t, u in self.flights],
            "model_linear": [[v, f] for v, f in self.model_linear],
            "last_snapshot_pickle": base64.b64encode(snaps).decode("ascii"),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OptimizerMemory:
        """The inverse of :meth:`to_json`; :class:`MemoryFormatError` names the bad field."""
        if not isinstance(d, Mapping):
            raise MemoryFormatError("memory: expected a JSON object")
        if d.get("format") != MEMORY_FORMAT:
            raise MemoryFormatError(
                f"memory.format: {d.get('format')!r}, this version reads {MEMORY_FORMAT}"
            )
        try:
            raw = base64.b64decode(str(d.get("last_snapshot_pickle", "")), validate=True)
            snaps = _SafeUnpickler(io.BytesIO(raw)).load() if raw else {}
        except MemoryFormatError:
            raise
        except Exception as exc:
            raise MemoryFormatError(f"memory.last_snapshot: {type(exc).__name__}: {exc}") from exc
        if not isinstance(snaps, dict) or not all(
            isinstance(s, VenueSnapshot) for s in snaps.values()
        ):
            raise MemoryFormatError("memory.last_snapshot: not a venue id -> snapshot mapping")
        try:
            return cls(
                cycle=int(d["cycle"]),
                last_snapshot=snaps,
                last_seen={str(k): int(v) for k, v in d["last_seen"].items()},
                risk_series={
                    str(k): tuple(float(x) for x in v) for k, v in d["risk_series"].items()
                },
                rate_series={
                    str(k): tuple((float(t), float(r)) for t, r in v)
                    for k, v in d.get("rate_series", {}).items()
                },
                warm={
                    str(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in d["warm"].items()
                },
                flights=tuple((datetime.fromisoformat(t), float(u)) for t, u in d["flights"]),
                model_linear=tuple((str(v), bool(f)) for v, f in d["model_linear"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise MemoryFormatError(f"memory: {type(exc).__name__}: {exc}") from exc


EMPTY_MEMORY = OptimizerMemory()
