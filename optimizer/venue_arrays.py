"""The model's per-venue facts that depend only on the venue set (costs, exit times, chains, which
venues are Across routes), in arrays, kept while the venue set stays the same.

The snapshots change every cycle; the :class:`core.types.Venue` records (static facts) rarely. A
pass over every venue in Python costs ~1 µs a venue and field on a loaded 2-core box, so reading
the same static facts three times a decide (the cycle's bounds and costs, the plan's prices, the
moves) was a few ms at 1,000 venues and tens of ms at 10,000. The key is the tuple of venues
itself (frozen dataclasses, compared element by element, identity first). The independent
checker keeps its own (:mod:`optimizer.checker_facts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.types import Venue

__all__ = ["VenueArrays"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class VenueArrays:
    """Static per-venue numbers in venue order (do not modify the arrays: they are shared)."""

    venues: tuple[Venue, ...]
    ids: list[str]
    chains: list[str]
    fee: FloatArray  # fee_bps / 1e4
    gas_in: FloatArray  # deposit gas, USD
    gas_out: FloatArray  # withdrawal gas, USD
    own_exit_days: FloatArray  # the venue's own exit time (no bridge)
    off_home: dict[str, NDArray[np.bool_]]  # home chain -> venue not on it
    across: NDArray[np.int64]  # indices of the Across routes (bridge fee quotes)

    @classmethod
    def of(cls, venues: Sequence[Venue]) -> VenueArrays:
        key = venues if isinstance(venues, tuple) else tuple(venues)
        last = _LAST.arrays
        if last is not None and last.venues == key:
            return last
        rows = [
            (v.costs.fee_bps, v.costs.deposit_usd, v.costs.withdraw_usd, v.exit_days) for v in key
        ]
        a = np.array(rows, dtype=float).reshape(len(key), 4)
        arrays = cls(
            venues=key,
            ids=[v.id for v in key],
            chains=[v.chain for v in key],
            fee=a[:, 0] / 1e4,
            gas_in=a[:, 1].copy(),
            gas_out=a[:, 2].copy(),
            own_exit_days=a[:, 3].copy(),
            off_home={},
            across=np.array(
                [i for i, v in enumerate(key) if v.protocol == "across"], dtype=np.int64
            ),
        )
        _LAST.arrays = arrays
        return arrays

    def not_on(self, home_chain: str) -> NDArray[np.bool_]:
        """Venues off ``home_chain`` (memoised per home chain)."""
        mask = self.off_home.get(home_chain)
        if mask is None:
            mask = np.array([c != home_chain for c in self.chains], dtype=bool)
            self.off_home[home_chain] = mask
        return mask


class _Last:
    """The arrays of the last venue set (one reference, read and replaced whole)."""

    arrays: VenueArrays | None = None


_LAST = _Last()
