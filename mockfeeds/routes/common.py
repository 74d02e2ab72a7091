"""What every route of the simulated market shares: the app key of the market, the error
middleware, request parsing (JSON body, query numbers) and :func:`reply`, which serializes an
answer after the fault rules that hit the request."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mockfeeds.faults import REQUEST_MODES, FaultRule, apply_value_fault
from mockfeeds.market import Market, MarketError

MARKET_KEY = web.AppKey("market", Market)
TASK_KEY = web.AppKey("ticker", asyncio.Task)
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def error(field: str | None, reason: str, status: int = 422) -> web.Response:
    return web.json_response({"error": {"field": field, "reason": reason}}, status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except MarketError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            reason = "no such endpoint" if exc.status == 404 else (exc.reason or "error")
            return error(None, f"{reason}: {request.method} {request.path}", exc.status)
        raise


async def reply(
    request: web.Request,
    payload: Any,
    *,
    venues: frozenset[str] = frozenset(),
    rows: list[tuple[str, dict[str, Any]]] | None = None,
    cached_body: bytes | None = None,
    status: int = 200,
) -> web.StreamResponse:
    """Serialize ``payload`` after the fault rules that hit this request.

    ``rows`` are (venue id, row dict) pairs that live inside ``payload`` (by identity): a venue
    rule's value fault replaces only its rows. ``cached_body`` is served as is when no fault hits.
    """
    market = request.app[MARKET_KEY]
    rules = market.matching_faults(request.path, venues)
    if not rules and cached_body is not None:
        return web.Response(body=cached_body, status=status, content_type="application/json")
    body_obj = payload
    # Venue rules go first and in one pass: rows are found by identity, which a rebuild would lose.
    per_row: dict[int, list[FaultRule]] = {}
    for rule in rules:
        if rule.mode not in REQUEST_MODES and rule.venue is not None and rows is not None:
            for vid, r in rows:
                if vid == rule.venue:
                    per_row.setdefault(id(r), []).append(rule)

    def corrupt(row: dict[str, Any]) -> Any:
        for rule in per_row[id(row)]:
            row = apply_value_fault(rule, row, f"{request.path}#{rule.venue}")
        return row

    body_obj = _replace_rows(body_obj, set(per_row), corrupt)
    for rule in rules:
        if rule.mode not in REQUEST_MODES and (rule.venue is None or rows is None):
            body_obj = apply_value_fault(rule, body_obj, f"{request.path}?{request.query_string}")
    for rule in rules:
        if rule.mode == "latency":
            await asyncio.sleep(rule.latency_ms / 1000.0)
        elif rule.mode == "timeout":
            await asyncio.sleep(rule.timeout_seconds)
            return error(None, "injected fault: timeout", 504)
        elif rule.mode == "http_5xx":
            return web.json_response(
                {"error": {"field": None, "reason": f"injected fault: {rule.status}"}},
                status=rule.status,
            )
    text = json.dumps(body_obj, separators=(",", ":"), allow_nan=True)
    for rule in rules:
        if rule.mode == "malformed_json":
            text = text[: max(1, len(text) // 2)] + '",{'
        elif rule.mode == "oversized":
            pad = max(0, rule.size_bytes - len(text) - 16)
            if text.startswith("{") and text.endswith("}"):
                text = (
                    text[:-1] + ("," if len(text) > 2 else "") + '"_padding":"' + "x" * pad + '"}'
                )
            else:
                text = '{"data":' + text + ',"_padding":"' + "x" * pad + '"}'
    return web.Response(text=text, status=status, content_type="application/json")


def _replace_rows(obj: Any, targets: set[int], fn: Callable[[dict[str, Any]], Any]) -> Any:
    if not targets:
        return obj
    if isinstance(obj, dict):
        if id(obj) in targets:
            return fn(obj)
        return {k: _replace_rows(v, targets, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [
            fn(v) if isinstance(v, dict) and id(v) in targets else _replace_rows(v, targets, fn)
            for v in obj
        ]
    return obj


def market_of(request: web.Request) -> Market:
    m = request.app[MARKET_KEY]
    m.sync()
    return m


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MarketError(None, "body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise MarketError(None, "body must be a JSON object", 400)
    return data


def query_number(
    request: web.Request,
    name: str,
    default: float | None = None,
    *,
    lo: float = -math.inf,
    hi: float = math.inf,
) -> float:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise MarketError(name, "required query parameter", 400)
        return default
    try:
        val = float(raw)
    except ValueError:
        raise MarketError(name, f"not a number: {raw!r}", 400) from None
    if not math.isfinite(val) or not lo <= val <= hi:
        raise MarketError(name, f"must be in [{lo}, {hi}]", 400)
    return val
