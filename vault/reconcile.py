"""Reconciliation, not adoption: a venue's report is checked against what our own records imply.

For each venue, at each sync (time ``t``), with ``B`` the books' position (every recorded move
included), ``R`` the position the venue reports, ``t0`` the last time the two agreed (or the
first posting to the position), and ``a`` the venue's own rate (the larger of its APR at ``t0``
and now, real plus emission, from its feed):

    explained = B x max(a, 0) x (t - t0) / year x rate_slack
    tolerance = max(tolerance_usd, tolerance_ratio x B)
    mark      = B x (m / m0 - 1)      (lending, staking, fixed; m = the asset's price/peg now,
                                       m0 at t0; 0 where either is unknown or |m/m0 - 1| > max)
    R - B in [min(mark, 0) - tolerance, max(mark, 0) + explained + tolerance]
                                   ->  booked as accrual (income or loss: one
                                       transaction a sync, position/income legs per venue)
    otherwise                      ->  a reconciliation break

``rate_slack`` allows for a rate that moved within the interval and for fees paid in bursts (an
LP's volume); ``tolerance_ratio`` for rounding, impermanent loss between syncs and a small mark
move; ``mark_tolerance_ratio[kind]`` adds to it for the kinds valued at the market (a loop's
equity, an NFT floor, a hedged LP's residual). A venue that reports a position the books do not hold at all is a break the same way
(``B = 0``). A loss beyond the tolerance is a break too: the books follow no report they cannot
explain, in either direction.

A break books nothing: it is kept in the ledger's ``breaks`` table (venue, books, reported, the
explained bound, why) and refreshed at every sync while it lasts. A *surplus* (the venue reports more than the books
explain: where phantom money comes from) holds every move while it is open. A *shortfall* (less
than the books: an exploit, a slashing) cannot create money, and holding every move would keep the
vault from leaving the venue that lost it: while one is open no venue may grow (no new deposits
anywhere), the venue is frozen, and the optimizer plans with what the venue reports, so exits (the
guards', the operator's) still run (``vault/cycle.py: shortfall_directives``). Only an operator books it (:func:`book_break`, the CLI
``yieldvault ledger book-break`` and the operator API), as its own kind of transaction
(``break_booked``: position against ``equity:breaks``, with the reason), never as income.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field

from core.config import Strict
from core.money import units_to_str, usd_to_units
from core.types import AMOUNT_MARKED_KINDS
from vault.ledger import Break, Ledger

SECONDS_PER_YEAR = 365 * 86_400


class ReconcileSettings(Strict):
    # absolute slack for rounding between the venue's decimals and ours
    tolerance_usd: Annotated[float, Field(ge=0, le=1_000_000)] = 1.0
    # slack as a ratio of the position: rounding, impermanent loss, a small mark move per sync
    tolerance_ratio: Annotated[float, Field(ge=0, le=0.1)] = 0.0005
    # multiple of the venue's own rate an accrual may reach (rates move, LP fees come in bursts)
    rate_slack: Annotated[float, Field(ge=1, le=100)] = 3.0
    # extra slack, a ratio of the position, for the venue kinds valued at the market: a loop's
    # equity moves L times its collateral's price, an NFT position with the floor, a hedged LP by
    # its residual; a move within this per sync is booked as a gain or loss, beyond it a break
    mark_tolerance_ratio: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {"loop": 0.05, "hedged_lp": 0.01, "nft_rental": 0.15}
    )
    # how long the venue remembers an idempotency key (feed time); a move written ahead longer
    # ago is not replayed blindly: the venue's positions say whether it happened
    # (PaperExecutor._ask_first). The simulated market keeps keys 30 days.
    venue_idempotency_window_seconds: Annotated[float, Field(gt=0)] = 25 * 86_400.0
    # a lending, staking or fixed venue's report that moved with its asset's price against its peg
    # (price/peg from the coins feed, core/marks.py) since the last agreement is explained by it: a
    # stablecoin 12 bp above par is a booked gain, not a surplus break holding every move. Only a
    # move up to this ratio per sync is explained (a larger jump is a break for a person); 0: off
    price_mark_max_move_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1


#: kinds whose report the mark explains (valued ``amount x mark``: ``core.types``)
PRICE_MARKED_KINDS = AMOUNT_MARKED_KINDS


@dataclass(frozen=True, slots=True)
class VenueCheck:
    """One venue's report against the books at one sync."""

    venue: str
    books_units: int
    reported_units: int
    explained_units: int
    tolerance_units: int
    apr: float
    elapsed_seconds: float
    # what the asset's price/peg move since the last agreement explains (B x (m / m0 - 1))
    mark_units: int = 0

    @property
    def difference_units(self) -> int:
        return self.reported_units - self.books_units

    @property
    def ok(self) -> bool:
        """The band widens by the mark move toward its sign, never shifts: a report that moved
        with the mark and one that did not (a venue valued at par while the coins feed wobbles)
        both pass, so a price alone can never open a break."""
        d = self.difference_units
        low = min(self.mark_units, 0) - self.tolerance_units
        return low <= d <= max(self.mark_units, 0) + self.explained_units + self.tolerance_units

    def reason(self) -> str:
        d = self.difference_units
        sign = "+" if d >= 0 else "-"
        mark = f", its price/peg moved {units_to_str(self.mark_units)}" if self.mark_units else ""
        return (
            f"venue reports {units_to_str(self.reported_units)} USD, books hold "
            f"{units_to_str(self.books_units)}: {sign}{units_to_str(abs(d))} beyond what its rate "
            f"explains ({units_to_str(self.explained_units)} at {self.apr:.2%} APR over "
            f"{self.elapsed_seconds:.0f} s{mark}, tolerance {units_to_str(self.tolerance_units)})"
        )


