"""Export mode (``vault.mode: export``): the daemon plans, an external signer moves the money.

Each plan that would execute is written ahead move by move in the ledger (``pending_moves``, as
the paper executor does before it calls a venue) and as one JSON document,
``data_dir/plans/plan-<id>.json`` (also ``GET /api/v1/plans/{id}``)::

    {"plan_id", "vault_id", "created_at", "deadline", "report_to",
     "moves": [{"seq", "action", "venue", "chain", "from_chain", "to_chain", "amount_units",
                "amount_usd", "idempotency_key", "min_outcome_units", "min_outcome_usd",
                "request": {"path": "/deposit", "body": {...}}}]}

``request`` is the call in the simulated market's paper shape (``mockfeeds/README.md``), under the
move's idempotency key. ``amount_units`` is the most a move sends: a deposit on a chain that a bridge
leg of the plan funds sends at most what that leg delivered (the bridge keeps its fee), and its
report says what it sent (``amount_usd``). The minimum acceptable outcome of a move of ``a`` units into or out of a
venue with proportional fee ``f`` bps, or across a bridge with fee ``f_b`` bps, is

    min_outcome = floor(a x (1 - (f + export_slippage_bps) / 10_000))

The signer reports each move with ``POST /api/v1/plans/{id}/results``; a ``done`` report is turned
into the venue answer the paper executor would have received and booked by the paper executor's
own booking code (``PaperExecutor.postings_for`` and ``Ledger.finish_move``, under the same
idempotency key, so a repeated report books nothing twice); ``failed`` abandons the intent.

Until every move is reported the moves stay pending, so the daemon holds (books no yield, plans
nothing) exactly as it does for an unresolved paper move; past the deadline they count in
``yieldvault_unresolved_moves`` and raise ``YieldvaultMoveUnresolved``. Positions and in-flight
transfers are still read from the venues (here: the simulated market's read endpoints).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.money import units_to_str, usd_to_units
from core.types import Move, MoveAction, Plan, Venue
from vault.control import OperatorStore
from vault.executor import (
    MoveResult,
    MoveStatus,
    OutcomeUnknown,
    PaperExecutor,
    move_from_dict,
    move_to_dict,
)
from vault.ledger import Ledger, LedgerError


class ReportError(Exception):
    """A signer's report the books cannot take; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


