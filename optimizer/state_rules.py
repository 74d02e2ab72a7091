"""Limits on a venue's *state* (a loop's health factor and leverage, an NFT floor's drawdown),
folded into the per-venue upper bound rather than written as LP rows.

Its own module so that :mod:`optimizer.cycle` (which folds the caps into ``ub``) and
:mod:`optimizer.limits` (which compiles the LP rows over the cycle) need not import each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from core.types import VenueSnapshot
from optimizer.config import RiskLimits

FloatArray = NDArray[np.float64]


def state_caps_usd(
    snaps: Sequence[VenueSnapshot], x0_usd: FloatArray, limits: RiskLimits
) -> FloatArray | None:
    """Per-venue caps of the limits on a venue's *state* (rules on each snapshot, folded into the
    per-venue upper bound ``ub`` rather than written as LP rows), ``None`` when none is set.

    For a venue of kind ``nft_rental``: ``floor_drawdown > max_nft_floor_drawdown`` (the floor
    oracle below its 7-day high by more than that): cap 0, sell (a stop-loss on the floor).

    For a venue of kind ``loop`` (its snapshot's ``state``):

    - ``health_factor < min_loop_health_factor`` or ``leverage > max_loop_leverage`` (our account
      now, e.g. after an stETH discount): cap 0, i.e. exit as far as the exit liquidity lets us
      (the box's ``max(ub, lb)`` keeps what cannot leave this cycle);
    - ``target_health_factor < min_loop_health_factor`` or ``target_leverage > max_loop_leverage``
      (the leverage new deposits would open at), or the collateral more than
      ``max_loop_collateral_discount`` below par (``steth_eth_price``): cap ``x0``, hold but never
      grow (a loop re-opened into a widening discount is the one that gets liquidated);
    - otherwise no cap. A loop snapshot without these state keys counts as unhealthy (cap 0): a
      loop whose risk cannot be read is not one to hold.
    """
    hf_min, lev_max = limits.min_loop_health_factor, limits.max_loop_leverage
    dd_max, disc_max = limits.max_nft_floor_drawdown, limits.max_loop_collateral_discount
    if hf_min is None and lev_max is None and dd_max is None and disc_max is None:
        return None
    caps = np.full(len(snaps), np.inf)
    for i, s in enumerate(snaps):
        st = s.state
        if str(s.venue.kind) == "nft_rental" and dd_max is not None:
            if not float(st.get("floor_drawdown", 1.0)) <= dd_max:
                caps[i] = 0.0
            continue
        if str(s.venue.kind) != "loop" or (hf_min is None and lev_max is None):
            continue
        hf = float(st.get("health_factor", 0.0))
        lev = float(st.get("leverage", np.inf))
        thf = float(st.get("target_health_factor", 0.0))
        tlev = float(st.get("target_leverage", np.inf))
        if (hf_min is not None and not hf >= hf_min) or (
            lev_max is not None and not lev <= lev_max
        ):
            caps[i] = 0.0
        elif (
            (hf_min is not None and not thf >= hf_min)
            or (lev_max is not None and not tlev <= lev_max)
            or (disc_max is not None and not float(st.get("steth_eth_price", 0.0)) >= 1 - disc_max)
        ):
            caps[i] = x0_usd[i]
    return caps
