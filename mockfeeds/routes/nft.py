"""Routes of the NFT-rental venues, in three public shapes:

- floor oracle, a Chainlink NFT Floor Price feed's rounds (AggregatorV3 ``getRoundData`` fields
  as JSON): ``GET /chainlink/v1/nft-floor/{collection}/rounds?count=N`` ->
  ``{"description":"<slug> Floor Price / ETH","decimals":18,"rounds":[{"roundId","answer"
  (wei string),"startedAt","updatedAt","answeredInRound"},…]}`` hourly, oldest first;
- collection stats, OpenSea API v2 ``GET /opensea/api/v2/collections/{slug}/stats`` ->
  ``{"total":{"volume","sales","average_price","num_owners","market_cap","floor_price",
  "floor_price_symbol":"ETH"},"intervals":[{"interval":"one_day","volume","volume_diff",
  "volume_change","sales","sales_diff","average_price"}]}``;
- rental listings, reNFT's lending entities as its subgraph answers them:
  ``GET /renft/v1/lendings?nftAddress=0x…`` -> ``{"data":{"lendings":[{"id","nftAddress",
  "tokenID","lenderAddress","lentAmount","dailyRentPrice" (ETH string),"maxRentDuration"
  (days),"renting":{"rentDuration","rentedAt"} | null},…]}}``; our listing is one row with
  ``lentAmount`` our NFT count (a pool of floor NFTs, fractional), the others one row each.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from mockfeeds.market import Market, MarketError
from mockfeeds.routes.common import market_of, query_number, reply
from mockfeeds.venues import NftRentalVenue

VAULT = "0x00000000000000000000000000000000000a11ce"


def _by_collection(m: Market, address: str) -> NftRentalVenue:
    for v in m.venues:
        if isinstance(v, NftRentalVenue) and v.c.collection.lower() == address.lower():
            return v
    raise MarketError("collection", f"unknown collection {address!r}", 404)


async def floor_rounds(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    v = _by_collection(m, request.match_info["collection"])
    count = int(query_number(request, "count", 168, lo=1, hi=24 * 30))
    rounds = list(v.rounds)[-count:]
    first_id = v.round_id - len(rounds) + 1
    payload = {
        "description": f"{v.c.slug} Floor Price / ETH",
        "decimals": 18,
        "rounds": [
            {
                "roundId": str(first_id + i),
                "answer": str(int(floor * 1e18)),
                "startedAt": int(t),
                "updatedAt": int(t),
                "answeredInRound": str(first_id + i),
            }
            for i, (t, floor) in enumerate(rounds)
        ],
    }
    return await reply(request, payload, venues=frozenset({v.id}))


async def collection_stats(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    slug = request.match_info["slug"]
    v = next((x for x in m.venues if isinstance(x, NftRentalVenue) and x.c.slug == slug), None)
    if v is None:
        raise MarketError("slug", f"unknown collection {slug!r}", 404)
    floor = v.floor()
    sales = v.sales_per_day
    payload = {
        "total": {
            "volume": sales * floor * 365.0,
            "sales": int(sales * 365),
            "average_price": floor * 1.05,
            "num_owners": int(v.c.supply * 0.45),
            "market_cap": floor * v.c.supply,
            "floor_price": floor,
            "floor_price_symbol": "ETH",
        },
        "intervals": [
            {
                "interval": "one_day",
                "volume": sales * floor,
                "volume_diff": 0.0,
                "volume_change": 0.0,
                "sales": sales,
                "sales_diff": 0.0,
                "average_price": floor * 1.05,
            }
        ],
    }
    return await reply(request, payload, venues=frozenset({v.id}))


async def lendings(request: web.Request) -> web.StreamResponse:
    m = market_of(request)
    address = request.query.get("nftAddress")
    if not address:
        raise MarketError("nftAddress", "required query parameter", 400)
    v = _by_collection(m, address)
    listed = math.floor(v.listed_others)
    n_ours = v.n_ours(m)
    occ = v.occupancy(m)
    rented = round(occ * listed)
    rows: list[dict[str, Any]] = []
    t = int(m.state_time)
    for i in range(listed):
        rows.append(
            {
                "id": f"{v.c.collection}-{i + 1}",
                "nftAddress": v.c.collection,
                "tokenID": str(i + 1),
                "lenderAddress": f"0x{(i + 1):040x}",
                "lentAmount": "1",
                "dailyRentPrice": f"{v.daily_rent_eth:.8f}",
                "maxRentDuration": 30,
                "renting": {"rentDuration": 7, "rentedAt": t - 3 * 86_400} if i < rented else None,
            }
        )
    if n_ours > 0:
        rows.append(
            {
                "id": f"{v.c.collection}-vault",
                "nftAddress": v.c.collection,
                "tokenID": "0",
                "lenderAddress": VAULT,
                "lentAmount": f"{n_ours:.8f}",
                "dailyRentPrice": f"{v.daily_rent_eth:.8f}",
                "maxRentDuration": 30,
                "renting": {"rentDuration": 7, "rentedAt": t - 3 * 86_400, "share": f"{occ:.8f}"},
            }
        )
    return await reply(
        request, {"data": {"lendings": rows}, "timestamp": t}, venues=frozenset({v.id})
    )
