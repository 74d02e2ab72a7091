"""Incidents that unfold over time along real episodes, so the guards have something to see.

Each is a :class:`~mockfeeds.scenario_kinds.ScenarioKind` with a ``tick`` run after every world
tick while it is active; its progress lives in the scenario record (persisted with the world).

* ``depeg_path`` (``chain`` + stable ``token``): the token's mark follows a real daily path,
  interpolated linearly tick by tick, ``day_seconds`` of simulated time per day of the path.
  ``params.path``: ``ust-2022-05`` (terrausd 2022-05-04..20: 1.0012 -> 0.754 on 05-08 -> 0.061),
  ``usdc-svb-2023-03`` (usd-coin 2023-03-08..16: 0.9611 on 03-11, back to 1 by 03-13),
  ``dai-svb-2023-03``; daily closes from ``../shared/data/stablecoin_prices_daily.csv``
  (CoinGecko, via check-sked/crypto_data_resources). ``recover`` (false) restores the mark at the
  end. A ``scale`` in (0, 1] shrinks the deviation (``1 - scale x (1 - p)``).
* ``exploit_path`` (any ``venue``): for ``lead_seconds`` the others' funds drain linearly by
  ``outflow_fraction`` (insiders and the attacker's first withdrawals; Euler 2023-03-13 and Cream
  2021-10 were drained in a few transactions, Mango 2022-10 after its oracle was pushed) and the
  pool's own oracle price sits ``oracle_bps`` off the market (Aave's ``priceInMarketReferenceCurrency``
  against the coins feed); then the exploit lands: the pool and our position lose
  ``loss_fraction`` and the venue pauses until the scenario ends.
* ``bank_run`` (lending ``venue``): over the scenario's duration the other suppliers withdraw
  ``outflow_fraction`` of their funds while borrowers repay only ``repay_fraction`` of the debt,
  so utilization climbs to 100 % (capped at 0.9999: withdrawals then wait); at the end the pool
  books ``loss_fraction`` of bad debt on whoever is still in (the run's reason). USDT on Aave v3
  Ethereum sat above 0.99 utilization through the SVB weekend (``../shared/data`` hourly file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockfeeds.scenario_kinds import (
    Params,
    ScenarioKind,
    apply_loss,
    release_mark,
    stable_target,
    strike,
    target_of,
    unpause,
)
from mockfeeds.state import MarketError, MarketState
from mockfeeds.venues import LendingVenue, LpVenue

#: daily closes, oldest first (stablecoin_prices_daily.csv, rounded to 4 decimals)
REAL_PATHS: dict[str, tuple[float, ...]] = {
    # terrausd 2022-05-04 .. 2022-05-20
    "ust-2022-05": (
        1.0012,
        1.0008,
        1.0002,
        0.9947,
        0.754,
        0.754,
        0.86,
        0.767,
        0.37,
        0.129,
        0.133,
        0.1084,
        0.1123,
        0.0885,
        0.0931,
        0.0654,
        0.061,
    ),
    # usd-coin 2023-03-08 .. 2023-03-16
    "usdc-svb-2023-03": (1.0, 1.0, 0.9976, 0.9611, 0.9919, 0.9994, 0.9972, 1.002, 1.004),
    # dai 2023-03-08 .. 2023-03-16
    "dai-svb-2023-03": (0.9999, 0.9998, 0.9975, 0.9625, 0.9953, 0.9988, 0.9934, 1.002, 1.001),
}


def path_price(path: tuple[float, ...], elapsed_days: float) -> float:
    """Linear interpolation of a daily path at ``elapsed_days`` (held at its ends)."""
    if elapsed_days <= 0:
        return path[0]
    i = int(elapsed_days)
    if i >= len(path) - 1:
        return path[-1]
    f = elapsed_days - i
    return path[i] + (path[i + 1] - path[i]) * f


def _started_ts(rec: Mapping[str, Any]) -> float:
    return float(rec["started_at_ts"])


def _duration(rec: Mapping[str, Any]) -> float:
    return float(rec["ends_at_ts"]) - float(rec["started_at_ts"])


# --- depeg_path -----------------------------------------------------------------------------------
def _depeg_path_start(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params
) -> None:
    chain, sym = stable_target(m, spec)
    name = p.raw.get("path", "ust-2022-05")
    if name not in REAL_PATHS:
        raise MarketError("params.path", f"unknown path {name!r}; known: {sorted(REAL_PATHS)}")
    day = p.num("day_seconds", 86_400.0, 60.0, 86_400.0 * 30)
    scale = p.num("scale", 1.0, 0.0, 1.0)
    recover = p.flag("recover", False)
    rec.update(
        chain=chain,
        token=sym,
        params={"path": name, "day_seconds": day, "scale": scale, "recover": recover},
    )
    _depeg_path_tick(m, rec)


def _depeg_path_tick(m: MarketState, rec: dict[str, Any]) -> None:
    p = rec["params"]
    days = (m.state_time - _started_ts(rec)) / p["day_seconds"]
    raw = path_price(REAL_PATHS[p["path"]], days)
    m.marks[f"{rec['chain']}:{rec['token']}"] = 1.0 - p["scale"] * (1.0 - raw)


# --- exploit_path -------------------------------------------------------------------------------
def _drain(v: Any, keep: float) -> None:
    """The other suppliers' funds times ``keep`` (our position untouched)."""
    if isinstance(v, LendingVenue):
        v.s_others *= keep
        v.s_trend *= keep
    elif isinstance(v, LpVenue):
        v.tvl_others *= keep
        v.tvl_trend *= keep


