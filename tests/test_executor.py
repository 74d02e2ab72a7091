"""The paper executor against the real simulated market on loopback, with a real SQLite ledger."""

from datetime import UTC, datetime

import aiohttp
import pytest

from core.money import usd_to_units
from core.types import Move, MoveAction, Plan
from mockfeeds.market import Market
from mockfeeds.server import start, stop
from vault.executor import MoveStatus, PaperExecutor, move_to_dict
from vault.ledger import FEES, Ledger
from vault.settings import DEFAULT_CONFIG, load_settings, read_yaml

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


@pytest.fixture
async def world(tmp_path):
    wall = [1_000_000.0]
    market = Market.from_config(
        read_yaml(DEFAULT_CONFIG.parent / "market.default.yaml"), wall_clock=lambda: wall[0]
    )
    runner, url = await start(market, "127.0.0.1", 0)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    clock = lambda: datetime.fromtimestamp(market.clock.now(), UTC)  # noqa: E731
    ledger.deposit_capital(clock(), "ethereum", MILLION)
    async with aiohttp.ClientSession() as session:
        executor = PaperExecutor(
            session=session,
            base_url=url,
            ledger=ledger,
            venues=VENUES,
            home_chain="ethereum",
            clock=clock,
            bridge_wait_seconds=0.5,
        )
        yield World(market, executor, ledger, wall)
    ledger.close()
    await stop(runner)


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
    await world.executor.sync_positions()
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
        [("idle:ethereum", -usd_to_units(1)), ("position:aave-v3-usdc-ethereum", usd_to_units(1))],
    )
    before = world.ledger.balances()
    # The ledger believes in one more dollar than the venue holds: the venue refuses, naming the field.
    [res] = await world.executor.execute(
        plan(move(MoveAction.WITHDRAW, "aave-v3-usdc-ethereum", 10_001, "w-too-much"))
    )
    assert res.status is MoveStatus.REFUSED and res.detail.startswith("amount_usd:")
    assert world.ledger.balances() == before
    assert world.ledger.pending_moves() == []


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
