"""Paper execution routes (``/paper/v1``): thin handlers over :func:`mockfeeds.paper_api.paper_request`
(the market's plain methods, :class:`mockfeeds.paper.PaperDesk`); each write is saved before it
is acknowledged."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mockfeeds.market import iso
from mockfeeds.paper_api import paper_request
from mockfeeds.routes.common import json_body, market_of, reply

# --- paper execution ------------------------------------------------------------------------
# The routes call mockfeeds.paper_api.paper_request, as vault.transport.InProcessTransport does
# (it also saves each write before it is acknowledged).
#: the paper account a request is for (a vault id); a body field "account" works too
ACCOUNT_HEADER = "X-Paper-Account"


def account_of(request: web.Request, body: Any = None) -> str | None:
    """The request's paper account: the header, else the body's "account", else None (default)."""
    if ACCOUNT_HEADER in request.headers:
        return request.headers[ACCOUNT_HEADER]
    if isinstance(body, dict) and "account" in body:
        return body["account"]  # type: ignore[no-any-return]
    return None


async def _paper_post(request: web.Request, path: str) -> web.StreamResponse:
    m = market_of(request)
    b = await json_body(request)
    return await reply(request, paper_request(m, "POST", path, b, account_of(request, b)))


async def paper_deposit(request: web.Request) -> web.StreamResponse:
    return await _paper_post(request, "/deposit")


async def paper_withdraw(request: web.Request) -> web.StreamResponse:
    return await _paper_post(request, "/withdraw")


async def paper_bridge(request: web.Request) -> web.StreamResponse:
    return await _paper_post(request, "/bridge")


async def paper_transfer(request: web.Request) -> web.StreamResponse:
    tid = request.match_info["transfer_id"]
    return await reply(
        request,
        paper_request(market_of(request), "GET", f"/bridge/{tid}", None, account_of(request)),
    )


async def paper_positions(request: web.Request) -> web.StreamResponse:
    return await reply(
        request, paper_request(market_of(request), "GET", "/positions", None, account_of(request))
    )


async def paper_withdrawals(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    account = account_of(request) or "default"
    rows = [
        m.withdrawal(w)
        for w, rec in m.withdrawals.items()
        if rec.get("account", "default") == account
    ]
    return await reply(request, {"withdrawals": rows, "sim_time": iso(m.state_time)})


async def paper_withdrawal(request: web.Request) -> web.StreamResponse:
    wid = request.match_info["withdrawal_id"]
    return await reply(
        request,
        paper_request(market_of(request), "GET", f"/withdrawals/{wid}", None, account_of(request)),
    )
