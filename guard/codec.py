"""GuardState <-> a JSON-able dict, exactly (floats round-trip by ``repr``; NaN and inf are kept
as JSON's ``NaN``/``Infinity``, which Python's json reads back). No I/O here."""

from __future__ import annotations

import dataclasses
from typing import Any

from guard.breaker import Breaker, BreakerState
from guard.engine import GuardState
from guard.signals import Sample

VERSION = 1
_SAMPLE_FIELDS = [f.name for f in dataclasses.fields(Sample)]


def dump(state: GuardState) -> dict[str, Any]:
    return {
        "version": VERSION,
        "breakers": [
            [venue, guard, {**dataclasses.asdict(b), "state": b.state.value}]
            for (venue, guard), b in sorted(state.breakers.items())
        ],
        "history": {
            v: [[getattr(s, f) for f in _SAMPLE_FIELDS] for s in samples]
            for v, samples in sorted(state.history.items())
        },
        "last": {v: [getattr(s, f) for f in _SAMPLE_FIELDS] for v, s in sorted(state.last.items())},
        "nav": [list(x) for x in state.nav],
        "last_nav": list(state.last_nav) if state.last_nav is not None else None,
        "contagion": {k: list(v) for k, v in sorted(state.contagion.items())},
        "earned": dict(sorted(state.earned.items())),
    }


def load(d: dict[str, Any]) -> GuardState:
    """The state a :func:`dump` wrote; ``ValueError`` naming the field on anything else."""
    if not isinstance(d, dict) or d.get("version") != VERSION:
        raise ValueError(
            f"guard state: field version: expected {VERSION}, got {d.get('version')!r}"
        )
    try:
        breakers = {
            (venue, guard): Breaker(**{**b, "state": BreakerState(b["state"])})
            for venue, guard, b in d["breakers"]
        }
        history = {v: tuple(Sample(*row) for row in rows) for v, rows in d["history"].items()}
        last = {v: Sample(*row) for v, row in d["last"].items()}
        nav = tuple((float(a), float(b)) for a, b in d["nav"])
        ln = d["last_nav"]
        contagion = {k: (v[0], v[1], v[2]) for k, v in d["contagion"].items()}
        earned = {str(k): float(v) for k, v in d["earned"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"guard state: malformed ({type(exc).__name__}: {exc})") from None
    return GuardState(
        breakers=breakers,
        history=history,
        last=last,
        nav=nav,
        last_nav=(float(ln[0]), float(ln[1])) if ln is not None else None,
        contagion=contagion,
        earned=earned,
    )
