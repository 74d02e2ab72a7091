"""A small contract-shaped feed server for tests: every payload of ``mockfeeds/README.md`` for the
default venues (``config/default.yaml``; the composite kinds' from
:mod:`adapters.testing_composite`), with knobs for faults and cache headers.

This is not the simulated market (``mockfeeds/``): its payloads are static apart from what a
test changes, which makes exact assertions possible. Payloads follow the live APIs' shapes,
including the DefiLlama ``/pools`` row's 28 fields with nulls where the live API sends them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from aiohttp import web

from adapters.testing_composite import HEDGED_POOL, composite_payloads, loop_reserves
from protocols import aave

USDC_ETH = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
USDC_ARB = "0xaf88d065e77c8cc2239327c5edb3a432268e5831"
USDC_BASE = "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
COMP = "0xc00e94cb662c3520282e6f5717214004a7f26888"
LP_POOL = "6e2fd0b3-6b7c-4a5e-9f43-1c2d3e4f5a6b"
COMET = "0xc3d688b66703497daa19211eedff47f25384cdc3"

T0 = datetime(2026, 2, 1, tzinfo=UTC)

AAVE_STRATEGY = aave.PRESETS["ethereum-usdc-2026-02"]


def llama_pool_row(
    pool: str = LP_POOL,
    *,
    tvl_usd: float = 300e6,
    apy_base: float | None = 4.38,
    apy_reward: float | None = 0.5,
    il_risk: str = "yes",
    symbol: str = "USDC-WETH",
    project: str = "uniswap-v2",
) -> dict[str, Any]:
    """A ``/pools`` row with all 28 documented fields, in the live API's types."""
    apy = (apy_base or 0.0) + (apy_reward or 0.0)
    return {
        "chain": "Ethereum",
        "project": project,
        "symbol": symbol,
        "tvlUsd": tvl_usd,
        "apyBase": apy_base,
        "apyReward": apy_reward,
        "apy": apy,
        "rewardTokens": ["0x1f9840a85d5af5bf1d1762f925bdaddc4201f984"] if apy_reward else None,
        "pool": pool,
        "apyPct1D": 0.12,
        "apyPct7D": -0.4,
        "apyPct30D": None,
        "stablecoin": False,
        "ilRisk": il_risk,
        "exposure": "multi" if "-" in symbol else "single",
        "predictions": {
            "predictedClass": "Stable/Up",
            "predictedProbability": 71.0,
            "binnedConfidence": 2,
        },
        "poolMeta": None,
        "mu": 5.1,
        "sigma": 0.42,
        "count": 412,
        "outlier": False,
        "underlyingTokens": [USDC_ETH, WETH],
        "il7d": None,
        "apyBase7d": 4.1,
        "apyMean30d": 4.9,
        "volumeUsd1d": 12e6,
        "volumeUsd7d": 80e6,
        "apyBaseInception": None,
    }


