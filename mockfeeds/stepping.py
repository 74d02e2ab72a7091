"""Stepping the world: warm-up history, whole ticks up to the clock, the price processes, each
venue's step (and the growth of our positions in it), settlement of queued withdrawals and
bridge transfers, and the retention pruning of old records."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal

from mockfeeds.feed_rows import FeedRows
from mockfeeds.state import DEC, Q18, RETENTION_SECONDS, iso
from mockfeeds.venues import DAY, N_NORMALS, SPY, LpVenue, StakingVenue, jump_happens, ou_step


class Stepping(FeedRows):
    """Moves the world in whole ticks of ``tick_seconds`` up to the clock."""

    def _warm_up(self) -> None:
        """Simulate ``history_days`` in daily steps before ``start_time`` (charts, SMA, mu/sigma)."""
        while self.state_time + DAY <= self.start + 1e-6:
            self._step(DAY)
        self.state_time = self.start
        # GBM is scale-free: rescale the simulated ETH path so the price at start_time is the
        # configured initial_usd (the pool ratios, IL and volatility are unchanged)
        factor = self.cfg.eth_price.initial_usd / self.eth_usd
        self.eth_usd = self.cfg.eth_price.initial_usd
        for chain, sym in self.tokens:
            if self.cfg.chains[chain].tokens[sym].kind == "eth":
                for point in self.price_history[f"{chain}:{sym}"]:
                    point[1] *= factor
        for v in self.venues:
            if isinstance(v, LpVenue):
                v.last_price = v.last_price * factor if v.last_price is not None else None
                for point in v.il_window:
                    point[1] *= factor
        self.version += 1

    def sync(self) -> int:
        """Advance the world to the clock; returns the number of ticks taken."""
        return self.advance_to(self.clock.now())

    def advance_to(self, sim_time: float) -> int:
        """Step whole ticks until the next tick would pass ``sim_time``."""
        n = 0
        tick = self.cfg.tick_seconds
        while self.state_time + tick <= sim_time + 1e-6:
            self._step(tick)
            n += 1
        return n

    def advance(self, seconds: float) -> int:
        """Move the clock forward by ``seconds`` simulated seconds and catch up (tests, backtests, admin)."""
        self.clock.advance(seconds)
        return self.sync()

    def _step_prices(self, t: float, dt: float) -> None:
        """ETH is a GBM; every token's basis is OU in bps with rare spikes. Sub-stepped hourly (so
        daily warm-up steps still leave an hourly price history for /coins/chart)."""
        ep = self.cfg.eth_price
        n_sub = max(1, math.ceil(dt / 3600 - 1e-9))
        h = dt / n_sub
        dd, dty = h / DAY, h / SPY
        for k in range(n_sub):
            z = self.rng.standard_normal(1 + 3 * len(self.tokens)).tolist()
            self.eth_usd *= math.exp(
                (ep.drift_annual - 0.5 * ep.sigma_annual**2) * dty
                + ep.sigma_annual * math.sqrt(dty) * z[0]
            )
            for i, (chain, sym) in enumerate(self.tokens):
                tok = self.cfg.chains[chain].tokens[sym]
                if tok.kind == "fixed":
                    continue
                key = f"{chain}:{sym}"
                x = ou_step(
                    self.basis_bps[key],
                    0.0,
                    tok.deviation_sigma_bps,
                    tok.reversion_per_day,
                    dd,
                    z[1 + 3 * i],
                )
                if jump_happens(
                    tok.spike_prob_per_day, dd, 0.5 * math.erfc(-z[2 + 3 * i] / math.sqrt(2.0))
                ):
                    x += tok.spike_bps if z[3 + 3 * i] >= 0 else -tok.spike_bps
                self.basis_bps[key] = x
            t0, t1 = t + k * h, t + (k + 1) * h
            if math.floor(t1 / 3600 + 1e-9) != math.floor(t0 / 3600 + 1e-9):
                hour = math.floor(t1 / 3600 + 1e-9) * 3600
                for chain, sym in self.tokens:
                    self.price_history[f"{chain}:{sym}"].append(
                        [hour, self.token_price(chain, sym)]
                    )

    def _step(self, dt: float) -> None:
        t = self.state_time
        dd = dt / DAY
        self._step_prices(t, dt)
        z = self.rng.standard_normal(1 + N_NORMALS * len(self.venues)).tolist()
        b = self.cfg.bridge
        self.hub_u = min(
            max(
                ou_step(
                    self.hub_u,
                    b.utilization,
                    b.utilization_sigma,
                    b.utilization_reversion_per_day,
                    dd,
                    z[0],
                ),
                0.0,
            ),
            0.99,
        )
        off = 1
        for j, v in enumerate(self.venues):
            zs = z[off + N_NORMALS * j : off + N_NORMALS * (j + 1)]
            g = v.step(t, dt, zs, self)
            if g == 1.0:
                continue
            grown = False
            for book in self.books().values():  # every paper account grows alike
                pos = book.get(v.id)
                if pos is not None and pos > 0:
                    pos = DEC.multiply(pos, Decimal(repr(g))).quantize(Q18, rounding=ROUND_DOWN)
                    book[v.id] = max(pos, Decimal(0))
                    grown = True
            if grown:
                v.ours_usd = self.ours_total_usd(v.id)
        self.state_time = t + dt
        self.ticks += 1
        if math.floor(self.state_time / DAY) != math.floor(t / DAY):
            self._record_day()
            self._prune()
        self._after_tick()
        self.version += 1
        self.dirty = True

    def _prune(self) -> None:
        """Forget idempotency records, settled withdrawals and filled transfers older than
        ``RETENTION_SECONDS`` of simulated time, so a long run's state file stays small."""
        horizon = self.state_time - RETENTION_SECONDS
        self.idempotency = {
            k: r for k, r in self.idempotency.items() if r.get("at", self.state_time) >= horizon
        }
        self.withdrawals = {
            k: w
            for k, w in self.withdrawals.items()
            if w["status"] == "pending" or w["settles_at_ts"] >= horizon
        }
        self.transfers = {
            k: t
            for k, t in self.transfers.items()
            if t["status"] == "in_flight" or t["arrives_at_ts"] >= horizon
        }

    def _after_tick(self) -> None:
        """What follows each tick: settle what came due (scenarios extend this)."""
        self._settle()

    def _settle(self) -> None:
        now = self.state_time
        for w in self.withdrawals.values():
            if w["status"] == "pending" and w["settles_at_ts"] <= now:
                w["status"] = "settled"
                v = self.by_id.get(w["venue"])
                if isinstance(v, StakingVenue):
                    eth = w.get("amount_eth", 0.0)
                    v.ours_queued_eth = max(0.0, v.ours_queued_eth - eth)
                    v.queue_eth = max(0.0, v.queue_eth - eth)
        for tr in self.transfers.values():
            if tr["status"] != "in_flight":
                continue
            halt_end = max(
                self.halted_chains.get(tr["from_chain"], 0.0),
                self.halted_chains.get(tr["to_chain"], 0.0),
            )
            if halt_end > now:
                tr["arrives_at_ts"] = max(tr["arrives_at_ts"], halt_end)
                tr["arrives_at"] = iso(tr["arrives_at_ts"])
            elif tr["arrives_at_ts"] <= now:
                tr["status"] = "filled"
