"""A simulated market with all three composite kinds on loopback, polled by the real adapters and
decided on by the real optimizer with the embedded default's limits (for the composite tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp

from adapters import FeedPoller, FeedSettings, PollReport
from core.types import Move, MoveAction, PortfolioState
from mockfeeds.config import DEFAULT_MARKET_PATH, load_market_yaml
from mockfeeds.market import Market
from mockfeeds.server import start, stop
from optimizer.engine import Decision, Optimizer
from vault.settings import DEFAULT_CONFIG, Settings, load_settings

LOOP, HEDGED, NFT = "aave-v3-steth-loop", "uniswap-v2-usdc-weth-hedged", "azuki-rental"


def market_config(**venue_changes: Mapping[str, Any]) -> dict[str, Any]:
    """The default market with a still clock; ``venue_changes[id]`` merged into that venue's kind
    section (e.g. ``{"uniswap-v2-usdc-weth-hedged": {"hedge": {...}}}``)."""
    cfg = load_market_yaml(DEFAULT_MARKET_PATH)
    cfg["time_scale"] = 0
    for v in cfg["venues"]:
        for section, fields in venue_changes.get(v["id"].replace("-", "_"), {}).items():
            v[section] = {**v[section], **fields}
    return cfg


class World:
    def __init__(
        self, market: Market, url: str, session: aiohttp.ClientSession, settings: Settings
    ) -> None:
        self.market, self.url, self.session, self.settings = market, url, session, settings
        feeds = FeedSettings.model_validate(
            {"staleness_seconds": 3600, "timeout_seconds": 5, "retry": {"attempts": 1}}
        )
        self.poller = FeedPoller(
            list(settings.venues), feeds, session, root_url=url, clock=self.now
        )
        self.optimizer = Optimizer(settings.limits, settings.optimizer, settings.vault.home_chain)
        self.idle_usd = Decimal(1_000_000)
        self.seq = 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.market.clock.now(), UTC)

    def positions(self) -> dict[str, float]:
        view = self.market.positions_view()
        return {r["venue"]: float(r["position_usd"]) for r in view["positions"]}

    def portfolio(self) -> PortfolioState:
        view = self.market.positions_view()
        pending = sum(float(r["pending_withdrawal_usd"]) for r in view["positions"])
        return PortfolioState(
            positions_usd=self.positions(), idle_usd=float(self.idle_usd), in_flight_usd=pending
        )

    async def poll(self) -> PollReport:
        return await self.poller.poll(self.positions())

    async def decide(self) -> tuple[PollReport, Decision]:
        report = await self.poll()
        decision = self.optimizer.decide(
            list(report.snapshots.values()), self.portfolio(), self.now()
        )
        return report, decision

    def execute(self, moves: tuple[Move, ...]) -> None:
        """Run a plan's moves against the market in process (withdrawals credit idle when they
        pay at once; queued ones land later and stay out of idle)."""
        for mv in moves:
            self.seq += 1
            amount = f"{Decimal(repr(mv.amount_usd)).quantize(Decimal('0.000001')):f}"
            key = f"{mv.idempotency_key}-{self.seq}"
            if mv.action is MoveAction.DEPOSIT:
                r = self.market.deposit(mv.venue_id, amount, key)
                self.idle_usd -= Decimal(r["amount_usd"])
            elif mv.action is MoveAction.WITHDRAW:
                r = self.market.withdraw(mv.venue_id, amount, key)
                if r["status"] == "completed":
                    self.idle_usd += Decimal(r["applied_usd"])

    async def cycle(self) -> Decision:
        _, decision = await self.decide()
        if decision.plan.execute:
            self.execute(decision.plan.moves)
        return decision


@asynccontextmanager
async def world(cfg: dict[str, Any] | None = None) -> AsyncIterator[World]:
    market = Market.from_config(cfg or market_config())
    runner, url = await start(market)
    try:
        async with aiohttp.ClientSession() as session:
            yield World(market, url, session, load_settings(DEFAULT_CONFIG))
    finally:
        await stop(runner)
