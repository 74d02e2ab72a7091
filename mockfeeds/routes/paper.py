"""Paper execution routes (``/paper/v1``): thin handlers over :func:`mockfeeds.paper_api.paper_request`
(the market's plain methods, :class:`mockfeeds.paper.PaperDesk`); each write is saved before it
is acknowledged."""

from __future__ import annotations

from aiohttp import web

from mockfeeds.market import iso
from mockfeeds.paper_api import paper_request
from mockfeeds.routes.common import json_body, market_of, reply


# --- paper execution ------------------------------------------------------------------------
# The routes call mockfeeds.paper_api.paper_request, as vault.transport.InProcessTransport does
# (it also saves each write before it is acknowledged).
async def _paper_post(request: web.Request, path: str) -> web.StreamResponse:
    m = market_of(request)
    b = await json_body(request)
    return await reply(request, paper_request(m, "POST", path, b))


async def paper_deposit(request: web.Request) -> web.StreamResponse:
    return await _paper_post(request, "/deposit")


async def paper_withdraw(request: web.Request) -> web.StreamResponse:
    return await _paper_post(request, "/withdraw")


async def paper_bridge(request: web.Request) -> web.StreamResponse:
    return await _paper_post(request, "/bridge")


async def paper_transfer(request: web.Request) -> web.StreamResponse:
    tid = request.match_info["transfer_id"]
    return await reply(request, paper_request(market_of(request), "GET", f"/bridge/{tid}"))


async def paper_positions(request: web.Request) -> web.StreamResponse:
    return await reply(request, paper_request(market_of(request), "GET", "/positions"))


async def paper_withdrawals(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    rows = [m.withdrawal(w) for w in m.withdrawals]
    return await reply(request, {"withdrawals": rows, "sim_time": iso(m.state_time)})


async def paper_withdrawal(request: web.Request) -> web.StreamResponse:
    wid = request.match_info["withdrawal_id"]
    return await reply(request, paper_request(market_of(request), "GET", f"/withdrawals/{wid}"))
