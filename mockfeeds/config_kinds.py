"""Market-YAML sections of the composite venue kinds: ``loop``, ``hedge`` (with ``lp``, for
``hedged_lp``) and ``nft_rental``. Field lists and defaults; the processes are described in
``mockfeeds/README.md`` and the venue models (``mockfeeds/venues/``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from mockfeeds.config_types import Address, NonNeg, Pos, Strict, Unit, known_aave_strategy
from protocols import loop


class LoopConfig(Strict):
    """An Aave v3 E-mode loop: stETH collateral, WETH debt, re-staked. The WETH reserve's other
    suppliers and borrowers evolve like a lending pool (utilization OU with shocks); the stETH/ETH
    price is the chain's ``collateral_symbol`` token (an eth-kind token: its basis is the discount);
    the staking APR is the market's Lido venue's."""

    market: str = "ethereum"  # served in /aave/v3/{market}/reserves next to the lending reserves
    user: Address = "0x00000000000000000000000000000000000a11ce"  # the vault's account on Aave
    staking_venue: str = "lido-steth"  # whose share rate the collateral earns
    collateral_symbol: str = "stETH"
    collateral_address: Address = "0x7f39c581f595b53c5cb19bd0b3f8da6c935e2ca0"  # wstETH
    debt_address: Address = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"  # WETH
    strategy: str | dict[str, float] = "ethereum-weth-2026-02"
    weth_supply_eth: Pos = 3_000_000.0  # the WETH reserve's other suppliers
    utilization: Unit = 0.80
    utilization_mean: Unit = 0.80
    utilization_sigma: NonNeg = 0.03
    reversion_per_day: Pos = 0.5
    shock_prob_per_day: NonNeg = 0.02
    shock_size: Unit = 0.05
    ltv: Annotated[float, Field(gt=0, lt=1)] = loop.EMODE_ETH_LTV
    liquidation_threshold: Annotated[float, Field(gt=0, lt=1)] = (
        loop.EMODE_ETH_LIQUIDATION_THRESHOLD
    )
    liquidation_bonus: Annotated[float, Field(ge=0, lt=0.5)] = loop.EMODE_ETH_LIQUIDATION_BONUS
    target_health_factor: Annotated[float, Field(gt=1)] = 1.08  # leverage of each deposit
    collateral_supply_apr: NonNeg = 0.0001  # wstETH supply APR on Aave (it is barely borrowed)
    swap_fee: NonNeg = 0.0001  # the stETH/ETH pool's fee (Curve: 1 bp) on an instant unwind
    unwind_liquidity_eth: Pos = 60_000.0  # stETH the pool absorbs at once near the peg

    _known_strategy = field_validator("strategy")(known_aave_strategy)


class HedgeConfig(Strict):
    """The perpetual short hedging a ``hedged_lp`` venue's ETH delta (Binance USD-M shape): the
    8-hourly funding rate is OU around ``funding_mean_8h`` (0.01 % is Binance's interest-rate
    baseline), settled every ``funding_interval_hours``."""

    symbol: str = "ETHUSDT"
    funding_8h: float = 0.0001
    funding_mean_8h: float = 0.0001
    funding_sigma_8h: NonNeg = 0.00008  # stationary std-dev of the 8-hour rate
    funding_reversion_per_day: Pos = 0.3
    funding_interval_hours: Pos = 8.0
    perp_leverage: Annotated[float, Field(ge=1, le=20)] = 3.0
    taker_fee: NonNeg = 0.0005
    rebalance_hours: Pos = 24.0


class NftRentalConfig(Strict):
    """A blue-chip collection rented out by the day (ERC-4907). Floor: GBM in ETH; rent per day,
    renters' demand (NFT-days a day) and the others' listings: OU; floor sales a day: OU."""

    collection: Address = "0xed5af388653567af2f388e6224dc7c4b241c544e"  # Azuki
    slug: str = "azuki"
    floor_eth: Pos = 6.0
    floor_sigma_annual: NonNeg = 0.8
    floor_drift_annual: float = 0.0
    daily_rent_eth: Pos = 0.0025
    rent_sigma: NonNeg = 0.15  # stationary log-std of the daily rent
    demand_nft_days_per_day: NonNeg = 90.0
    demand_sigma: NonNeg = 0.15  # stationary log-std of the demand
    listed_others: NonNeg = 110.0
    sales_per_day: Pos = 12.0
    max_share_of_sales: Annotated[float, Field(gt=0, le=1)] = 0.25
    exit_haircut: Annotated[float, Field(ge=0, lt=1)] = 0.06  # top bid below the floor
    reversion_per_day: Pos = 0.2
    supply: Annotated[int, Field(gt=0)] = 10_000
