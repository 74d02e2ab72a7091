"""The route table (one list: the server and the OpenAPI document are both built from it) and the
middlewares: errors in one shape, then auth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from vault.api import operate_routes as op
from vault.api import read_routes as rd
from vault.api import schemas as sc
from vault.api.auth import auth_middleware
from vault.api.errors import ApiError, error_body
from vault.api.openapi import Route, document
from vault.metrics import metrics_handler

if TYPE_CHECKING:
    from vault.api.view import DaemonView

log = structlog.get_logger("vault.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


PAGE = {"rebalances": sc.arr(sc.REBALANCE), "next_before": {"type": ["integer", "null"]}}
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/v1/status",
        rd.status,
        "Positions, NAV, last rebalance, operator state",
        sc.STATUS,
    ),
    Route(
        "GET",
        "/api/v1/rebalances",
        rd.rebalances,
        "The audit trail, newest first: inputs, decision, moves, results",
        sc.obj(PAGE),
        errors=(400,),
        query=("limit", "before"),
    ),
    Route(
        "GET",
        "/api/v1/rebalances/{id}",
        rd.rebalance,
        "One rebalance record",
        sc.REBALANCE,
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/api/v1/plans/pending",
        rd.plans_pending,
        "Plans waiting for approval or for a signer's report",
        sc.obj({"plans": sc.arr(sc.PLAN)}),
    ),
    Route(
        "GET",
        "/api/v1/plans/{id}",
        rd.plan,
        "One plan (in export mode: the document a signer executes)",
        sc.PLAN,
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/api/v1/actions",
        rd.actions,
        "Operator actions, newest first",
        sc.obj({"actions": sc.arr(sc.OBJ), "next_before": {"type": ["integer", "null"]}}),
        errors=(400,),
        query=("limit", "before"),
    ),
    Route("GET", "/api/v1/config", rd.config, "The effective config, secrets redacted", sc.OBJ),
    Route(
        "POST",
        "/api/v1/plans/{id}/approve",
        op.approve,
        "Approve a pending plan: it executes once, at the next cycle, unless the books moved",
        sc.ACTION_RESULT,
        sc.ReasonBody,
        (400, 404, 409),
    ),
    Route(
        "POST",
        "/api/v1/plans/{id}/reject",
        op.reject,
        "Reject a pending plan",
        sc.ACTION_RESULT,
        sc.ReasonBody,
        (400, 404, 409),
    ),
    Route(
        "POST",
        "/api/v1/plans/{id}/results",
        op.results,
        "A signer reports exported moves' outcomes; booked as the paper executor books",
        sc.ACTION_RESULT,
        sc.ResultsBody,
        (400, 404, 409),
    ),
    Route(
        "POST",
        "/api/v1/pause",
        op.pause,
        "Pause every move (all) or new deposits only",
        sc.ACTION_RESULT,
        sc.PauseBody,
        (400,),
    ),
    Route(
        "POST",
        "/api/v1/resume",
        op.resume,
        "Lift the pause",
        sc.ACTION_RESULT,
        sc.ResumeBody,
        (400,),
    ),
    Route(
        "POST",
        "/api/v1/venues/{id}/freeze",
        op.freeze,
        "Freeze a venue: it may shrink, never grow",
        sc.ACTION_RESULT,
        sc.ReasonBody,
        (400, 404),
    ),
    Route(
        "POST",
        "/api/v1/venues/{id}/unfreeze",
        op.unfreeze,
        "Lift a venue's freeze and exit",
        sc.ACTION_RESULT,
        sc.ReasonBody,
        (400, 404),
    ),
    Route(
        "POST",
        "/api/v1/venues/{id}/exit",
        op.exit_venue,
        "Exit a venue: target 0",
        sc.ACTION_RESULT,
        sc.ReasonBody,
        (400, 404),
    ),
    Route(
        "GET",
        "/api/v1/ledger/breaks",
        rd.breaks,
        "Open reconciliation breaks: venue reports the books cannot explain",
        sc.obj({"breaks": sc.arr(sc.BREAK)}),
    ),
    Route(
        "POST",
        "/api/v1/ledger/breaks/{id}/book",
        op.book_break,
        "Book a venue's open break by hand, with the reason (never as income)",
        sc.ACTION_RESULT,
        sc.BreakBody,
        (400, 404),
    ),
    Route(
        "GET",
        "/api/v1/guards",
        rd.guards,
        "The protocol-health guards' breakers that are not closed, and resumes not yet applied",
        sc.obj(
            {
                "breakers": sc.arr(
                    sc.obj(
                        {
                            "venue": sc.STR,
                            "guard": sc.STR,
                            "state": sc.STR,
                            "action": sc.STR,
                            "trips": sc.INT,
                            "resumed": sc.BOOL,
                            "evidence": sc.STR,
                        }
                    )
                ),
                "pending_resumes": sc.arr(sc.OBJ),
            }
        ),
    ),
    Route(
        "POST",
        "/api/v1/guards/resume",
        op.guard_resume,
        "Resume tripped guard breakers (exit / pause need a person), at the next cycle",
        sc.ACTION_RESULT,
        sc.GuardResumeBody,
        (400, 404),
    ),
    Route(
        "POST",
        "/api/v1/rebalance",
        op.rebalance,
        "Run a rebalance now (the whole cycle, as a scheduled one) rather than at the next interval",
        sc.ACTION_RESULT,
        sc.ReasonBody,
        (400, 409),
    ),
    Route(
        "POST",
        "/api/v1/config/reload",
        op.reload,
        "Re-read the config file: validated, feasibility-checked, applied between cycles",
        sc.RELOAD_RESULT,
        sc.ReasonBody,
        (400, 409, 422),
    ),
)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves in the one shape (``vault.api.errors``), aiohttp's own 404/405 too."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        field = "(path)" if exc.status in (404, 405) else None
        reason = {
            404: f"no route {request.path}",
            405: f"{request.method} is not allowed here",
        }.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response(error_body(field, reason), status=exc.status, headers=headers)
    except Exception:
        log.exception("api_error", path=request.path, method=request.method)
        return web.json_response(
            error_body(None, "internal error; see the daemon's log (event api_error)"), status=500
        )


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(ROUTES))


def build_app(daemon: DaemonView) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(lambda: daemon.settings.api.tokens)],
        client_max_size=sc.MAX_BODY_BYTES,
    )
    app[rd.DAEMON] = daemon
    app[rd.STATUS_CACHE] = {}
    app.router.add_get("/metrics", metrics_handler(daemon.metrics))
    app.router.add_get("/healthz", rd.healthz)
    app.router.add_get("/readyz", rd.readyz)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    return app
