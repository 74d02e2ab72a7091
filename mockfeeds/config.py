"""The simulated market's YAML schema (pydantic): chains and tokens, the bridge, venues, faults.

``MarketConfig.model_validate(mapping)`` raises a ``pydantic.ValidationError`` whose messages
name the field (e.g. ``venues.2.lending.total_supply_usd``); :func:`load_market_config` turns it
into a ``ValueError`` with the same text. See ``config/market.default.yaml`` for a commented example.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mockfeeds.config_kinds import HedgeConfig, LoopConfig, NftRentalConfig
from protocols import aave

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Unit = Annotated[float, Field(ge=0, le=1)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]

#: namespace for venue pool uuids derived from ids when the YAML gives none
POOL_NAMESPACE = uuid.UUID("8f7c5b2e-3c1d-4e5f-9a0b-1c2d3e4f5a6b")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenConfig(Strict):
    """A token on one chain. ``kind`` picks its price process: ``stable`` (OU around the peg with
    rare spikes), ``eth`` (the global ETH GBM times a small per-chain OU basis), ``fixed``."""

    address: Address
    decimals: Annotated[int, Field(ge=0, le=36)] = 18
    kind: Literal["stable", "eth", "fixed"] = "stable"
    price_usd: Pos = 1.0  # peg for stables, constant for fixed
    deviation_sigma_bps: NonNeg = 3.0  # stationary std-dev of the basis (stable and eth kinds)
    reversion_per_day: Pos = 6.0  # OU mean-reversion speed of the basis
    spike_prob_per_day: NonNeg = 0.02  # Poisson rate of basis spikes
    spike_bps: NonNeg = 40.0  # spike size (sign random)


class ChainConfig(Strict):
    chain_id: Annotated[int, Field(gt=0)]
    defillama_name: str  # "Ethereum", "Arbitrum", ... as DefiLlama spells it
    fill_gas_usd: NonNeg = 0.05  # relayer gas for a fill on this chain (as destination)
    # typical fill time for deposits from this chain (as origin)
    instant_fill_seconds: NonNeg = 60.0
    tokens: dict[str, TokenConfig] = Field(default_factory=dict)


class EthPriceConfig(Strict):
    initial_usd: Pos = 2069.0  # the price at start_time (the warm-up history leads up to it)
    sigma_annual: NonNeg = 0.65
    drift_annual: float = 0.0


class RateModelConfig(Strict):
    ubar: Annotated[float, Field(gt=0, le=1)]
    r0: NonNeg
    r1: NonNeg
    r2: NonNeg


class CapitalFeeModel(Strict):
    lower_bound: NonNeg = 0.0001
    upper_bound: NonNeg = 0.0001
    cutoff: Pos = 100_000.0


class BridgeConfig(Strict):
    """The Across hub pool for the vault's accounting token (one per L1 token in reality)."""

    token: str = "USDC"
    hub_liquidity_usd: Pos = 150_000_000.0
    utilization: Unit = 0.30
    utilization_sigma: NonNeg = 0.10  # stationary std-dev of the hub utilization
    utilization_reversion_per_day: Pos = 1.0
    rate_model: RateModelConfig = RateModelConfig(ubar=0.75, r0=0.021, r1=0.0, r2=0.6)
    capital_fee: CapitalFeeModel = CapitalFeeModel()
    min_deposit_usd: NonNeg = 1.0
    max_deposit_instant_usd: Pos = 1_500_000.0
    max_deposit_short_delay_usd: Pos = 5_000_000.0
    max_deposit_usd: Pos = 20_000_000.0


class IncentiveConfig(Strict):
    """Reward emissions that decay: ``usd_per_day(t) = usd_per_day * 2^(-t / half_life_days)``."""

    usd_per_day: NonNeg = 0.0
    half_life_days: Pos = 90.0
    reward_symbol: str = "AAVE"
    reward_address: Address = "0x7fc66500c84a76ad7e9c93437bfc5ac33e2ddae9"
    reward_decimals: Annotated[int, Field(ge=0, le=36)] = 18
    reward_price_usd: Pos = 150.0


class DefiLlamaConfig(Strict):
    pool: str | None = None  # uuid; derived from the venue id when absent
    project: str | None = None
    symbol: str | None = None
    pool_meta: str | None = None


class LendingConfig(Strict):
    """Aave v3 reserve or Compound v3 comet. Borrow demand is a utilization ``u*`` (share of the
    other suppliers' funds that borrowers want) following OU with jump shocks; debt = ``u*`` x
    others' supply, so our deposit lowers utilization and the rate by exactly the curve's math."""

    market: str = "ethereum"  # Aave market name in /aave/v3/{market}/reserves, or Comet chain
    comet: Address | None = None  # Compound v3 only
    underlying: Address
    decimals: Annotated[int, Field(ge=0, le=36)] = 6
    # Aave preset name or explicit fields
    strategy: str | dict[str, float] = "ethereum-usdc-2026-02"
    # Compound v3: CometCurve fields; None = PRESET_CUSDCV3
    comet_curve: dict[str, float] | None = None
    total_supply_usd: Pos
    utilization: Unit = 0.80
    utilization_mean: Unit = 0.80
    utilization_sigma: NonNeg = 0.04
    reversion_per_day: Pos = 0.5
    shock_prob_per_day: NonNeg = 0.03
    shock_size: Unit = 0.06
    # stationary log-std of the other suppliers' funds around their trend
    supply_log_sigma: NonNeg = 0.05
    supply_reversion_per_day: Pos = 0.05
    supply_cap_tokens: NonNeg = 0.0  # whole tokens, 0 = no cap (Aave reports whole tokens)
    borrow_cap_tokens: NonNeg = 0.0
    incentives: IncentiveConfig = IncentiveConfig()

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(v, str) and v not in aave.PRESETS:
            raise ValueError(f"unknown Aave preset {v!r}; known: {sorted(aave.PRESETS)}")
        if isinstance(v, dict):
            aave.AaveRateStrategy(**v)
        return v


