"""Replay the guards over real history: Aave v3 Ethereum hourly amounts plus daily stablecoin prices.

Each hour and reserve (DAI, USDC, USDT, USDe, WETH) becomes a lending snapshot with the others'
supply as TVL, ``borrowed / supplied`` as utilization, ``supplied - borrowed`` as exit liquidity,
and (for USDC, USDT, DAI, 2023-01-27..2023-07-30) the coins price interpolated linearly between the
daily closes of ``stablecoin_prices_daily.csv``. The vault holds a constant position in each reserve (so the
exit-liquidity test has a position to compare with: $1M or 1 % of the pool at entry, whichever is
less, entered a week after the reserve's listing) and its NAV stays flat (no marks: the prices
drive only the depeg and anomaly signals). ``python -m tests.guard_history`` prints every trip.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.types import PortfolioState, Venue, VenueKind, VenueSnapshot, YieldCurve
from guard import EMPTY, Event, EventKind, Guards, GuardSettings, GuardState

DATA = Path("/work/shared/data")
AAVE_HOURLY = DATA / "aave_v3_ethereum_hourly.csv.gz"
STABLE_DAILY = DATA / "stablecoin_prices_daily.csv"
COINGECKO = {"USDC": "usd-coin", "USDT": "tether", "DAI": "dai"}
POSITION_USD = 1_000_000.0
POOL_SHARE = 0.01  # the replayed vault holds min($1M, 1 % of the pool's supply at entry), constant
SEASONING_SECONDS = 7 * 86_400  # and enters a reserve a week after its listing
SVB_START = datetime(2023, 3, 10, tzinfo=UTC)
SVB_END = datetime(2023, 3, 14, tzinfo=UTC)


class _Zero(YieldCurve):
    def real_income_usd(self, x_usd):  # type: ignore[no-untyped-def]
        return x_usd * 0.0


@dataclass(frozen=True)
class Trip:
    at: datetime
    venue: str
    guard: str
    action: str
    detail: str

    @property
    def in_svb(self) -> bool:
        return SVB_START <= self.at < SVB_END


def daily_prices(path: Path = STABLE_DAILY) -> dict[str, tuple[list[float], list[float]]]:
    """coingecko id -> (epoch seconds of each daily close, price)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for cid in COINGECKO.values():
        ts, ps = [], []
        for r in rows:
            if r.get(cid):
                ts.append(datetime.fromisoformat(r["Date"]).replace(tzinfo=UTC).timestamp())
                ps.append(float(r[cid]))
        out[cid] = (ts, ps)
    return out


def price_at(series: tuple[list[float], list[float]], t: float) -> float | None:
    ts, ps = series
    if not ts or t < ts[0] or t > ts[-1]:
        return None
    i = bisect.bisect_right(ts, t)
    if i >= len(ts):
        return ps[-1]
    a, b = ts[i - 1], ts[i]
    return ps[i - 1] + (ps[i] - ps[i - 1]) * (t - a) / (b - a)


def hourly_rows(path: Path = AAVE_HOURLY) -> dict[str, list[tuple[str, float, float]]]:
    """hour -> [(symbol, supplied_usd, borrowed_usd)]."""
    by_hour: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    with gzip.open(path, "rt") as f:
        for r in csv.DictReader(f):
            supplied = float(r["supplied_usd"] or 0.0)
            if supplied <= 0:
                continue
            by_hour[r["hour_utc"]].append(
                (r["symbol"].upper(), supplied, float(r["borrowed_usd"] or 0.0))
            )
    return by_hour


def venue(symbol: str) -> Venue:
    return Venue(
        f"aave-v3-{symbol.lower()}-ethereum", VenueKind.LENDING, "aave-v3", "ethereum", symbol
    )


