"""Scenarios of the composite kinds (mockfeeds/README.md "Scenarios"):

- ``steth_discount`` (loop ``venue``): the collateral token's price falls below ETH, widening
  linearly to ``discount`` (0.08) over ``ramp_seconds`` (default: the first half of the
  scenario), walking the loop's health factor toward 1; restored at the end if ``recover``.
- ``funding_flip`` (hedged_lp ``venue``): the perpetual's 8-hour funding rate is pinned at
  ``funding_8h`` (-0.0003: shorts pay 32.85 % a year), so the hedge costs more than the fees.
- ``floor_crash`` (nft_rental ``venue``): the floor slides by ``drop`` (0.5) over ``ramp_seconds``
  (default: half the scenario); floors do not bounce back by themselves, so it stays.
- ``rental_drought`` (nft_rental ``venue``): renters' demand falls to ``demand_fraction`` (0.1) of
  what it was, so occupancy and rent collapse; demand returns at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockfeeds.scenario_kinds import Params, ScenarioKind
from mockfeeds.state import MarketError, MarketState
from mockfeeds.venues import HedgedLpVenue, LoopVenue, NftRentalVenue, VenueModel


def _venue_of(
    m: MarketState, spec: Mapping[str, Any], cls: type[VenueModel], name: str, kind: str
) -> Any:
    v = m.venue(spec.get("venue"))
    if not isinstance(v, cls):
        raise MarketError("venue", f"{name} applies to {kind} venues")
    return v


def _ramp_share(m: MarketState, rec: dict[str, Any]) -> float:
    ramp = rec["params"]["ramp_seconds"]
    started = rec["ends_at_ts"] - rec["duration_ts"]
    return 1.0 if ramp <= 0 else min(1.0, max(0.0, (m.state_time - started) / ramp))


# --- steth_discount ---------------------------------------------------------------------------
def _discount_start(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params
) -> None:
    v: LoopVenue = _venue_of(m, spec, LoopVenue, "steth_discount", "loop")
    duration = rec["ends_at_ts"] - m.state_time
    rec["venue"] = v.id
    rec["duration_ts"] = duration
    rec["params"] = {
        "discount": p.num("discount", 0.08, 0.0, 0.9),
        "ramp_seconds": p.num("ramp_seconds", duration / 2.0, 0.0, 1e9),
        "recover": p.flag("recover", True),
        "token": f"{v.chain}:{v.c.collateral_symbol}",
    }
    _discount_tick(m, rec)


def _discount_tick(m: MarketState, rec: dict[str, Any]) -> None:
    prm = rec["params"]
    m.marks[prm["token"]] = 1.0 - prm["discount"] * _ramp_share(m, rec)


def _discount_revert(m: MarketState, rec: dict[str, Any]) -> None:
    if rec["params"]["recover"]:
        m.marks.pop(rec["params"]["token"], None)


# --- funding_flip -----------------------------------------------------------------------------
def _flip_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    v: HedgedLpVenue = _venue_of(m, spec, HedgedLpVenue, "funding_flip", "hedged_lp")
    rec["venue"] = v.id
    rate = p.num("funding_8h", -0.0003, -0.03, 0.03)
    v.funding_pin = rate
    v.funding_8h = rate
    rec["params"] = {"funding_8h": rate}


def _flip_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, HedgedLpVenue):
        v.funding_pin = None


# --- floor_crash ------------------------------------------------------------------------------
def _crash_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    v: NftRentalVenue = _venue_of(m, spec, NftRentalVenue, "floor_crash", "nft_rental")
    duration = rec["ends_at_ts"] - m.state_time
    rec["venue"] = v.id
    rec["duration_ts"] = duration
    rec["params"] = {
        "drop": p.num("drop", 0.5, 0.0, 0.99),
        "ramp_seconds": p.num("ramp_seconds", duration / 2.0, 0.0, 1e9),
    }
    _crash_tick(m, rec)


def _crash_tick(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, NftRentalVenue):
        v.floor_mark = 1.0 - rec["params"]["drop"] * _ramp_share(m, rec)


def _crash_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, NftRentalVenue):  # the crash stays in the floor
        v.floor_eth *= v.floor_mark
        v.floor_mark = 1.0


# --- rental_drought ---------------------------------------------------------------------------
def _drought_start(m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params) -> None:
    v: NftRentalVenue = _venue_of(m, spec, NftRentalVenue, "rental_drought", "nft_rental")
    rec["venue"] = v.id
    frac = p.num("demand_fraction", 0.1, 0.0, 1.0)
    v.demand_mult = frac
    rec["params"] = {"demand_fraction": frac}


def _drought_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, NftRentalVenue):
        v.demand_mult = 1.0


COMPOSITE_KINDS: dict[str, ScenarioKind] = {
    "steth_discount": ScenarioKind(_discount_start, _discount_revert, _discount_tick),
    "funding_flip": ScenarioKind(_flip_start, _flip_revert),
    "floor_crash": ScenarioKind(_crash_start, _crash_revert, _crash_tick),
    "rental_drought": ScenarioKind(_drought_start, _drought_revert),
}
