"""A venue asset's mark against its peg, read from a snapshot: one definition for every room.

``mark = price / peg``: ``price`` is the snapshot's ``asset_price_usd`` (the coins feed for live
venues, added by the poller for venues with ``feed.asset_coin``; the replayed daily price in a
backtest); ``peg`` its ``peg_price_usd`` (e.g. ETH's price for stETH), else 1 USD for a USD-pegged
asset (:data:`core.types.USD_PEGGED`). The simulated market values a position as ``amount x mark``
(``mockfeeds/market.py``), like a stablecoin balance in USD. Unknown (None) when either is missing
or not positive: nothing is inferred from a price that is not there.
"""

from __future__ import annotations

import math

from core.types import USD_PEGGED, VenueSnapshot


def peg_mark(snap: VenueSnapshot) -> float | None:
    """``price / peg`` of the snapshot's asset, or None when it cannot be told."""
    price = snap.state.get("asset_price_usd")
    peg = snap.state.get("peg_price_usd")
    if peg is None and snap.venue.asset.upper() in USD_PEGGED:
        peg = 1.0
    if price is None or peg is None:
        return None
    p, q = float(price), float(peg)
    if not (math.isfinite(p) and math.isfinite(q) and p > 0 and q > 0):
        return None
    return p / q
