"""``vault.cycle.run_cycle`` with real parts: the simulated market in process (InProcessTransport),
the paper executor's booking on a real SQLite ledger, the real optimizer (HiGHS)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.money import usd_to_units
from core.types import Directives, PortfolioState, VenueSnapshot
from optimizer import Optimizer
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory
from optimizer.testing import FlatCurve, KinkedLendingCurve
from tests.test_executor import new_market
from vault.cycle import (
    CycleDeps,
    CycleInput,
    CycleOutcome,
    RebalanceOutcome,
    run_cycle,
    run_inline,
)
from vault.executor import MoveStatus, PaperExecutor, move_to_dict
from vault.ledger import Ledger
from vault.settings import DEFAULT_CONFIG, load_settings
from vault.transport import InProcessTransport

SETTINGS = load_settings(DEFAULT_CONFIG)
VENUES = {v.id: v.to_venue() for v in SETTINGS.venues}
AAVE, EARN, LIDO = "aave-v3-usdc-ethereum", "earn-usdt-flexible", "lido-steth"
NAV_USD = 1_000_000


def snapshots(i: int, at: datetime, lost: frozenset[str] = frozenset()) -> list[VenueSnapshot]:
    """Cycle ``i``'s view of three venues: Aave with a kinked curve whose borrow demand drifts
    (refinement windows and warm starts matter), a flat fixed-rate product, and Lido staking
    whose rate swings every two cycles (so that capital moves)."""
    borrow = 3.2e6 * (1.0 + 0.03 * ((i * 7) % 5 - 2))
    curves = {
        AAVE: KinkedLendingCurve(4e6, borrow, slope1=0.06),
        EARN: FlatCurve(0.035),
        LIDO: FlatCurve(0.02 if i % 4 < 2 else 0.07),
    }
    out = []
    for vid, curve in curves.items():
        if vid in lost:
            continue
        apr = float(curve.apr(1e-6)[()])
        out.append(
            VenueSnapshot(
                venue=VENUES[vid],
                observed_at=at,
                curve=curve,
                real_apr=apr,
                emission_apr=0.0,
                tvl_usd=1e9,
                exit_liquidity_usd=1e9,
            )
        )
    return out


@dataclasses.dataclass
class Rig:
    market: Any
    ledger: Ledger
    deps: CycleDeps
    wall: list[float]

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.market.clock.now(), UTC)

    async def cycle(
        self,
        i: int,
        memory: OptimizerMemory,
        directives: Directives | None = None,
        guard_state: Any = None,
        lost: frozenset[str] = frozenset(),
    ) -> CycleOutcome:
        self.wall[0] += 1.0  # one simulated hour (the default market runs at 3600x): it accrues
        self.market.sync()
        now = self.now()
        inp = CycleInput(
            snapshots=snapshots(i, now, lost),
            now=now,
            memory=memory,
            directives=directives or Directives(),
            guard_state=guard_state,
        )
        out = await run_cycle(inp, self.deps)
        assert self.ledger.audit() == []
        return out


@contextlib.asynccontextmanager
async def rig(
    path: Path,
    optimizer: Optimizer | None = None,
    world: tuple[Any, list[float]] | None = None,
    **deps: Any,
) -> AsyncIterator[Rig]:
    """A ledger at ``path`` trading on ``world`` (a market and its wall clock; a new one if None)."""
    if world is None:
        wall = [1_000_000.0]
        world = (new_market(wall), wall)
    market, wall = world
    ledger = Ledger(path)
    clock = lambda: datetime.fromtimestamp(market.clock.now(), UTC)  # noqa: E731
    if not ledger.is_initialised():
        ledger.deposit_capital(clock(), "ethereum", usd_to_units(NAV_USD))
    executor = PaperExecutor(
        InProcessTransport(market),
        ledger=ledger,
        venues=VENUES,
        home_chain="ethereum",
        clock=clock,
        bridge_wait_seconds=0.0,
    )
    opt = optimizer or Optimizer(SETTINGS.limits, SETTINGS.optimizer, "ethereum")
    try:
        yield Rig(
            market,
            ledger,
            CycleDeps(
                ledger=ledger,
                executor=executor,
                optimizer=opt,
                venues=VENUES,
                clock=clock,
                run_in_thread=run_inline,
                **deps,
            ),
            wall,
        )
    finally:
        ledger.close()


def units(r: Rig, venue: str) -> int:
    return r.ledger.account(f"position:{venue}")


async def test_a_cycle_decides_executes_books_and_records_its_memory(tmp_path):
    async with rig(tmp_path / "l.sqlite3") as r:
        out = await r.cycle(0, EMPTY_MEMORY)
        assert out.outcome is RebalanceOutcome.EXECUTED
        assert out.decision is not None and out.decision.status == "optimal"
        assert units(r, AAVE) > 0 and units(r, EARN) > 0
        assert all(x.status is MoveStatus.DONE for x in out.results)
        assert out.memory.cycle == 1 and out.memory is out.decision.memory
        assert out.balances_after.nav_units == r.ledger.balances().nav_units
        assert out.synced is not None and out.synced.nav_units == usd_to_units(NAV_USD)
        assert out.timings.total_seconds >= out.timings.decide_seconds > 0
        stored = r.ledger.last_memory()
        assert stored is not None and OptimizerMemory.from_json(stored).cycle == 1
        row = r.ledger.last_rebalance()
        assert row is not None and row.outcome == "executed" and row.id == out.rebalance_id


async def test_hold_all_decides_but_moves_nothing_and_says_why(tmp_path):
    async with rig(tmp_path / "l.sqlite3") as r:
        before = r.ledger.balances()
        out = await r.cycle(0, EMPTY_MEMORY, Directives(hold_all=True, reasons={"*": "op pause"}))
        assert out.outcome is RebalanceOutcome.HELD and out.results == ()
        assert out.decision is not None and out.decision.plan.moves  # it would have moved
        assert not out.decision.plan.execute
        assert "hold_all: op pause" in out.reason
        assert r.ledger.balances() == before
        row = r.ledger.last_rebalance()
        assert row is not None and row.outcome == "held" and "hold_all" in row.reason


async def test_freeze_keeps_a_venue_from_growing(tmp_path):
    async with rig(tmp_path / "l.sqlite3") as r:
        out = await r.cycle(
            0, EMPTY_MEMORY, Directives(freeze=frozenset({AAVE}), reasons={AAVE: "depeg"})
        )
        frozen = {s.venue.id: s for s in out.snapshots}[AAVE]
        assert frozen.frozen and frozen.frozen_reason == "directive: depeg"
        assert units(r, AAVE) == 0  # nothing went in
        assert units(r, EARN) > 0  # the rest of the plan ran
        assert out.outcome is RebalanceOutcome.EXECUTED


async def test_no_new_deposits_freezes_every_venue(tmp_path):
    async with rig(tmp_path / "l.sqlite3") as r:
        out = await r.cycle(0, EMPTY_MEMORY, Directives(no_new_deposits=True))
        assert all(s.frozen for s in out.snapshots)
        assert out.decision is not None and not out.decision.plan.moves
        assert out.outcome is RebalanceOutcome.HELD
        assert r.ledger.balances().positions_units == {}


async def test_exit_takes_a_venue_to_zero_even_when_the_gate_would_hold(tmp_path):
    async with rig(tmp_path / "l.sqlite3") as r:
        first = await r.cycle(0, EMPTY_MEMORY)
        assert units(r, AAVE) > 0
        # from now on no plan pays for itself: the gate holds whatever is proposed
        strict = SETTINGS.optimizer.model_copy(update={"min_benefit_cost_ratio": 1e9})
        r.deps = dataclasses.replace(
            r.deps, optimizer=Optimizer(SETTINGS.limits, strict, "ethereum")
        )
        aave = units(r, AAVE)
        # cycle 1's rates are cycle 0's but for the drift in Aave's borrow demand
        held = await r.cycle(1, first.memory)
        assert held.outcome is not RebalanceOutcome.EXECUTED and held.results == ()
        assert units(r, AAVE) >= aave  # (accrued)
        out = await r.cycle(2, held.memory, Directives(exit=frozenset({AAVE})))
        assert out.decision is not None and out.decision.status == "optimal"
        assert out.decision.violations == ()  # the checker passed the target
        assert out.decision.allocation is not None
        assert out.decision.allocation.target_usd[AAVE] == 0.0
        assert "restores broken limits (exit aave-v3-usdc-ethereum" in out.decision.plan.reason
        assert out.outcome is RebalanceOutcome.EXECUTED
        assert units(r, AAVE) == 0


async def test_the_guard_hook_gets_the_prior_state_and_its_directives_apply(tmp_path):
    seen: list[Any] = []

    def guard(
        snaps: Sequence[VenueSnapshot], portfolio: PortfolioState, now: datetime, state: Any
    ) -> tuple[Directives, Any]:
        seen.append((len(snaps), portfolio.nav_usd, state))
        return Directives(freeze=frozenset({EARN}), reasons={EARN: "outflows"}), (state or 0) + 1

    async with rig(tmp_path / "l.sqlite3", guard=guard) as r:
        out = await r.cycle(0, EMPTY_MEMORY, guard_state=41)
        assert seen == [(3, pytest.approx(NAV_USD), 41)] and out.guard_state == 42
        assert out.directives.freeze == {EARN}
        assert units(r, EARN) == 0 and units(r, AAVE) > 0


async def test_an_unresolved_move_fails_the_cycle_before_it_decides(tmp_path):
    async with rig(tmp_path / "l.sqlite3") as r:
        move = dataclasses.replace((await r.cycle(0, EMPTY_MEMORY)).decision.plan.moves[0])
        # the venue has key k for 10 USD; the books wrote it ahead for 20: its outcome is unknown
        # (deposited after the first cycle's sync: before it, the 10 USD the books never saw
        # would have been a reconciliation break)
        r.market.deposit(AAVE, "10.000000", "k")
        body = {"venue": AAVE, "amount_usd": "20.000000", "idempotency_key": "k"}
        r.ledger.begin_move(
            r.now(), "k", {"move": move_to_dict(move), "path": "/deposit", "body": body}
        )
        memory = OptimizerMemory(cycle=7)
        out = await r.cycle(1, memory)
        assert out.outcome is RebalanceOutcome.FAILED and out.decision is None
        assert "venue sync failed" in out.reason and out.memory is memory
        row = r.ledger.last_rebalance()
        assert row is not None and row.solver_status == "not_run"


async def test_a_restarted_run_decides_as_an_uninterrupted_one(tmp_path):
    """N cycles straight, against N/2, a stop (a new Optimizer, the memory read back from the
    SQLite file) and N/2 more: the same decisions, the same books. Right after the restart the
    fixed product's feed drops out for two cycles: only the memory knows its last snapshot."""
    n = 8

    def lost(i: int) -> frozenset[str]:
        return frozenset({EARN}) if i in (n // 2, n // 2 + 1) else frozenset()

    def fingerprint(out: CycleOutcome) -> tuple[Any, ...]:
        d = out.decision
        assert d is not None and d.allocation is not None
        return (
            d.status,
            str(out.outcome),
            tuple((str(m.action), m.venue_id, round(m.amount_usd, 2)) for m in d.plan.moves),
            {k: round(v, 2) for k, v in d.allocation.target_usd.items()},
        )

    straight = []
    async with rig(tmp_path / "straight.sqlite3") as r:
        memory = EMPTY_MEMORY
        for i in range(n):
            out = await r.cycle(i, memory, lost=lost(i))
            memory = out.memory
            straight.append(fingerprint(out))
        straight_books = r.ledger.balances()

    restarted = []
    wall = [1_000_000.0]
    world = (new_market(wall), wall)  # the market outlives the daemon
    path = tmp_path / "restarted.sqlite3"
    async with rig(path, world=world) as r:
        memory = EMPTY_MEMORY
        for i in range(n // 2):
            out = await r.cycle(i, memory)
            memory = out.memory
            restarted.append(fingerprint(out))
    # the process stops: the optimizer (and its compiled problem) is gone; the ledger file stays
    ledger = Ledger(path)
    stored = ledger.last_memory()
    ledger.close()
    assert stored is not None
    loaded = OptimizerMemory.from_json(stored)
    assert loaded.cycle == n // 2 and loaded.warm  # there is a warm start to lose
    async with rig(path, world=world) as r:
        for i in range(n // 2, n):
            out = await r.cycle(i, loaded, lost=lost(i))
            loaded = out.memory
            restarted.append(fingerprint(out))
        assert r.ledger.balances() == straight_books
    assert restarted == straight
    assert any(f[1] == "executed" for f in straight[1:])  # later cycles did move


async def test_without_memory_the_restarted_run_would_differ(tmp_path):
    """The restart test can fail: forgetting the memory loses the lost-venue bookkeeping."""
    async with rig(tmp_path / "l.sqlite3") as r:
        a = await r.cycle(0, EMPTY_MEMORY)
        assert a.decision is not None
        # the earn feed drops out: with memory it is kept (frozen), without it is gone
        now = r.now()
        only_aave = [s for s in snapshots(1, now) if s.venue.id == AAVE]
        opt = r.deps.optimizer
        portfolio = a.portfolio
        assert portfolio is not None
        with_memory = opt.decide(only_aave, portfolio, now, memory=a.memory)
        cold = opt.decide(only_aave, portfolio, now, memory=EMPTY_MEMORY)
        assert with_memory.allocation is not None and cold.allocation is not None
        assert EARN in with_memory.memory.last_snapshot and EARN not in cold.memory.last_snapshot


async def test_a_report_the_books_cannot_explain_is_a_break_that_holds_until_booked(tmp_path):
    """Money appears at the venue outside the books (another process's deposit under our
    account): not income; the cycle holds before deciding until an operator books the break."""
    from vault.reconcile import book_break

    async with rig(tmp_path / "l.sqlite3") as r:
        first = await r.cycle(0, EMPTY_MEMORY)
        assert first.decision is not None
        income_before = r.ledger.account(f"income:{AAVE}")
        nav_before = r.ledger.balances().nav_units
        r.market.deposit(AAVE, "34931.000000", "someone-else")
        out = await r.cycle(1, first.memory)
        assert out.outcome is RebalanceOutcome.HELD and out.decision is None
        assert AAVE in out.reason and "+3493" in out.reason
        assert r.ledger.account(f"income:{AAVE}") == income_before  # nothing booked as income
        # the other venues' explained accrual only (an hour's interest), not the 34,931
        assert nav_before <= r.ledger.balances().nav_units <= nav_before + usd_to_units(100)
        [brk] = r.ledger.open_breaks()
        assert brk.venue == AAVE and brk.difference_units >= usd_to_units(34_931)
        again = await r.cycle(2, first.memory)  # still held: time never explains a break away
        assert again.outcome is RebalanceOutcome.HELD and len(r.ledger.open_breaks()) == 1
        booked = book_break(r.ledger, AAVE, "test: a deposit made by hand", r.now())
        assert r.ledger.account("equity:breaks") == -booked.difference_units
        assert r.ledger.account(f"income:{AAVE}") == income_before
        assert r.ledger.audit() == [] and r.ledger.verify() == []
        resumed = await r.cycle(3, first.memory)
        assert resumed.decision is not None and r.ledger.open_breaks() == []


def test_a_venue_never_reconciled_is_explained_from_its_first_posting(tmp_path: Path) -> None:
    """The reconciler reads a venue's first posting (one indexed query) only while the venue has
    never agreed with the books: 10 days of accrual at its rate are explained from the deposit's
    time, and from then on from the last agreement. ``balances_under`` is ``account`` per name."""
    from datetime import timedelta

    from vault.reconcile import ReconcileSettings, reconcile

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ledger = Ledger(tmp_path / "l.sqlite3", durable=False)
    try:
        ledger.deposit_capital(t0, "ethereum", usd_to_units(2_000_000))
        ledger.post(
            t0 + timedelta(hours=1),
            "deposit",
            [("position:a", usd_to_units(1_000_000)), ("idle:ethereum", -usd_to_units(1_000_000))],
        )
        assert ledger.first_posting("position:a") == t0 + timedelta(hours=1)
        assert ledger.first_posting("position:none") is None
        assert "a" not in ledger.last_reconciled()
        at = t0 + timedelta(days=10, hours=1)
        gain = usd_to_units(2_000)  # 10 days at 5 % is ~1,370 USD; x3 rate slack explains 2,000
        reported = {"a": usd_to_units(1_000_000) + gain}
        assert reconcile(ledger, reported, {"a": 0.05}, at, ReconcileSettings()) == []
        assert ledger.account("position:a") == reported["a"]
        assert ledger.last_reconciled()["a"] == (at, 0.05)
        # the same gain an hour later is no longer explained: the interval starts at the agreement
        later = {"a": reported["a"] + gain}
        breaks = reconcile(ledger, later, {"a": 0.05}, at + timedelta(hours=1), ReconcileSettings())
        assert [b.venue for b in breaks] == ["a"]
        assert ledger.balances_under("income:") == {"a": ledger.account("income:a")} == {"a": -gain}
        assert ledger.balances_under("position:") == {"a": reported["a"]}
        assert ledger.balances_under("nothing:") == {}
    finally:
        ledger.close()
