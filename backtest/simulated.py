"""``--market FILE``: the mockfeeds simulated market (seeded, with its scenario library) as the
backtest's world, for Monte Carlo runs over seeds.

Per strategy: a fresh ``mockfeeds.market.Market`` from the YAML (``seed`` overridden by ``--seed``)
with its clock frozen (time scale 0) and moved by the driver, served on an ephemeral loopback port
so the daemon's own adapters poll it (``adapters.FeedPoller``: the venues of the daemon config given
with ``--config``, default ``config/default.yaml``), and traded through the vault's executor over
``vault.transport.InProcessTransport(market)``. Each cycle: ``market.advance(period)``, poll, then
``vault.cycle.run_cycle``. The books are checked every cycle (double entry) and audited at the end.

The guards run as in the daemon: ``ours`` (the daemon's strategy) gets ``vault.guarding.GuardRunner``
on the config's ``guards:`` section (``guards.enabled: false`` or ``YIELDVAULT_GUARDS__ENABLED=false``
turns it off, for side-by-side runs), with no store: the state each cycle's outcome returns is the
next cycle's input, as ``Daemon._rebalance_once`` passes it. ``ours_guarded`` is ``ours`` with the
guards on whatever the config says. The baselines take no directives and run unguarded.
``hindsight`` has no next-period view of a simulated world and is not offered here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from backtest.engine import (
    REPLAY_RECONCILE,
    ConservationError,
    CycleRecord,
    StrategyRun,
    _digest,
    costs_by_kind,
)
from backtest.metrics import summarize
from backtest.run import BadInput, parse_period
from backtest.strategies import make_strategy
from core.money import usd_to_units
from optimizer.checker import check_allocation
from optimizer.memory import EMPTY_MEMORY
from vault.cycle import (
    CycleDeps,
    CycleInput,
    GuardHook,
    RebalanceOutcome,
    no_guard,
    portfolio_of,
    run_cycle,
    run_inline,
)
from vault.executor import MoveStatus, PaperExecutor
from vault.guarding import GuardRunner, ledger_earned_usd
from vault.ledger import Ledger
from vault.settings import DEFAULT_CONFIG, load_settings, read_yaml
from vault.transport import InProcessTransport

GUARDED = ("ours", "ours_guarded")  # the strategies that take the guards' directives


def guard_hook(name: str, settings: Any, ledger: Ledger, venues: Sequence[str]) -> GuardHook:
    """The daemon's guard hook for ``ours`` (the config's ``guards:``), always on for
    ``ours_guarded``, none for the baselines (they take no directives)."""
    if name not in GUARDED:
        return no_guard
    cfg = settings.guards
    if name == "ours_guarded":
        cfg = cfg.model_copy(update={"enabled": True})
    return GuardRunner(cfg, store=None, venues=venues, earned_usd=ledger_earned_usd(ledger, venues))


async def _replay(
    name: str,
    settings: Any,
    market_cfg: dict[str, Any],
    period_seconds: int,
    cycles: int,
    ledger_path: Path,
    progress: Callable[[int], None] | None,
) -> StrategyRun:
    from adapters import FeedPoller
    from mockfeeds.market import Market
    from mockfeeds.server import start, stop

    market = Market.from_config({**market_cfg, "time_scale": 0}, state_path=None)
    runner, url = await start(market, "127.0.0.1", 0)
    venues = {v.id: v.to_venue() for v in settings.venues}
    ledger_path.unlink(missing_ok=True)
    ledger = Ledger(ledger_path, durable=False)

    def now() -> datetime:
        return datetime.fromtimestamp(market.clock.now(), UTC)

    home = settings.vault.home_chain
    ledger.deposit_capital(now(), home, usd_to_units(settings.vault.initial_capital_usd))
    # the guard hook is the daemon's runner (guard_hook), not ours_guarded's bare Guards
    strategy = make_strategy(name, settings.limits, settings.optimizer, home)
    executor = PaperExecutor(
        InProcessTransport(market),
        ledger=ledger,
        venues=venues,
        home_chain=home,
        clock=now,
        bridge_wait_seconds=0.0,
    )
    deps = CycleDeps(
        ledger=ledger,
        executor=executor,
        optimizer=strategy,  # type: ignore[arg-type]
        venues=venues,
        clock=now,
        run_in_thread=run_inline,
        guard=guard_hook(name, settings, ledger, list(venues)),
        persist_memory=False,
        reconcile=REPLAY_RECONCILE,
    )
    run = StrategyRun(name, ledger_path)
    memory = EMPTY_MEMORY
    guard_state: Any = None
    tolerance = settings.optimizer.drift_tolerance_ratio
    try:
        async with aiohttp.ClientSession() as session:
            poller = FeedPoller(
                list(settings.venues), settings.feeds, session, root_url=url, clock=now
            )
            for k in range(cycles):
                if k:
                    market.advance(period_seconds)
                b = ledger.balances()
                report = await poller.poll({v: u / 1e6 for v, u in b.positions_units.items() if u})
                snaps = list(report.snapshots.values())
                inp = CycleInput(snaps, now(), memory, guard_state=guard_state)
                out = await run_cycle(inp, deps)
                memory, guard_state = out.memory, out.guard_state
                if out.outcome is RebalanceOutcome.EXECUTED:
                    run.executed_plans += 1
                after = out.balances_after
                if ledger.total_units() != 0:
                    raise ConservationError(f"accounts sum to {ledger.total_units()} at {now()}")
                post = portfolio_of(after, venues)
                rep = check_allocation(
                    snaps,
                    post,
                    dict(post.positions_usd),
                    post.idle_usd,
                    settings.limits,
                    settings.optimizer,
                    home,
                    in_flight_known=post.in_flight_landing,
                )
                hard = tuple(
                    v for v, e in zip(rep.violations, rep.excess, strict=True) if e > tolerance
                )
                d = out.decision
                run.records.append(
                    CycleRecord(
                        ts=int(now().timestamp()),
                        nav_units=after.nav_units,
                        status=d.status if d is not None else "not_run",
                        executed=out.outcome is RebalanceOutcome.EXECUTED,
                        predicted_apr=d.predicted_apr if d is not None else None,
                        traded_units=sum(
                            r.applied_units
                            for r in out.results
                            if r.status is MoveStatus.DONE and r.action in ("deposit", "withdraw")
                        ),
                        positions_units={v: u for v, u in after.positions_units.items() if u},
                        idle_units=after.total_idle_units,
                        breaches=hard,
                        drift_breaches=len(rep.violations) - len(hard),
                        digest=_digest(d) if d is not None else f"not_run:{out.reason}",
                    )
                )
                if progress is not None:
                    progress(1)
        run.costs_units = costs_by_kind(ledger)
        run.final_nav_units = ledger.balances().nav_units
        run.audit_problems = ledger.audit()
        if run.audit_problems:
            raise ConservationError(f"{name}: ledger audit: {run.audit_problems[:3]}")
    finally:
        ledger.close()
        await stop(runner)
    return run


def run_simulated(
    market_path: Path,
    config_path: Path | None,
    out_dir: Path,
    strategies: Sequence[str],
    *,
    period: str = "1h",
    days: float = 7.0,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
    guards: bool | None = None,
) -> tuple[dict[str, Any], list[StrategyRun], dict[str, str]]:
    """Run each strategy over ``days`` of the market at ``market_path``; ``guards`` overrides the
    config's ``guards.enabled`` (None: as configured)."""
    if "hindsight" in strategies:
        raise BadInput("--strategies", "hindsight has no next-period view of a simulated market")
    period_seconds = parse_period(period)
    market_cfg = dict(read_yaml(market_path))
    if seed is not None:
        market_cfg["seed"] = seed
    settings = load_settings(config_path or DEFAULT_CONFIG)
    if guards is not None:
        on = settings.guards.model_copy(update={"enabled": guards})
        settings = settings.model_copy(update={"guards": on})
    cycles = int(days * 86_400 // period_seconds) + 1
    out_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> list[StrategyRun]:
        return [
            await _replay(
                n,
                settings,
                market_cfg,
                period_seconds,
                cycles,
                out_dir / f"ledger-{n}.sqlite3",
                progress,
            )
            for n in strategies
        ]

    runs = asyncio.run(go())
    assets = {v.id: v.asset.upper() for v in settings.venues}
    table = summarize(runs, assets)
    summary = {
        "inputs": {
            "market": market_path.name,
            "seed": market_cfg.get("seed"),
            "config": Path(config_path or DEFAULT_CONFIG).name,
            "rebalance_every_seconds": period_seconds,
            "days": days,
            "strategies": list(strategies),
            "guards_enabled": settings.guards.enabled,
        },
        "strategies": table,
        "ours_limit_breach_cycles": table.get("ours", {}).get("limit_breach_cycles"),
    }
    return summary, runs, {v.id: v.chain for v in settings.venues}
