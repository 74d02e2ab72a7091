"""The OpenAPI 3.1 document of the daemon's HTTP API, built from the route table (``app.ROUTES``,
rows of :class:`Route`).

Request bodies come from the pydantic models' own JSON schema; responses from ``schemas``; every
error status points at the one error schema. Security: bearer tokens, scope per route in
``x-scope``. ``tests/test_api_fuzz.py`` fuzzes the server from this document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from vault.api import schemas as sc
from vault.api.auth import required_scope

VERSION = "0.1.0"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    response: dict[str, Any]
    body: type[sc.Body] | None = None
    errors: tuple[int, ...] = ()
    query: tuple[str, ...] = ()
    public: bool = False
    extra: dict[int, str] = field(default_factory=dict)


_ERROR_TEXT = {
    400: "Bad request: the field and the reason",
    401: "No or unknown bearer token",
    403: "Not allowed: the token's scope, or no token configured",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Refused: every problem named",
}
_PUBLIC = {
    "/healthz": ("Liveness: 200 while the event loop runs", {"type": "object"}, (200,)),
    "/readyz": (
        "Readiness: feeds fresh and the last solve optimal, else 503",
        {"type": "object"},
        (200, 503),
    ),
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _ERROR_TEXT.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _hoist_defs(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})
    for name, sub in defs.items():
        components[name] = sub
    return schema


def document(routes: Sequence[Route]) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": sc.ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for path, (summary, schema, statuses) in _PUBLIC.items():
        paths[path] = {
            "get": {
                "summary": summary,
                "security": [],
                "responses": {str(s): _json(schema) for s in statuses},
            }
        }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    for route in routes:
        scope = required_scope(route.method)
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
            "x-scope": scope,
            "security": [{"bearer": []}],
            "responses": {"200": _json(route.response)},
        }
        params: list[dict[str, Any]] = []
        if "{id}" in route.path:
            integer = "/plans/" in route.path or "/rebalances/" in route.path
            params.append(
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}
                    if integer
                    else {"type": "string", "minLength": 1, "maxLength": 200},
                }
            )
        for name in route.query:
            high = 100 if name == "limit" else 2**62
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": high},
                }
            )
        if params:
            op["parameters"] = params
        if route.body is not None:
            schema = _hoist_defs(
                route.body.model_json_schema(ref_template="#/components/schemas/{model}"),
                components,
            )
            components[route.body.__name__] = schema
            op["requestBody"] = {
                # an empty body means the defaults, unless a key is required
                "required": bool(schema.get("required")),
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}
                    }
                },
            }
        for status in sorted({*route.errors, 401, 403, *((413,) if route.body else ())}):
            op["responses"][str(status)] = _error(status)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    paths["/api/v1/openapi.json"] = {
        "get": {
            "summary": "This document",
            "x-scope": "read",
            "security": [{"bearer": []}],
            "responses": {"200": _json({"type": "object"}), "401": _error(401), "403": _error(403)},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "yieldvault operator API",
            "version": VERSION,
            "description": "Bearer tokens with scope read (GET) or operate (POST); "
            'every error is {"error": {"field", "reason"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
