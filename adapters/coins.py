"""DefiLlama coins API: batched current prices and price histories shared by all venues.

``GET {coins_url}/prices/current/{chain:addr,chain:addr,…}`` and
``GET {coins_url}/chart/{coins}?span=N&period=1h`` (live host https://coins.llama.fi).
Every coin any venue needs is fetched in batches of ``coins_batch_size`` per request, so a
thousand bridge routes cost a handful of requests, not two thousand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from adapters.errors import FeedError
from adapters.http import Endpoint, Fetched
from adapters.models import CoinChart, CoinPrice, CoinPrices, parse

FEED = "coins"
PREFIX = "coins"
LIVE_BASE_URL = "https://coins.llama.fi"
HOURS_PER_YEAR = 24 * 365
CHART_BATCH = 20  # histories are ~168 points each; keep a response small


class BuildContext(Protocol):
    """What the coins rows need of ``adapters.base.BuildContext`` (which calls in here: this
    module does not import that one)."""

    def row(self, endpoint: Endpoint, key: Any, raw: Any, model: Any, where: str) -> Any: ...

    def index(self, endpoint: Endpoint, name: str, build: Any) -> Any: ...


def price_endpoints(coins_url: str, coins: Iterable[str], batch: int) -> dict[str, Endpoint]:
    """coin (lower case) -> the batched current-price endpoint that carries it."""
    unique = sorted({c.lower() for c in coins})
    out: dict[str, Endpoint] = {}
    for i in range(0, len(unique), batch):
        chunk = unique[i : i + batch]
        endpoint = Endpoint(FEED, f"{coins_url}/prices/current/{','.join(chunk)}")
        out.update({c: endpoint for c in chunk})
    return out


def chart_endpoints(coins_url: str, coins: Iterable[str], span_hours: int) -> dict[str, Endpoint]:
    unique = sorted({c.lower() for c in coins})
    out: dict[str, Endpoint] = {}
    for i in range(0, len(unique), CHART_BATCH):
        chunk = unique[i : i + CHART_BATCH]
        endpoint = Endpoint(
            FEED,
            f"{coins_url}/chart/{','.join(chunk)}",
            (("period", "1h"), ("span", str(span_hours))),
        )
        out.update({c: endpoint for c in chunk})
    return out


def _index(fetched: Fetched) -> dict[str, Any]:
    try:
        envelope = parse(CoinPrices, fetched.payload, "coins")
    except FeedError as exc:
        exc.feed = FEED
        raise
    return {k.lower(): v for k, v in envelope.coins.items()}


def _row(ctx: BuildContext, endpoint: Endpoint, coin: str, raw: Any, model: Any, where: str) -> Any:
    try:
        return ctx.row(endpoint, coin.lower(), raw, model, where)
    except FeedError as exc:
        exc.feed = FEED
        raise


def price_from(ctx: BuildContext, endpoint: Endpoint, coin: str) -> CoinPrice:
    raw = ctx.index(endpoint, "coins", _index).get(coin.lower())
    if raw is None:
        raise FeedError("schema", f"coins: field coins.{coin}: missing from the answer", feed=FEED)
    return _row(ctx, endpoint, coin, raw, CoinPrice, f"coins {coin}")


def volatility_from(ctx: BuildContext, endpoint: Endpoint, coin: str) -> float:
    """Realized annual volatility of ``coin``, computed once per body version and cached (every
    LP on a chain shares its WETH history)."""

    def compute(_: Fetched) -> dict[str, float | FeedError]:
        return {}

    memo = ctx.index(endpoint, "volatility", compute)
    key = coin.lower()
    if key not in memo:
        try:
            memo[key] = realized_volatility_annual(chart_from(ctx, endpoint, coin))
        except FeedError as exc:
            memo[key] = exc
    value = memo[key]
    if isinstance(value, FeedError):
        raise value
    return value


def chart_from(ctx: BuildContext, endpoint: Endpoint, coin: str) -> CoinChart:
    raw = ctx.index(endpoint, "coins", _index).get(coin.lower())
    if raw is None:
        raise FeedError(
            "schema", f"coins chart: field coins.{coin}: missing from the answer", feed=FEED
        )
    return _row(ctx, endpoint, coin, raw, CoinChart, f"coins chart {coin}")


def realized_volatility_annual(chart: CoinChart) -> float:
    """Annualised volatility of log prices from a (possibly irregular) history:

    ``sigma^2 = sum(ln(p_i / p_{i-1})^2) / sum(dt_i) * hours_per_year`` (realized variance per
    hour, annualised with 365 days). Needs at least three points spanning positive time.
    """
    points = sorted(chart.prices, key=lambda p: p.timestamp)
    if len(points) < 3:
        raise FeedError(
            "schema", f"coins chart: field prices: {len(points)} points, need >= 3 for a volatility"
        )
    prices = np.array([p.price for p in points], dtype=np.float64)
    hours = np.array([p.timestamp.timestamp() for p in points], dtype=np.float64) / 3600.0
    span = float(hours[-1] - hours[0])
    if span <= 0:
        raise FeedError(
            "schema",
            "coins chart: field prices.timestamp: no time between the first and last point",
        )
    returns = np.diff(np.log(prices))
    sigma = math.sqrt(float(np.sum(returns * returns)) / span * HOURS_PER_YEAR)
    if not math.isfinite(sigma):
        raise FeedError("nan", "coins chart: field prices: volatility is not finite")
    return sigma