def check_venue(
    venue: str,
    books_units: int,
    reported_units: int,
    apr_now: float,
    since: tuple[datetime, float] | None,
    now: datetime,
    cfg: ReconcileSettings,
    mark_ratio: float = 0.0,
    mark_move: float = 0.0,
) -> VenueCheck:
    """The bound above for one venue; ``since`` = (when it last agreed, its APR then);
    ``mark_ratio`` the venue kind's ``mark_tolerance_ratio`` (0 for accrual-only kinds);
    ``mark_move`` = ``m / m0 - 1`` of its asset's price/peg since then (0: none known), which
    widens the band by ``B x mark_move`` toward its sign (:attr:`VenueCheck.ok`)."""
    elapsed = max((now - since[0]).total_seconds(), 0.0) if since else 0.0
    apr = max(apr_now, since[1] if since else 0.0, 0.0)
    explained = int(books_units * apr * elapsed / SECONDS_PER_YEAR * cfg.rate_slack)
    tolerance = max(
        usd_to_units(cfg.tolerance_usd), int(books_units * (cfg.tolerance_ratio + mark_ratio))
    )
    mark_units = int(books_units * mark_move)
    return VenueCheck(
        venue, books_units, reported_units, explained, tolerance, apr, elapsed, mark_units
    )


