"""The simulated market without HTTP: reproducibility, persistence, validation, accrual, paper rules."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mockfeeds.market import Market, MarketError, SimClock
from protocols import aave, lido
from tests.mockfeeds_world import cfg

DAY = 86_400.0


def test_default_market_has_the_daemons_eight_venues() -> None:
    m = Market.from_config(cfg())
    assert [v.id for v in m.venues] == [
        "lido-steth",
        "aave-v3-usdc-ethereum",
        "uniswap-v2-usdc-weth-ethereum",
        "across-usdc-arbitrum-base",
        "earn-usdt-flexible",
        "aave-v3-steth-loop",
        "uniswap-v2-usdc-weth-hedged",
        "azuki-rental",
    ]
    daemon = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "config" / "default.yaml").read_text()
    )
    assert [v["id"] for v in daemon["venues"]] == [v.id for v in m.venues]
    # realistic marginal rates at the start
    aprs = {v.id: v.base_apr(m) for v in m.venues}
    assert 0.025 < aprs["lido-steth"] < 0.034
    assert 0.02 < aprs["aave-v3-usdc-ethereum"] < 0.06
    assert aprs["earn-usdt-flexible"] == 0.045
    assert 0.05 < aprs["aave-v3-steth-loop"] < 0.20  # 8.3x of ~3.2 % staking over ~2.1 % borrow
    assert 0.06 < aprs["azuki-rental"] < 0.16  # rent on the floor, the 8-15 % of the seeds


def test_same_seed_same_world_and_another_seed_differs() -> None:
    a, b, c = Market.from_config(cfg()), Market.from_config(cfg()), Market.from_config(cfg(seed=43))
    for m in (a, b, c):
        m.advance(2 * DAY)
    assert json.dumps(a.dump_state(), sort_keys=True) == json.dumps(b.dump_state(), sort_keys=True)
    assert a.eth_usd != c.eth_usd


def test_clock_runs_at_time_scale_on_an_injected_wall_clock() -> None:
    wall = [1000.0]
    m = Market.from_config(cfg(time_scale=3600, tick_seconds=900), wall_clock=lambda: wall[0])
    t0 = m.state_time
    wall[0] += 2.0  # two wall seconds = two simulated hours = 8 ticks
    assert m.sync() == 8
    assert m.state_time == t0 + 7200
    clock = SimClock(0.0, 10.0, wall=lambda: wall[0])
    wall[0] += 1.5
    assert clock.now() == pytest.approx(15.0)
    with pytest.raises(ValueError, match="time_scale"):
        SimClock(0.0, -1.0)


def test_restart_from_the_state_file_continues_the_same_world(tmp_path: Path) -> None:
    state = tmp_path / "world.json"
    m = Market.from_config(cfg(), state_path=state)
    m.deposit("aave-v3-usdc-ethereum", "250000.000000", "k1")
    m.deposit("lido-steth", "100000.000000", "k2")
    m.advance(DAY)
    m.save()
    assert state.exists() and not list(tmp_path.glob("*.tmp"))
    resumed = Market.from_config(cfg(), state_path=state)
    assert resumed.state_time == m.state_time
    assert resumed.positions == m.positions
    # both continue identically (same RNG state, same pools)
    m.advance(DAY)
    resumed.advance(DAY)
    assert resumed.position_usd("aave-v3-usdc-ethereum") == m.position_usd("aave-v3-usdc-ethereum")
    assert resumed.eth_usd == m.eth_usd
    # idempotency survives the restart
    again = resumed.deposit("aave-v3-usdc-ethereum", "250000.000000", "k1")
    assert again["applied_usd"] == "250000.000000"
    assert resumed.positions == m.positions


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "world.json"
    state.write_text('{"version": 1, "state_ti')
    with pytest.raises(ValueError, match="cannot resume from it"):
        Market.from_config(cfg(), state_path=state)
    state.write_text('{"version": 99}')
    with pytest.raises(ValueError, match="version 99"):
        Market.from_config(cfg(), state_path=state)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("venues", 1, "lending", "total_supply_usd"), -5, "venues.1.lending.total_supply_usd"),
        (("venues", 0, "chain"), "mars", "venues.0.chain"),
        (("venues", 1, "lending", "strategy"), "nope", "unknown Aave preset"),
        (("time_scale",), -1, "time_scale"),
        (
            ("venues", 3, "bridge_arb", "destination_chain"),
            "arbitrum",
            "origin and destination must differ",
        ),
    ],
)
def test_config_errors_name_the_field(path: tuple[Any, ...], value: Any, needle: str) -> None:
    c = cfg()
    node = c
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        Market.from_config(c)


def test_duplicate_venue_ids_are_refused() -> None:
    c = cfg()
    c["venues"].append(copy.deepcopy(c["venues"][4]))
    with pytest.raises(ValueError, match="duplicate venue id"):
        Market.from_config(c)


def test_fixed_product_accrues_its_flat_apr() -> None:
    m = Market.from_config(cfg(tick_seconds=3600))
    m.deposit("earn-usdt-flexible", "1000000.000000", "f")
    m.advance(365 * DAY)
    value = Decimal(m.position_usd("earn-usdt-flexible"))
    hours = 365 * 24
    # credited hourly
    expected = Decimal(1_000_000) * (Decimal(1) + Decimal("0.045") / hours) ** hours
    assert abs(value - expected) < Decimal("0.01")


def test_lending_position_earns_the_supply_rate_of_each_step() -> None:
    m = Market.from_config(cfg())
    v = m.by_id["aave-v3-usdc-ethereum"]
    m.deposit(v.id, "1000000.000000", "a")
    rate = v.base_apr(m) + v.reward_apr(m)
    m.advance(900)  # one tick at the rate in force
    assert Decimal(m.position_usd(v.id)) == pytest.approx(
        Decimal(1_000_000) * Decimal(1 + rate * 900 / 31_536_000), abs=Decimal("0.000002")
    )


def test_deposit_moves_utilization_exactly_as_the_aave_curve_says() -> None:
    m = Market.from_config(cfg())
    v = m.by_id["aave-v3-usdc-ethereum"]
    debt, avail = v.debt(), v.available_usd(m)
    m.deposit(v.id, "5000000.000000", "x")
    assert v.debt() == debt
    assert v.base_apr(m) == pytest.approx(
        float(aave.supply_apr_after_deposit(v.strategy, debt, avail, 5e6)), rel=1e-12
    )


def test_staking_position_steps_at_the_daily_report() -> None:
    m = Market.from_config(cfg())
    v = m.by_id["lido-steth"]
    m.deposit("lido-steth", "100000.000000", "s")
    m.advance(11 * 3600)  # 00:00 -> 11:00, before the 12:00 report
    assert m.position_usd("lido-steth") == "100000.000000"
    pre = v.share_rate()
    m.advance(3600)
    post = v.share_rate()
    assert lido.user_apr_from_share_rates(pre, post, DAY) == pytest.approx(v.aprs[-1][1])
    assert Decimal(m.position_usd("lido-steth")) == pytest.approx(
        Decimal(100_000) * Decimal(post / pre), abs=Decimal("0.000002")
    )


def test_paper_input_errors_name_field_and_reason() -> None:
    m = Market.from_config(cfg())
    cases = [
        (("aave-v3-usdc-ethereum", 100, "k"), "amount_usd", "decimal string"),
        (("aave-v3-usdc-ethereum", "1.0000001", "k"), "amount_usd", "6 decimals"),
        (("aave-v3-usdc-ethereum", "-5", "k"), "amount_usd", "> 0"),
        (("aave-v3-usdc-ethereum", "NaN", "k"), "amount_usd", "finite"),
        (("nowhere", "5", "k"), "venue", "unknown venue"),
        (("aave-v3-usdc-ethereum", "5", ""), "idempotency_key", "1 to 200"),
        (("earn-usdt-flexible", "60000000", "k"), "amount_usd", "capacity"),
    ]
    for args, field, reason in cases:
        with pytest.raises(MarketError) as exc:
            m.deposit(*args)
        assert exc.value.field == field
        assert reason in exc.value.reason
        assert 400 <= exc.value.status < 500
    with pytest.raises(MarketError) as exc:
        m.withdraw("aave-v3-usdc-ethereum", "1.000000", "w")
    assert exc.value.field == "amount_usd" and exc.value.reason == "exceeds position 0.000000"


def test_aave_supply_cap_bounds_deposits() -> None:
    supply = Market.from_config(cfg()).by_id["aave-v3-usdc-ethereum"].total_supply()  # type: ignore[attr-defined]
    c = cfg()
    c["venues"][1]["lending"]["supply_cap_tokens"] = int(supply) + 500_000
    m = Market.from_config(c)
    room = int(supply) + 500_000 - m.by_id["aave-v3-usdc-ethereum"].total_supply()  # type: ignore[attr-defined]
    assert 499_000 < room <= 500_000
    with pytest.raises(MarketError) as exc:
        m.deposit("aave-v3-usdc-ethereum", f"{room + 1:.6f}", "cap")
    assert exc.value.field == "amount_usd" and "remaining capacity" in exc.value.reason
    m.deposit("aave-v3-usdc-ethereum", f"{room - 1:.6f}", "fits")


def test_idempotent_writes() -> None:
    m = Market.from_config(cfg())
    first = m.deposit("aave-v3-usdc-ethereum", "1000.000000", "same")
    assert m.deposit("aave-v3-usdc-ethereum", "1000.000000", "same") == first
    assert m.position_usd("aave-v3-usdc-ethereum") == "1000.000000"
    with pytest.raises(MarketError) as exc:
        m.deposit("aave-v3-usdc-ethereum", "2000.000000", "same")
    assert exc.value.status == 409 and exc.value.field == "idempotency_key"
    t1 = m.bridge("ethereum", "base", "5000.000000", "b")
    assert m.bridge("ethereum", "base", "5000.000000", "b")["transfer_id"] == t1["transfer_id"]
    assert len(m.transfers) == 1


def test_old_records_are_pruned_after_30_simulated_days() -> None:
    m = Market.from_config(cfg(tick_seconds=3600))
    m.deposit("aave-v3-usdc-ethereum", "10.000000", "old")
    tr = m.bridge("ethereum", "base", "10.000000", "old-bridge")
    m.advance(29 * DAY)
    assert "old" in m.idempotency and tr["transfer_id"] in m.transfers
    m.advance(2 * DAY)
    assert "old" not in m.idempotency and tr["transfer_id"] not in m.transfers


def test_full_withdrawal_empties_the_position_exactly() -> None:
    m = Market.from_config(cfg())
    m.deposit("uniswap-v2-usdc-weth-ethereum", "100000.000000", "d")
    m.advance(3 * DAY)
    pos = m.position_usd("uniswap-v2-usdc-weth-ethereum")
    m.withdraw("uniswap-v2-usdc-weth-ethereum", pos, "w")
    assert Decimal(m.position_usd("uniswap-v2-usdc-weth-ethereum")) < Decimal("0.000001")


_FROZEN = Market.from_config(cfg())


@settings(deadline=None, max_examples=30)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["deposit", "withdraw"]), st.integers(100_000, 4_000_000_000_000)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_paper_money_is_exact_while_time_stands_still(ops: list[tuple[str, int]]) -> None:
    """With the clock frozen, a position is exactly deposits minus withdrawals, to the micro-dollar."""
    m = copy.deepcopy(_FROZEN)
    expected = Decimal(0)
    for i, (op, units) in enumerate(ops):
        amount = Decimal(units).scaleb(-6)
        if op == "deposit":
            m.deposit("earn-usdt-flexible", f"{amount:.6f}", f"k{i}")
            expected += amount
        elif amount <= expected:
            res = m.withdraw("earn-usdt-flexible", f"{amount:.6f}", f"k{i}")
            expected -= amount
            assert res["applied_usd"] == f"{amount:.6f}"
        else:
            with pytest.raises(MarketError, match="exceeds position"):
                m.withdraw("earn-usdt-flexible", f"{amount:.6f}", f"k{i}")
        assert Decimal(m.position_usd("earn-usdt-flexible")) == expected
