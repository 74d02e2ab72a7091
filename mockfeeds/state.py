"""The simulated market's state, declared in one place, and the small values every room of the
market uses: ``MarketError``, ``iso``, ``usd_str``, the exact-decimal context and retention.

:class:`MarketState` holds every field of the world (the rooms that act on it are the layers
of :class:`mockfeeds.market.Market`: pricing, feed rows, stepping, scenarios, faults, paper
execution, persistence) and the position helpers they share."""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Context, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from mockfeeds.clock import SimClock
from mockfeeds.config import MarketConfig
from mockfeeds.faults import FaultRule
from mockfeeds.venues import DAY, VenueModel, build_venue

STATE_VERSION = 1
DEC = Context(prec=40)
Q6 = Decimal("0.000001")
Q18 = Decimal("1e-18")
HISTORY_MAX_DAYS = 400
PRICE_HISTORY_HOURS = 24 * 30
# idempotency keys, settled withdrawals and transfers are kept this long
RETENTION_SECONDS = 30 * 86_400.0

DEFAULT_ACCOUNT = "default"  # the paper account of requests that name none
ACCOUNT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

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


class MarketState:
    """Every field of one simulated world (built from a validated config, before warm-up or load).

    ``clock`` is set by :class:`mockfeeds.market.Market` once the world's time is known (after
    the warm-up or the state file). ``version`` counts changes (ticks and writes; the feed caches
    key on it); ``dirty`` says the state file is behind.
    """

    clock: SimClock

    def __init__(self, cfg: MarketConfig, *, state_path: Path | None = None) -> None:
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
        # paper accounts (vault ids): ``positions`` is the account in use (``use_account``), the
        # others wait in ``other_accounts``; requests without an account use "default"
        self.positions: dict[str, Decimal] = {}
        self.account = DEFAULT_ACCOUNT
        self.other_accounts: dict[str, dict[str, Decimal]] = {}
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
        self._seq = 0  # numbers the ids of scenarios and faults

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Per-tick cache: a value is built once per world version (tick or write), then reused."""
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # --- positions ----------------------------------------------------------------------------
    def mark(self, venue_id: str) -> Decimal:
        """A scenario's mark on the venue's asset (a depeg, an stETH discount); 1 for a loop,
        whose equity ``C p - D`` already prices its collateral at the market."""
        v = self.by_id[venue_id]
        if v.kind == "loop":
            return Decimal(1)
        m = self.marks.get(f"{v.chain}:{v.asset}")
        return Decimal(repr(m)) if m is not None else Decimal(1)

    def position_usd_dec(self, venue_id: str) -> Decimal:
        pos = self.positions.get(venue_id, Decimal(0))
        return DEC.multiply(pos, self.mark(venue_id))

    def position_usd(self, venue_id: str) -> str:
        return usd_str(self.position_usd_dec(venue_id))

    def books(self) -> dict[str, dict[str, Decimal]]:
        """account -> venue -> tokens, every paper account (the one in use included)."""
        return {self.account: self.positions, **self.other_accounts}

    def ours_total_usd(self, venue_id: str) -> float:
        """Every paper account's position in a venue together: the pool sees all paper money."""
        total = sum((b.get(venue_id, Decimal(0)) for b in self.books().values()), Decimal(0))
        return float(DEC.multiply(total, self.mark(venue_id)))

    @contextlib.contextmanager
    def use_account(self, account: Any) -> Iterator[None]:
        """Serve the calls inside as paper account ``account`` (a vault id); restores after."""
        if account is None:
            account = DEFAULT_ACCOUNT
        if not isinstance(account, str) or not ACCOUNT_RE.fullmatch(account):
            raise MarketError("account", "must be 1-64 of [A-Za-z0-9._-], starting alphanumeric")
        if account == self.account:
            yield
            return
        previous = self.account
        self.other_accounts[previous] = self.positions
        self.positions = self.other_accounts.pop(account, {})
        self.account = account
        try:
            yield
        finally:
            if self.positions:
                self.other_accounts[account] = self.positions
            self.positions = self.other_accounts.pop(previous)
            self.account = previous

    def scoped_key(self, key: str) -> str:
        """Idempotency keys are per account: two vaults may use the same key."""
        return key if self.account == DEFAULT_ACCOUNT else f"{self.account}|{key}"

    def venue(self, venue_id: Any, field: str = "venue") -> VenueModel:
        if not isinstance(venue_id, str) or venue_id not in self.by_id:
            raise MarketError(
                field, f"unknown venue {venue_id!r}", 404 if field == "venue_path" else 422
            )
        return self.by_id[venue_id]
