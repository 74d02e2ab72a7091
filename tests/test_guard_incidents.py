"""The guards see the simulated market's incidents through the real adapters, and stay quiet on
its calm days: the default market served on loopback, the default config's venues polled by the
FeedPoller, positions held in the market, one guard step per simulated hour."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters import FeedPoller, FeedSettings
from core.config import VenueConfig
from core.types import PortfolioState
from guard import EMPTY, EventKind, Guards, GuardSettings, GuardState
from mockfeeds.market import Market
from mockfeeds.server import start, stop
from tests.mockfeeds_world import cfg

ROOT = Path(__file__).resolve().parents[1]
VENUES = [
    VenueConfig.model_validate(v)
    for v in yaml.safe_load((ROOT / "config/default.yaml").read_text())["venues"]
]
HOUR = 3600.0
AAVE = "aave-v3-usdc-ethereum"
EARN = "earn-usdt-flexible"
HOLD = {
    "lido-steth": "200000",
    AAVE: "300000",
    "uniswap-v2-usdc-weth-ethereum": "100000",
    "across-usdc-arbitrum-base": "100000",
    EARN: "250000",
}


class Run:
    def __init__(self, market: Market, poller: FeedPoller) -> None:
        self.market, self.poller = market, poller
        self.guards = Guards(GuardSettings())
        self.state: GuardState = EMPTY
        self.trips: list[tuple[float, str, str, str]] = []  # (sim hours, venue, guard, detail)
        self.t0 = market.state_time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.market.clock.now(), UTC)

    async def hours(self, n: int, until: Any = None) -> None:
        for _ in range(n):
            self.market.advance(HOUR)
            view = self.market.positions_view()
            positions = {p["venue"]: float(p["position_usd"]) for p in view["positions"]}
            report = await self.poller.poll(positions)
            portfolio = PortfolioState(positions, 1_000_000.0 - sum(HOLD_USD.values()))
            _, self.state = self.guards(
                list(report.snapshots.values()), portfolio, self.now(), self.state
            )
            for e in self.state.events:
                if e.kind is EventKind.TRIP:
                    h = (self.market.state_time - self.t0) / HOUR
                    self.trips.append((h, e.venue, e.guard, e.detail))
            if until is not None and until(self):
                return

    def tripped(self, venue: str, guard: str) -> list[tuple[float, str, str, str]]:
        return [t for t in self.trips if t[1] == venue and t[2] == guard]


HOLD_USD = {k: float(v) for k, v in HOLD.items()}


@pytest.fixture
async def run() -> AsyncIterator[Run]:
    market = Market.from_config(cfg())
    for venue, usd in HOLD.items():
        market.deposit(venue, f"{usd}.000000", f"hold-{venue}")
    runner, url = await start(market)
    try:
        async with aiohttp.ClientSession() as session:
            settings = FeedSettings.model_validate({"staleness_seconds": 3600})
            holder: dict[str, Run] = {}
            poller = FeedPoller(
                VENUES, settings, session, root_url=url, clock=lambda: holder["run"].now()
            )
            holder["run"] = Run(market, poller)
            yield holder["run"]
    finally:
        await stop(runner)


async def test_calm_week_of_the_default_market_trips_nothing(run: Run) -> None:
    await run.hours(7 * 24)
    assert run.trips == []
    judged = {g for (_, g) in run.state.breakers}
    assert {"depeg", "withdrawability", "paused", "price_anomaly", "loss"} <= judged


async def test_usdt_along_ust_may_2022_trips_depeg_early_in_the_fall(run: Run) -> None:
    run.market.start_scenario(
        {"name": "depeg_path", "chain": "ethereum", "token": "USDT", "duration_seconds": 16 * 86400}
    )
    await run.hours(5 * 24, until=lambda r: r.tripped(EARN, "depeg"))
    (h, _, _, detail), *_ = run.tripped(EARN, "depeg")
    mark = run.market.marks["ethereum:USDT"]
    assert 3 * 24 < h < 3 * 24 + 4 and mark > 0.95, (h, mark, detail)  # UST fell to 0.754 that day


async def test_usdc_along_svb_trips_the_aave_usdc_venue(run: Run) -> None:
    run.market.start_scenario(
        {
            "name": "depeg_path",
            "chain": "ethereum",
            "token": "USDC",
            "params": {"path": "usdc-svb-2023-03"},
            "duration_seconds": 8 * 86400,
        }
    )
    await run.hours(4 * 24, until=lambda r: r.tripped(AAVE, "depeg"))
    assert run.tripped(AAVE, "depeg")
    assert not run.tripped(EARN, "depeg")


async def test_exploit_path_trips_before_the_venue_pauses(run: Run) -> None:
    run.market.start_scenario(
        {
            "name": "exploit_path",
            "venue": AAVE,
            "params": {"lead_seconds": 8 * HOUR, "outflow_fraction": 0.4, "oracle_bps": 300},
            "duration_seconds": 2 * 86400,
        }
    )
    await run.hours(7)  # the strike lands at 8 h
    assert not run.market.by_id[AAVE].paused
    early = {g for (_, v, g, _) in run.trips if v == AAVE}
    assert "price_anomaly" in early and "outflow" in early, run.trips
    await run.hours(2)
    assert run.tripped(AAVE, "paused")


async def test_bank_run_trips_outflow_while_our_position_can_still_leave(run: Run) -> None:
    v = run.market.by_id[AAVE]
    run.market.start_scenario({"name": "bank_run", "venue": AAVE, "duration_seconds": 12 * HOUR})
    start = run.market.state_time
    await run.hours(12, until=lambda r: r.tripped(AAVE, "outflow"))
    assert run.tripped(AAVE, "outflow"), run.trips
    assert v.available_usd(run.market) > 10 * HOLD_USD[AAVE]  # an exit is still possible then
    await run.hours(11 - round((run.market.state_time - start) / HOUR))
    assert v.utilization() > 0.999 and v.available_usd(run.market) < HOLD_USD[AAVE]


async def test_usdt_090_with_a_30_percent_aave_exploit_trips_every_guard_it_should(
    run: Run,
) -> None:
    await run.hours(2)
    run.market.start_scenario(
        {"name": "depeg", "chain": "ethereum", "token": "USDT", "params": {"price": 0.9}}
    )
    run.market.start_scenario({"name": "exploit", "venue": AAVE, "params": {"loss_fraction": 0.3}})
    await run.hours(3)
    got = {(v, g) for (_, v, g, _) in run.trips}
    assert {(EARN, "depeg"), (AAVE, "paused"), ("*", "nav_drawdown")} <= got, run.trips
    assert (AAVE, "loss") in got and (EARN, "loss") in got
    d = copy.deepcopy(run.state)
    from guard import directives

    out = directives(d)
    assert {EARN, AAVE} <= out.exit and out.no_new_deposits
