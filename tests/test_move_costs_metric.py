"""Every executed move carries the plan's predicted cost and what it cost as booked, side by side
(``MoveResult.predicted_cost_units`` / ``cost_units``, in the rebalance record's results), and
``yieldvault_move_cost_usd_total{kind, basis}`` adds them up by move kind (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.money import usd_to_units
from core.types import Move, MoveAction, Plan
from mockfeeds.market import Market
from optimizer.costs import MOVE_COST_KINDS
from vault.executor import MoveResult, MoveStatus, PaperExecutor, move_to_dict
from vault.ledger import FEES, GAS, Ledger
from vault.metrics import Metrics
from vault.settings import DEFAULT_CONFIG, load_settings, read_yaml
from vault.transport import InProcessTransport

SETTINGS = load_settings(DEFAULT_CONFIG)
VENUES = {v.id: v.to_venue() for v in SETTINGS.venues}
LP = "uniswap-v2-usdc-weth-ethereum"
LENDING = "aave-v3-usdc-ethereum"


def value(m: Metrics, kind: str, basis: str) -> float:
    v = m.registry.get_sample_value(
        "yieldvault_move_cost_usd_total", {"kind": kind, "basis": basis}
    )
    assert v is not None, (kind, basis)
    return v


def paper_world(
    tmp_path, idempotency_window_seconds: float = 25 * 86_400
) -> tuple[Market, Ledger, PaperExecutor, list[float]]:
    """The default market in process, a fresh ledger with $1M on Ethereum, the paper executor;
    the market's wall clock is the list's one value (the test moves it)."""
    wall = [1_000_000.0]
    market = Market.from_config(
        read_yaml(DEFAULT_CONFIG.parent / "market.default.yaml"), wall_clock=lambda: wall[0]
    )
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    clock = lambda: datetime.fromtimestamp(market.clock.now(), UTC)  # noqa: E731
    ledger.deposit_capital(clock(), "ethereum", usd_to_units(1_000_000))
    executor = PaperExecutor(
        InProcessTransport(market),
        ledger=ledger,
        venues=VENUES,
        home_chain="ethereum",
        clock=clock,
        bridge_wait_seconds=0.0,
        idempotency_window_seconds=idempotency_window_seconds,
    )
    return market, ledger, executor, wall


def test_the_metric_declares_every_kind_and_adds_done_moves_only() -> None:
    m = Metrics()
    for kind in MOVE_COST_KINDS:
        assert value(m, kind, "predicted") == 0.0 and value(m, kind, "executed") == 0.0

    def res(
        action: str, venue: str, status: MoveStatus, predicted: float, paid: float
    ) -> MoveResult:
        return MoveResult(
            "k",
            action,
            venue,
            status,
            1,
            1,
            predicted_cost_units=usd_to_units(predicted),
            cost_units=usd_to_units(paid),
        )

    kinds = {"lp1": "lp", "a1": "lending", "s1": "staking"}
    m.record_move_costs(
        [
            res("deposit", "lp1", MoveStatus.DONE, 150.0, 151.5),
            res("withdraw", "lp1", MoveStatus.DONE, 20.0, 19.0),
            res("withdraw", "a1", MoveStatus.DONE, 1.0, 1.0),
            res("bridge", "bridge:ethereum->arbitrum", MoveStatus.DONE, 50.0, 52.0),
            res("deposit", "s1", MoveStatus.REFUSED, 9.0, 0.0),
        ],
        kinds,
    )
    assert value(m, "lp_entry", "predicted") == 150.0
    assert value(m, "lp_entry", "executed") == 151.5
    assert value(m, "lp_exit", "executed") == 19.0
    assert value(m, "lending_withdraw", "predicted") == 1.0
    assert value(m, "bridge", "executed") == 52.0
    assert value(m, "other_deposit", "predicted") == 0.0  # refused: not counted


async def test_a_done_move_books_its_predicted_and_executed_cost(tmp_path) -> None:
    _, ledger, executor, _ = paper_world(tmp_path)
    moves = (
        Move(MoveAction.DEPOSIT, LP, 100_000.0, "c-lp", cost_usd=321.25),
        Move(MoveAction.DEPOSIT, LENDING, 50_000.0, "c-aave", cost_usd=4.5),
    )
    results = await executor.execute(Plan(moves, 1.0, 325.75, True, "test"))
    assert [r.status for r in results] == [MoveStatus.DONE, MoveStatus.DONE]
    lp, aave = results
    assert lp.predicted_cost_units == usd_to_units(321.25)
    assert aave.predicted_cost_units == usd_to_units(4.5)
    # executed = the zap's fee the market kept + the gas the executor booked
    lp_fee = usd_to_units(100_000) - lp.applied_units
    assert lp_fee > 0
    assert lp.cost_units == lp_fee + usd_to_units(VENUES[LP].costs.deposit_usd)
    assert aave.cost_units == usd_to_units(VENUES[LENDING].costs.deposit_usd)
    # the books agree: every fee and gas unit of the plan is in exactly one move's cost
    assert ledger.account(FEES) + ledger.account(GAS) == lp.cost_units + aave.cost_units
    assert lp.as_dict()["cost_units"] == lp.cost_units
    m = Metrics()
    m.record_move_costs(results, {k: str(v.kind) for k, v in VENUES.items()})
    assert value(m, "lp_entry", "executed") == pytest.approx(lp.cost_units / 1e6)
    assert value(m, "lending_deposit", "predicted") == pytest.approx(4.5)


@pytest.mark.parametrize("asked_first", [False, True], ids=["replayed", "asked_first"])
async def test_a_recovered_move_carries_its_predicted_and_executed_cost(
    tmp_path, asked_first: bool
) -> None:
    """A move the venue applied but the books never booked (the process died in between) is
    recovered by replaying its key, or, written ahead longer ago than the venue remembers keys,
    by asking the venue's position first. Either way its result carries the plan's predicted cost
    and the booked cost, like a move run in the plan, so the move-cost metric counts it."""
    market, ledger, executor, wall = paper_world(tmp_path, idempotency_window_seconds=3_600.0)
    deposit = Move(MoveAction.DEPOSIT, LENDING, 30_000.0, "crash-1", cost_usd=4.5)
    body = {"venue": LENDING, "amount_usd": "30000.000000", "idempotency_key": "crash-1"}
    ledger.begin_move(
        datetime.fromtimestamp(market.clock.now(), UTC),
        "crash-1",
        {"move": move_to_dict(deposit), "path": "/deposit", "body": body},
    )
    market.deposit(LENDING, "30000.000000", "crash-1")
    if asked_first:
        wall[0] += 2.0  # two simulated hours (the default market's time scale): beyond 3,600 s
    [res] = await executor.recover()
    assert res.status is MoveStatus.DONE
    assert ("asked first" in res.detail or "venue shows it happened" in res.detail) is asked_first
    assert res.predicted_cost_units == usd_to_units(4.5)
    assert res.cost_units == usd_to_units(VENUES[LENDING].costs.deposit_usd) > 0
    assert ledger.account(FEES) + ledger.account(GAS) == res.cost_units
    m = Metrics()
    m.record_move_costs([res], {k: str(v.kind) for k, v in VENUES.items()})
    assert value(m, "lending_deposit", "predicted") == pytest.approx(4.5)
    assert value(m, "lending_deposit", "executed") == pytest.approx(res.cost_units / 1e6)
    ledger.close()