class StakingConfig(Strict):
    """Liquid staking: gross protocol APR drifts near ~3.3 % (OU), the share rate steps at the daily
    oracle report (12:00 UTC) by ``(1 - fee) * gross APR``; a FIFO withdrawal queue."""

    token_address: Address = "0xae7ab96520de3a18e5e111b5eaab095312d7fe84"
    total_pooled_eth: Pos = 9_300_000.0
    total_staked_eth: Pos = 34_000_000.0  # the whole beacon chain (slashing correlation penalty)
    protocol_apr: Pos = 0.033
    protocol_apr_mean: Pos = 0.033
    protocol_apr_sigma: NonNeg = 0.002  # stationary std-dev of the gross APR
    reversion_per_day: Pos = 0.1
    fee: Annotated[float, Field(ge=0, lt=1)] = 0.10
    queue_eth: NonNeg = 15_000.0  # stETH waiting in the withdrawal queue
    queue_mean_eth: NonNeg = 15_000.0
    queue_sigma_eth: NonNeg = 10_000.0
    buffer_eth: NonNeg = 8_000.0  # deposits + EL rewards available to finalise without exits
    report_hour_utc: Annotated[int, Field(ge=0, le=23)] = 12


class LpConfig(Strict):
    """Uniswap v2 pair of a stablecoin and WETH: price = the chain's WETH price (GBM); daily volume
    lognormal around ``volume_usd_1d``, larger when the price moves."""

    pair_address: Address
    token0_symbol: str = "USDC"
    token1_symbol: str = "WETH"
    tvl_usd: Pos = 300_000_000.0
    volume_usd_1d: Pos = 120_000_000.0
    volume_sigma: NonNeg = 0.35  # log-std of a day's volume
    fee: Annotated[float, Field(ge=0, lt=0.1)] = 0.003
    # stationary log-std of the other LPs' liquidity around its trend
    liquidity_log_sigma: NonNeg = 0.08
    liquidity_reversion_per_day: Pos = 0.05
    incentives: IncentiveConfig = IncentiveConfig(
        reward_symbol="UNI",
        reward_address="0x1f9840a85d5af5bf1d1762f925bdaddc4201f984",
        reward_price_usd=8.0,
    )


class BridgeArbConfig(Strict):
    """A stablecoin inventory route: income per year = round trips x max(0, q (s (1 - q/2C) - fee) - gas), q = min(x, C (1 - fee/s))."""

    origin_chain: str
    destination_chain: str
    token: str = "USDC"
    # C: size that closes the gap; the API's maxDepositInstant on this route
    capacity_usd: Pos = 500_000.0
    round_trips_per_day: Pos = 2.0
    rate_model: RateModelConfig | None = None  # routeRateModel override (else the bridge's)


class FixedConfig(Strict):
    product_id: str
    apr: Annotated[float, Field(ge=0, le=10)] = 0.05
    redemption_delay_seconds: NonNeg = 86_400.0
    min_purchase_usd: NonNeg = 0.1
    quota_usd: Pos = 50_000_000.0


#: the YAML sections each venue kind takes (exactly these)
KIND_SECTIONS: dict[str, tuple[str, ...]] = {
    "lending": ("lending",),
    "staking": ("staking",),
    "lp": ("lp",),
    "bridge_arb": ("bridge_arb",),
    "fixed": ("fixed",),
    "loop": ("loop",),
    "hedged_lp": ("lp", "hedge"),
    "nft_rental": ("nft_rental",),
}
SECTIONS = ("lending", "staking", "lp", "bridge_arb", "fixed", "loop", "hedge", "nft_rental")


class VenueMarketConfig(Strict):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")]
    kind: Literal[
        "staking", "lending", "lp", "bridge_arb", "fixed", "loop", "hedged_lp", "nft_rental"
    ]
    protocol: str
    chain: str
    asset: str
    risk_score: Annotated[float, Field(ge=0, le=10)] = 2.0
    # None: the protocol's own
    entry_fee_bps: Annotated[float, Field(ge=0, le=10_000)] | None = None
    defillama: DefiLlamaConfig = DefiLlamaConfig()
    lending: LendingConfig | None = None
    staking: StakingConfig | None = None
    lp: LpConfig | None = None
    bridge_arb: BridgeArbConfig | None = None
    fixed: FixedConfig | None = None
    loop: LoopConfig | None = None
    hedge: HedgeConfig | None = None  # with `lp:`, for hedged_lp
    nft_rental: NftRentalConfig | None = None

    @model_validator(mode="after")
    def _kind_section(self) -> VenueMarketConfig:
        needs = KIND_SECTIONS[self.kind]
        for section in needs:
            if getattr(self, section) is None:
                raise ValueError(
                    f"venue {self.id!r} of kind {self.kind} needs a `{section}:` section"
                )
        for other in SECTIONS:
            if other not in needs and getattr(self, other) is not None:
                raise ValueError(
                    f"venue {self.id!r} of kind {self.kind} must not have a `{other}:` section"
                )
        if (
            self.kind == "lending"
            and self.protocol == "compound-v3"
            and self.lending
            and self.lending.comet is None
        ):
            raise ValueError(f"venue {self.id!r}: compound-v3 needs lending.comet")
        return self

    @property
    def pool_uuid(self) -> str:
        return self.defillama.pool or str(uuid.uuid5(POOL_NAMESPACE, self.id))


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
