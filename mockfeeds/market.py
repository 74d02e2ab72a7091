"""The simulated market: a seeded world of venues evolving in (accelerated) simulated time,
our paper positions in it, scenarios and faults, saved atomically so a restart continues it.

Time: ``SimClock`` maps wall time to simulated time (``time_scale`` simulated seconds per wall
second; the wall clock is injectable). The world moves in steps of ``tick_seconds``;
:meth:`Market.sync` catches up to the clock and is called before every read and write, so a
response always reflects every whole tick up to now. Reproducible: the same seed and the same
sequence of writes give the same world.

Money: positions are exact ``Decimal`` amounts of the venue's asset at par (a stable token, or a
USD-hedged position for staking and LP); ``position_usd = amount * mark`` where the mark is 1
except during a depeg scenario on that chain and asset. Amounts cross the API as USD strings
with 6 decimals, rounded toward zero (:mod:`core.money`).

:class:`Market` is assembled from one room per concern, each a layer that uses only the layers
below it (so each file reads alone):

===================  =========================================================================
``state``            every field of the world, ``MarketError``, ``iso``, ``usd_str``, positions
``clock``            ``SimClock``: wall time -> simulated time
``pricing``          token prices, Across fees and limits per route
``feed_rows``        DefiLlama ``/pools`` rows and ``/chart`` history
``stepping``         warm-up, whole ticks up to the clock, settlement, pruning
``scenarios``        start / end / schedule / expire (per-name effects: ``scenario_kinds``)
``fault_book``       fault rules: add, remove, match
``paper``            deposit, withdraw, bridge, their views, idempotency
``persistence``      dump, load, atomic save
===================  =========================================================================

The venue models see the market only through :class:`mockfeeds.view.MarketView`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mockfeeds.clock import SimClock
from mockfeeds.config import MarketConfig, parse_market_config
from mockfeeds.fault_book import FaultBook
from mockfeeds.paper import PaperDesk
from mockfeeds.persistence import Persistence
from mockfeeds.scenarios import SCENARIOS, Scenarios
from mockfeeds.state import MarketError, iso, usd_str

__all__ = ["SCENARIOS", "Market", "MarketError", "SimClock", "iso", "usd_str"]


class Market(Scenarios, PaperDesk, FaultBook, Persistence):
    """One simulated world. Build with :meth:`from_config`; serve with :func:`mockfeeds.app.create_app`."""

    def __init__(
        self,
        cfg: MarketConfig,
        *,
        state_path: Path | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(cfg, state_path=state_path)
        for i, f in enumerate(cfg.faults):
            self.add_fault({k: v for k, v in f.model_dump().items()}, fault_id=f"cfg-{i}")
        loaded = False
        if self.state_path is not None and self.state_path.exists():
            try:
                saved = json.loads(self.state_path.read_text(encoding="utf-8"))
                self._load(saved)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"state file {self.state_path}: cannot resume from it ({exc}); move it away to start a new world"
                ) from exc
            loaded = True
        if not loaded:
            self._warm_up()
        self.clock = SimClock(self.state_time, cfg.time_scale, wall_clock)

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        *,
        state_path: Path | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> Market:
        """Validate a parsed market YAML (ValueError naming the field) and build the world,
        resuming from ``state_path`` when that file exists."""
        return cls(parse_market_config(cfg), state_path=state_path, wall_clock=wall_clock)

    # --- small views ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        self.sync()
        return {
            "sim_time": iso(self.state_time),  # the last tick (what the data describes)
            "clock_time": iso(
                self.clock.now()
            ),  # the simulated clock now (data is stamped up to it)
            "time_scale": self.clock.time_scale,
            "tick_seconds": self.cfg.tick_seconds,
            "ticks": self.ticks,
            "seed": self.cfg.seed,
            "eth_usd": self.eth_usd,
            "venues": [
                {
                    "id": v.id,
                    "kind": v.kind,
                    "chain": v.chain,
                    "base_apr": v.base_apr(self),
                    "reward_apr": v.reward_apr(self),
                    "tvl_usd": v.tvl_usd(self),
                    "available_usd": v.available_usd(self)
                    if math.isfinite(v.available_usd(self))
                    else None,
                    "position_usd": self.position_usd(v.id),
                    "paused": v.paused,
                    "halted": v.halted,
                }
                for v in self.venues
            ],
        }
