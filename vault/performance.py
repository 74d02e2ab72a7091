"""Realized yield, measured from the ledger (what the vault actually earned, not what was predicted).

Between two position syncs at feed times t0 < t1 (Δt in years):

* a venue's realized APR is ``r = earned / (position_0 x Δt)``, where ``earned`` is the yield the
  sync booked (the change of the venue's ``income:`` account, sign flipped; a loss is negative);
* the portfolio's realized net APR is ``r = (NAV_1 - NAV_0) / (NAV_0 x Δt)``: every fee and gas
  paid in between counts against it, since no capital enters or leaves after the first deposit.

Per-interval rates are noisy (an LP marks its impermanent loss tick by tick), so each is smoothed
with an exponentially weighted average in feed time: ``ewma += α (r - ewma)`` with
``α = 1 - exp(-Δt ln 2 / half_life)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

SECONDS_PER_YEAR = 31_536_000


class RealizedApr:
    def __init__(self, half_life_days: float = 1.0):
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
        self.half_life_seconds = half_life_days * 86_400
        self._last: tuple[datetime, int, dict[str, int], dict[str, int]] | None = None
        self.portfolio: float | None = None
        self.venues: dict[str, float] = {}

    def _blend(self, old: float | None, new: float, alpha: float) -> float:
        return new if old is None else old + alpha * (new - old)

    def update(
        self,
        at: datetime,
        nav_units: int,
        positions_units: Mapping[str, int],
        income_units: Mapping[str, int],
    ) -> None:
        """Record the books right after a sync; the first call only sets the starting point."""
        last = self._last
        self._last = (at, nav_units, dict(positions_units), dict(income_units))
        if last is None:
            return
        t0, nav0, positions0, income0 = last
        dt = (at - t0).total_seconds()
        if dt <= 0:
            return
        years = dt / SECONDS_PER_YEAR
        alpha = 1.0 - math.exp(-dt * math.log(2) / self.half_life_seconds)
        if nav0 > 0:
            self.portfolio = self._blend(self.portfolio, (nav_units - nav0) / (nav0 * years), alpha)
        for venue, held in positions0.items():
            if held <= 0:
                continue
            earned = -(income_units.get(venue, 0) - income0.get(venue, 0))
            self.venues[venue] = self._blend(self.venues.get(venue), earned / (held * years), alpha)
