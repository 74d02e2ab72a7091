"""What each named scenario does to the world when it starts and when it ends.

A :class:`ScenarioKind` is a pair of plain functions over :class:`mockfeeds.state.MarketState`:
``start(m, spec, rec, params)`` validates its target and parameters (``MarketError`` naming the
field), applies the effect and fills ``rec`` (``venue`` / ``chain`` / ``token`` and the
resolved ``params``); ``revert(m, rec)`` undoes what should end with it. :data:`BASIC_KINDS`
are the pool-level events of ``mockfeeds/README.md`` "Scenarios"; new kinds go in their own
module and are merged into :data:`mockfeeds.scenarios.SCENARIO_KINDS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

from mockfeeds.state import DEC, Q18, MarketError, MarketState, iso
from mockfeeds.venues import BridgeArbVenue, LendingVenue, LpVenue, StakingVenue, VenueModel
from protocols import lido

V = TypeVar("V", bound=VenueModel)


class Params:
    """A scenario's ``params`` object with checked numeric reads (errors name ``params.KEY``)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def num(self, key: str, default: float, lo: float, hi: float) -> float:
        val = self.raw.get(key, default)
        if (
            isinstance(val, bool)
            or not isinstance(val, (int, float))
            or not math.isfinite(val)
            or not lo <= val <= hi
        ):
            raise MarketError(f"params.{key}", f"must be a number in [{lo}, {hi}]")
        return float(val)

    def flag(self, key: str, default: bool) -> bool:
        val = self.raw.get(key, default)
        if not isinstance(val, bool):
            raise MarketError(f"params.{key}", "must be true or false")
        return val


StartFn = Callable[[MarketState, Mapping[str, Any], dict[str, Any], Params], None]
RevertFn = Callable[[MarketState, dict[str, Any]], None]
TickFn = Callable[[MarketState, dict[str, Any]], None]


@dataclass(frozen=True)
class ScenarioKind:
    """One named scenario: its start and revert functions (see the module docstring), and for
    an incident that unfolds over time a ``tick`` run after every world tick while it is active
    (``mockfeeds/incidents.py``)."""

    start: StartFn
    revert: RevertFn
    tick: TickFn | None = None


def apply_loss(m: MarketState, v: VenueModel, f: float) -> None:
    """The pool and our position in it lose the fraction ``f`` at once."""
    keep = 1.0 - f
    for book in m.books().values():  # every paper account loses alike
        if v.id in book:
            book[v.id] = DEC.multiply(book[v.id], Decimal(repr(keep))).quantize(
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


def target_of(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], kind: type[V], name: str
) -> V:
    """The scenario's ``venue``, which must be a ``kind`` model (``rec["venue"]`` set)."""
    v = m.venue(spec.get("venue"))
    rec["venue"] = v.id
    if not isinstance(v, kind):
        what = {LendingVenue: "lending", StakingVenue: "staking"}.get(kind, kind.__name__)
        raise MarketError("venue", f"{name} applies to {what} venues")
    return v


def stable_target(m: MarketState, spec: Mapping[str, Any]) -> tuple[str, str]:
    """The scenario's ``chain`` and its stable ``token`` (MarketError naming the bad field)."""
    chain, sym = spec.get("chain"), spec.get("token")
    if not isinstance(chain, str) or chain not in m.cfg.chains:
        raise MarketError("chain", f"unknown chain {chain!r}")
    tok = m.cfg.chains[chain].tokens.get(sym) if isinstance(sym, str) else None
    if tok is None or tok.kind != "stable" or not isinstance(sym, str):
        raise MarketError("token", f"chain {chain} has no stable token {sym!r}")
    return chain, sym


def release_mark(m: MarketState, rec: dict[str, Any]) -> None:
    """A depeg's end: the token's mark returns to its own process if ``params.recover``."""
    if rec["params"]["recover"]:
        m.marks.pop(f"{rec['chain']}:{rec['token']}", None)


# --- rate_spike: pin a lending pool's utilization ---------------------------------------------
def _rate_spike_start(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params
) -> None:
    v = target_of(m, spec, rec, LendingVenue, "rate_spike")
    u = p.num("utilization", 0.97, 0.0, 0.999)
    v.pin(u)
    rec["params"] = {"utilization": u}


def _unpin_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, LendingVenue):
        v.pin(None)
    elif rec["name"] == "liquidity_crunch":
        v.withdraw_cap_usd = None


