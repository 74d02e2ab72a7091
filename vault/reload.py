"""Config reload (``POST /api/v1/config/reload``, SIGHUP) and the effective config, secrets redacted.

A reload re-reads the file the daemon started with (and the environment), keeping the ``listen``
and ``data_dir`` it started with (a change of either in the file waits for a restart), and is
refused, with every problem named, unless:

1. it validates (the same checks as ``yieldvault check-config``);
2. only live keys change: ``limits``, ``optimizer``, ``api`` and ``vault.approval*`` /
   ``vault.export_*``; anything else (venues, feeds, schedule, mode, listen, ...) needs a restart;
3. the new limits can place the capital (``optimizer.feasibility.check_feasibility`` at the current
   NAV: the check ``check-config`` runs); a conflict names the binding limit keys.

The daemon applies an accepted config between cycles (under the cycle lock) in one assignment and
answers with the diff: ``[{"key", "old", "new"}]`` over dotted keys, secrets redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from optimizer.config import RiskLimits
from vault.settings import Settings

LIVE_PREFIXES = (
    "limits.",
    "optimizer.",
    "api.",
    "vault.approval",
    "vault.export_",
)
SECRET_NAMES = frozenset({"sha256", "secret", "password", "api_key", "apikey", "private_key"})
REDACTED = "(redacted)"
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def _redact(value: Any, name: str = "") -> Any:
    if name.lower() in SECRET_NAMES or name.lower().endswith(("_secret", "_password")):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    if isinstance(value, str):
        return _URL_CREDENTIALS.sub(f"{REDACTED}@", value)
    return value


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings the daemon runs with, as JSON, with token hashes and credentials redacted."""
    return dict(_redact(settings.model_dump(mode="json")))


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys down to the leaves; ``venues`` entries by index (``venues[2].risk_score``)."""
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif prefix == "venues" and isinstance(value, list):
        for i, v in enumerate(value):
            yield from flatten(v, f"venues[{i}]")
    else:
        yield prefix, value


def diff(old: Settings, new: Settings) -> list[dict[str, Any]]:
    a = dict(flatten(effective_config(old)))
    b = dict(flatten(effective_config(new)))
    return [
        {"key": k, "old": a.get(k), "new": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def restart_keys(changes: list[dict[str, Any]]) -> list[str]:
    """Changed keys a running daemon cannot take (see module docstring)."""
    return [c["key"] for c in changes if not c["key"].startswith(LIVE_PREFIXES)]


def limit_keys(problem: str) -> list[str]:
    """The ``limits.*`` keys a feasibility problem line names (``max_venue_ratio 0.05 x 7 venues``)."""
    names = sorted(RiskLimits.model_fields, key=len, reverse=True)
    found: list[str] = []
    rest = problem
    for name in names:
        if re.search(rf"\b{name}\b", rest):
            found.append(f"limits.{name}")
            rest = re.sub(rf"\b{name}\b", "", rest)
    return sorted(found)
