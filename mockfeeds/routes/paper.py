"""Paper execution routes (``/paper/v1``): thin handlers over the market's plain methods
(:class:`mockfeeds.paper.PaperDesk`); each write is saved before it is acknowledged."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mockfeeds.market import iso
from mockfeeds.routes.common import MARKET_KEY, json_body, market_of, reply


# --- paper execution ------------------------------------------------------------------------
async def _paper(
    request: web.Request, result: dict[str, Any], venues: frozenset[str] = frozenset()
) -> web.StreamResponse:
    m = request.app[MARKET_KEY]
    m.save_if_dirty()  # a paper write is durable before it is acknowledged
    return await reply(request, result, venues=venues)


async def paper_deposit(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    b = await json_body(request)
    return await _paper(
        request, m.deposit(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
    )


async def paper_withdraw(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    b = await json_body(request)
    return await _paper(
        request, m.withdraw(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
    )


async def paper_bridge(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    b = await json_body(request)
    return await _paper(
        request,
        m.bridge(
            b.get("from_chain"), b.get("to_chain"), b.get("amount_usd"), b.get("idempotency_key")
        ),
    )


async def paper_transfer(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    return await reply(request, m.transfer(request.match_info["transfer_id"]))


async def paper_positions(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    return await reply(request, m.positions_view())


async def paper_withdrawals(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    rows = [m.withdrawal(w) for w in m.withdrawals]
    return await reply(request, {"withdrawals": rows, "sim_time": iso(m.state_time)})


async def paper_withdrawal(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    return await reply(request, m.withdrawal(request.match_info["withdrawal_id"]))