class ExportExecutor:
    """The ``Executor`` of export mode: reads (settle, venue positions) from the venues, sends no
    move: the signer does, and its reports are booked here."""

    def __init__(
        self,
        *,
        reader: PaperExecutor,
        ledger: Ledger,
        store: OperatorStore,
        venues: Mapping[str, Venue],
        plans_dir: Path,
        deadline_seconds: float,
        slippage_bps: float,
        bridge_fee_bps: float,
        wall_clock: Callable[[], datetime],
        clock: Callable[[], datetime],
        vault_id: str | None = None,
    ):
        self._reader = reader
        self._ledger = ledger
        self._store = store
        self._venues = venues
        self._dir = plans_dir
        self._deadline = timedelta(seconds=deadline_seconds)
        self._slippage_bps = slippage_bps
        self._bridge_fee_bps = bridge_fee_bps
        self._wall = wall_clock
        self._clock = clock
        self._vault_id = vault_id
        self.last_plan_id: int | None = None  # the plan the last execute() exported

    # -- reads: the same as paper --------------------------------------------------------

    async def recover(self) -> list[MoveResult]:
        """Exported moves are the signer's to replay; nothing is sent from here."""
        return []

    async def settle_in_flight(self) -> None:
        await self._reader.settle_in_flight()

    async def venue_positions(self) -> dict[str, int] | None:
        return await self._reader.venue_positions()

    # -- the export ------------------------------------------------------------------------

    def min_outcome_units(self, move: Move, amount_units: int) -> int:
        fee_bps = (
            self._bridge_fee_bps
            if move.action is MoveAction.BRIDGE
            else self._venues[move.venue_id].costs.fee_bps
        )
        return max(0, math.floor(amount_units * (1 - (fee_bps + self._slippage_bps) / 10_000)))

    def document(self, plan_id: int, plan: Plan, created_at: datetime) -> dict[str, Any]:
        moves = []
        for seq, move in enumerate(plan.moves):
            amount = usd_to_units(move.amount_usd)
            low = self.min_outcome_units(move, amount)
            venue = self._venues.get(move.venue_id)
            body: dict[str, Any] = (
                {"from_chain": move.from_chain, "to_chain": move.to_chain}
                if move.action is MoveAction.BRIDGE
                else {"venue": move.venue_id}
            )
            body |= {"amount_usd": units_to_str(amount), "idempotency_key": move.idempotency_key}
            moves.append(
                {
                    "seq": seq,
                    "action": str(move.action),
                    "venue": move.venue_id,
                    "chain": venue.chain if venue else move.to_chain,
                    "from_chain": move.from_chain,
                    "to_chain": move.to_chain,
                    "amount_units": amount,
                    "amount_usd": units_to_str(amount),
                    "idempotency_key": move.idempotency_key,
                    "min_outcome_units": low,
                    "min_outcome_usd": units_to_str(low),
                    "request": {"path": f"/{move.action}", "body": body},
                }
            )
        return {
            "plan_id": plan_id,
            # the account the moves are for (the simulated market's X-Paper-Account header)
            "vault_id": self._vault_id,
            "created_at": created_at.isoformat(),
            "deadline": (created_at + self._deadline).isoformat(),
            "report_to": f"/api/v1/plans/{plan_id}/results",
            "moves": moves,
        }

    async def execute(
        self, plan: Plan, should_stop: Callable[[], bool] = lambda: False
    ) -> list[MoveResult]:
        """Write the plan for the signer; every move is reported ``skipped`` ("exported") for now."""
        now = self._wall()
        plan_id = self._store.add_plan(
            created_at=now,
            expires_at=now + self._deadline,
            status="exported",
            kind="export",
            plan={},
            context={},
        )
        self.last_plan_id = plan_id
        doc = self.document(plan_id, plan, now)
        for entry, move in zip(doc["moves"], plan.moves, strict=True):
            req = entry["request"]
            self._ledger.begin_move(
                self._clock(),
                move.idempotency_key,
                {
                    "move": move_to_dict(move),
                    "path": req["path"],
                    "body": req["body"],
                    "export": {"plan_id": plan_id, "deadline": doc["deadline"]},
                },
            )
        self._store.update_plan_json(plan_id, doc)
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"plan-{plan_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
        os.replace(tmp, path)
        return [
            MoveResult(
                m["idempotency_key"],
                m["action"],
                m["venue"],
                MoveStatus.SKIPPED,
                m["amount_units"],
                detail=f"exported: plan {plan_id}",
            )
            for m in doc["moves"]
        ]

    # -- the signer's reports ------------------------------------------------------------

    def overdue_moves(self, now: datetime) -> int:
        """Exported moves still unreported past their plan's deadline."""
        count = 0
        for pending in self._ledger.pending_moves():
            export = pending.get("export")
            if export and datetime.fromisoformat(export["deadline"]) < now:
                count += 1
        return count

    async def book_report(self, plan_id: int, report: Mapping[str, Any]) -> dict[str, Any]:
        """Book one move's reported outcome as the paper executor books a venue's answer.

        Before a deposit, bridge legs that have filled are landed in the books (the paper executor
        waits for fills between bridge legs and deposits the same way).
        """
        key = str(report["idempotency_key"])
        pending = next(
            (
                p
                for p in self._ledger.pending_moves()
                if p.get("export", {}).get("plan_id") == plan_id
                and p["move"]["idempotency_key"] == key
            ),
            None,
        )
        if pending is None:
            if self._ledger.is_booked(key):
                return {"idempotency_key": key, "status": "already_booked"}
            raise ReportError(
                404, "idempotency_key", f"no unreported move {key!r} in plan {plan_id}"
            )
        move = move_from_dict(pending["move"])
        amount = usd_to_units(pending["body"]["amount_usd"])
        if report.get("amount_usd") is not None:
            sent = usd_to_units(report["amount_usd"])
            if not 0 < sent <= amount:
                raise ReportError(
                    400,
                    "amount_usd",
                    f"{key}: sent {report['amount_usd']} outside (0, {units_to_str(amount)}]",
                )
            amount = sent
        if report["status"] == "failed":
            self._ledger.abandon_move(key)
            return {"idempotency_key": key, "status": "failed", "booked": False}
        answer = self._answer(move, report)
        if move.action is MoveAction.DEPOSIT:
            # the deposit is booked if the idle is there; else refused below, and retried later
            with contextlib.suppress(OutcomeUnknown):
                await self._reader.settle_in_flight()
        try:
            applied, postings = self._reader.postings_for(move, amount, answer)
        except (OutcomeUnknown, KeyError, ValueError) as exc:
            raise ReportError(400, "results", f"{key}: {exc}") from None
        try:
            self._ledger.finish_move(
                self._clock(), key, str(move.action), postings, memo=move.venue_id
            )
        except LedgerError as exc:
            raise ReportError(409, "results", f"{key}: the books cannot take it: {exc}") from None
        low = self.min_outcome_units(move, amount)
        return {
            "idempotency_key": key,
            "status": "done",
            "booked": True,
            "applied_usd": units_to_str(applied),
            "tx_ref": report.get("tx_ref", ""),
            "below_minimum": applied < low if move.action is not MoveAction.BRIDGE else False,
        }

    @staticmethod
    def _answer(move: Move, report: Mapping[str, Any]) -> dict[str, Any]:
        """The paper venue's answer a ``done`` report stands for."""
        if move.action is MoveAction.BRIDGE:
            if not report.get("transfer_id"):
                raise ReportError(400, "transfer_id", "a done bridge move needs transfer_id")
            return {"transfer_id": report["transfer_id"], "fee_usd": report.get("fee_usd") or "0"}
        if report.get("applied_usd") is None:
            raise ReportError(400, "applied_usd", f"a done {move.action} needs applied_usd")
        answer: dict[str, Any] = {"applied_usd": report["applied_usd"]}
        if report.get("queued"):
            if move.action is not MoveAction.WITHDRAW or not report.get("withdrawal_id"):
                raise ReportError(400, "withdrawal_id", "a queued withdrawal needs withdrawal_id")
            answer |= {"status": "queued", "withdrawal_id": report["withdrawal_id"]}
        return answer

    def unreported(self, plan_id: int) -> list[str]:
        return [
            p["move"]["idempotency_key"]
            for p in self._ledger.pending_moves()
            if p.get("export", {}).get("plan_id") == plan_id
        ]
