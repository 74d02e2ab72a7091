"""The market YAML's ``venues:`` entries: one section per basic venue kind (lending, staking, lp,
bridge_arb, fixed; the composite kinds' sections are in ``mockfeeds/config_kinds.py``) and the
venue entry that checks a kind has exactly its sections."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mockfeeds.config_kinds import HedgeConfig, LoopConfig, NftRentalConfig
from mockfeeds.config_types import Address, NonNeg, Pos, Strict, Unit, known_aave_strategy
from mockfeeds.config_world import RateModelConfig

#: namespace for venue pool uuids derived from ids when the YAML gives none
POOL_NAMESPACE = uuid.UUID("8f7c5b2e-3c1d-4e5f-9a0b-1c2d3e4f5a6b")


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

    _known_strategy = field_validator("strategy")(known_aave_strategy)


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
