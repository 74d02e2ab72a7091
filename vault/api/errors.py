"""The one error shape every route answers with, 4xx and 5xx alike::

    {"error": {"field": "scope", "reason": "expected one of 'all', 'deposits'", "problems": [...]}}

``field`` names what was wrong (a body key, a path parameter, ``Authorization``, a config key,
or null when nothing in particular); ``reason`` says why in words. ``problems`` (optional) lists
every problem when there are several (a refused config reload), each ``{"field", "reason"}``.
It is the simulated market's shape too (``mockfeeds/README.md``), so one client reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web


def error_body(
    field: str | None, reason: str, problems: Sequence[tuple[str | None, str]] = ()
) -> dict[str, Any]:
    err: dict[str, Any] = {"field": field, "reason": reason}
    if problems:
        err["problems"] = [{"field": f, "reason": r} for f, r in problems]
    return {"error": err}


class ApiError(Exception):
    """Raised by a handler; the middleware renders it in the error shape with ``status``."""

    def __init__(
        self,
        status: int,
        field: str | None,
        reason: str,
        problems: Sequence[tuple[str | None, str]] = (),
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason
        self.problems = list(problems)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(
            error_body(self.field, self.reason, self.problems),
            status=self.status,
            headers=self.headers,
        )


def problem_field(line: str) -> tuple[str | None, str]:
    """``"limits.max_venue_ratio: must be <= 1"`` -> ``("limits.max_venue_ratio", "must be <= 1")``."""
    head, sep, rest = line.partition(": ")
    if sep and " " not in head.strip():
        return head.strip(), rest
    return None, line
