"""The market YAML's world sections: chains and their tokens, the ETH price, the Across bridge."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mockfeeds.config_types import Address, NonNeg, Pos, Strict, Unit


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
