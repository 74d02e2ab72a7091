"""The daemon's guard hook: the pure guards (``guard/``) plus what a running daemon adds around them.

Each call (once per rebalance cycle, the ``guard`` step of ``vault/cycle.py``):

1. applies the operators' pending resumes (``yieldvault guards resume``, the operator API) to the
   prior state;
2. fills ``PortfolioState.earned_usd`` from the ledger's ``income:`` accounts, so the loss guard
   compares booked yield with the prediction (moves in and out do not disturb it);
3. runs :class:`guard.Guards`;
4. saves the new state with the applied resumes in one SQLite transaction
   (``data_dir/guards.sqlite3``), so a tripped breaker survives a restart or a SIGKILL;
5. logs one ``guard`` line per event with its evidence and exports ``yieldvault_guard_*``.

The backtester's ``--market`` driver (``backtest/simulated.py``) runs the same runner with no store
(the state kept in memory, passed from one cycle's outcome to the next as the daemon does); the
history replay's ``ours_guarded`` calls :class:`guard.Guards` directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import structlog

from core.money import units_to_usd
from core.types import Directives, PortfolioState, VenueSnapshot
from guard import EMPTY, GUARDS, EventKind, Guards, GuardSettings, GuardState
from guard.breaker import Event
from vault.guard_store import GuardStore
from vault.ledger import Ledger
from vault.metrics import Metrics

log = structlog.get_logger("vault.guard")


def ledger_earned_usd(ledger: Ledger, venues: Sequence[str]) -> Callable[[], dict[str, float]]:
    """The yield each venue has returned so far, as the loss guard's realized return:
    ``-income:<venue>`` in USD (income accounts are credit-normal, so their balance is negative)
    plus, for a venue with an open *shortfall* break, ``reported - books`` (< 0).

    A shortfall beyond the reconciliation's tolerance is not booked (it waits in the break for an
    operator), but the money is gone all the same: without it the loss guard would not see a
    depeg's mark-down that the books refuse to explain (the daemon's UST path held USDT to 0.37).
    When the operator books the break (to ``equity:breaks``, never income) it closes, and this
    figure steps back up by what it held: one interval of apparent gain, which the loss guard (it
    fires on shortfalls only) reads as no loss. A surplus break is not earned."""

    def earned() -> dict[str, float]:
        out = {v: -units_to_usd(ledger.account(f"income:{v}")) for v in venues}
        for b in ledger.open_breaks():
            if b.venue in out and b.reported_units < b.books_units:
                out[b.venue] += units_to_usd(b.reported_units - b.books_units)
        return out

    return earned


class GuardRunner:
    """``(snapshots, portfolio, now, prior state) -> (Directives, GuardState)`` for the cycle."""

    def __init__(
        self,
        settings: GuardSettings,
        *,
        store: GuardStore | None,
        metrics: Metrics | None = None,
        venues: Sequence[str] = (),
        earned_usd: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self.settings = settings
        self.guards = Guards(settings)
        self.store = store
        self.metrics = metrics
        self.earned_usd = earned_usd
        self.venues = tuple(venues)
        self.state: GuardState = store.load() if store is not None else EMPTY
        if metrics is not None:
            metrics.declare_guards(venues, GUARDS)
            self._export(self.state)
        if self.state.breakers:
            active = [
                (v, g, b.state.value) for (v, g), b in self.state.breakers.items() if b.active
            ]
            if active:
                log.warning("guards_restored", active=active)

    def __call__(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        prior: GuardState | None,
    ) -> tuple[Directives, GuardState]:
        state = prior if prior is not None else self.state
        applied: list = []
        if self.store is not None:
            state, applied = self.store.apply_pending(self.settings, state, now)
            for req, hit in applied:
                log.info(
                    "guard_resume",
                    request=req.id,
                    by=req.requested_by,
                    venue=req.venue,
                    guard=req.guard,
                    resumed=[f"{v}/{g}" for v, g in hit],
                )
        resumes = [e for e in state.events if e.kind is EventKind.RESUME]
        if self.earned_usd is not None:
            portfolio = dataclasses.replace(portfolio, earned_usd=dict(self.earned_usd()))
        directives, new = self.guards(snapshots, portfolio, now, state)
        if self.store is not None:
            self.store.save(new, now, applied)
        self.state = new
        for e in (*resumes, *new.events):
            self._log(e)
            if e.kind is EventKind.TRIP and self.metrics is not None:
                self.metrics.count_guard_trip(e.guard)
        self._export(new, directives)
        return directives, new

    def _log(self, e: Event) -> None:
        fields = {
            "kind": e.kind.value,
            "venue": e.venue,
            "guard": e.guard,
            "action": e.action,
            "detail": e.detail,
            "evidence": dict(e.evidence),
        }
        if e.kind in (EventKind.TRIP, EventKind.REFIRE):
            log.warning("guard", **fields)
        else:
            log.info("guard", **fields)

    def _export(self, state: GuardState, directives: Directives | None = None) -> None:
        if self.metrics is None:
            return
        from guard.engine import directives as derive

        d = directives if directives is not None else derive(state)
        codes = [(v, g, b.state.code) for (v, g), b in state.breakers.items()]
        codes += [(v, "contagion", 2 if v in state.contagion else 0) for v in self.venues]
        self.metrics.set_guards(codes, d.exit, d.freeze, d.no_new_deposits)
