"""GET handlers: status, the rebalance audit trail, plans, operator actions, the effective config.

Amounts from the ledger are exact decimal strings; pages run newest first with ``?limit=`` (1..100,
default 20) and ``?before=<id>``; the answer's ``next_before`` is the id to ask for next (null
at the end).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.money import units_to_str
from vault.api.errors import ApiError
from vault.control import OPEN_STATUSES
from vault.reconcile import describe_break
from vault.reload import effective_config

if TYPE_CHECKING:
    from vault.api.view import DaemonView

DAEMON = web.AppKey("daemon", object)
# the last rendered status and what it was rendered from (the ledger's change count, the cycle,
# the poll, the operator's state): unchanged inputs are served the same bytes, so a burst of
# requests costs no ledger reads on the event loop (issue 12: the API under load)
STATUS_CACHE = web.AppKey("status_cache", dict)


def daemon_of(request: web.Request) -> DaemonView:
    return request.app[DAEMON]  # type: ignore[return-value]


def int_param(
    request: web.Request,
    name: str,
    *,
    query: bool,
    default: int | None = None,
    low: int = 1,
    high: int = 2**62,
) -> int | None:
    raw = request.query.get(name) if query else request.match_info.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, name, f"expected an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise ApiError(400, name, f"expected {low}..{high}, got {value}")
    return value


def page(request: web.Request) -> tuple[int, int | None]:
    limit = int_param(request, "limit", query=True, default=20, high=100)
    before = int_param(request, "before", query=True)
    assert limit is not None
    return limit, before


async def healthz(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    return web.json_response(
        {"status": "alive", "uptime_seconds": round(time.monotonic() - daemon.started_monotonic, 3)}
    )


async def readyz(request: web.Request) -> web.Response:
    ready, detail = daemon_of(request).readiness()
    return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)


async def status(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    cache = request.app[STATUS_CACHE]
    key = (
        daemon.ledger.changes,
        daemon.state.cycles,
        daemon.state.last_poll_monotonic,
        daemon.state.hold_reason,
        daemon.ledger_watch.failure if daemon.ledger_watch else None,
        daemon.store.changes(),
        int(time.monotonic() * 4),  # "time" is at most a quarter of a (wall) second old
    )
    if cache.get("key") != key:
        cache["body"] = json.dumps(status_view(daemon)).encode()
        cache["key"] = key
    return web.Response(body=cache["body"], content_type="application/json")


def status_view(daemon: DaemonView) -> dict[str, Any]:
    """The /api/v1/status document."""
    balances = daemon.ledger.balances()
    report = daemon.state.report
    decision = daemon.state.decision
    targets = decision.allocation.target_usd if decision and decision.allocation else {}
    positions: list[dict[str, Any]] = []
    for venue in daemon.venues.values():
        snap = report.snapshots.get(venue.id) if report else None
        positions.append(
            {
                "venue": venue.id,
                "exit_only": venue.id in daemon.exit_only.exit,
                "kind": str(venue.kind),
                "protocol": venue.protocol,
                "chain": venue.chain,
                "position_usd": units_to_str(balances.positions_units.get(venue.id, 0)),
                "target_usd": round(float(targets.get(venue.id, 0.0)), 6),
                "real_apr": snap.real_apr if snap else None,
                "emission_apr": snap.emission_apr if snap else None,
                "frozen": snap.frozen if snap else None,
                "frozen_reason": snap.frozen_reason if snap else None,
            }
        )
    last = daemon.ledger.last_rebalance()
    return dict(
        {
            "mode": daemon.settings.vault.mode,
            "vault_id": daemon.vault_id,
            "reconciliation_breaks": [describe_break(b) for b in daemon.ledger.open_breaks()],
            "ledger_integrity": {
                "ok": daemon.ledger_watch is not None and daemon.ledger_watch.failure is None,
                "problem": daemon.ledger_watch.failure if daemon.ledger_watch else None,
            },
            "hold_reason": daemon.state.hold_reason,
            "time": daemon.clock().isoformat(),
            "nav_usd": units_to_str(balances.nav_units),
            "idle_usd": {chain: units_to_str(u) for chain, u in balances.idle_units.items()},
            "in_flight_usd": {t: units_to_str(u) for t, u in balances.in_flight_units.items()},
            "positions": positions,
            "rebalances": daemon.ledger.rebalance_count(),
            "last_rebalance": None
            if last is None
            else {
                "id": last.id,
                "started_at": last.started_at,
                "outcome": last.outcome,
                "solver_status": last.solver_status,
                "reason": last.reason,
                "moves": last.moves,
                "results": last.results,
            },
            "operator": {
                "directives": daemon.operations.directives_view(),
                "approval": daemon.settings.vault.approval,
                "plans_awaiting": daemon.operations.awaiting(),
            },
        }
    )


async def rebalances(request: web.Request) -> web.Response:
    limit, before = page(request)
    rows = daemon_of(request).ledger.rebalances(limit, before)
    nxt = rows[-1]["id"] if len(rows) == limit and rows[-1]["id"] > 1 else None
    return web.json_response({"rebalances": rows, "next_before": nxt})


async def rebalance(request: web.Request) -> web.Response:
    rid = int_param(request, "id", query=False)
    assert rid is not None
    row = daemon_of(request).ledger.rebalance(rid)
    if row is None:
        raise ApiError(404, "id", f"no rebalance {rid}")
    return web.json_response(row)


async def plans_pending(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    daemon.expire_plans()
    plans = [p.as_dict() for p in daemon.store.plans(OPEN_STATUSES)]
    return web.json_response({"plans": plans})


async def plan(request: web.Request) -> web.Response:
    pid = int_param(request, "id", query=False)
    assert pid is not None
    found = daemon_of(request).store.plan(pid)
    if found is None:
        raise ApiError(404, "id", f"no plan {pid}")
    return web.json_response(found.as_dict())


async def actions(request: web.Request) -> web.Response:
    limit, before = page(request)
    rows = daemon_of(request).store.actions(limit, before)
    nxt = rows[-1]["id"] if len(rows) == limit and rows[-1]["id"] > 1 else None
    return web.json_response({"actions": rows, "next_before": nxt})


async def config(request: web.Request) -> web.Response:
    return web.json_response(effective_config(daemon_of(request).settings))


async def breaks(request: web.Request) -> web.Response:
    ledger = daemon_of(request).ledger
    return web.json_response({"breaks": [describe_break(b) for b in ledger.open_breaks()]})


async def guards(request: web.Request) -> web.Response:
    """The guards' breakers that are not closed, and the resumes not yet applied."""
    from vault.guard_store import read_status

    state, pending = read_status(daemon_of(request).settings.data_dir)
    rows = [
        {
            "venue": v,
            "guard": g,
            "state": b.state.value,
            "action": str(b.action),
            "trips": b.trips,
            "resumed": b.resumed,
            "evidence": b.evidence,
        }
        for (v, g), b in sorted(state.breakers.items())
        if b.active
    ]
    resumes = [
        {
            "id": r.id,
            "venue": r.venue,
            "guard": r.guard,
            "requested_at": r.requested_at,
            "requested_by": r.requested_by,
        }
        for r in pending
    ]
    return web.json_response({"breakers": rows, "pending_resumes": resumes})
