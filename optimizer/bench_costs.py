"""``bench costs``: the $50M / 1,000-venue soak of the move-cost model (README §3a).

A generated simulated market (``mockfeeds.generate``, its clock still) is served on loopback and
polled by the daemon's own adapters (Across routes sample their quote at
``QUOTE_AMOUNTS_USD``). The vault starts invested: ``invested_share`` of NAV spread over random
venues, bought at the market. One decision is made and every move is executed at the market's
paper API (``deposit``, ``withdraw``, ``bridge``, in the plan's order); per move, the plan's
predicted cost (``Move.cost_usd``) is set beside what the market took (``fee_usd``) plus the gas
the executor books (the venue's configured gas; Across takes its fill gas in the fee). The same
run is made with ``cost_model: convex`` and ``cost_model: linear`` (fresh, identical markets), so
the two models' errors per move kind are side by side: bridge, LP entry / exit, lending deposit /
withdraw, other deposit / withdraw. ``error_ratio = predicted / paid - 1``.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.types import MoveAction, PortfolioState, VenueKind
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.costs import move_cost_kind
from optimizer.engine import Optimizer

#: sizes the Across routes' quotes are sampled at (the market's maxDeposit is $20M)
QUOTE_AMOUNTS_USD = (100_000.0, 1_000_000.0, 5_000_000.0, 20_000_000.0)

LIMITS = RiskLimits(max_venue_ratio=0.05, max_venue_tvl_ratio=0.25, min_idle_ratio=0.01)


async def _one(
    cfg: dict[str, Any],
    venue_rows: list[dict[str, Any]],
    model: str,
    nav_usd: float,
    invested_share: float,
    seed: int,
) -> dict[str, Any]:
    import aiohttp

    from adapters import FeedPoller, FeedSettings
    from core.config import VenueConfig
    from mockfeeds.market import Market
    from mockfeeds.server import start, stop
    from mockfeeds.state import MarketError

    market = Market.from_config({**cfg, "time_scale": 0}, state_path=None)
    runner, url = await start(market, "127.0.0.1", 0)
    venues = [VenueConfig.model_validate(v) for v in venue_rows]
    by_id = {v.id: v.to_venue() for v in venues}
    home = "ethereum"
    try:
        # the holdings before the plan: bought at the market (what that paid is not the plan's)
        rng = np.random.default_rng(seed)
        buyable = [
            v.id for v in venues if v.kind in (VenueKind.LENDING, VenueKind.LP, VenueKind.STAKING)
        ]
        picks = rng.choice(len(buyable), size=min(len(buyable), 150), replace=False)
        weights = rng.dirichlet(np.ones(len(picks)))
        positions: dict[str, float] = {}
        for j, w in zip(picks, weights, strict=True):
            vid = buyable[int(j)]
            try:
                r = market.deposit(vid, f"{invested_share * nav_usd * w:.2f}", f"seed-{vid}")
            except MarketError:
                continue
            positions[vid] = float(r["applied_usd"])
        idle = nav_usd - sum(positions.values())

        def now() -> datetime:
            return datetime.fromtimestamp(market.clock.now(), UTC)

        async with aiohttp.ClientSession() as session:
            poller = FeedPoller(
                venues,
                FeedSettings.model_validate(
                    {"timeout_seconds": 30.0, "cycle_deadline_seconds": 120.0}
                ),
                session,
                root_url=url,
                clock=now,
            )
            report = await poller.poll(positions)
        snaps = list(report.snapshots.values())
        gas = {c: float(ch.fill_gas_usd) for c, ch in market.cfg.chains.items()}
        settings = OptimizerSettings(
            cost_model=model,  # type: ignore[arg-type]
            bridge_gas_by_chain_usd=gas,
            holding_horizon_days=30.0,
        )
        portfolio = PortfolioState(positions_usd=positions, idle_usd=idle)
        t0 = time.perf_counter()
        decision = Optimizer(LIMITS, settings, home).decide(snaps, portfolio, now())
        decide_seconds = time.perf_counter() - t0
        kinds: dict[str, dict[str, Any]] = {}
        refused: list[str] = []
        for m in decision.plan.moves:
            v = by_id.get(m.venue_id)
            kind = move_cost_kind(str(m.action), str(v.kind) if v is not None else None)
            amount = f"{math.floor(m.amount_usd * 100) / 100:.2f}"  # whole cents, never above
            try:
                if m.action is MoveAction.BRIDGE:
                    r = market.bridge(m.from_chain, m.to_chain, amount, m.idempotency_key)
                    paid = float(r["fee_usd"])
                elif m.action is MoveAction.DEPOSIT:
                    assert v is not None
                    r = market.deposit(m.venue_id, amount, m.idempotency_key)
                    paid = float(r["fee_usd"]) + v.costs.deposit_usd
                else:
                    assert v is not None
                    r = market.withdraw(m.venue_id, amount, m.idempotency_key)
                    paid = float(r["fee_usd"]) + v.costs.withdraw_usd
            except MarketError as exc:
                refused.append(f"{m.action} {m.venue_id} {amount}: {exc}")
                continue
            k = kinds.setdefault(
                kind, {"moves": 0, "amount_usd": 0.0, "predicted_usd": 0.0, "paid_usd": 0.0}
            )
            k["moves"] += 1
            k["amount_usd"] += m.amount_usd
            k["predicted_usd"] += m.cost_usd
            k["paid_usd"] += paid
        for k in kinds.values():
            k["error_ratio"] = (
                round(k["predicted_usd"] / k["paid_usd"] - 1.0, 4) if k["paid_usd"] > 0 else None
            )
            for f in ("amount_usd", "predicted_usd", "paid_usd"):
                k[f] = round(k[f], 2)
        predicted = sum(k["predicted_usd"] for k in kinds.values())
        paid = sum(k["paid_usd"] for k in kinds.values())
        return {
            "cost_model": model,
            "status": str(decision.status),
            "reason": decision.reason,
            "executes": decision.plan.execute,
            "moves": len(decision.plan.moves),
            "refused": refused[:5],
            "refused_count": len(refused),
            "expected_gain_usd": round(decision.plan.expected_gain_usd, 2),
            "predicted_cost_usd": round(predicted, 2),
            "paid_cost_usd": round(paid, 2),
            "error_ratio": round(predicted / paid - 1.0, 4) if paid > 0 else None,
            "by_kind": dict(sorted(kinds.items())),
            "decide_seconds": round(decide_seconds, 3),
            "snapshots": len(snaps),
            "rejections": len(report.rejections),
        }
    finally:
        await stop(runner)


def bench_costs(
    venues: int = 1000, nav_usd: float = 50_000_000.0, seed: int = 0, invested_share: float = 0.5
) -> dict[str, Any]:
    """Both cost models on fresh copies of the same generated market; JSON-ready."""
    from mockfeeds.generate import daemon_venues, generate_market

    cfg = generate_market(venues, seed)
    rows = daemon_venues(cfg)
    for r in rows:
        if r["feed"]["adapter"] == "across":
            r["feed"]["params"]["quote_amounts_usd"] = list(QUOTE_AMOUNTS_USD)
    out = {
        m: asyncio.run(_one(cfg, rows, m, nav_usd, invested_share, seed))
        for m in ("convex", "linear")
    }
    within = {
        kind: abs(v["error_ratio"]) <= 0.10
        for kind, v in out["convex"]["by_kind"].items()
        if v["error_ratio"] is not None
    }
    return {
        "venues": venues,
        "nav_usd": nav_usd,
        "seed": seed,
        "invested_share": invested_share,
        "convex": out["convex"],
        "linear": out["linear"],
        "convex_within_10pct_by_kind": within,
    }
