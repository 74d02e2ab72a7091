"""The simulated market over HTTP: read endpoints in the live APIs' shapes, paper execution,
scenarios, faults and the clock. Every endpoint is documented in ``mockfeeds/README.md``.

``create_app(market)`` builds the application; it runs a background task that keeps the world
in step with the clock and saves the state file every ``save_interval_seconds`` (and on
shutdown). Errors are ``{"error": {"field", "reason"}}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from mockfeeds.market import Market
from mockfeeds.routes import admin, llama, loop, nft, paper, perp, protocols
from mockfeeds.routes.common import MARKET_KEY, errors_middleware

TASK_KEY = web.AppKey("ticker", asyncio.Task)


# --- lifecycle ----------------------------------------------------------------------------------
async def _ticker(app: web.Application) -> None:
    """Keep the world in step with the clock and save it every ``save_interval_seconds``."""
    m = app[MARKET_KEY]
    loop = asyncio.get_running_loop()
    last_save = loop.time()
    while True:
        await asyncio.sleep(0.25)
        try:
            m.sync()
            if loop.time() - last_save >= m.cfg.save_interval_seconds:
                await m.save_if_dirty_off_loop()
                last_save = loop.time()
        except Exception:
            await asyncio.sleep(1.0)


async def _on_startup(app: web.Application) -> None:
    app[TASK_KEY] = asyncio.create_task(_ticker(app))


async def _on_cleanup(app: web.Application) -> None:
    task = app.get(TASK_KEY)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    m = app[MARKET_KEY]
    m.sync()
    m.save()


def create_app(market: Market) -> web.Application:
    """The aiohttp application serving every endpoint of ``mockfeeds/README.md``."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024**2)
    app[MARKET_KEY] = market
    r = app.router
    r.add_get("/healthz", admin.healthz)
    r.add_get("/defillama/pools", llama.defillama_pools)
    r.add_get("/defillama/chart/{pool}", llama.defillama_chart)
    r.add_get("/coins/prices/current/{coins}", llama.coins_current)
    r.add_get("/coins/chart/{coins}", llama.coins_chart)
    r.add_get("/lido/v1/protocol/steth/apr/sma", protocols.lido_sma)
    r.add_get("/lido/v1/protocol/steth/apr/last", protocols.lido_last)
    r.add_get("/lido/v2/request-time/calculate", protocols.lido_request_time)
    r.add_get("/aave/v3/{market}/reserves", protocols.aave_reserves)
    r.add_get("/aave/v3/{market}/incentives", protocols.aave_incentives)
    r.add_get("/compound/v3/{chain}/{comet}", protocols.compound_comet)
    r.add_get("/across/api/suggested-fees", protocols.across_suggested_fees)
    r.add_get("/across/api/limits", protocols.across_limits)
    r.add_get("/earn/sapi/v1/simple-earn/flexible/list", protocols.earn_list)
    r.add_get("/aave/v3/{market}/users/{user}", loop.aave_user)
    r.add_get("/binance/fapi/v1/fundingRate", perp.funding_rate)
    r.add_get("/binance/fapi/v1/premiumIndex", perp.premium_index)
    r.add_get("/chainlink/v1/nft-floor/{collection}/rounds", nft.floor_rounds)
    r.add_get("/opensea/api/v2/collections/{slug}/stats", nft.collection_stats)
    r.add_get("/renft/v1/lendings", nft.lendings)
    r.add_post("/paper/v1/deposit", paper.paper_deposit)
    r.add_post("/paper/v1/withdraw", paper.paper_withdraw)
    r.add_post("/paper/v1/bridge", paper.paper_bridge)
    r.add_get("/paper/v1/bridge/{transfer_id}", paper.paper_transfer)
    r.add_get("/paper/v1/positions", paper.paper_positions)
    r.add_get("/paper/v1/withdrawals", paper.paper_withdrawals)
    r.add_get("/paper/v1/withdrawals/{withdrawal_id}", paper.paper_withdrawal)
    r.add_get("/admin/v1/state", admin.admin_state)
    r.add_post("/admin/v1/clock", admin.admin_clock)
    r.add_get("/admin/v1/scenarios", admin.admin_scenarios_get)
    r.add_post("/admin/v1/scenarios", admin.admin_scenarios_post)
    r.add_delete("/admin/v1/scenarios/{scenario_id}", admin.admin_scenario_delete)
    r.add_get("/admin/v1/faults", admin.admin_faults_get)
    r.add_post("/admin/v1/faults", admin.admin_faults_post)
    r.add_delete("/admin/v1/faults", admin.admin_faults_clear)
    r.add_delete("/admin/v1/faults/{fault_id}", admin.admin_fault_delete)
    r.add_post("/admin/v1/save", admin.admin_save)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app
