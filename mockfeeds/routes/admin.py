"""Admin routes (``/admin/v1``): world state, the clock, scenarios, faults, saving; and ``/healthz``."""

from __future__ import annotations

import math

from aiohttp import web

from mockfeeds.market import SCENARIOS, MarketError, iso
from mockfeeds.routes.common import MARKET_KEY, json_body, market_of


# --- admin ------------------------------------------------------------------------------------
async def admin_state(request: web.Request) -> web.Response:
    return web.json_response(market_of(request).summary())


async def admin_clock(request: web.Request) -> web.Response:
    m = market_of(request)
    b = await json_body(request)
    unknown = set(b) - {"advance_seconds", "time_scale"}
    if unknown:
        raise MarketError(
            sorted(unknown)[0], "unknown field; allowed: advance_seconds, time_scale", 400
        )
    ticks = 0
    if "time_scale" in b:
        ts = b["time_scale"]
        if (
            isinstance(ts, bool)
            or not isinstance(ts, (int, float))
            or not math.isfinite(ts)
            or ts < 0
            or ts > 1e7
        ):
            raise MarketError("time_scale", "must be a number in [0, 1e7]")
        m.clock.set_time_scale(float(ts))
    if "advance_seconds" in b:
        adv = b["advance_seconds"]
        if (
            isinstance(adv, bool)
            or not isinstance(adv, (int, float))
            or not math.isfinite(adv)
            or adv < 0
            or adv > 400 * 86_400
        ):
            raise MarketError(
                "advance_seconds", "must be a number in [0, 34560000] (400 simulated days)"
            )
        ticks = m.advance(float(adv))
    m.save_if_dirty()
    return web.json_response(
        {"sim_time": iso(m.state_time), "time_scale": m.clock.time_scale, "ticks": ticks}
    )


async def admin_scenarios_post(request: web.Request) -> web.Response:
    m = market_of(request)
    rec = m.start_scenario(await json_body(request))
    m.save_if_dirty()
    return web.json_response(rec, status=201)


async def admin_scenarios_get(request: web.Request) -> web.Response:
    m = market_of(request)
    return web.json_response(
        {
            "scenarios": [m.scenario_public(s) for s in m.scenarios.values()],
            "names": list(SCENARIOS),
        }
    )


async def admin_scenario_delete(request: web.Request) -> web.Response:
    m = market_of(request)
    rec = m.end_scenario(request.match_info["scenario_id"])
    m.save_if_dirty()
    return web.json_response(rec)


async def admin_faults_post(request: web.Request) -> web.Response:
    m = market_of(request)
    rec = m.add_fault(await json_body(request))
    m.save_if_dirty()
    return web.json_response(rec, status=201)


async def admin_faults_get(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    return web.json_response({"faults": [r.public() for r in m.faults.values()]})


async def admin_fault_delete(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    rec = m.remove_fault(request.match_info["fault_id"])
    m.save_if_dirty()
    return web.json_response(rec)


async def admin_faults_clear(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    n = len(m.faults)
    m.faults.clear()
    m.dirty = True
    m.save_if_dirty()
    return web.json_response({"removed": n})


async def admin_save(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    path = m.save()
    return web.json_response({"saved": str(path) if path else None, "sim_time": iso(m.state_time)})


async def healthz(request: web.Request) -> web.Response:
    m = request.app[MARKET_KEY]
    return web.json_response(
        {"status": "ok", "sim_time": iso(m.state_time), "venues": len(m.venues)}
    )
