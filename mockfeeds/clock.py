"""The simulated clock: wall time mapped to simulated epoch seconds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class SimClock:
    """Simulated epoch seconds = anchor + (wall - wall_anchor) * time_scale + manual offset.

    ``wall`` is injectable (defaults to ``time.monotonic``). ``time_scale`` 0 freezes the clock
    (tests and backtests then move it with :meth:`advance`).
    """

    def __init__(
        self, sim_start: float, time_scale: float, wall: Callable[[], float] | None = None
    ) -> None:
        if not math.isfinite(time_scale) or time_scale < 0:
            raise ValueError(f"time_scale must be a finite number >= 0, got {time_scale!r}")
        self._wall = wall or time.monotonic
        self._anchor_sim = sim_start
        self._anchor_wall = self._wall()
        self.time_scale = time_scale

    def now(self) -> float:
        return self._anchor_sim + (self._wall() - self._anchor_wall) * self.time_scale

    def set_time_scale(self, time_scale: float) -> None:
        if not math.isfinite(time_scale) or time_scale < 0:
            raise ValueError(f"time_scale must be a finite number >= 0, got {time_scale!r}")
        self._anchor_sim = self.now()
        self._anchor_wall = self._wall()
        self.time_scale = time_scale

    def advance(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"advance_seconds must be a finite number >= 0, got {seconds!r}")
        self._anchor_sim += seconds

    def reset_to(self, sim_time: float) -> None:
        self._anchor_sim = sim_time
        self._anchor_wall = self._wall()
