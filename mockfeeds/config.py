"""The simulated market's YAML schema (pydantic): the top level, faults, scheduled scenarios and
the checks across sections (a venue's chain and tokens exist, no duplicate ids, pools or reserves,
a scenario's target fits its kind).

The sections live apart: ``config_types.py`` (the strict base model and constrained types),
``config_world.py`` (chains, tokens, ETH price, the bridge), ``config_venues.py`` (a venue entry
and the basic kinds' sections), ``config_kinds.py`` (the composite kinds' sections).

``MarketConfig.model_validate(mapping)`` raises a ``pydantic.ValidationError`` whose messages
name the field (e.g. ``venues.2.lending.total_supply_usd``); :func:`parse_market_config` turns it
into a ``ValueError`` with the same text. See ``config/market.default.yaml`` for a commented example.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from mockfeeds.config_types import NonNeg, Pos, Strict, Unit
from mockfeeds.config_venues import VenueMarketConfig as VenueMarketConfig
from mockfeeds.config_world import BridgeConfig, ChainConfig, EthPriceConfig


class FaultConfig(Strict):
    """A fault rule (see mockfeeds/faults.py): which requests it hits and what it does."""

    mode: Literal[
        "latency",
        "http_5xx",
        "timeout",
        "malformed_json",
        "nan",
        "absurd",
        "stale",
        "schema_drift",
        "oversized",
    ]
    venue: str | None = None
    path_prefix: str | None = None
    probability: Unit = 1.0
    count: Annotated[int, Field(ge=1)] | None = None  # remaining hits; None = until removed
    latency_ms: NonNeg = 500.0
    status: Annotated[int, Field(ge=500, le=599)] = 503
    timeout_seconds: NonNeg = 30.0
    size_bytes: Annotated[int, Field(ge=1)] = 12 * 1024 * 1024
    stale_seconds: NonNeg = 7 * 86_400.0
    absurd_factor: float = 1e6


class ScheduledScenario(Strict):
    """A scenario that starts by itself at simulated time ``at`` (for backtests and demos); the
    other fields are the body of ``POST /admin/v1/scenarios``."""

    at: datetime
    name: Literal[
        "rate_spike",
        "exploit",
        "depeg",
        "slashing",
        "bridge_halt",
        "liquidity_crunch",
        "depeg_path",
        "exploit_path",
        "bank_run",
        "steth_discount",
        "funding_flip",
        "floor_crash",
        "rental_drought",
    ]
    venue: str | None = None
    chain: str | None = None
    token: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    duration_seconds: Pos = 86_400.0

    @field_validator("at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("at must carry a UTC offset, e.g. 2026-02-05T00:00:00Z")
        return v.astimezone(UTC)


class MarketConfig(Strict):
    seed: int = 42
    time_scale: Annotated[float, Field(ge=0)] = 3600.0  # simulated seconds per wall-clock second
    tick_seconds: Pos = 900.0  # simulated step of the state processes
    start_time: datetime = datetime(2026, 2, 1, tzinfo=UTC)
    # simulated before start_time (charts, SMA)
    history_days: Annotated[int, Field(ge=0, le=400)] = 30
    save_interval_seconds: Pos = 2.0  # wall seconds between periodic state saves
    eth_price: EthPriceConfig = EthPriceConfig()
    chains: dict[str, ChainConfig]
    bridge: BridgeConfig = BridgeConfig()
    venues: list[VenueMarketConfig]
    faults: list[FaultConfig] = Field(default_factory=list)
    scenarios: list[ScheduledScenario] = Field(default_factory=list)

    @field_validator("start_time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("start_time must carry a UTC offset, e.g. 2026-02-01T00:00:00Z")
        return v.astimezone(UTC)

    @model_validator(mode="after")
    def _references(self) -> MarketConfig:
        ids: set[str] = set()
        pools: set[str] = set()
        products: set[str] = set()
        reserves: set[tuple[str, str]] = set()
        lido = 0
        for i, v in enumerate(self.venues):
            where = f"venues.{i}"
            if v.id in ids:
                raise ValueError(f"{where}.id: duplicate venue id {v.id!r}")
            ids.add(v.id)
            if v.pool_uuid in pools:
                raise ValueError(f"{where}.defillama.pool: duplicate pool {v.pool_uuid!r}")
            pools.add(v.pool_uuid)
            if v.chain not in self.chains:
                raise ValueError(f"{where}.chain: unknown chain {v.chain!r}")
            if v.kind == "staking" and v.protocol == "lido":
                lido += 1
            if v.lending is not None:
                tok = self.chains[v.chain].tokens.get(v.asset)
                if tok is None or tok.kind != "stable":
                    raise ValueError(
                        f"{where}.asset: lending venues take a stable token listed on chain {v.chain}, got {v.asset!r}"
                    )
                key = (
                    v.lending.market
                    if v.protocol == "aave-v3"
                    else f"{v.lending.market}/{v.lending.comet}",
                    v.asset,
                )
                if key in reserves:
                    raise ValueError(
                        f"{where}.asset: market {key[0]!r} already has a reserve {v.asset!r}"
                    )
                reserves.add(key)
            if v.lp is not None:
                tokens = self.chains[v.chain].tokens
                if v.lp.token1_symbol not in tokens or tokens[v.lp.token1_symbol].kind != "eth":
                    raise ValueError(
                        f"{where}.lp.token1_symbol: chain {v.chain} has no eth-kind token {v.lp.token1_symbol!r}"
                    )
                if v.lp.token0_symbol not in tokens:
                    raise ValueError(
                        f"{where}.lp.token0_symbol: chain {v.chain} has no token {v.lp.token0_symbol!r}"
                    )
            if v.bridge_arb is not None:
                b = v.bridge_arb
                for side, chain in (
                    ("origin_chain", b.origin_chain),
                    ("destination_chain", b.destination_chain),
                ):
                    if chain not in self.chains:
                        raise ValueError(f"{where}.bridge_arb.{side}: unknown chain {chain!r}")
                    if b.token not in self.chains[chain].tokens:
                        raise ValueError(
                            f"{where}.bridge_arb.{side}: chain {chain} has no token {b.token!r}"
                        )
                if b.origin_chain == b.destination_chain:
                    raise ValueError(f"{where}.bridge_arb: origin and destination must differ")
            if v.loop is not None:
                tok = self.chains[v.chain].tokens.get(v.loop.collateral_symbol)
                if tok is None or tok.kind != "eth":
                    raise ValueError(
                        f"{where}.loop.collateral_symbol: chain {v.chain} has no eth-kind token {v.loop.collateral_symbol!r}"
                    )
                if not any(
                    w.id == v.loop.staking_venue and w.kind == "staking" for w in self.venues
                ):
                    raise ValueError(
                        f"{where}.loop.staking_venue: no staking venue {v.loop.staking_venue!r}"
                    )
            if v.fixed is not None:
                if v.fixed.product_id in products:
                    raise ValueError(f"{where}.fixed.product_id: duplicate {v.fixed.product_id!r}")
                products.add(v.fixed.product_id)
        if lido > 1:
            raise ValueError(
                "venues: at most one venue may use protocol lido (the /lido API serves one)"
            )
        for i, f in enumerate(self.faults):
            if f.venue is not None and f.venue not in ids:
                raise ValueError(f"faults.{i}.venue: unknown venue {f.venue!r}")
        kinds = {v.id: v.kind for v in self.venues}
        needs_kind = {
            "rate_spike": "lending",
            "slashing": "staking",
            "exploit": None,
            "liquidity_crunch": None,
            "exploit_path": None,
            "bank_run": "lending",
            "steth_discount": "loop",
            "funding_flip": "hedged_lp",
            "floor_crash": "nft_rental",
            "rental_drought": "nft_rental",
        }
        for i, sc in enumerate(self.scenarios):
            where = f"scenarios.{i}"
            if sc.name in needs_kind:
                if sc.venue not in kinds:
                    raise ValueError(
                        f"{where}.venue: {sc.name} needs a known venue, got {sc.venue!r}"
                    )
                want = needs_kind[sc.name]
                if want is not None and kinds[sc.venue] != want:
                    raise ValueError(
                        f"{where}.venue: {sc.name} applies to {want} venues, {sc.venue} is {kinds[sc.venue]}"
                    )
            else:
                if sc.chain not in self.chains:
                    raise ValueError(
                        f"{where}.chain: {sc.name} needs a known chain, got {sc.chain!r}"
                    )
                if sc.name in ("depeg", "depeg_path"):
                    tok = self.chains[sc.chain].tokens.get(sc.token or "")
                    if tok is None or tok.kind != "stable":
                        raise ValueError(
                            f"{where}.token: chain {sc.chain} has no stable token {sc.token!r}"
                        )
        return self


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid market config: " + "; ".join(parts)


def parse_market_config(cfg: Mapping[str, Any]) -> MarketConfig:
    """Validate a parsed market YAML; ValueError naming each bad field."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"market config must be a mapping, got {type(cfg).__name__}")
    try:
        return MarketConfig.model_validate(dict(cfg))
    except ValidationError as exc:
        raise ValueError(_format_validation_error(exc)) from exc


def load_market_yaml(path: str | Path) -> dict[str, Any]:
    """Read a market YAML file into a dict (ValueError if it is not a mapping)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: market config must be a YAML mapping")
    return data


DEFAULT_MARKET_PATH = Path(__file__).resolve().parent.parent / "config" / "market.default.yaml"