# --- exploit: a loss and a pause -------------------------------------------------------------
def strike(m: MarketState, v: VenueModel, f: float) -> None:
    """An exploit lands: the pool and our position lose ``f`` and the venue pauses (an earn
    product stops redeeming). Used by ``exploit`` at once and by ``exploit_path`` after its lead."""
    apply_loss(m, v, f)
    v.paused = True
    if v.kind == "fixed":
        v.can_redeem = False  # type: ignore[attr-defined]


def unpause(v: VenueModel) -> None:
    """The venue reopens when its exploit scenario ends."""
    v.paused = False
    if v.kind == "fixed":
        v.can_redeem = True  # type: ignore[attr-defined]


def _exploit_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    v = m.venue(spec.get("venue"))
    rec["venue"] = v.id
    f = p.num("loss_fraction", 0.5, 0.0, 1.0)
    strike(m, v, f)
    rec["params"] = {"loss_fraction": f}


def _exploit_revert(m: MarketState, rec: dict[str, Any]) -> None:
    unpause(m.by_id[rec["venue"]])


# --- slashing: a socialised loss at the next Lido report, bunker mode --------------------------
def _slashing_start(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params
) -> None:
    v = target_of(m, spec, rec, StakingVenue, "slashing")
    n = int(p.num("validators", 100, 1, 1_000_000))
    loss = lido.slashing_loss_fraction(n, v.total_pooled_eth, v.c.total_staked_eth)
    v.pending_loss = 1.0 - (1.0 - v.pending_loss) * (1.0 - loss)
    v.bunker = True
    rec["params"] = {
        "validators": n,
        "loss_fraction": loss,
        "applied_at_next_report": iso(v.next_report_after(m.state_time)),
    }


def _slashing_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, StakingVenue):
        v.bunker = False


# --- liquidity_crunch: withdrawals capped -----------------------------------------------------
def _crunch_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    v = m.venue(spec.get("venue"))
    rec["venue"] = v.id
    if isinstance(v, LendingVenue):
        frac = p.num("available_fraction", 0.001, 0.0, 1.0)
        v.pin(1.0 - frac)
        rec["params"] = {"available_fraction": frac}
    else:
        cap = p.num("cap_usd", 0.0, 0.0, 1e15)
        v.withdraw_cap_usd = cap
        rec["params"] = {"cap_usd": cap}


# --- depeg: a stable token's price on one chain -------------------------------------------------
def _depeg_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    chain, sym = stable_target(m, spec)
    price = p.num("price", 0.95, 0.0001, 2.0)
    recover = p.flag("recover", True)
    m.marks[f"{chain}:{sym}"] = price
    rec.update(chain=chain, token=sym, params={"price": price, "recover": recover})


# --- bridge_halt: a chain's bridging stops ------------------------------------------------------
def _halt_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    chain = spec.get("chain")
    if not isinstance(chain, str) or chain not in m.cfg.chains:
        raise MarketError("chain", f"unknown chain {chain!r}")
    m.halted_chains[chain] = max(m.halted_chains.get(chain, 0.0), rec["ends_at_ts"])
    for v in m.venues:
        if isinstance(v, BridgeArbVenue) and chain in (v.c.origin_chain, v.c.destination_chain):
            v.halted = True
    rec.update(chain=chain, params={})


def _halt_revert(m: MarketState, rec: dict[str, Any]) -> None:
    chain = rec["chain"]
    if m.halted_chains.get(chain, 0.0) <= m.state_time or not any(
        s["active"] and s["name"] == "bridge_halt" and s["chain"] == chain
        for s in m.scenarios.values()
        if s is not rec
    ):
        m.halted_chains.pop(chain, None)
    halted = set(m.halted_chains)
    for v in m.venues:
        if isinstance(v, BridgeArbVenue):
            v.halted = bool({v.c.origin_chain, v.c.destination_chain} & halted)


BASIC_KINDS: dict[str, ScenarioKind] = {
    "rate_spike": ScenarioKind(_rate_spike_start, _unpin_revert),
    "exploit": ScenarioKind(_exploit_start, _exploit_revert),
    "depeg": ScenarioKind(_depeg_start, release_mark),
    "slashing": ScenarioKind(_slashing_start, _slashing_revert),
    "bridge_halt": ScenarioKind(_halt_start, _halt_revert),
    "liquidity_crunch": ScenarioKind(_crunch_start, _unpin_revert),
}
