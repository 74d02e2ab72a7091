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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Context, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from mockfeeds.config import MarketConfig, parse_market_config
from mockfeeds.faults import FaultRule
from mockfeeds.venues import (
    DAY,
    N_NORMALS,
    SPY,
    BridgeArbVenue,
    LendingVenue,
    LpVenue,
    StakingVenue,
    VenueModel,
    build_venue,
    jump_happens,
    ou_step,
)
from protocols import across, lido

STATE_VERSION = 1
DEC = Context(prec=40)
Q6 = Decimal("0.000001")
Q18 = Decimal("1e-18")
HISTORY_MAX_DAYS = 400
PRICE_HISTORY_HOURS = 24 * 30
# idempotency keys, settled withdrawals and transfers are kept this long
RETENTION_SECONDS = 30 * 86_400.0

SCENARIOS = ("rate_spike", "exploit", "depeg", "slashing", "bridge_halt", "liquidity_crunch")


class MarketError(Exception):
    """A refused request: ``status`` (4xx), the offending ``field`` and the ``reason``."""

    def __init__(self, field: str | None, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"field": self.field, "reason": self.reason}}


def iso(t: float) -> str:
    """Epoch seconds -> ISO 8601 UTC with a Z suffix, millisecond precision."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def usd_str(d: Decimal) -> str:
    """Exact USD string with 6 decimals, rounded toward zero."""
    return str(d.quantize(Q6, rounding=ROUND_DOWN))


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


class Market:
    """One simulated world. Build with :meth:`from_config`; serve with :func:`mockfeeds.app.create_app`."""

    def __init__(
        self,
        cfg: MarketConfig,
        *,
        state_path: Path | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.cfg = cfg
        self.state_path = Path(state_path) if state_path is not None else None
        self.start = cfg.start_time.timestamp()
        self.epoch0 = self.start - cfg.history_days * DAY
        self.venues: list[VenueModel] = [build_venue(v, cfg, self.epoch0) for v in cfg.venues]
        self.by_id: dict[str, VenueModel] = {v.id: v for v in self.venues}
        self.by_pool: dict[str, str] = {v.pool_uuid: v.id for v in cfg.venues}
        self.rng = np.random.Generator(np.random.PCG64(cfg.seed))
        self.fault_rng = np.random.Generator(np.random.PCG64(cfg.seed + 1))
        self.tokens: list[tuple[str, str]] = [
            (c, s) for c, ch in cfg.chains.items() for s in ch.tokens
        ]
        self.basis_bps: dict[str, float] = {f"{c}:{s}": 0.0 for c, s in self.tokens}
        self.marks: dict[str, float] = {}  # "chain:symbol" -> depeg mark (scenario)
        self.eth_usd = cfg.eth_price.initial_usd
        self.hub_u = cfg.bridge.utilization
        self.positions: dict[str, Decimal] = {}
        self.withdrawals: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.scenarios: dict[str, dict[str, Any]] = {}
        self.faults: dict[str, FaultRule] = {}
        self.halted_chains: dict[str, float] = {}  # chain -> halt end (sim time)
        self.scheduled_started: list[int] = []  # indices of cfg.scenarios already started
        self.history: dict[str, deque[dict[str, Any]]] = {
            v.id: deque(maxlen=HISTORY_MAX_DAYS) for v in self.venues
        }
        self.price_history: dict[str, deque[list[float]]] = {
            f"{c}:{s}": deque(maxlen=PRICE_HISTORY_HOURS) for c, s in self.tokens
        }
        self.state_time = self.epoch0
        self.ticks = 0
        self.version = 0
        self.dirty = False
        self._cache: dict[str, Any] = {}
        self._cache_version = -1
        self._seq = 0
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

    # --- construction ---------------------------------------------------------------------------
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

    # --- prices -------------------------------------------------------------------------------
    def eth_price_usd(self) -> float:
        return self.eth_usd

    def token_price(self, chain: str, symbol: str) -> float:
        tok = self.cfg.chains[chain].tokens[symbol]
        key = f"{chain}:{symbol}"
        if tok.kind == "fixed":
            return tok.price_usd
        base = self.eth_usd if tok.kind == "eth" else tok.price_usd * self.marks.get(key, 1.0)
        return base * (1.0 + self.basis_bps[key] / 10_000)

    def coin_key(self, chain: str, symbol: str) -> str:
        return f"{chain}:{self.cfg.chains[chain].tokens[symbol].address.lower()}"

    def bridge_fee_pct(
        self,
        amount_usd: float,
        rate_model: across.RateModel | None = None,
        *,
        include_gas: bool,
        to_chain: str | None = None,
    ) -> float:
        """Across ``totalRelayFee.pct`` for ``amount_usd`` (LP fee over the hub utilization move + capital fee
        [+ destination gas])."""
        b = self.cfg.bridge
        model = rate_model or across.RateModel(
            b.rate_model.ubar, b.rate_model.r0, b.rate_model.r1, b.rate_model.r2
        )
        liquid = b.hub_liquidity_usd * (1.0 - self.hub_u)
        utilized = b.hub_liquidity_usd * self.hub_u
        u1 = across.utilization_after(liquid, utilized, amount_usd)
        lp = across.lp_fee_pct(model, self.hub_u, u1)
        cap = across.capital_fee_pct(
            amount_usd,
            across.CapitalFeeConfig(
                b.capital_fee.lower_bound, b.capital_fee.upper_bound, b.capital_fee.cutoff
            ),
        )
        gas = (
            across.gas_fee_pct(self.cfg.chains[to_chain].fill_gas_usd, amount_usd)
            if include_gas and to_chain
            else 0.0
        )
        return lp + cap + gas

    def route_venue(self, from_chain: str, to_chain: str) -> BridgeArbVenue | None:
        for v in self.venues:
            if (
                isinstance(v, BridgeArbVenue)
                and v.c.origin_chain == from_chain
                and v.c.destination_chain == to_chain
            ):
                return v
        return None

    def route_limits_usd(self, from_chain: str, to_chain: str) -> dict[str, float]:
        """Across ``/limits`` for a route in USD. An arb venue's route reports its capacity as
        ``maxDepositInstant`` (what relayers fill at once); a halted route reports zeros."""
        b = self.cfg.bridge
        if (
            max(self.halted_chains.get(from_chain, 0.0), self.halted_chains.get(to_chain, 0.0))
            > self.state_time
        ):
            return dict.fromkeys(
                (
                    "minDeposit",
                    "maxDeposit",
                    "maxDepositInstant",
                    "maxDepositShortDelay",
                    "recommendedDepositInstant",
                ),
                0.0,
            )
        rv = self.route_venue(from_chain, to_chain)
        instant = (
            min(rv.c.capacity_usd, b.max_deposit_instant_usd)
            if rv is not None
            else b.max_deposit_instant_usd
        )
        short = max(b.max_deposit_short_delay_usd, instant)
        return {
            "minDeposit": b.min_deposit_usd,
            "maxDeposit": max(b.max_deposit_usd, short),
            "maxDepositInstant": instant,
            "maxDepositShortDelay": short,
            "recommendedDepositInstant": instant,
        }

    def route_rate_model(self, from_chain: str, to_chain: str) -> across.RateModel | None:
        rv = self.route_venue(from_chain, to_chain)
        return rv.rate_model if rv is not None else None

    # --- time -------------------------------------------------------------------------------
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
            pos = self.positions.get(v.id)
            if pos is not None and pos > 0 and g != 1.0:
                pos = DEC.multiply(pos, Decimal(repr(g))).quantize(Q18, rounding=ROUND_DOWN)
                self.positions[v.id] = max(pos, Decimal(0))
                v.ours_usd = float(self.position_usd_dec(v.id))
        self.state_time = t + dt
        self.ticks += 1
        if math.floor(self.state_time / DAY) != math.floor(t / DAY):
            self._record_day()
            self._prune()
        self._settle()
        self._expire_scenarios()
        self._start_scheduled()
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

    # --- positions ----------------------------------------------------------------------------
    def mark(self, venue_id: str) -> Decimal:
        v = self.by_id[venue_id]
        m = self.marks.get(f"{v.chain}:{v.asset}")
        return Decimal(repr(m)) if m is not None else Decimal(1)

    def position_usd_dec(self, venue_id: str) -> Decimal:
        pos = self.positions.get(venue_id, Decimal(0))
        return DEC.multiply(pos, self.mark(venue_id))

    def position_usd(self, venue_id: str) -> str:
        return usd_str(self.position_usd_dec(venue_id))

    def venue(self, venue_id: Any, field: str = "venue") -> VenueModel:
        if not isinstance(venue_id, str) or venue_id not in self.by_id:
            raise MarketError(
                field, f"unknown venue {venue_id!r}", 404 if field == "venue_path" else 422
            )
        return self.by_id[venue_id]

    # --- paper execution -------------------------------------------------------------------------
    def _idempotent(self, key: Any, op: str, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(key, str) or not 1 <= len(key) <= 200:
            raise MarketError("idempotency_key", "must be a string of 1 to 200 characters")
        rec = self.idempotency.get(key)
        if rec is None:
            return None
        if rec["op"] != op or rec["fingerprint"] != fingerprint:
            raise MarketError(
                "idempotency_key",
                f"already used for a different request ({rec['op']} {rec['fingerprint']})",
                409,
            )
        return rec["response"]

    def _remember(
        self, key: str, op: str, fingerprint: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]:
        self.idempotency[key] = {
            "op": op,
            "fingerprint": fingerprint,
            "response": response,
            "at": self.state_time,
        }
        self.version += 1
        self.dirty = True
        return response

    @staticmethod
    def parse_amount(raw: Any, field: str = "amount_usd") -> Decimal:
        """A positive USD decimal string with at most 6 decimals -> Decimal (MarketError otherwise)."""
        if not isinstance(raw, str):
            raise MarketError(field, 'must be a decimal string, e.g. "1000.000000"')
        try:
            d = Decimal(raw.strip())
        except ArithmeticError:
            raise MarketError(field, f"not a decimal number: {raw!r}") from None
        if not d.is_finite():
            raise MarketError(field, "must be finite")
        if d <= 0:
            raise MarketError(field, "must be > 0")
        if d != d.quantize(Q6, rounding=ROUND_DOWN):
            raise MarketError(field, "at most 6 decimals")
        if d > Decimal("1e12"):
            raise MarketError(field, "must be <= 1000000000000")
        return d

    def deposit(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        """Supply ``amount_usd`` to a venue. The pool state changes at once (utilization, TVL, share)."""
        self.sync()
        amount = self.parse_amount(amount_usd)
        fp = {"venue": venue_id, "amount_usd": usd_str(amount)}
        prior = self._idempotent(idempotency_key, "deposit", fp)
        if prior is not None:
            return prior
        v = self.venue(venue_id)
        if v.paused:
            raise MarketError("venue", f"venue {v.id} is paused (exploit scenario)")
        if v.halted:
            raise MarketError("venue", f"venue {v.id} is halted (bridge halt scenario)")
        if v.kind == "fixed":
            fc = v.cfg.fixed
            assert fc is not None
            if float(amount) < fc.min_purchase_usd:
                raise MarketError(
                    "amount_usd", f"below the product's minimum purchase {fc.min_purchase_usd}"
                )
        limit = v.deposit_limit_usd(self)
        if float(amount) > limit:
            raise MarketError("amount_usd", f"exceeds the venue's remaining capacity {limit:.6f}")
        cost = v.entry_cost_fraction(float(amount), self)
        applied = DEC.multiply(amount, Decimal(repr(1.0 - cost))).quantize(Q6, rounding=ROUND_DOWN)
        mark = self.mark(v.id)
        tokens = DEC.divide(applied, mark)
        self.positions[v.id] = self.positions.get(v.id, Decimal(0)) + tokens
        v.on_deposit(float(applied), self)
        v.ours_usd = float(self.position_usd_dec(v.id))
        resp = {
            "venue": v.id,
            "action": "deposit",
            "status": "completed",
            "amount_usd": usd_str(amount),
            "applied_usd": usd_str(applied),
            "fee_usd": usd_str(amount - applied),
            "position_usd": self.position_usd(v.id),
            "idempotency_key": idempotency_key,
            "sim_time": iso(self.state_time),
        }
        return self._remember(idempotency_key, "deposit", fp, resp)

    def withdraw(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        """Take ``amount_usd`` out. Bounded by our position and by what the pool can pay now
        (lending: available liquidity; crunch scenarios: the cap). Queued venues (staking queue,
        fixed-product redemption) reduce the position now and pay out at ``settles_at``."""
        self.sync()
        amount = self.parse_amount(amount_usd)
        fp = {"venue": venue_id, "amount_usd": usd_str(amount)}
        prior = self._idempotent(idempotency_key, "withdraw", fp)
        if prior is not None:
            return prior
        v = self.venue(venue_id)
        if v.paused:
            raise MarketError(
                "venue", f"venue {v.id} is paused (exploit scenario); withdrawals are refused"
            )
        if v.halted:
            raise MarketError(
                "venue", f"venue {v.id} is halted (bridge halt scenario); inventory is stuck"
            )
        pos = self.position_usd_dec(v.id)
        if amount > pos:
            raise MarketError("amount_usd", f"exceeds position {usd_str(pos)}")
        available = v.available_usd(self) * float(self.mark(v.id))
        if float(amount) > available + 1e-9:
            raise MarketError("amount_usd", f"exceeds available liquidity {available:.2f}")
        delay = v.withdrawal_delay_seconds(float(amount), self.state_time, self)
        mark = self.mark(v.id)
        tokens = DEC.divide(amount, mark)
        if amount == pos:
            tokens = self.positions[v.id]
        self.positions[v.id] = max(self.positions[v.id] - tokens, Decimal(0))
        v.on_withdraw(float(amount), self)
        v.ours_usd = float(self.position_usd_dec(v.id))
        resp: dict[str, Any] = {
            "venue": v.id,
            "action": "withdraw",
            "amount_usd": usd_str(amount),
            "applied_usd": usd_str(amount),
            "fee_usd": "0.000000",
            "position_usd": self.position_usd(v.id),
            "idempotency_key": idempotency_key,
            "sim_time": iso(self.state_time),
        }
        if delay > 0:
            wid = "w-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
            settles = self.state_time + delay
            rec = {
                "withdrawal_id": wid,
                "venue": v.id,
                "amount_usd": usd_str(amount),
                "requested_at": iso(self.state_time),
                "settles_at": iso(settles),
                "settles_at_ts": settles,
                "status": "pending",
            }
            if isinstance(v, StakingVenue):
                eth = float(amount) / self.eth_usd
                rec["amount_eth"] = eth
                v.ours_queued_eth += eth
                v.queue_eth += eth
            self.withdrawals[wid] = rec
            resp.update(status="queued", withdrawal_id=wid, settles_at=iso(settles))
        else:
            resp.update(status="completed", withdrawal_id=None, settles_at=iso(self.state_time))
        return self._remember(idempotency_key, "withdraw", fp, resp)

    def bridge(
        self, from_chain: Any, to_chain: Any, amount_usd: Any, idempotency_key: Any
    ) -> dict[str, Any]:
        """Bridge the accounting token between chains through Across: fee = LP + capital + gas,
        arrival after the fill time (delayed while a bridge halt covers either chain)."""
        self.sync()
        amount = self.parse_amount(amount_usd)
        fp = {"from_chain": from_chain, "to_chain": to_chain, "amount_usd": usd_str(amount)}
        prior = self._idempotent(idempotency_key, "bridge", fp)
        if prior is not None:
            return self.transfer(prior["transfer_id"])
        for field, chain in (("from_chain", from_chain), ("to_chain", to_chain)):
            if not isinstance(chain, str) or chain not in self.cfg.chains:
                raise MarketError(
                    field, f"unknown chain {chain!r}; known: {sorted(self.cfg.chains)}"
                )
            if self.cfg.bridge.token not in self.cfg.chains[chain].tokens:
                raise MarketError(field, f"chain {chain} has no {self.cfg.bridge.token}")
            if self.halted_chains.get(chain, 0.0) > self.state_time:
                raise MarketError(
                    field, f"bridging on {chain} is halted until {iso(self.halted_chains[chain])}"
                )
        if from_chain == to_chain:
            raise MarketError("to_chain", "must differ from from_chain")
        b = self.cfg.bridge
        amt = float(amount)
        if amt < b.min_deposit_usd:
            raise MarketError(
                "amount_usd", f"below the route's minimum deposit {b.min_deposit_usd}"
            )
        if amt > b.max_deposit_usd:
            raise MarketError(
                "amount_usd", f"exceeds the route's maximum deposit {b.max_deposit_usd}"
            )
        limits = self.route_limits_usd(from_chain, to_chain)
        pct = self.bridge_fee_pct(
            amt, self.route_rate_model(from_chain, to_chain), include_gas=True, to_chain=to_chain
        )
        fee = DEC.multiply(amount, Decimal(repr(pct))).quantize(Q6, rounding=ROUND_DOWN)
        fee = min(fee, amount)
        fill = across.fill_time_seconds(
            amt,
            self.cfg.chains[from_chain].instant_fill_seconds,
            limits["maxDepositInstant"],
            limits["maxDepositShortDelay"],
        )
        tid = "t-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        arrives = self.state_time + fill
        rec = {
            "transfer_id": tid,
            "from_chain": from_chain,
            "to_chain": to_chain,
            "amount_usd": usd_str(amount),
            "fee_usd": usd_str(fee),
            "received_usd": usd_str(amount - fee),
            "created_at": iso(self.state_time),
            "arrives_at": iso(arrives),
            "arrives_at_ts": arrives,
            "status": "in_flight",
            "idempotency_key": idempotency_key,
        }
        self.transfers[tid] = rec
        self._remember(idempotency_key, "bridge", fp, {"transfer_id": tid})
        return self.transfer(tid)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        self.sync()
        rec = self.transfers.get(transfer_id)
        if rec is None:
            raise MarketError("transfer_id", f"unknown transfer {transfer_id!r}", 404)
        out = {k: v for k, v in rec.items() if not k.endswith("_ts")}
        out["sim_time"] = iso(self.state_time)
        return out

    def bridge_replay(self, idempotency_key: str) -> dict[str, Any] | None:
        rec = self.idempotency.get(idempotency_key)
        if rec is None or rec["op"] != "bridge":
            return None
        return self.transfer(rec["response"]["transfer_id"])

    def withdrawal(self, withdrawal_id: str) -> dict[str, Any]:
        self.sync()
        rec = self.withdrawals.get(withdrawal_id)
        if rec is None:
            raise MarketError("withdrawal_id", f"unknown withdrawal {withdrawal_id!r}", 404)
        return {k: v for k, v in rec.items() if not k.endswith("_ts") and k != "amount_eth"}

    def positions_view(self) -> dict[str, Any]:
        self.sync()
        pending: dict[str, Decimal] = {}
        for w in self.withdrawals.values():
            if w["status"] == "pending":
                pending[w["venue"]] = pending.get(w["venue"], Decimal(0)) + Decimal(w["amount_usd"])
        in_flight = sum(
            (
                Decimal(t["amount_usd"])
                for t in self.transfers.values()
                if t["status"] == "in_flight"
            ),
            Decimal(0),
        )
        rows = []
        for v in self.venues:
            if v.id in self.positions or v.id in pending:
                rows.append(
                    {
                        "venue": v.id,
                        "position_usd": self.position_usd(v.id),
                        "pending_withdrawal_usd": usd_str(pending.get(v.id, Decimal(0))),
                    }
                )
        return {
            "positions": rows,
            "in_flight_bridge_usd": usd_str(in_flight),
            "sim_time": iso(self.state_time),
        }

    # --- scenarios ---------------------------------------------------------------------------
    def start_scenario(self, spec: Mapping[str, Any], *, sync: bool = True) -> dict[str, Any]:
        """Start a named stress event (see mockfeeds/README.md "Scenarios"); returns its record."""
        if sync:
            self.sync()
        if not isinstance(spec, Mapping):
            raise MarketError(None, "body must be a JSON object")
        name = spec.get("name")
        if name not in SCENARIOS:
            raise MarketError("name", f"unknown scenario {name!r}; known: {list(SCENARIOS)}")
        duration = spec.get("duration_seconds", 86_400.0)
        if (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not math.isfinite(duration)
            or duration <= 0
        ):
            raise MarketError("duration_seconds", "must be a number > 0 (simulated seconds)")
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise MarketError("params", "must be an object")

        def num(key: str, default: float, lo: float, hi: float) -> float:
            val = params.get(key, default)
            if (
                isinstance(val, bool)
                or not isinstance(val, (int, float))
                or not math.isfinite(val)
                or not lo <= val <= hi
            ):
                raise MarketError(f"params.{key}", f"must be a number in [{lo}, {hi}]")
            return float(val)

        self._seq += 1
        sid = f"s-{self._seq}"
        now = self.state_time
        rec: dict[str, Any] = {
            "scenario_id": sid,
            "name": name,
            "started_at": iso(now),
            "ends_at": iso(now + duration),
            "ends_at_ts": now + duration,
            "active": True,
        }
        if name in ("rate_spike", "exploit", "slashing", "liquidity_crunch"):
            v = self.venue(spec.get("venue"))
            rec["venue"] = v.id
            if name == "rate_spike":
                if not isinstance(v, LendingVenue):
                    raise MarketError("venue", "rate_spike applies to lending venues")
                u = num("utilization", 0.97, 0.0, 0.999)
                v.pin(u)
                rec["params"] = {"utilization": u}
            elif name == "exploit":
                f = num("loss_fraction", 0.5, 0.0, 1.0)
                self._apply_loss(v, f)
                v.paused = True
                if v.kind == "fixed":
                    v.can_redeem = False  # type: ignore[attr-defined]
                rec["params"] = {"loss_fraction": f}
            elif name == "slashing":
                if not isinstance(v, StakingVenue):
                    raise MarketError("venue", "slashing applies to staking venues")
                n = int(num("validators", 100, 1, 1_000_000))
                loss = lido.slashing_loss_fraction(n, v.total_pooled_eth, v.c.total_staked_eth)
                v.pending_loss = 1.0 - (1.0 - v.pending_loss) * (1.0 - loss)
                v.bunker = True
                rec["params"] = {
                    "validators": n,
                    "loss_fraction": loss,
                    "applied_at_next_report": iso(v.next_report_after(now)),
                }
            else:
                if isinstance(v, LendingVenue):
                    frac = num("available_fraction", 0.001, 0.0, 1.0)
                    v.pin(1.0 - frac)
                    rec["params"] = {"available_fraction": frac}
                else:
                    cap = num("cap_usd", 0.0, 0.0, 1e15)
                    v.withdraw_cap_usd = cap
                    rec["params"] = {"cap_usd": cap}
        elif name == "depeg":
            chain, sym = spec.get("chain"), spec.get("token")
            if chain not in self.cfg.chains:
                raise MarketError("chain", f"unknown chain {chain!r}")
            tok = self.cfg.chains[chain].tokens.get(sym) if isinstance(sym, str) else None
            if tok is None or tok.kind != "stable":
                raise MarketError("token", f"chain {chain} has no stable token {sym!r}")
            price = num("price", 0.95, 0.0001, 2.0)
            recover = params.get("recover", True)
            if not isinstance(recover, bool):
                raise MarketError("params.recover", "must be true or false")
            self.marks[f"{chain}:{sym}"] = price
            rec.update(chain=chain, token=sym, params={"price": price, "recover": recover})
        else:  # bridge_halt
            chain = spec.get("chain")
            if chain not in self.cfg.chains:
                raise MarketError("chain", f"unknown chain {chain!r}")
            self.halted_chains[chain] = max(self.halted_chains.get(chain, 0.0), now + duration)
            for v in self.venues:
                if isinstance(v, BridgeArbVenue) and chain in (
                    v.c.origin_chain,
                    v.c.destination_chain,
                ):
                    v.halted = True
            rec.update(chain=chain, params={})
        for v in self.venues:
            v.ours_usd = (
                float(self.position_usd_dec(v.id)) if v.id in self.positions else v.ours_usd
            )
        self.scenarios[sid] = rec
        self.version += 1
        self.dirty = True
        return self.scenario_public(rec)

    @staticmethod
    def scenario_public(rec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rec.items() if not k.endswith("_ts")}

    def _apply_loss(self, v: VenueModel, f: float) -> None:
        keep = 1.0 - f
        if v.id in self.positions:
            self.positions[v.id] = DEC.multiply(self.positions[v.id], Decimal(repr(keep))).quantize(
                Q18, rounding=ROUND_DOWN
            )
        if isinstance(v, LendingVenue):
            v.s_others *= keep
            v.s_trend *= keep
        elif isinstance(v, LpVenue):
            v.tvl_others *= keep
            v.tvl_trend *= keep
        elif isinstance(v, StakingVenue):
            v.total_pooled_eth *= keep

    def end_scenario(self, scenario_id: str) -> dict[str, Any]:
        rec = self.scenarios.get(scenario_id)
        if rec is None:
            raise MarketError("scenario_id", f"unknown scenario {scenario_id!r}", 404)
        if rec["active"]:
            self._revert(rec)
        return self.scenario_public(rec)

    def _start_scheduled(self) -> None:
        """Start the YAML's ``scenarios:`` whose ``at`` has come (each once, in config order)."""
        for i, sc in enumerate(self.cfg.scenarios):
            if i in self.scheduled_started or sc.at.timestamp() > self.state_time:
                continue
            self.scheduled_started.append(i)
            spec = {k: v for k, v in sc.model_dump().items() if k != "at" and v is not None}
            spec["duration_seconds"] = max(
                1.0, sc.at.timestamp() + sc.duration_seconds - self.state_time
            )
            self.start_scenario(spec, sync=False)

    def _expire_scenarios(self) -> None:
        for rec in self.scenarios.values():
            if rec["active"] and rec["ends_at_ts"] <= self.state_time:
                self._revert(rec)

    def _revert(self, rec: dict[str, Any]) -> None:
        rec["active"] = False
        rec["ended_at"] = iso(self.state_time)
        name = rec["name"]
        if name in ("rate_spike", "liquidity_crunch", "exploit", "slashing"):
            v = self.by_id[rec["venue"]]
            if name in ("rate_spike", "liquidity_crunch") and isinstance(v, LendingVenue):
                v.pin(None)
            elif name == "liquidity_crunch":
                v.withdraw_cap_usd = None
            elif name == "exploit":
                v.paused = False
                if v.kind == "fixed":
                    v.can_redeem = True  # type: ignore[attr-defined]
            elif name == "slashing" and isinstance(v, StakingVenue):
                v.bunker = False
        elif name == "depeg":
            key = f"{rec['chain']}:{rec['token']}"
            if rec["params"]["recover"]:
                self.marks.pop(key, None)
        elif name == "bridge_halt":
            chain = rec["chain"]
            if self.halted_chains.get(chain, 0.0) <= self.state_time or not any(
                s["active"] and s["name"] == "bridge_halt" and s["chain"] == chain
                for s in self.scenarios.values()
                if s is not rec
            ):
                self.halted_chains.pop(chain, None)
            halted = {c for c, end in self.halted_chains.items()}
            for v in self.venues:
                if isinstance(v, BridgeArbVenue):
                    v.halted = bool({v.c.origin_chain, v.c.destination_chain} & halted)
        for v in self.venues:
            if v.id in self.positions:
                v.ours_usd = float(self.position_usd_dec(v.id))
        self.version += 1
        self.dirty = True

    # --- faults --------------------------------------------------------------------------------
    def add_fault(self, spec: Mapping[str, Any], *, fault_id: str | None = None) -> dict[str, Any]:
        if not isinstance(spec, Mapping):
            raise MarketError(None, "body must be a JSON object")
        allowed = set(FaultRule.__dataclass_fields__) - {"id", "hits", "frozen"}
        unknown = set(spec) - allowed
        if unknown:
            raise MarketError(sorted(unknown)[0], f"unknown field; allowed: {sorted(allowed)}")
        venue = spec.get("venue")
        if venue is not None and venue not in self.by_id:
            raise MarketError("venue", f"unknown venue {venue!r}")
        if fault_id is None:
            self._seq += 1
            fault_id = f"f-{self._seq}"
        try:
            rule = FaultRule(
                id=fault_id,
                **{
                    k: v
                    for k, v in spec.items()
                    if v is not None or k in ("venue", "path_prefix", "count")
                },
            )
        except (TypeError, ValueError) as exc:
            msg = str(exc)
            field = next(
                (f for f in allowed if msg.startswith(f)), "mode" if "mode" in msg else None
            )
            raise MarketError(field, msg) from None
        self.faults[fault_id] = rule
        self.version += 1
        self.dirty = True
        return rule.public()

    def remove_fault(self, fault_id: str) -> dict[str, Any]:
        rule = self.faults.pop(fault_id, None)
        if rule is None:
            raise MarketError("fault_id", f"unknown fault {fault_id!r}", 404)
        self.dirty = True
        return rule.public()

    def matching_faults(self, path: str, venues: set[str] | frozenset[str]) -> list[FaultRule]:
        """Rules that hit this request (probability drawn from the seeded fault RNG; counts consumed)."""
        hits: list[FaultRule] = []
        if not self.faults:
            return hits
        for fid, rule in list(self.faults.items()):
            if not rule.matches(path, venues):
                continue
            if rule.probability < 1.0 and self.fault_rng.random() >= rule.probability:
                continue
            rule.hits += 1
            hits.append(rule)
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    del self.faults[fid]
            self.dirty = True
        return hits

    # --- DefiLlama rows -----------------------------------------------------------------------
    def _row_now(self, v: VenueModel) -> dict[str, Any]:
        base = v.base_apr(self) * 100.0
        reward = v.reward_apr(self) * 100.0
        return {
            "tvlUsd": v.tvl_usd(self),
            "apyBase": base,
            "apyReward": reward if reward > 0 else None,
            "apy": max(0.0, base + reward),
        }

    def _record_day(self) -> None:
        day_end = math.floor(self.state_time / DAY) * DAY - 0.001
        for v in self.venues:
            r = self._row_now(v)
            il7 = v.il_7d(self) if isinstance(v, LpVenue) else None
            extra = v.extra_row(self) if isinstance(v, LpVenue) else {}
            self.history[v.id].append(
                {
                    "timestamp": iso(day_end),
                    "tvlUsd": r["tvlUsd"],
                    "apy": r["apy"],
                    "apyBase": r["apyBase"],
                    "apyReward": r["apyReward"],
                    "il7d": il7 * 100.0 if il7 is not None else None,
                    "apyBase7d": extra.get("apyBase7d"),
                }
            )

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Per-tick cache: a value is built once per world version (tick or write), then reused."""
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def defillama_rows(self) -> list[tuple[str, dict[str, Any]]]:
        """(venue id, /pools row) for every venue, all 28 documented fields (built once per version)."""
        return self.cached("defillama_rows", self._build_defillama_rows)

    def _build_defillama_rows(self) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        stats = []
        for vc, v in zip(self.cfg.venues, self.venues, strict=True):
            now = self._row_now(v)
            hist = self.history[v.id]
            apys = [h["apy"] for h in hist]
            n = len(apys)

            def pct(days: int, apys: list[float] = apys, now: dict[str, Any] = now) -> float | None:
                return now["apy"] - apys[-days] if len(apys) >= days else None

            if n:
                daily = np.power(1.0 + np.asarray(apys) / 100.0, 1.0 / 365.0) - 1.0
                mu = (math.exp(float(np.mean(np.log1p(daily))) * 365.0) - 1.0) * 100.0
                sigma = float(np.sqrt(np.var(daily) * 365.0)) * 100.0
            else:
                mu, sigma = now["apy"], 0.0
            stats.append((mu, sigma))
            last7 = apys[-7:]
            if n >= 7 and now["apy"] > 0:
                trend = now["apy"] - float(np.mean(last7))
                prob = min(95.0, 55.0 + 400.0 * abs(trend) / max(now["apy"], 1e-9))
                predictions = {
                    "predictedClass": "Down" if trend < 0 else "Stable/Up",
                    "predictedProbability": round(prob, 0),
                    "binnedConfidence": 1 if prob < 70 else (2 if prob < 85 else 3),
                }
            else:
                predictions = {
                    "predictedClass": None,
                    "predictedProbability": None,
                    "binnedConfidence": None,
                }
            extra = v.extra_row(self)
            il7 = v.il_7d(self) if isinstance(v, LpVenue) else None
            row = {
                "chain": self.cfg.chains[v.chain].defillama_name,
                "project": vc.defillama.project or vc.protocol,
                "symbol": vc.defillama.symbol or vc.asset.upper(),
                "tvlUsd": now["tvlUsd"],
                "apyBase": now["apyBase"],
                "apyReward": now["apyReward"],
                "apy": now["apy"],
                "rewardTokens": extra["rewardTokens"],
                "pool": vc.pool_uuid,
                "apyPct1D": pct(1),
                "apyPct7D": pct(7),
                "apyPct30D": pct(30),
                "stablecoin": extra["stablecoin"],
                "ilRisk": extra["ilRisk"],
                "exposure": extra["exposure"],
                "predictions": predictions,
                "poolMeta": vc.defillama.pool_meta,
                "mu": mu,
                "sigma": sigma,
                "count": n,
                "outlier": False,
                "underlyingTokens": extra["underlyingTokens"],
                "il7d": il7 * 100.0 if il7 is not None else None,
                "apyBase7d": extra["apyBase7d"],
                "apyMean30d": float(np.mean(apys[-30:])) if n else now["apy"],
                "volumeUsd1d": extra["volumeUsd1d"],
                "volumeUsd7d": extra["volumeUsd7d"],
                "apyBaseInception": None,
            }
            out.append((v.id, row))
        if len(stats) >= 4:
            arr = np.asarray(stats)
            bounds = []
            for k in range(2):
                q1, q3 = np.percentile(arr[:, k], [25, 75])
                iqr = q3 - q1
                bounds.append((max(0.0, q1 - 1.5 * iqr), q3 + 1.5 * iqr))
            for (_, row), (mu, sigma) in zip(out, stats, strict=True):
                row["outlier"] = not (
                    bounds[0][0] <= mu <= bounds[0][1] and bounds[1][0] <= sigma <= bounds[1][1]
                )
        return out

    def defillama_pools_bytes(self) -> bytes:
        """The serialized /pools body, built once per world version (fast for 1,000+ venues)."""
        return self.cached(
            "defillama_pools_bytes",
            lambda: json.dumps(
                {"status": "success", "data": [r for _, r in self.defillama_rows()]},
                separators=(",", ":"),
            ).encode(),
        )

    def chart_rows(self, venue_id: str) -> list[dict[str, Any]]:
        v = self.by_id[venue_id]
        rows = list(self.history[venue_id])
        now = self._row_now(v)
        il7 = v.il_7d(self) if isinstance(v, LpVenue) else None
        extra = v.extra_row(self)
        rows.append(
            {
                "timestamp": iso(self.state_time),
                "tvlUsd": now["tvlUsd"],
                "apy": now["apy"],
                "apyBase": now["apyBase"],
                "apyReward": now["apyReward"],
                "il7d": il7 * 100.0 if il7 is not None else None,
                "apyBase7d": extra.get("apyBase7d"),
            }
        )
        return rows

    # --- persistence ---------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.cfg.seed,
            "state_time": self.state_time,
            "ticks": self.ticks,
            "seq": self._seq,
            "rng": self.rng.bit_generator.state,
            "fault_rng": self.fault_rng.bit_generator.state,
            "eth_usd": self.eth_usd,
            "hub_u": self.hub_u,
            "basis_bps": self.basis_bps,
            "marks": self.marks,
            "halted_chains": self.halted_chains,
            "scheduled_started": self.scheduled_started,
            "venues": {v.id: v.dump() for v in self.venues},
            "positions": {k: str(p) for k, p in self.positions.items()},
            "withdrawals": self.withdrawals,
            "transfers": self.transfers,
            "idempotency": self.idempotency,
            "scenarios": self.scenarios,
            "faults": {fid: r.public() for fid, r in self.faults.items()},
            "history": {k: list(h) for k, h in self.history.items()},
            "price_history": {k: list(h) for k, h in self.price_history.items()},
        }

    def _load(self, d: dict[str, Any]) -> None:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"state file version {d.get('version')!r} is not {STATE_VERSION}")
        self.state_time = float(d["state_time"])
        self.ticks = int(d["ticks"])
        self._seq = int(d.get("seq", 0))
        self.rng.bit_generator.state = d["rng"]
        self.fault_rng.bit_generator.state = d["fault_rng"]
        self.eth_usd = float(d["eth_usd"])
        self.hub_u = float(d["hub_u"])
        self.basis_bps.update(
            {k: float(v) for k, v in d["basis_bps"].items() if k in self.basis_bps}
        )
        self.marks = {k: float(v) for k, v in d["marks"].items()}
        self.halted_chains = {k: float(v) for k, v in d["halted_chains"].items()}
        self.scheduled_started = [int(i) for i in d.get("scheduled_started", [])]
        for vid, vs in d["venues"].items():
            if vid in self.by_id:
                self.by_id[vid].load(vs)
        self.positions = {k: Decimal(v) for k, v in d["positions"].items() if k in self.by_id}
        self.withdrawals = d["withdrawals"]
        self.transfers = d["transfers"]
        self.idempotency = d["idempotency"]
        self.scenarios = d["scenarios"]
        self.faults = {}
        for fid, spec in d["faults"].items():
            spec = {k: v for k, v in spec.items() if k not in ("id", "hits")}
            self.faults[fid] = FaultRule(id=fid, **spec)
        for k, rows in d["history"].items():
            if k in self.history:
                self.history[k].extend(rows)
        for k, rows in d["price_history"].items():
            if k in self.price_history:
                self.price_history[k].extend(rows)
        self.version += 1

    def save(self, path: Path | None = None) -> Path | None:
        """Write the whole world atomically (temp file in the same directory + os.replace)."""
        target = Path(path) if path is not None else self.state_path
        if target is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.dump_state(), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.dirty = False
        return target

    def save_if_dirty(self) -> None:
        if self.dirty and self.state_path is not None:
            self.save()

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
