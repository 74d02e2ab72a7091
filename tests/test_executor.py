"""The paper executor against the real simulated market, with a real SQLite ledger.

Every test runs twice: over HTTP on loopback (``HttpTransport``) and with the market in the same
process (``InProcessTransport``); the booking must not tell them apart.
"""

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from core.money import usd_to_units
from core.types import Move, MoveAction, Plan
from mockfeeds.market import Market
from mockfeeds.server import start, stop
from vault.executor import MoveStatus, PaperExecutor, move_to_dict
from vault.ledger import FEES, Ledger
from vault.reconcile import ReconcileSettings, reconcile
from vault.settings import DEFAULT_CONFIG, load_settings, read_yaml
from vault.transport import HttpTransport, InProcessTransport, OutcomeUnknown, VenueRefused

SETTINGS = load_settings(DEFAULT_CONFIG)
VENUES = {v.id: v.to_venue() for v in SETTINGS.venues}
MILLION = usd_to_units(1_000_000)


class World:
    def __init__(self, market, executor, ledger, wall):
        self.market, self.executor, self.ledger, self.wall = market, executor, ledger, wall

    def pass_wall_seconds(self, seconds: float) -> None:
        self.wall[0] += seconds
        self.market.sync()

    def assert_books_sound(self) -> None:
        assert self.ledger.audit() == []
        assert self.ledger.balances().nav_units == -sum(
            self.ledger.account(a) for a in ("equity:deposits", FEES, "expense:gas")
        ) - sum(self.ledger.account(f"income:{v}") for v in VENUES)


def new_market(wall: list[float]) -> Market:
    return Market.from_config(
        read_yaml(DEFAULT_CONFIG.parent / "market.default.yaml"), wall_clock=lambda: wall[0]
    )


@contextlib.asynccontextmanager
async def make_world(path, transport_kind: str) -> AsyncIterator[World]:
    wall = [1_000_000.0]
    market = new_market(wall)
    ledger = Ledger(path)
    clock = lambda: datetime.fromtimestamp(market.clock.now(), UTC)  # noqa: E731
    ledger.deposit_capital(clock(), "ethereum", MILLION)
    runner = None
    async with aiohttp.ClientSession() as session:
        if transport_kind == "http":
            runner, url = await start(market, "127.0.0.1", 0)
            transport: HttpTransport | InProcessTransport = HttpTransport(session, url)
        else:
            transport = InProcessTransport(market)
        executor = PaperExecutor(
            transport,
            ledger=ledger,
            venues=VENUES,
            home_chain="ethereum",
            clock=clock,
            bridge_wait_seconds=0.5,
        )
        try:
            yield World(market, executor, ledger, wall)
        finally:
            ledger.close()
            if runner is not None:
                await stop(runner)


@pytest.fixture(params=["http", "in_process"])
async def world(tmp_path, request):
    async with make_world(tmp_path / "ledger.sqlite3", request.param) as w:
        yield w


async def reconcile_all(executor, ledger) -> None:
    """The cycle's sync step: the venue's report reconciled with the books (a 100 % APR explains
    any sane accrual over these tests' few simulated weeks)."""
    reported = await executor.venue_positions()
    checks = reconcile(
        ledger, reported, {v: 1.0 for v in VENUES}, executor._clock(), ReconcileSettings()
    )
    assert checks == []  # no break


def move(action: MoveAction, venue: str, usd: float, key: str, **chains) -> Move:
    return Move(action=action, venue_id=venue, amount_usd=usd, idempotency_key=key, **chains)


def plan(*moves: Move) -> Plan:
    return Plan(moves=moves, expected_gain_usd=1.0, cost_usd=0.0, execute=True, reason="test")


async def test_deposit_accrue_and_withdraw_book_exactly(world):
    [res] = await world.executor.execute(
        plan(move(MoveAction.DEPOSIT, "aave-v3-usdc-ethereum", 200_000, "d1"))
    )
    assert res.status is MoveStatus.DONE and res.applied_units == usd_to_units(200_000)
    assert world.ledger.account("position:aave-v3-usdc-ethereum") == usd_to_units(200_000)
    assert world.ledger.account("expense:gas") == usd_to_units(
        VENUES["aave-v3-usdc-ethereum"].costs.deposit_usd
    )
    world.assert_books_sound()

    world.pass_wall_seconds(10 * 24)  # 10 simulated days at 3600x
    await reconcile_all(world.executor, world.ledger)
    accrued = world.ledger.account("position:aave-v3-usdc-ethereum") - usd_to_units(200_000)
    assert accrued > 0  # the supply rate paid interest ...
    assert accrued < usd_to_units(200_000) * 0.10 * 10 / 365  # ... at a sane rate
    assert world.ledger.account("income:aave-v3-usdc-ethereum") == -accrued
    world.assert_books_sound()

    [res] = await world.executor.execute(
        plan(move(MoveAction.WITHDRAW, "aave-v3-usdc-ethereum", 50_000, "w1"))
    )
    assert res.status is MoveStatus.DONE
    assert world.ledger.account("position:aave-v3-usdc-ethereum") == usd_to_units(150_000) + accrued
    world.assert_books_sound()


