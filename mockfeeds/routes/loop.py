"""Aave-shaped routes of the loop venues: their WETH and wstETH reserves inside
``/aave/v3/{market}/reserves`` (``UiPoolDataProviderV3.getReservesHumanized`` fields, with the
E-mode fields ``eModeCategoryId``, ``eModeLtv``, ``eModeLiquidationThreshold``,
``eModeLiquidationBonus`` in bps as the contract stores them), and the account of the vault,
``GET /aave/v3/{market}/users/{user}``: ``getUserReservesHumanized`` (``userReserves``,
``userEmodeCategoryId``) plus ``Pool.getUserAccountData`` (``totalCollateralBase``,
``totalDebtBase``, ``availableBorrowsBase`` in the base currency, USD with 8 decimals;
``currentLiquidationThreshold`` and ``ltv`` in bps; ``healthFactor`` with 18 decimals)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mockfeeds.market import Market, MarketError
from mockfeeds.routes.common import market_of, reply
from mockfeeds.venues import LoopVenue
from protocols import aave

EMODE_CATEGORY_ETH = 1
UINT256_MAX = str(2**256 - 1)  # Aave's healthFactor without debt


def loop_venues(m: Market, market_name: str) -> list[LoopVenue]:
    return [v for v in m.venues if isinstance(v, LoopVenue) and v.c.market == market_name]


def _bps(x: float) -> str:
    return str(round(x * 10_000))


def loop_reserve_rows(m: Market, v: LoopVenue) -> list[dict[str, Any]]:
    """The loop's two reserves: WETH (borrowed; its rate curve and debt) and wstETH (collateral)."""
    c, s = v.c, v.strategy
    debt = v.total_debt()
    avail = max(0.0, v.s_others - debt)
    eth_price = str(round(m.eth_usd * 1e8))
    emode = {
        "eModeCategoryId": EMODE_CATEGORY_ETH,
        "eModeLtv": _bps(c.ltv),
        "eModeLiquidationThreshold": _bps(c.liquidation_threshold),
        "eModeLiquidationBonus": str(10_000 + round(c.liquidation_bonus * 10_000)),
        "eModeLabel": "ETH correlated",
    }
    weth = {
        "id": f"{c.debt_address}{c.market}".lower(),
        "underlyingAsset": c.debt_address,
        "name": "Wrapped Ether",
        "symbol": "WETH",
        "decimals": 18,
        "isActive": True,
        "isFrozen": False,
        "isPaused": v.paused,
        "borrowingEnabled": True,
        "reserveFactor": _bps(s.reserve_factor),
        "liquidityIndex": aave.to_ray(1.0),
        "variableBorrowIndex": aave.to_ray(v.borrow_index),
        "liquidityRate": aave.to_ray(v.supply_apr()),
        "variableBorrowRate": aave.to_ray(v.borrow_apr()),
        "lastUpdateTimestamp": int(m.state_time),
        "availableLiquidity": str(int(avail * 1e18)),
        "virtualUnderlyingBalance": str(int(avail * 1e18)),
        "totalScaledVariableDebt": str(int(debt / v.borrow_index * 1e18)),
        "unbacked": "0",
        "accruedToTreasury": "0",
        "priceInMarketReferenceCurrency": eth_price,
        "baseVariableBorrowRate": aave.to_ray(s.base_variable_borrow_apr),
        "variableRateSlope1": aave.to_ray(s.slope1_apr),
        "variableRateSlope2": aave.to_ray(s.slope2_apr),
        "optimalUsageRatio": aave.to_ray(s.optimal_usage_ratio),
        "supplyCap": "0",
        "borrowCap": "0",
        **emode,
    }
    wsteth = {
        **weth,
        "id": f"{c.collateral_address}{c.market}".lower(),
        "underlyingAsset": c.collateral_address,
        "name": "Wrapped liquid staked Ether 2.0",
        "symbol": "wstETH",
        "borrowingEnabled": False,
        "liquidityRate": aave.to_ray(c.collateral_supply_apr),
        "variableBorrowRate": aave.to_ray(0.0),
        "availableLiquidity": str(int(v.collateral_steth * 1e18)),
        "virtualUnderlyingBalance": str(int(v.collateral_steth * 1e18)),
        "totalScaledVariableDebt": "0",
        "priceInMarketReferenceCurrency": str(
            round(m.token_price(v.chain, c.collateral_symbol) * 1e8)
        ),
    }
    return [weth, wsteth]


async def aave_user(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    name, user = request.match_info["market"], request.match_info["user"].lower()
    v = next((x for x in loop_venues(m, name) if x.c.user.lower() == user), None)
    if v is None:
        raise MarketError("user", f"no account {user} in Aave market {name!r}", 404)
    c = v.c
    p_col = m.token_price(v.chain, c.collateral_symbol)
    col_usd = v.collateral_steth * p_col
    debt_usd = v.debt_eth * m.eth_usd
    hf = v.health_factor(m)
    payload = {
        "userEmodeCategoryId": EMODE_CATEGORY_ETH,
        "userReserves": [
            {
                "underlyingAsset": c.collateral_address,
                "scaledATokenBalance": str(int(v.collateral_steth * 1e18)),
                "usageAsCollateralEnabledOnUser": True,
                "scaledVariableDebt": "0",
            },
            {
                "underlyingAsset": c.debt_address,
                "scaledATokenBalance": "0",
                "usageAsCollateralEnabledOnUser": False,
                "scaledVariableDebt": str(int(v.debt_eth / v.borrow_index * 1e18)),
            },
        ],
        "accountData": {
            "totalCollateralBase": str(int(col_usd * 1e8)),
            "totalDebtBase": str(int(debt_usd * 1e8)),
            "availableBorrowsBase": str(int(max(0.0, col_usd * c.ltv - debt_usd) * 1e8)),
            "currentLiquidationThreshold": _bps(c.liquidation_threshold),
            "ltv": _bps(c.ltv),
            "healthFactor": UINT256_MAX if v.debt_eth <= 0 else str(int(hf * 1e18)),
        },
        "timestamp": int(m.state_time),
    }
    return await reply(request, payload, venues=frozenset({v.id}))