def reconcile(
    ledger: Ledger,
    reported_units: Mapping[str, int],
    rates_apr: Mapping[str, float],
    now: datetime,
    cfg: ReconcileSettings,
    kinds: Mapping[str, str] | None = None,
    marks: Mapping[str, float] | None = None,
) -> list[VenueCheck]:
    """Check every venue the books or the report name; book what is explained, record breaks.
    ``kinds`` (venue id -> kind) selects each venue's ``mark_tolerance_ratio``; ``marks`` (venue
    id -> its asset's price/peg now, :func:`core.marks.peg_mark`) explains the report's move with
    the mark since the last agreement for the :data:`PRICE_MARKED_KINDS`, up to
    ``price_mark_max_move_ratio``, and is kept with each agreement.

    Returns the checks that are (still) breaks. A venue with an open break is never booked here,
    even when its report later falls back inside the bound: only an operator closes a break.
    """
    with ledger.atomically():  # the whole sync or none of it: one fsync
        books = {v: u for v, u in ledger.balances().positions_units.items()}
        last = ledger.last_reconciled()
        marks_then = ledger.reconciled_marks() if marks else {}
        marks_now = marks or {}
        open_breaks = {b.venue: b for b in ledger.open_breaks()}
        breaks: list[VenueCheck] = []
        legs: list[tuple[str, int]] = []  # position:<venue> +d / income:<venue> -d per venue
        accrued: list[str] = []
        agreed: list[tuple[str, float, float | None]] = []  # (venue, APR, mark) to remember
        for venue in sorted(set(books) | set(reported_units)):
            b, r = books.get(venue, 0), reported_units.get(venue, 0)
            if b == 0 and r == 0 and venue not in open_breaks:
                # agreed at nothing: a re-entry starts here
                agreed.append((venue, 0.0, marks_now.get(venue)))
                continue
            since = last.get(venue)
            if since is None:  # never agreed yet: since its first posting (read only then)
                first = ledger.first_posting(f"position:{venue}")
                since = (first, 0.0) if first is not None else None
            apr = float(rates_apr.get(venue, 0.0))
            kind = (kinds or {}).get(venue, "")
            mark = cfg.mark_tolerance_ratio.get(kind, 0.0)
            move = 0.0
            m_now, m_then = marks_now.get(venue), marks_then.get(venue)
            if kind in PRICE_MARKED_KINDS and m_now is not None and m_then is not None:
                move = m_now / m_then - 1.0
                if abs(move) > cfg.price_mark_max_move_ratio:
                    move = 0.0  # a jump this large is for a person to judge, not the mark
            check = check_venue(venue, b, r, apr, since, now, cfg, mark, move)
            if check.ok and venue not in open_breaks:
                if check.difference_units:
                    accrued.append(venue)
                    legs += [
                        (f"position:{venue}", check.difference_units),
                        (f"income:{venue}", -check.difference_units),
                    ]
                agreed.append((venue, max(apr, 0.0), marks_now.get(venue)))
                continue
            # An open break keeps the reason it was opened for while the report wanders back.
            reason = check.reason() if not check.ok else open_breaks[venue].reason
            ledger.record_break(now, venue, b, r, check.explained_units, reason)
            breaks.append(check)
        if legs:  # one transaction for the sync's accruals: the memo names its venues
            ledger.post(now, "accrual", legs, memo=",".join(accrued))
        ledger.mark_reconciled_many(now, agreed)
        return breaks


class NoOpenBreak(ValueError):
    pass


class StrandedMoney(Exception):
    """The books hold money at a venue the config no longer names (one line, naming it)."""


def stranded(ledger: Ledger, configured: set[str]) -> str | None:
    """Why the config would strand money (positions at venues it no longer names), or None."""
    from core.money import units_to_str

    gone = {v: u for v, u in ledger.balances().positions_units.items() if u and v not in configured}
    if not gone:
        return None
    names = ", ".join(f"{v} ({units_to_str(u)} USD)" for v, u in sorted(gone.items()))
    return (
        f"venues: the books hold {names} but the config no longer names "
        f"{'it' if len(gone) == 1 else 'them'}; put each back with `exit_only: true` to withdraw "
        "it (it stays in the books and the status until it is out)"
    )


def book_break(ledger: Ledger, venue: str, reason: str, at: datetime) -> Break:
    """The operator's action: book an open break's difference, with a reason (never as income).

    Raises NoOpenBreak naming the venues that do have one, and ValueError for an empty reason.
    """
    if not reason.strip():
        raise ValueError("reason: must say why the difference is real")
    by_venue = {b.venue: b for b in ledger.open_breaks()}
    brk = by_venue.get(venue)
    if brk is None:
        have = ", ".join(sorted(by_venue)) or "none"
        raise NoOpenBreak(f"venue: no open reconciliation break for {venue!r} (open: {have})")
    ledger.post_break(at, brk, reason.strip())
    return brk


def describe_break(brk: Break) -> dict[str, str]:
    """A break for the status API and logs (exact decimal strings)."""
    return {
        "venue": brk.venue,
        "detected_at": brk.detected_at,
        "updated_at": brk.updated_at,
        "books_usd": units_to_str(brk.books_units),
        "reported_usd": units_to_str(brk.reported_units),
        "difference_usd": units_to_str(brk.difference_units),
        "explained_usd": units_to_str(brk.explained_units),
        "reason": brk.reason,
    }