async def test_queued_withdrawal_is_in_flight_until_it_settles(world):
    await world.executor.execute(plan(move(MoveAction.DEPOSIT, "lido-steth", 100_000, "d-lido")))
    [res] = await world.executor.execute(
        plan(move(MoveAction.WITHDRAW, "lido-steth", 40_000, "w-lido"))
    )
    assert res.status is MoveStatus.DONE
    flights = world.ledger.balances().in_flight_units
    assert len(flights) == 1 and next(iter(flights)).startswith("ethereum/withdrawal/lido-steth/")
    assert sum(flights.values()) == usd_to_units(40_000)
    idle_before = world.ledger.account("idle:ethereum")
    await world.executor.settle_in_flight()
    assert world.ledger.balances().in_flight_units  # still queued
    world.pass_wall_seconds(30 * 24)  # 30 simulated days: well past Lido's queue
    await world.executor.settle_in_flight()
    assert world.ledger.balances().in_flight_units == {}
    assert world.ledger.account("idle:ethereum") == idle_before + usd_to_units(40_000)
    world.assert_books_sound()


async def test_bridge_leg_lands_on_the_destination_chain_minus_its_fee(world):
    results = await world.executor.execute(
        plan(
            move(
                MoveAction.BRIDGE,
                "across-usdc-arbitrum-base",
                100_000,
                "b1",
                from_chain="ethereum",
                to_chain="arbitrum",
            ),
            move(MoveAction.DEPOSIT, "across-usdc-arbitrum-base", 100_000, "d-arb"),
        )
    )
    if world.ledger.balances().in_flight_units:  # fill time longer than the executor waited
        world.pass_wall_seconds(60)
        await world.executor.settle_in_flight()
        results += await world.executor.execute(
            plan(move(MoveAction.DEPOSIT, "across-usdc-arbitrum-base", 100_000, "d-arb2"))
        )
    assert results[0].status is MoveStatus.DONE
    fee = world.ledger.account(FEES)
    assert 0 < fee < usd_to_units(100_000) * 0.01  # Across stablecoin fees are basis points
    position = world.ledger.account("position:across-usdc-arbitrum-base")
    assert 0 < position <= usd_to_units(100_000) - fee  # the deposit was capped by what arrived
    world.assert_books_sound()


async def test_a_refused_withdrawal_moves_nothing(world):
    await world.executor.execute(
        plan(move(MoveAction.DEPOSIT, "aave-v3-usdc-ethereum", 10_000, "d2"))
    )
    world.ledger.post(
        world.executor._clock(),
        "test",
        [("idle:ethereum", -usd_to_units(2)), ("position:aave-v3-usdc-ethereum", usd_to_units(2))],
    )
    before = world.ledger.balances()
    # The ledger believes in two more dollars than the venue holds: a partial withdrawal beyond the
    # venue's position is refused, naming the field, and moves nothing.
    [res] = await world.executor.execute(
        plan(move(MoveAction.WITHDRAW, "aave-v3-usdc-ethereum", 10_001, "w-too-much"))
    )
    assert res.status is MoveStatus.REFUSED and res.detail.startswith("amount_usd:")
    assert world.ledger.balances() == before
    assert world.ledger.pending_moves() == []


