"""Idle per chain and the bridge legs a plan needs (README §4c), in NumPy over all venues.

Idle is booked per chain (the ledger's ``idle:<chain>``). After the venue moves, chain ``c`` holds
``I_c + Σ_{i on c} (x0_i - x_i)`` (a withdrawal from a queued venue is in flight, not idle); a chain
below its floor is topped up from home, and home, if then short of its floor plus the plan's gas,
from the chains with the most to spare. Nothing else is bridged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def chain_flows_usd(
    chains: Sequence[str],
    x0_usd: FloatArray,
    target_usd: FloatArray,
    queued: NDArray[np.bool_] | None,
    idle_on: dict[str, float],
) -> dict[str, float]:
    """Idle per chain right after the venue moves, before any bridge leg: ``I_c + Σ_{i on c}
    (x0_i - x_i)`` with a withdrawal from a queued venue in flight (not idle) until it settles."""
    delta = np.asarray(target_usd, dtype=float) - np.asarray(x0_usd, dtype=float)
    q = None if queued is None else np.asarray(queued, dtype=bool)
    # queued venues: a deposit spends idle, a withdrawal lands later; instant ones: the whole move
    freed = -delta if q is None or not q.any() else np.where(q, -np.maximum(delta, 0.0), -delta)
    out = {c: float(u) for c, u in idle_on.items()}
    names, inverse = _chain_index(chains)
    sums = np.bincount(inverse, weights=freed, minlength=len(names))
    for c, u in zip(names, sums.tolist(), strict=True):
        out[c] = out.get(c, 0.0) + u
    return out


_CHAIN_INDEX: dict[int, tuple[Sequence[str], tuple[list[str], NDArray[np.int64]]]] = {}


def _chain_index(chains: Sequence[str]) -> tuple[list[str], NDArray[np.int64]]:
    """(distinct chains, index of each venue's chain), cached for the last few chain lists (a cycle
    asks for the same one a dozen times; sorting 10k strings costs ~10 ms each time)."""
    hit = _CHAIN_INDEX.get(id(chains))
    if hit is not None and hit[0] is chains:
        return hit[1]
    where: dict[str, int] = {}
    idx = np.array([where.setdefault(c, len(where)) for c in chains], dtype=np.int64)
    result = (list(where), idx)
    if len(_CHAIN_INDEX) > 8:
        _CHAIN_INDEX.clear()
    _CHAIN_INDEX[id(chains)] = (chains, result)
    return result


def bridge_legs(
    chains: Sequence[str],
    x0_usd: FloatArray,
    target_usd: FloatArray,
    queued: NDArray[np.bool_] | None,
    idle_on: dict[str, float],
    min_on: dict[str, float],
    home_chain: str,
    home_spend_usd: float = 0.0,
    leg_gas_usd: float = 0.0,
) -> list[tuple[str, str, float]]:
    """The bridge legs a target needs, through home as the executor sends them (README §4c): a chain
    whose idle after the venue moves falls below its floor (``min_on``, 0 where absent) gets the
    shortfall from home; if home then falls below its own floor, the chains with idle above theirs
    send the rest, largest surplus first. Nothing else is bridged: capital stays where it lands.
    ``home_spend_usd``: what the plan pays from home idle besides (its gas); ``leg_gas_usd`` more per
    leg. Returns ``(from, to, USD)``; what no chain can cover is left short (the checker rejects it)."""
    after = chain_flows_usd(chains, x0_usd, target_usd, queued, idle_on)
    legs: list[tuple[str, str, float]] = []
    cents = 0.005
    for c in sorted(after):
        if c == home_chain:
            continue
        short = min_on.get(c, 0.0) - after[c]
        if short > cents:
            legs.append((home_chain, c, short))
            after[c] += short
            after[home_chain] = after.get(home_chain, 0.0) - short
    spend = home_spend_usd + leg_gas_usd * len(legs)
    need = min_on.get(home_chain, 0.0) - after.get(home_chain, 0.0) + spend
    if need > cents:
        need += leg_gas_usd  # the leg home pays its own gas too
        spare = sorted(
            ((after[c] - min_on.get(c, 0.0), c) for c in after if c != home_chain),
            reverse=True,
        )
        for surplus, c in spare:
            if need <= cents or surplus <= cents:
                break
            take = min(surplus, need)
            legs.append((c, home_chain, take))
            need -= take
    return legs
