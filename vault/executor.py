"""Turn a plan's moves into venue calls and ledger postings.

Every executor is an :class:`vault.moves.Executor` (recover, settle in flight, sync positions,
execute); the values they share (``MoveResult``, ``MoveStatus``, ``DryRunExecutor``, the
write-ahead form of a move) live in ``vault/moves.py`` and are re-exported here.

* ``PaperExecutor`` is the booking: what a venue's answer means for the ledger (write-ahead under
  the move's idempotency key, postings, gas, in-flight accounts). The venue calls go through a
  :class:`vault.transport.Transport`: ``HttpTransport`` to the simulated market's paper endpoints
  (``mockfeeds/README.md``: ``/paper/v1/deposit``, ``/withdraw``, ``/bridge``, ``/positions``) or
  ``InProcessTransport`` to a market object in this process (the backtester's).
* ``DryRunExecutor`` books nothing and moves nothing: every move is reported as skipped.

Ordering and safety: moves run one at a time in plan order (withdrawals, bridge legs, deposits).
A refused move (4xx) is abandoned and the plan goes on; a move whose outcome is unknown (timeout,
5xx, connection) stays pending in the ledger and ends the plan: the next cycle replays it under
the same key before anything else, and the venue answers a repeated key with its first result.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import structlog

from core.money import units_to_str, usd_to_units
from core.types import Move, MoveAction, Plan, Venue
from vault.ledger import FEES, GAS, Ledger
from vault.moves import (
    DryRunExecutor,
    Executor,
    MoveResult,
    MoveStatus,
    in_flight_account,
    move_from_dict,
    move_to_dict,
)
from vault.transport import OutcomeUnknown, Transport, VenueRefused

__all__ = [
    "DryRunExecutor",
    "Executor",
    "MoveResult",
    "MoveStatus",
    "OutcomeUnknown",
    "PaperExecutor",
    "VenueRefused",
    "booked_cost_units",
    "in_flight_account",
    "move_from_dict",
    "move_to_dict",
]

log = structlog.get_logger("vault.executor")


def booked_cost_units(postings: Iterable[tuple[str, int]]) -> int:
    """What a move cost as booked: the sum of its postings to the fees and gas accounts."""
    return sum(units for account, units in postings if account in (FEES, GAS))


class PaperExecutor:
    """The booking of moves: each venue answer, carried by ``transport``, posted exactly.

    ``bridge_wait_seconds``: how long ``execute`` waits (event-loop time) for bridge legs to fill
    before the deposits they fund; 0 checks once (a replayed market's clock does not move while
    the executor waits).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        ledger: Ledger,
        venues: Mapping[str, Venue],
        home_chain: str,
        clock: Callable[[], datetime],
        bridge_wait_seconds: float = 5.0,
        idempotency_window_seconds: float = 25 * 86_400,
    ):
        self.transport = transport
        self._ledger = ledger
        self._venues = venues
        self._home = home_chain
        self._clock = clock
        self._bridge_wait = bridge_wait_seconds
        # how long the venue remembers an idempotency key (the simulated market: 30 days)
        self._idempotency_window = idempotency_window_seconds

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self.transport.request(method, path, body)

    # -- bookkeeping per action ---------------------------------------------------------------

    def _with_gas(
        self, venue: Venue, action: MoveAction, postings: list[tuple[str, int]]
    ) -> list[tuple[str, int]]:
        """Add the move's gas, paid from home-chain idle, up to what is left there after the move itself."""
        gas_usd = (
            venue.costs.deposit_usd if action is MoveAction.DEPOSIT else venue.costs.withdraw_usd
        )
        home = f"idle:{self._home}"
        left = self._ledger.account(home) + sum(
            units for account, units in postings if account == home
        )
        gas = min(usd_to_units(gas_usd), max(left, 0))
        return postings + ([(home, -gas), (GAS, gas)] if gas > 0 else [])

    def _request(self, move: Move, requested: int) -> tuple[str, dict[str, Any]] | None:
        """The exact venue call for a move, sized by what the books hold now; None when nothing can move.

        It is written ahead with the move and replayed verbatim: a venue that already applied it
        answers the same key and body with its first result.
        """
        if move.action is MoveAction.BRIDGE:
            amount = min(requested, self._ledger.account(f"idle:{move.from_chain}"))
            body = {"from_chain": move.from_chain, "to_chain": move.to_chain}
        elif move.action is MoveAction.DEPOSIT:
            amount = min(
                requested, self._ledger.account(f"idle:{self._venues[move.venue_id].chain}")
            )
            body = {"venue": move.venue_id}
        else:
            amount = min(requested, self._ledger.account(f"position:{move.venue_id}"))
            body = {"venue": move.venue_id}
        if amount <= 0:
            return None
        return f"/{move.action}", {
            **body,
            "amount_usd": units_to_str(amount),
            "idempotency_key": move.idempotency_key,
        }

    def _whole_position(self, move: Move, body: Mapping[str, Any], exc: VenueRefused) -> int | None:
        """The venue's own position, when a withdrawal of everything the books hold was refused as
        larger than it (``exceeds position X``: the venue marked the position down since the sync,
        e.g. a falling depeg during an exit); None otherwise. The next sync books the difference."""
        if move.action is not MoveAction.WITHDRAW or exc.field != "amount_usd":
            return None
        found = re.search(r"exceeds position ([0-9]+(?:\.[0-9]+)?)", exc.reason)
        asked = usd_to_units(str(body["amount_usd"]))
        if found is None or asked < self._ledger.account(f"position:{move.venue_id}"):
            return None
        held = usd_to_units(found.group(1))
        return held if 0 < held < asked else None

    def postings_for(
        self, move: Move, amount: int, res: Mapping[str, Any]
    ) -> tuple[int, list[tuple[str, int]]]:
        """What the venue's answer means for the books: (applied units, balanced postings)."""
        if move.action is MoveAction.BRIDGE:
            fee = usd_to_units(res.get("fee_usd", "0"))
            if not 0 <= fee <= amount:
                raise OutcomeUnknown(
                    f"bridge: fee_usd {res.get('fee_usd')} outside [0, {units_to_str(amount)}]"
                )
            # Booked in flight; settle_in_flight lands it on the destination chain when filled.
            flight = in_flight_account(move.to_chain, "bridge", str(res["transfer_id"]))
            return amount - fee, [
                (f"idle:{move.from_chain}", -amount),
                (flight, amount - fee),
                (FEES, fee),
            ]
        venue = self._venues[move.venue_id]
        applied = usd_to_units(res["applied_usd"])
        if not 0 <= applied <= amount:
            raise OutcomeUnknown(
                f"{move.action} {venue.id}: applied_usd {res['applied_usd']} outside [0, {units_to_str(amount)}]"
            )
        if move.action is MoveAction.DEPOSIT:
            postings = [
                (f"idle:{venue.chain}", -amount),
                (f"position:{venue.id}", applied),
                (FEES, amount - applied),
            ]
        else:
            if res.get("status") == "queued":
                # Unbonding queue or redemption delay: the position shrinks now, the cash arrives later.
                destination = in_flight_account(
                    venue.chain, "withdrawal", f"{venue.id}/{res['withdrawal_id']}"
                )
            else:
                destination = f"idle:{venue.chain}"
            # the position shrinks by what was asked; what did not arrive (an unwind's swap, a
            # sale below floor) is a fee. Instant and queued kinds without exit costs: applied == amount
            postings = [
                (f"position:{venue.id}", -amount),
                (destination, applied),
                (FEES, amount - applied),
            ]
        return applied, self._with_gas(venue, move.action, postings)

    # -- public --------------------------------------------------------------------------------

    async def _run(
        self, move: Move, written: tuple[str, dict[str, Any]] | None = None
    ) -> MoveResult:
        """Run one move; ``written`` is the call written ahead by an earlier attempt (a replay)."""
        requested = usd_to_units(move.amount_usd)

        def result(
            status: MoveStatus, applied: int = 0, detail: str = "", cost: int = 0
        ) -> MoveResult:
            return MoveResult.of(move, status, applied, detail, cost)

        if move.action is not MoveAction.BRIDGE and move.venue_id not in self._venues:
            return result(MoveStatus.REFUSED, detail="venue_id: not a configured venue")
        call = written or self._request(move, requested)
        if call is None:
            return result(MoveStatus.SKIPPED, detail="nothing available to move")
        path, body = call
        for attempt in (1, 2):
            if written is None:
                self._ledger.begin_move(
                    self._clock(),
                    move.idempotency_key,
                    {"move": move_to_dict(move), "path": path, "body": body},
                )
            try:
                res = await self._call("POST", path, body)
                applied, postings = self.postings_for(move, usd_to_units(body["amount_usd"]), res)
            except VenueRefused as exc:
                self._ledger.abandon_move(move.idempotency_key)
                smaller = self._whole_position(move, body, exc) if attempt == 1 else None
                if smaller is None or written is not None:
                    return result(MoveStatus.REFUSED, detail=f"{exc.field}: {exc.reason}")
                # a refused write is not recorded at the venue: the key is free for the retry
                body = {**body, "amount_usd": units_to_str(smaller)}
                continue
            except OutcomeUnknown as exc:
                return result(MoveStatus.UNKNOWN, detail=str(exc))
            break
        self._ledger.finish_move(
            self._clock(), move.idempotency_key, str(move.action), postings, memo=move.venue_id
        )
        return result(MoveStatus.DONE, applied, cost=booked_cost_units(postings))

    async def execute(
        self, plan: Plan, should_stop: Callable[[], bool] = lambda: False
    ) -> list[MoveResult]:
        """Run the moves in order; stop early (cleanly, between moves) when ``should_stop()`` turns true."""
        results: list[MoveResult] = []
        for i, move in enumerate(plan.moves):
            if should_stop():
                break
            if (
                i
                and plan.moves[i - 1].action is MoveAction.BRIDGE
                and move.action is not MoveAction.BRIDGE
            ):
                # All bridge legs are sent; wait once, bounded, for fills before the deposits they fund.
                # What lands later stays idle on its chain for a later cycle.
                await self._await_fills()
            started = asyncio.get_running_loop().time()
            result = await self._run(move)
            results.append(result)
            log.info(
                "move",
                action=result.action,
                venue=result.venue_id,
                status=str(result.status),
                requested_usd=units_to_str(result.requested_units),
                applied_usd=units_to_str(result.applied_units),
                key=result.idempotency_key,
                detail=result.detail,
                seconds=round(asyncio.get_running_loop().time() - started, 3),
            )
            if result.status is MoveStatus.UNKNOWN:
                break  # later moves may depend on this one; it is replayed next cycle
        return results

    async def recover(self) -> list[MoveResult]:
        """Replay moves whose outcome was never booked (the process stopped mid-move).

        A move written ahead longer ago than the venue remembers keys
        (``idempotency_window_seconds``) is not replayed blindly (the venue would execute it a
        second time): the venue is asked first (:meth:`_ask_first`).
        """
        results = []
        for pending in self._ledger.pending_moves():
            move = move_from_dict(pending["move"])
            written = datetime.fromisoformat(pending["written_at"])
            age_seconds = (self._clock() - written).total_seconds()
            if age_seconds > self._idempotency_window:
                result = await self._ask_first(move, pending, age_seconds)
            else:
                log.info(
                    "move_replayed",
                    key=move.idempotency_key,
                    action=str(move.action),
                    venue=move.venue_id,
                )
                result = await self._run(move, written=(pending["path"], pending["body"]))
            results.append(result)
            if result.status is MoveStatus.UNKNOWN:
                break
        return results

    async def _ask_first(
        self, move: Move, pending: Mapping[str, Any], age_seconds: float
    ) -> MoveResult:
        """Did a move the venue no longer remembers happen? Its position says, and is booked.

        With ``A`` the amount written ahead and ``d`` the change in the venue's report against
        the books (up for a deposit, down for a withdrawal): ``d >= 0.9 A`` -> it happened
        (booked with ``min(d, A)`` applied; a queued withdrawal is found in ``/withdrawals`` by
        venue and amount); ``|d| < 0.1 A`` -> it did not (abandoned; a later plan may make it
        again); anything else, and any bridge leg, stays unresolved for a person (the daemon
        holds). Whatever the estimate leaves over (accrual, an entry fee) the next
        reconciliation checks like any other difference.
        """
        amount = usd_to_units(pending["body"]["amount_usd"])

        def result(
            status: MoveStatus, applied: int = 0, detail: str = "", cost: int = 0
        ) -> MoveResult:
            return MoveResult.of(move, status, applied, detail, cost)

        why = f"written {age_seconds / 86_400:.1f} days ago, beyond the venue's key memory"
        if move.action is MoveAction.BRIDGE or move.venue_id not in self._venues:
            return result(MoveStatus.UNKNOWN, detail=f"{why}: resolve by hand")
        reported = (await self.venue_positions()).get(move.venue_id, 0)
        books = self._ledger.account(f"position:{move.venue_id}")
        d = reported - books if move.action is MoveAction.DEPOSIT else books - reported
        log.warning(
            "move_asked_first",
            key=move.idempotency_key,
            action=str(move.action),
            venue=move.venue_id,
            amount_usd=units_to_str(amount),
            change_usd=units_to_str(d),
            age_days=round(age_seconds / 86_400, 2),
        )
        if abs(d) * 10 < amount:
            self._ledger.abandon_move(move.idempotency_key)
            return result(MoveStatus.REFUSED, detail=f"{why}: the venue shows it never happened")
        if d * 10 < amount * 9:
            return result(
                MoveStatus.UNKNOWN,
                detail=f"{why}: the venue's position moved {units_to_str(d)} of "
                f"{units_to_str(amount)}; resolve by hand",
            )
        applied = min(d, amount)
        answer: dict[str, Any] = {"applied_usd": units_to_str(applied), "status": "completed"}
        if move.action is MoveAction.WITHDRAW and self._venues[move.venue_id].exit_days > 0:
            listed = await self._call("GET", "/withdrawals")
            match = [
                w
                for w in listed.get("withdrawals", [])
                if w.get("venue") == move.venue_id
                and usd_to_units(w.get("amount_usd", "0")) == amount
            ]
            if len(match) != 1:
                return result(MoveStatus.UNKNOWN, detail=f"{why}: its queued withdrawal not found")
            answer = {**answer, "status": "queued", "withdrawal_id": match[0]["withdrawal_id"]}
        _, postings = self.postings_for(move, amount, answer)
        # It happened when it was written: what the position earned since then is accrual the
        # reconciliation may explain from that time on, not from now.
        written = datetime.fromisoformat(pending["written_at"])
        since = self._ledger.last_reconciled().get(move.venue_id)
        if since is None or since[0] > written:
            self._ledger.mark_reconciled(move.venue_id, written, since[1] if since else 0.0)
        self._ledger.finish_move(
            self._clock(),
            move.idempotency_key,
            str(move.action),
            postings,
            memo=f"{move.venue_id} (asked first: {why})",
        )
        return result(
            MoveStatus.DONE,
            applied,
            detail=f"{why}: the venue shows it happened",
            cost=booked_cost_units(postings),
        )

    async def venue_positions(self) -> dict[str, int]:
        """What the venue reports it holds for this vault's account: venue id -> base units.

        Only reported, never booked here: ``vault/reconcile.py`` checks it against the books.
        """
        res = await self._call("GET", "/positions")
        out: dict[str, int] = {}
        for row in res.get("positions", []):
            try:
                units = usd_to_units(row["position_usd"])
            except (KeyError, TypeError, ValueError) as exc:
                raise OutcomeUnknown(f"positions: unreadable row {row!r}: {exc}") from exc
            if units < 0:
                raise OutcomeUnknown(f"positions: {row.get('venue')} position_usd is negative")
            out[str(row.get("venue"))] = units
        return out

    async def settle_in_flight(self) -> None:
        """Land filled bridge transfers and settled queued withdrawals on their chain's idle account."""
        for flight, units in self._ledger.balances().in_flight_units.items():
            chain, kind, ref = flight.split("/", 2)
            path = (
                f"/bridge/{ref}" if kind == "bridge" else f"/withdrawals/{ref.rpartition('/')[2]}"
            )
            try:
                res = await self._call("GET", path)
            except VenueRefused as exc:
                # The venue no longer knows it (forgotten after its retention, or never ours):
                # where the money is cannot be told from here. Hold for a person.
                raise OutcomeUnknown(
                    f"in flight {flight} ({units_to_str(units)} USD): the venue does not know "
                    f"it ({exc}); resolve by hand"
                ) from exc
            if kind == "bridge":
                if res.get("status") != "filled":
                    continue
                received = min(usd_to_units(res.get("received_usd", units_to_str(units))), units)
            else:
                if res.get("status") != "settled":
                    continue
                received = units
            self._ledger.post(
                self._clock(),
                f"{kind}_settled",
                [
                    (f"in_flight:{flight}", -units),
                    (f"idle:{chain}", received),
                    (FEES, units - received),
                ],
                idempotency_key=f"{kind}_settled:{ref}",
            )

    async def _await_fills(self) -> None:
        """Wait, at most ``bridge_wait_seconds``, for bridge legs to fill so the deposits after them can run."""

        def bridging() -> bool:
            return any("/bridge/" in f for f in self._ledger.balances().in_flight_units)

        deadline = asyncio.get_running_loop().time() + self._bridge_wait
        while bridging():
            await self.settle_in_flight()
            if not bridging() or asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.05)
