"""The books' side of a rebalance cycle (``vault/cycle.py``): pure functions from the ledger's
balances and open breaks to what the optimizer sees (the portfolio, idle per chain, what is in
flight and when it lands) and to the directives a reconciliation break imposes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from core.money import units_to_usd
from core.types import NO_DIRECTIVES, Directives, PortfolioState, Venue, VenueSnapshot
from protocols import across
from vault.ledger import Balances, Ledger


def rates_of(snapshots: Sequence[VenueSnapshot]) -> dict[str, float]:
    """Each venue's own rate (real + emission APR) from its latest snapshot, frozen ones included
    (a frozen snapshot is the venue's last good data)."""
    out = {}
    for snap in snapshots:
        apr = snap.real_apr + snap.emission_apr
        if apr == apr and abs(apr) != float("inf"):
            out[snap.venue.id] = apr
    return out


def breaks_reason(ledger: Ledger) -> str | None:
    """Why the cycle holds for open *surplus* breaks (a venue reports more than the books and its
    rate explain: money we did not put there), or None.

    A surplus is where phantom money comes from (a deleted ledger, another vault's deposits, a
    replay that ran twice), so every move waits for an operator. A shortfall is handled by
    :func:`shortfall_directives` instead: it cannot create money, and holding every move would
    keep the vault from leaving an exploited venue.
    """
    breaks = [b for b in ledger.open_breaks() if b.reported_units > b.books_units]
    if not breaks:
        return None
    return "reconciliation break, every move held until an operator books it: " + "; ".join(
        f"{b.venue}: {b.reason}" for b in breaks
    )


def shortfall_directives(
    ledger: Ledger, portfolio: PortfolioState
) -> tuple[Directives, PortfolioState]:
    """Open *shortfall* breaks (a venue reports less than the books can explain): no new deposits
    anywhere and the venue frozen until an operator books the break, and the optimizer plans with
    what the venue reports (``min(books, reported)``), so an exit asks for no more than is there.

    The books themselves book nothing: the difference stays in the break for the operator.
    """
    short = {b.venue: b for b in ledger.open_breaks() if b.reported_units < b.books_units}
    if not short:
        return NO_DIRECTIVES, portfolio
    reasons = {v: f"reconciliation break: {b.reason}" for v, b in short.items()}
    directives = Directives(
        freeze=frozenset(short),
        no_new_deposits=True,
        reasons={**reasons, "*": "open reconciliation break(s): " + ", ".join(sorted(short))},
    )
    positions = {
        v: (min(x, units_to_usd(max(short[v].reported_units, 0))) if v in short else x)
        for v, x in portfolio.positions_usd.items()
    }
    return directives, dataclasses.replace(
        portfolio, positions_usd={v: x for v, x in positions.items() if x > 0}
    )


def in_flight_landing(
    flights: Mapping[str, int], venues: Mapping[str, Venue]
) -> tuple[tuple[float, float], ...]:
    """(days until it lands at the latest, USD) for each in-flight account of the ledger.

    A bridge transfer lands within Across' slow-fill window (an unfilled deposit is filled from
    the pool after the ~2 h challenge period, protocol_math.md §5.3); a queued withdrawal within
    its venue's exit time.
    """
    out = []
    for flight, units in flights.items():
        _, kind, ref = flight.split("/", 2)
        venue = venues.get(ref.partition("/")[0]) if kind == "withdrawal" else None
        days = venue.exit_days if venue is not None else across.SLOW_FILL_SECONDS / 86_400
        out.append((days, units_to_usd(units)))
    return tuple(out)


def portfolio_of(balances: Balances, venues: Mapping[str, Venue]) -> PortfolioState:
    """The books as the optimizer sees them (float USD; the ledger keeps the exact units)."""
    return PortfolioState(
        positions_usd={v: units_to_usd(u) for v, u in balances.positions_units.items() if u},
        idle_usd=units_to_usd(balances.total_idle_units),
        in_flight_usd=units_to_usd(balances.total_in_flight_units),
        in_flight_landing=in_flight_landing(balances.in_flight_units, venues),
        # idle per chain, as booked (idle:<chain>): the optimizer plans with it (optimizer README §4c)
        idle_by_chain_usd={c: units_to_usd(u) for c, u in balances.idle_units.items() if u},
    )
