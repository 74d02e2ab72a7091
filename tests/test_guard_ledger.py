"""The loss guard's realized return from a real ledger: booked income plus what an open shortfall
break holds (a mark-down the books refuse to explain is still money gone), never a surplus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.money import usd_to_units
from core.types import PortfolioState
from guard import Guards, GuardSettings
from tests.test_guard import snap
from vault.guarding import ledger_earned_usd
from vault.ledger import Ledger

T0 = datetime(2026, 2, 1, tzinfo=UTC)
USDT = "earn-usdt-flexible"
AAVE = "aave-usdc"


def books(tmp_path: Path) -> Ledger:
    """$1M of capital, $600k in the USDT product and $400k in Aave, $120 of accrual on the first."""
    led = Ledger(tmp_path / "ledger.sqlite3")
    led.deposit_capital(T0, "ethereum", usd_to_units(1_000_000))
    for venue, usd in ((USDT, 600_000), (AAVE, 400_000)):
        led.post(
            T0,
            "deposit",
            [("idle:ethereum", -usd_to_units(usd)), (f"position:{venue}", usd_to_units(usd))],
        )
    led.post(
        T0,
        "accrual",
        [(f"position:{USDT}", usd_to_units(120)), (f"income:{USDT}", -usd_to_units(120))],
    )
    return led


def test_an_open_shortfall_counts_as_lost_a_surplus_does_not_and_booking_closes_it(
    tmp_path: Path,
) -> None:
    led = books(tmp_path)
    earned = ledger_earned_usd(led, [USDT, AAVE])
    assert earned() == {USDT: 120.0, AAVE: 0.0}
    # USDT marked 3 % down: beyond the tolerance, so a shortfall break, not a booked loss
    held = usd_to_units(600_120)
    led.record_break(T0, USDT, held, held - usd_to_units(18_003.6), 0, "beyond tolerance")
    # Aave reports more than the books explain: a surplus break is never earned
    led.record_break(T0, AAVE, usd_to_units(400_000), usd_to_units(400_050), 0, "surplus")
    assert earned() == {USDT: 120.0 - 18_003.6, AAVE: 0.0}
    # the operator books the shortfall (to equity:breaks, not income): the break closes and the
    # figure steps back to the booked income
    [brk] = [b for b in led.open_breaks() if b.venue == USDT]
    led.post_break(T0 + timedelta(hours=1), brk, "depeg mark-down acknowledged")
    assert earned()[USDT] == 120.0
    led.close()


def test_the_loss_guard_sees_a_mark_down_the_books_hold_in_a_break(tmp_path: Path) -> None:
    """Two cycles an hour apart: between them the USDT product's report falls 3 % below the books
    (an open shortfall break). The loss guard, fed by the ledger, exits it; without the break in
    the figure (booked income alone) it would see nothing."""
    led = books(tmp_path)
    earned = ledger_earned_usd(led, [USDT, AAVE])
    guards = Guards(GuardSettings())
    positions = {USDT: 600_120.0, AAVE: 400_000.0}
    s0 = [snap(USDT, asset="USDT", protocol="binance"), snap(AAVE)]
    _, state = guards(s0, PortfolioState(positions, 0.0, earned_usd=earned()), T0, None)
    held = usd_to_units(600_120)
    led.record_break(T0, USDT, held, held - usd_to_units(18_003.6), 0, "beyond tolerance")
    t1 = T0 + timedelta(hours=1)
    s1 = [snap(USDT, at=t1, asset="USDT", protocol="binance"), snap(AAVE, at=t1)]
    # the cycle plans with what the venue reports (vault.cycle_books.shortfall_directives)
    now = PortfolioState({**positions, USDT: 582_116.4}, 0.0, earned_usd=earned())
    directives, _ = guards(s1, now, t1, state)
    assert USDT in directives.exit and AAVE not in directives.exit
    blind = PortfolioState(now.positions_usd, 0.0, earned_usd={USDT: 120.0, AAVE: 0.0})
    directives, _ = guards(s1, blind, t1, state)
    assert USDT not in directives.exit
    led.close()