def aave_reserve(
    now: datetime,
    *,
    available_usd: float = 200e6,
    debt_usd: float = 800e6,
    strategy: aave.AaveRateStrategy = AAVE_STRATEGY,
    supply_cap_tokens: int = 2_000_000_000,
) -> dict[str, Any]:
    u = aave.utilization(debt_usd, available_usd)
    return {
        "underlyingAsset": USDC_ETH,
        "name": "USD Coin",
        "symbol": "USDC",
        "decimals": 6,
        "reserveFactor": str(round(strategy.reserve_factor * 10_000)),
        "liquidityRate": aave.to_ray(float(aave.supply_apr(strategy, u))),
        "variableBorrowRate": aave.to_ray(float(aave.borrow_apr(strategy, u))),
        "liquidityIndex": str(aave.RAY),
        "variableBorrowIndex": str(aave.RAY),
        "baseVariableBorrowRate": aave.to_ray(strategy.base_variable_borrow_apr),
        "variableRateSlope1": aave.to_ray(strategy.slope1_apr),
        "variableRateSlope2": aave.to_ray(strategy.slope2_apr),
        "optimalUsageRatio": aave.to_ray(strategy.optimal_usage_ratio),
        "availableLiquidity": str(int(available_usd * 1e6)),
        "totalScaledVariableDebt": str(int(debt_usd * 1e6)),
        "supplyCap": str(supply_cap_tokens),
        "borrowCap": str(supply_cap_tokens * 9 // 10),
        "priceInMarketReferenceCurrency": "100000000",
        "lastUpdateTimestamp": int(now.timestamp()),
        "isActive": True,
        "isFrozen": False,
        "isPaused": False,
        "borrowingEnabled": True,
    }


def price_history(
    now: datetime, hours: int, sigma_annual: float, start: float = 2069.0, seed: int = 7
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    step = sigma_annual / math.sqrt(24 * 365)
    logs = np.cumsum(np.concatenate(([0.0], rng.normal(0.0, step, hours))))
    return [
        {
            "timestamp": int((now - timedelta(hours=hours - i)).timestamp()),
            "price": float(start * math.exp(v)),
        }
        for i, v in enumerate(logs)
    ]


@dataclass
class FakeFeeds:
    """Mutable payloads keyed by mock path, plus faults. ``now`` stamps the time fields."""

    now: datetime = T0
    sigma_annual: float = 0.65
    payloads: dict[str, Any] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # path prefix -> forced status
    delay_seconds: dict[str, float] = field(default_factory=dict)  # path prefix -> sleep
    raw_body: dict[str, bytes] = field(default_factory=dict)  # path prefix -> body sent as is
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path prefix -> extra headers
    etag: bool = False
    coin_timestamp: datetime | None = None  # stamp prices with this instead of now
    hits: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not self.payloads:
            self.reset()

    def reset(self) -> None:
        now = self.now
        ts = int(now.timestamp())
        self.payloads = {
            "/defillama/pools": {"status": "success", "data": [llama_pool_row()]},
            f"/defillama/chart/{LP_POOL}": {
                "status": "success",
                "data": [
                    {
                        "timestamp": (now - timedelta(days=6 - d))
                        .isoformat()
                        .replace("+00:00", "Z"),
                        "tvlUsd": 300e6,
                        "apy": 4.4 + 0.1 * d,
                        "apyBase": 4.0 + 0.1 * d,
                        "apyReward": 0.4,
                        "il7d": None,
                        "apyBase7d": 4.2,
                    }
                    for d in range(7)
                ],
            },
            "/lido/v1/protocol/steth/apr/sma": {
                "data": {
                    "aprs": [
                        {"timeUnix": ts - 86_400 * (6 - d) - 3600, "apr": 2.9 + 0.02 * d}
                        for d in range(7)
                    ],
                    "smaApr": 2.96,
                },
                "meta": {
                    "symbol": "stETH",
                    "address": "0xae7ab96520de3a18e5e111b5eaab095312d7fe84",
                    "chainId": 1,
                },
            },
            "/lido/v2/request-time/calculate": {
                "requestInfo": {
                    "finalizationIn": 4 * 86_400_000,
                    "finalizationAt": (now + timedelta(days=4)).isoformat().replace("+00:00", "Z"),
                    "type": "exitValidators",
                },
                "status": "calculated",
                "nextCalculationAt": (now + timedelta(minutes=10))
                .isoformat()
                .replace("+00:00", "Z"),
            },
            "/aave/v3/ethereum/reserves": {
                "reservesData": [aave_reserve(now)],
                "baseCurrencyData": {
                    "marketReferenceCurrencyDecimals": 8,
                    "marketReferenceCurrencyPriceInUsd": "100000000",
                    "networkBaseTokenPriceInUsd": "206900000000",
                    "networkBaseTokenPriceDecimals": 8,
                },
            },
            "/aave/v3/ethereum/incentives": [
                {
                    "underlyingAsset": USDC_ETH,
                    "aIncentiveData": {
                        "tokenAddress": "0x98c23e9d8f34fefb1b7bd6a91b7ff122f4e16f5c",
                        "rewardsTokenInformation": [
                            {
                                "rewardTokenSymbol": "AAVE",
                                "rewardTokenDecimals": 18,
                                # 1,000 USD/day at 150 USD per AAVE
                                "emissionPerSecond": str(int(1000 / 150 / 86_400 * 1e18)),
                                "emissionEndTimestamp": ts + 30 * 86_400,
                                "rewardPriceFeed": "15000000000",
                                "priceFeedDecimals": 8,
                            }
                        ],
                    },
                }
            ],
            f"/compound/v3/ethereum/{COMET}": {
                "comet": COMET,
                "baseToken": USDC_ETH,
                "baseTokenSymbol": "USDC",
                "decimals": 6,
                "totalSupply": str(int(500e6 * 1e6)),
                "totalBorrow": str(int(400e6 * 1e6)),
                "utilization": str(8 * 10**17),
                "supplyRate": str(int(0.054 * 0.8 * 1e18 / 31_536_000)),
                "borrowRate": str(int((0.015 + 0.05 * 0.8) * 1e18 / 31_536_000)),
                "supplyKink": str(9 * 10**17),
                "supplyPerSecondInterestRateSlopeLow": str(int(0.054e18) // 31_536_000),
                "supplyPerSecondInterestRateSlopeHigh": str(int(3.034e18) // 31_536_000),
                "supplyPerSecondInterestRateBase": "0",
                "borrowKink": str(9 * 10**17),
                "borrowPerSecondInterestRateSlopeLow": str(int(0.05e18) // 31_536_000),
                "borrowPerSecondInterestRateSlopeHigh": str(int(3.4e18) // 31_536_000),
                "borrowPerSecondInterestRateBase": str(int(0.015e18) // 31_536_000),
                "baseTrackingSupplySpeed": str(int(35 * 1e15 / 86_400)),  # 35 COMP/day
                "trackingIndexScale": str(10**15),
                "baseMinForRewards": str(10**6 * 10**6),
                "timestamp": ts,
            },
            "/across/api/suggested-fees": {
                "totalRelayFee": {"pct": str(int(0.000155e18)), "total": "1550000"},
                "relayerCapitalFee": {"pct": str(int(0.0001e18)), "total": "1000000"},
                "relayerGasFee": {"pct": str(int(0.000005e18)), "total": "50000"},
                "lpFee": {"pct": str(int(0.00005e18)), "total": "500000"},
                "timestamp": str(ts),
                "isAmountTooLow": False,
                "quoteBlock": "19000000",
                "expectedFillTimeSec": "60",
                "limits": {
                    "minDeposit": "1000000",
                    "maxDeposit": str(20_000_000 * 10**6),
                    "maxDepositInstant": str(500_000 * 10**6),
                    "maxDepositShortDelay": str(5_000_000 * 10**6),
                    "recommendedDepositInstant": str(400_000 * 10**6),
                },
            },
            "/across/api/limits": {
                "minDeposit": "1000000",
                "maxDeposit": str(20_000_000 * 10**6),
                "maxDepositInstant": str(500_000 * 10**6),
                "maxDepositShortDelay": str(5_000_000 * 10**6),
                "recommendedDepositInstant": str(400_000 * 10**6),
            },
            "/earn/sapi/v1/simple-earn/flexible/list": {
                "rows": [
                    {
                        "asset": "USDT",
                        "latestAnnualPercentageRate": "0.05",
                        "canPurchase": True,
                        "canRedeem": True,
                        "isSoldOut": False,
                        "minPurchaseAmount": "0.1",
                        "productId": "USDT001",
                        "status": "PURCHASING",
                    }
                ],
                "total": 1,
            },
        }
        # the composite kinds of the default config (loop, hedged LP, NFT rental)
        self.payloads.update(composite_payloads(now))
        self.payloads["/aave/v3/ethereum/reserves"]["reservesData"] += loop_reserves(now)
        self.payloads["/defillama/pools"]["data"].append(
            llama_pool_row(HEDGED_POOL, tvl_usd=150e6, apy_base=18.0, apy_reward=None)
        )
        self.coin_prices = {
            "coingecko:ethereum": 2069.0,
            f"arbitrum:{USDC_ARB}": 0.9995,
            f"base:{USDC_BASE}": 1.0015,
            f"ethereum:{WETH}": 2069.0,
            f"ethereum:{COMP}": 45.0,
            f"ethereum:{USDC_ETH}": 1.0,
        }

    # --- serving ----------------------------------------------------------------------------------

    def coins_current(self, keys: str) -> dict[str, Any]:
        ts = int((self.coin_timestamp or self.now).timestamp())
        out = {}
        for key in keys.split(","):
            price = self.coin_prices.get(key.lower())
            if price is not None:
                decimals = 18 if key.lower().endswith((WETH, COMP)) else 6
                out[key] = {
                    "decimals": decimals,
                    "symbol": "X",
                    "price": price,
                    "timestamp": ts,
                    "confidence": 0.99,
                }
        return {"coins": out}

    def coins_chart(self, keys: str, span: int) -> dict[str, Any]:
        out = {}
        for key in keys.split(","):
            if key.lower() in self.coin_prices:
                out[key] = {
                    "symbol": "WETH",
                    "decimals": 18,
                    "confidence": 0.99,
                    "prices": price_history(
                        self.now, span, self.sigma_annual, self.coin_prices[key.lower()]
                    ),
                }
        return {"coins": out}

    def payload_for(self, path: str, query: dict[str, str]) -> Any:
        if path.startswith("/coins/prices/current/"):
            return self.coins_current(path.rsplit("/", 1)[1])
        if path.startswith("/coins/chart/"):
            return self.coins_chart(path.rsplit("/", 1)[1], int(query.get("span", "168")))
        if path in self.payloads:
            return copy.deepcopy(self.payloads[path])
        raise web.HTTPNotFound(
            text=json.dumps({"error": {"field": "path", "reason": f"no feed at {path}"}}),
            content_type="application/json",
        )

    def _match(self, table: dict[str, Any], path: str) -> Any:
        for prefix, value in table.items():
            if path.startswith(prefix):
                return value
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        delay = self._match(self.delay_seconds, path)
        if delay:
            await asyncio.sleep(delay)
        status = self._match(self.status, path)
        extra = self._match(self.headers, path) or {}
        if status:
            return web.json_response(
                {"error": {"field": None, "reason": "injected"}}, status=status, headers=extra
            )
        raw = self._match(self.raw_body, path)
        if raw is not None:
            return web.Response(body=raw, content_type="application/json", headers=extra)
        body = json.dumps(self.payload_for(path, dict(request.query))).encode()
        headers = dict(extra)
        if self.etag:
            tag = f'"{hash(body) & 0xFFFFFFFF:x}"'
            headers["ETag"] = tag
            if request.headers.get("If-None-Match") == tag:
                return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        return app
