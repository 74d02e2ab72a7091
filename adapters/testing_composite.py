"""Static payloads of the composite kinds for :class:`adapters.testing.FakeFeeds` (the default
config's loop, hedged LP and NFT rental), in the shapes of ``mockfeeds/README.md``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from protocols import aave

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
WSTETH = "0x7f39c581f595b53c5cb19bd0b3f8da6c935e2ca0"
USER = "0x00000000000000000000000000000000000a11ce"
HEDGED_POOL = "b1f5a2c4-8e3d-4f6a-9c7b-2d4e6f8a0b1c"
AZUKI = "0xed5af388653567af2f388e6224dc7c4b241c544e"
WETH_STRATEGY = aave.PRESETS["ethereum-weth-2026-02"]
ETH_USD = 2069.0


def loop_reserves(
    now: datetime, *, debt_eth: float = 2.4e6, avail_eth: float = 6e5
) -> list[dict[str, Any]]:
    """The WETH (borrowed) and wstETH (collateral) reserves with E-mode category 1 (93/95/1 %)."""
    s = WETH_STRATEGY
    u = debt_eth / (debt_eth + avail_eth)
    emode = {
        "eModeCategoryId": 1,
        "eModeLtv": "9300",
        "eModeLiquidationThreshold": "9500",
        "eModeLiquidationBonus": "10100",
    }
    weth = {
        "underlyingAsset": WETH,
        "name": "Wrapped Ether",
        "symbol": "WETH",
        "decimals": 18,
        "reserveFactor": "1500",
        "liquidityRate": aave.to_ray(float(aave.supply_apr(s, u))),
        "variableBorrowRate": aave.to_ray(float(aave.borrow_apr(s, u))),
        "liquidityIndex": str(aave.RAY),
        "variableBorrowIndex": str(aave.RAY),
        "baseVariableBorrowRate": aave.to_ray(s.base_variable_borrow_apr),
        "variableRateSlope1": aave.to_ray(s.slope1_apr),
        "variableRateSlope2": aave.to_ray(s.slope2_apr),
        "optimalUsageRatio": aave.to_ray(s.optimal_usage_ratio),
        "availableLiquidity": str(int(avail_eth * 1e18)),
        "totalScaledVariableDebt": str(int(debt_eth * 1e18)),
        "supplyCap": "0",
        "borrowCap": "0",
        "priceInMarketReferenceCurrency": str(int(ETH_USD * 1e8)),
        "lastUpdateTimestamp": int(now.timestamp()),
        "isActive": True,
        "isFrozen": False,
        "isPaused": False,
        "borrowingEnabled": True,
        **emode,
    }
    wsteth = {
        **weth,
        "underlyingAsset": WSTETH,
        "name": "wstETH",
        "symbol": "wstETH",
        "borrowingEnabled": False,
        "liquidityRate": aave.to_ray(0.0001),
        "totalScaledVariableDebt": "0",
        "availableLiquidity": str(int(1e5 * 1e18)),
        "priceInMarketReferenceCurrency": str(int(ETH_USD * 0.999 * 1e8)),
    }
    return [weth, wsteth]


def composite_payloads(now: datetime) -> dict[str, Any]:
    ts = int(now.timestamp())
    return {
        f"/aave/v3/ethereum/users/{USER}": {
            "userEmodeCategoryId": 1,
            "userReserves": [],
            "accountData": {
                "totalCollateralBase": "0",
                "totalDebtBase": "0",
                "availableBorrowsBase": "0",
                "currentLiquidationThreshold": "9500",
                "ltv": "9300",
                "healthFactor": str(2**256 - 1),
            },
            "timestamp": ts,
        },
        "/binance/fapi/v1/fundingRate": [
            {
                "symbol": "ETHUSDT",
                "fundingTime": (ts - 8 * 3600 * (20 - i)) * 1000,
                "fundingRate": "0.00010000",
                "markPrice": "2069.00000000",
            }
            for i in range(21)
        ],
        "/binance/fapi/v1/premiumIndex": {
            "symbol": "ETHUSDT",
            "markPrice": "2069.0",
            "indexPrice": "2069.0",
            "estimatedSettlePrice": "2069.0",
            "lastFundingRate": "0.00010000",
            "interestRate": "0.00010000",
            "nextFundingTime": (ts + 3600) * 1000,
            "time": ts * 1000,
        },
        f"/chainlink/v1/nft-floor/{AZUKI}/rounds": {
            "description": "azuki Floor Price / ETH",
            "decimals": 18,
            "rounds": [
                {
                    "roundId": str(i + 1),
                    "answer": str(int((6.0 + 0.01 * (i % 3)) * 1e18)),
                    "startedAt": ts - 3600 * (167 - i),
                    "updatedAt": ts - 3600 * (167 - i),
                    "answeredInRound": str(i + 1),
                }
                for i in range(168)
            ],
        },
        "/opensea/api/v2/collections/azuki/stats": {
            "total": {
                "volume": 26_000.0,
                "sales": 4380,
                "average_price": 6.3,
                "num_owners": 4500,
                "market_cap": 60_000.0,
                "floor_price": 6.0,
                "floor_price_symbol": "ETH",
            },
            "intervals": [
                {
                    "interval": "one_day",
                    "volume": 72.0,
                    "volume_diff": 0.0,
                    "volume_change": 0.0,
                    "sales": 12.0,
                    "sales_diff": 0.0,
                    "average_price": 6.3,
                }
            ],
        },
        "/renft/v1/lendings": {
            "data": {
                "lendings": [
                    {
                        "id": f"{AZUKI}-{i}",
                        "nftAddress": AZUKI,
                        "tokenID": str(i),
                        "lenderAddress": f"0x{i:040x}",
                        "lentAmount": "1",
                        "dailyRentPrice": "0.00250000",
                        "maxRentDuration": 30,
                        "renting": {"rentDuration": 7, "rentedAt": ts - 86_400}
                        if i <= 90
                        else None,
                    }
                    for i in range(1, 111)
                ]
            },
            "timestamp": ts,
        },
    }
