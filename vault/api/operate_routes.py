"""POST handlers: pause, resume, venue freeze / unfreeze / exit, plan approve / reject / results,
rebalance now, config reload. Each needs scope ``operate``; each is an action of ``vault.operations``.
"""

from __future__ import annotations

from aiohttp import web

from vault.api.auth import CALLER
from vault.api.errors import ApiError
from vault.api.read_routes import daemon_of, int_param
from vault.api.schemas import (
    BreakBody,
    GuardResumeBody,
    PauseBody,
    ReasonBody,
    ResultsBody,
    ResumeBody,
    read_body,
)


def _who(request: web.Request) -> str:
    return request[CALLER].label


def _venue(request: web.Request) -> str:
    venue = request.match_info["id"]
    if not venue or len(venue) > 200:
        raise ApiError(400, "id", "expected a venue id of 1..200 characters")
    return venue


async def pause(request: web.Request) -> web.Response:
    body = await read_body(request, PauseBody)
    return web.json_response(
        daemon_of(request).operations.pause(_who(request), body.scope, body.reason)
    )


async def resume(request: web.Request) -> web.Response:
    body = await read_body(request, ResumeBody)
    return web.json_response(daemon_of(request).operations.resume(_who(request), body.scope))


async def freeze(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ops = daemon_of(request).operations
    return web.json_response(ops.freeze(_who(request), _venue(request), body.reason))


async def unfreeze(request: web.Request) -> web.Response:
    await read_body(request, ReasonBody)
    return web.json_response(daemon_of(request).operations.unfreeze(_who(request), _venue(request)))


async def exit_venue(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ops = daemon_of(request).operations
    return web.json_response(ops.exit(_who(request), _venue(request), body.reason))


def _plan_id(request: web.Request) -> int:
    pid = int_param(request, "id", query=False)
    assert pid is not None
    return pid


async def approve(request: web.Request) -> web.Response:
    await read_body(request, ReasonBody)
    return web.json_response(
        daemon_of(request).operations.approve(_who(request), _plan_id(request))
    )


async def reject(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ops = daemon_of(request).operations
    return web.json_response(ops.reject(_who(request), _plan_id(request), body.reason))


async def results(request: web.Request) -> web.Response:
    body = await read_body(request, ResultsBody)
    reports = [r.model_dump() for r in body.results]
    ops = daemon_of(request).operations
    return web.json_response(await ops.plan_results(_who(request), _plan_id(request), reports))


async def reload(request: web.Request) -> web.Response:
    await read_body(request, ReasonBody)
    return web.json_response(await daemon_of(request).operations.reload(_who(request)))


async def book_break(request: web.Request) -> web.Response:
    body = await read_body(request, BreakBody)
    ops = daemon_of(request).operations
    return web.json_response(await ops.book_break(_who(request), _venue(request), body.reason))


async def rebalance(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    return web.json_response(daemon_of(request).operations.rebalance(_who(request), body.reason))


async def guard_resume(request: web.Request) -> web.Response:
    body = await read_body(request, GuardResumeBody)
    ops = daemon_of(request).operations
    return web.json_response(ops.guard_resume(_who(request), body.venue, body.guard))