def replay(settings: GuardSettings | None = None) -> tuple[list[Trip], GuardState]:
    guards = Guards(settings or GuardSettings())
    prices = daily_prices()
    state: GuardState = EMPTY
    trips: list[Trip] = []
    listed: dict[str, float] = {}
    held: dict[str, float] = {}
    for hour, rows in sorted(hourly_rows().items()):
        at = datetime.fromisoformat(hour.replace("Z", "+00:00"))
        t = at.timestamp()
        snaps = []
        positions = {}
        for sym, supplied, borrowed in rows:
            if t - listed.setdefault(sym, t) < SEASONING_SECONDS:
                continue
            position = held.setdefault(sym, min(POSITION_USD, POOL_SHARE * supplied))
            positions[venue(sym).id] = position
            st = {"utilization": borrowed / supplied, "position_usd": position}
            if sym in COINGECKO:
                p = price_at(prices[COINGECKO[sym]], t)
                if p is not None:
                    st["asset_price_usd"] = p
            snaps.append(
                VenueSnapshot(
                    venue=venue(sym),
                    observed_at=at,
                    curve=_Zero(),
                    real_apr=0.0,
                    emission_apr=0.0,
                    tvl_usd=supplied,
                    exit_liquidity_usd=max(supplied - borrowed, 0.0),
                    state=st,
                )
            )
        portfolio = PortfolioState(positions_usd=positions, idle_usd=0.0)
        _, state = guards(snaps, portfolio, at, state)
        trips.extend(_trips(state.events))
    return trips, state


def depeg_daily(settings: GuardSettings | None = None) -> list[Trip]:
    """The depeg guard alone over every daily close of USDT, USDC and DAI (2020-12..2023-07).

    A daily close is already a day's confirmation: ``for_seconds`` is 0 here (at the default
    hour, a one-day series could never show the hour)."""
    s = settings or GuardSettings()
    s = s.model_copy(update={"depeg": s.depeg.model_copy(update={"for_seconds": 0.0})})
    guards = Guards(s)
    state: GuardState = EMPTY
    trips: list[Trip] = []
    prices = daily_prices()
    days = sorted({t for ts, _ in prices.values() for t in ts})
    for t in days:
        at = datetime.fromtimestamp(t, UTC)
        snaps = []
        for sym, cid in COINGECKO.items():
            p = price_at(prices[cid], t)
            if p is None or math.isnan(p):
                continue
            snaps.append(
                VenueSnapshot(
                    venue=Venue(
                        f"stable-{sym.lower()}", VenueKind.FIXED, sym.lower(), "ethereum", sym
                    ),
                    observed_at=at,
                    curve=_Zero(),
                    real_apr=0.0,
                    emission_apr=0.0,
                    tvl_usd=math.inf,
                    exit_liquidity_usd=math.inf,
                    state={"asset_price_usd": p},
                )
            )
        _, state = guards(snaps, PortfolioState(positions_usd={}, idle_usd=1.0), at, state)
        trips.extend(t for t in _trips(state.events) if t.guard == "depeg")
    return trips


def _trips(events: tuple[Event, ...]) -> list[Trip]:
    return [
        Trip(datetime.fromtimestamp(e.at, UTC), e.venue, e.guard, e.action, e.detail)
        for e in events
        if e.kind is EventKind.TRIP
    ]


def main() -> None:
    trips, _ = replay()
    print(f"Aave v3 Ethereum hourly + stablecoin prices: {len(trips)} trips")
    for tr in trips:
        mark = "SVB" if tr.in_svb else "   "
        print(
            f"{mark} {tr.at:%Y-%m-%d %H:%M} {tr.venue:24} {tr.guard:16} {tr.action:6} {tr.detail}"
        )
    daily = depeg_daily()
    print(f"daily closes, depeg only: {len(daily)} trips")
    for tr in daily:
        mark = "SVB" if tr.in_svb else "   "
        print(f"{mark} {tr.at:%Y-%m-%d} {tr.venue:24} {tr.detail}")


if __name__ == "__main__":
    main()