async def test_withdrawing_everything_takes_what_the_venue_still_holds(world):
    """An exit during a falling depeg: the venue marked the position down after the last sync, so
    "everything the books hold" is more than it has; the executor takes the venue's whole position
    (the refused write left no record, so the key is reused) and the next sync books the rest."""
    await world.executor.execute(plan(move(MoveAction.DEPOSIT, "earn-usdt-flexible", 10_000, "d3")))
    await world.executor.sync_positions()
    books = world.ledger.account("position:earn-usdt-flexible")
    world.market.start_scenario(
        {"name": "depeg", "chain": "ethereum", "token": "USDT", "params": {"price": 0.9}}
    )
    [res] = await world.executor.execute(
        plan(move(MoveAction.WITHDRAW, "earn-usdt-flexible", 10_000, "w-all"))
    )
    assert res.status is MoveStatus.DONE, res
    assert abs(res.applied_units - books * 9 // 10) <= 10
    assert world.ledger.pending_moves() == []
    await world.executor.sync_positions()
    assert world.ledger.account("position:earn-usdt-flexible") == 0
    assert (
        abs(world.ledger.account("income:earn-usdt-flexible") - (books - res.applied_units)) <= 10
    )
    world.assert_books_sound()


async def test_a_move_interrupted_after_the_venue_call_is_replayed_once(world):
    deposit = move(MoveAction.DEPOSIT, "earn-usdt-flexible", 30_000, "crash-1")
    # The venue executed the deposit, but the process died before the ledger booked it.
    body = {
        "venue": "earn-usdt-flexible",
        "amount_usd": "30000.000000",
        "idempotency_key": "crash-1",
    }
    world.ledger.begin_move(
        world.executor._clock(),
        deposit.idempotency_key,
        {"move": move_to_dict(deposit), "path": "/deposit", "body": body},
    )
    world.market.deposit("earn-usdt-flexible", "30000.000000", "crash-1")
    [res] = await world.executor.recover()
    assert res.status is MoveStatus.DONE
    assert world.ledger.account("position:earn-usdt-flexible") == usd_to_units(30_000)
    assert (
        world.market.positions_view()["positions"][0]["position_usd"] == "30000.000000"
    )  # not deposited twice
    assert await world.executor.recover() == []
    world.assert_books_sound()


async def test_depositing_all_idle_still_books_within_the_balance(world):
    """Gas comes out of what the move leaves, never overdrawing idle (a bug once looped a replay forever)."""
    [res] = await world.executor.execute(
        plan(move(MoveAction.DEPOSIT, "aave-v3-usdc-ethereum", 1_000_000, "all-in"))
    )
    assert res.status is MoveStatus.DONE
    assert world.ledger.account("idle:ethereum") == 0
    assert world.ledger.pending_moves() == []
    world.assert_books_sound()


def book_dump(path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Every transaction, posting and balance of a ledger file, in order."""
    db = sqlite3.connect(path)
    try:
        return (
            db.execute(
                "SELECT id, at, kind, idempotency_key, memo FROM transactions ORDER BY id"
            ).fetchall(),
            db.execute(
                "SELECT tx_id, account, amount_units FROM postings ORDER BY rowid"
            ).fetchall(),
            db.execute("SELECT account, units FROM balances ORDER BY account").fetchall(),
        )
    finally:
        db.close()


async def test_both_transports_book_the_same_plan_identically(tmp_path):
    """One plan (deposits, a queued withdrawal, a bridge leg and the deposit it would fund (skipped: the leg has not filled yet), a refused
    bridge), then accrual and settlement, against two markets of one config: one over HTTP,
    one in process. The two ledgers are identical, transaction by transaction."""
    steps = plan(
        move(MoveAction.DEPOSIT, "aave-v3-usdc-ethereum", 200_000, "p-d1"),
        move(MoveAction.DEPOSIT, "lido-steth", 100_000, "p-d2"),
        move(MoveAction.WITHDRAW, "lido-steth", 40_000, "p-w1"),
        move(  # below the route's minimum deposit: refused
            MoveAction.BRIDGE,
            "across-usdc-arbitrum-base",
            0.5,
            "p-b-refused",
            from_chain="ethereum",
            to_chain="arbitrum",
        ),
        move(
            MoveAction.BRIDGE,
            "across-usdc-arbitrum-base",
            100_000,
            "p-b1",
            from_chain="ethereum",
            to_chain="arbitrum",
        ),
        move(MoveAction.DEPOSIT, "across-usdc-arbitrum-base", 100_000, "p-d3"),
    )
    statuses = {}
    for kind in ("http", "in_process"):
        async with make_world(tmp_path / f"{kind}.sqlite3", kind) as w:
            results = await w.executor.execute(steps)
            w.pass_wall_seconds(30 * 24)  # 30 simulated days: accrual, fills, Lido's queue
            await w.executor.settle_in_flight()
            await reconcile_all(w.executor, w.ledger)
            w.assert_books_sound()
            statuses[kind] = [(r.status, r.applied_units, r.detail) for r in results]
    assert statuses["http"] == statuses["in_process"]
    assert [s for s, _, _ in statuses["http"]].count(MoveStatus.REFUSED) == 1
    assert MoveStatus.DONE in [s for s, _, _ in statuses["http"]]
    http, local = book_dump(tmp_path / "http.sqlite3"), book_dump(tmp_path / "in_process.sqlite3")
    assert len(http[0]) > 6  # capital, moves, gas, accrual, settlements
    assert http == local


async def test_in_process_transport_maps_refusals_and_key_reuse_like_http():
    market = new_market([1_000_000.0])
    t = InProcessTransport(market)
    body = {"venue": "aave-v3-usdc-ethereum", "amount_usd": "10.000000", "idempotency_key": "k"}
    first = await t.request("POST", "/deposit", body)
    assert first["applied_usd"] == "10.000000" and first["status"] == "completed"
    assert await t.request("POST", "/deposit", body) == first  # same key, same answer
    with pytest.raises(OutcomeUnknown, match="reused"):
        await t.request("POST", "/deposit", {**body, "amount_usd": "11.000000"})
    with pytest.raises(VenueRefused) as refused:
        await t.request("POST", "/withdraw", {**body, "amount_usd": "1e3", "idempotency_key": "w"})
    assert refused.value.field == "amount_usd"
    with pytest.raises(VenueRefused, match="no such endpoint"):
        await t.request("GET", "/nowhere")
    first["position_usd"] = "mutated"  # the answer is a copy, not the market's record
    assert (await t.request("POST", "/deposit", body))["position_usd"] == "10.000000"
