"""The daemon's one HTTP server: /metrics, /healthz, /readyz and /api/v1/status.

``/healthz`` answers while the event loop turns (liveness). ``/readyz`` answers 200 only when the
feeds are fresh and the last solve was optimal, 503 otherwise, with the reasons in the body.
Amounts in ``/api/v1/status`` are exact decimal strings from the ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from core.money import units_to_str
from core.types import Directives, Venue
from vault.integrity import LedgerWatch
from vault.ledger import Ledger
from vault.metrics import Metrics, metrics_handler
from vault.reconcile import describe_break
from vault.settings import Settings
from vault.state import CycleState

# the last rendered status and what it was rendered from (the ledger's change count, the cycle,
# the poll): unchanged inputs are served the same bytes, so a burst of requests costs no ledger
# reads on the event loop (issue 12: the API under load)
STATUS_CACHE = web.AppKey("status_cache", dict)


class DaemonView(Protocol):
    """What the API reads of the daemon (``vault.daemon.Daemon`` has it; the API never imports
    the daemon's module, which serves this one)."""

    settings: Settings
    metrics: Metrics
    state: CycleState
    started_monotonic: float
    clock: Callable[[], datetime]
    vault_id: str | None
    ledger_watch: LedgerWatch | None
    exit_only: Directives  # venues kept in the books only to be exited

    @property
    def venues(self) -> Mapping[str, Venue]: ...

    @property
    def ledger(self) -> Ledger: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


DAEMON = web.AppKey("daemon", DaemonView)


def create_app(daemon: DaemonView) -> web.Application:
    app = web.Application()
    app[DAEMON] = daemon
    app.router.add_get("/metrics", metrics_handler(daemon.metrics))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/status", status)
    app[STATUS_CACHE] = {}
    return app


async def healthz(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return web.json_response(
        {"status": "alive", "uptime_seconds": round(time.monotonic() - daemon.started_monotonic, 3)}
    )


async def readyz(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    ready, detail = daemon.readiness()
    return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)


async def status(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    cache = request.app[STATUS_CACHE]
    key = (
        daemon.ledger.changes,
        daemon.state.cycles,
        daemon.state.last_poll_monotonic,
        daemon.state.hold_reason,
        daemon.ledger_watch.failure if daemon.ledger_watch else None,
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
    return {
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
    }