def _exploit_path_start(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params
) -> None:
    v = m.venue(spec.get("venue"))
    rec["venue"] = v.id
    lead = p.num("lead_seconds", 6 * 3600.0, 0.0, 30 * 86_400.0)
    if lead >= _duration(rec):
        raise MarketError("params.lead_seconds", "must be shorter than duration_seconds")
    rec["params"] = {
        "lead_seconds": lead,
        "outflow_fraction": p.num("outflow_fraction", 0.4, 0.0, 0.99),
        "oracle_bps": p.num("oracle_bps", 300.0, -5000.0, 5000.0),
        "loss_fraction": p.num("loss_fraction", 0.5, 0.0, 1.0),
    }
    rec["progress"] = 0.0
    rec["struck"] = False
    _exploit_path_tick(m, rec)


def _exploit_path_tick(m: MarketState, rec: dict[str, Any]) -> None:
    p = rec["params"]
    v = m.by_id[rec["venue"]]
    if rec["struck"]:
        return
    elapsed = m.state_time - _started_ts(rec)
    progress = 1.0 if p["lead_seconds"] <= 0 else min(elapsed / p["lead_seconds"], 1.0)
    f = p["outflow_fraction"]
    before, after = 1.0 - f * rec["progress"], 1.0 - f * progress
    if before > 0:
        _drain(v, after / before)
    rec["progress"] = progress
    v.oracle_offset_bps = p["oracle_bps"]
    if elapsed >= p["lead_seconds"]:
        strike(m, v, p["loss_fraction"])
        v.oracle_offset_bps = 0.0
        rec["struck"] = True


def _exploit_path_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    unpause(v)
    v.oracle_offset_bps = 0.0


# --- bank_run -----------------------------------------------------------------------------------
def _bank_run_start(
    m: MarketState, spec: Mapping[str, Any], rec: dict[str, Any], p: Params
) -> None:
    v = target_of(m, spec, rec, LendingVenue, "bank_run")
    rec["params"] = {
        "outflow_fraction": p.num("outflow_fraction", 0.6, 0.0, 0.99),
        "repay_fraction": p.num("repay_fraction", 0.45, 0.0, 1.0),
        "loss_fraction": p.num("loss_fraction", 0.0, 0.0, 1.0),
    }
    rec["debt0_usd"] = v.debt()
    rec["others0_usd"] = v.s_others
    _bank_run_tick(m, rec)


def _bank_run_tick(m: MarketState, rec: dict[str, Any]) -> None:
    p = rec["params"]
    v = m.by_id[rec["venue"]]
    assert isinstance(v, LendingVenue)
    progress = min(max((m.state_time - _started_ts(rec)) / _duration(rec), 0), 1)
    others = rec["others0_usd"] * (1.0 - p["outflow_fraction"] * progress)
    v.s_trend *= others / v.s_others if v.s_others > 0 else 1.0
    v.s_others = others
    debt = rec["debt0_usd"] * (1.0 - p["repay_fraction"] * progress)
    v.pin(min(debt / max(v.total_supply(), 1e-9), 0.9999))


def _bank_run_revert(m: MarketState, rec: dict[str, Any]) -> None:
    v = m.by_id[rec["venue"]]
    if isinstance(v, LendingVenue):
        v.pin(None)
        if rec["params"]["loss_fraction"] > 0:
            apply_loss(m, v, rec["params"]["loss_fraction"])


INCIDENT_KINDS: dict[str, ScenarioKind] = {
    "depeg_path": ScenarioKind(_depeg_path_start, release_mark, _depeg_path_tick),
    "exploit_path": ScenarioKind(_exploit_path_start, _exploit_path_revert, _exploit_path_tick),
    "bank_run": ScenarioKind(_bank_run_start, _bank_run_revert, _bank_run_tick),
}
