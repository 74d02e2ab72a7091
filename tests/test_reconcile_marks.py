"""A venue's report that moved with its asset's price against its peg is explained by the mark (a
booked gain or loss), not a break; anything the mark does not explain still is one."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.marks import peg_mark
from core.money import usd_to_units
from tests.test_guard import snap
from vault.ledger import SCHEMA_VERSION, Ledger
from vault.reconcile import ReconcileSettings, reconcile

T0 = datetime(2026, 2, 1, tzinfo=UTC)
USDT = "earn-usdt-flexible"
POSITION = usd_to_units(600_000)


def books(tmp_path: Path) -> Ledger:
    """$600k in a USDT product whose report agreed with the books at T0, USDT at par."""
    led = Ledger(tmp_path / "ledger.sqlite3")
    led.deposit_capital(T0, "ethereum", usd_to_units(1_000_000))
    led.post(T0, "deposit", [("idle:ethereum", -POSITION), (f"position:{USDT}", POSITION)])
    assert (
        reconcile(
            led,
            {USDT: POSITION},
            {USDT: 0.0},
            T0,
            ReconcileSettings(),
            {USDT: "fixed"},
            {USDT: 1.0},
        )
        == []
    )
    assert led.reconciled_marks() == {USDT: 1.0}
    return led


@pytest.mark.parametrize(
    ("kind", "mark", "explained"),
    [
        ("fixed", 1.0012, True),  # the UST path's first close: a 12 bp mark-up is a gain
        ("fixed", 0.97, True),  # a 3 % mark-down is a booked loss (the loss guard sees it)
        ("lending", 0.97, True),
        ("lp", 1.0012, False),  # an LP is valued by its pool, not amount x mark: not this rule
        ("fixed", 0.85, False),  # a 15 % jump in one sync: beyond price_mark_max_move_ratio
        (None, 1.0012, False),  # no price known now
    ],
)
def test_a_report_that_moved_with_the_mark_is_booked_not_a_break(
    tmp_path: Path, kind: str, mark: float | None, explained: bool
) -> None:
    led = books(tmp_path)
    t1 = T0 + timedelta(minutes=15)
    reported = int(POSITION * mark)
    kinds = {USDT: kind or "fixed"}
    marks = {USDT: mark} if kind is not None else {}
    breaks = reconcile(led, {USDT: reported}, {USDT: 0.0}, t1, ReconcileSettings(), kinds, marks)
    if explained:
        assert breaks == [] and led.open_breaks() == []
        assert led.account(f"position:{USDT}") == reported  # the books follow the marked report
        assert led.account(f"income:{USDT}") == POSITION - reported  # as a gain or a loss
        assert led.reconciled_marks()[USDT] == pytest.approx(mark)
    else:
        assert [b.venue for b in led.open_breaks()] == [USDT]
        assert led.account(f"position:{USDT}") == POSITION  # nothing booked
    assert led.audit() == []
    led.close()


def test_a_report_the_mark_does_not_explain_is_still_a_break(tmp_path: Path) -> None:
    """USDT 12 bp up, the venue reporting 1 % more: the mark explains 12 bp of it, not the rest;
    and with the rule off (``price_mark_max_move_ratio: 0``) the 12 bp alone is a break, as before."""
    led = books(tmp_path)
    t1 = T0 + timedelta(minutes=15)
    breaks = reconcile(
        led,
        {USDT: int(POSITION * 1.01)},
        {USDT: 0.0},
        t1,
        ReconcileSettings(),
        {USDT: "fixed"},
        {USDT: 1.0012},
    )
    assert [b.venue for b in breaks] == [USDT] and "price/peg moved" in breaks[0].reason()
    led.close()
    led = books(tmp_path / "off")
    off = ReconcileSettings(price_mark_max_move_ratio=0.0)
    breaks = reconcile(
        led, {USDT: int(POSITION * 1.0012)}, {USDT: 0.0}, t1, off, {USDT: "fixed"}, {USDT: 1.0012}
    )
    assert [b.venue for b in breaks] == [USDT]
    led.close()


def test_peg_mark_reads_price_over_peg_and_nothing_it_cannot_tell() -> None:
    assert peg_mark(snap(USDT, asset="USDT", asset_price_usd=0.9625)) == pytest.approx(0.9625)
    lst = snap("lido", asset="stETH", asset_price_usd=2_940.0, peg_price_usd=3_000.0)
    assert peg_mark(lst) == pytest.approx(0.98)
    assert peg_mark(snap("lido", asset="stETH", asset_price_usd=2_940.0)) is None  # no peg
    assert peg_mark(snap(USDT, asset="USDT")) is None  # no price
    assert peg_mark(snap(USDT, asset="USDT", asset_price_usd=float("nan"))) is None


def test_a_version_3_ledger_gains_the_mark_column(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    led = Ledger(path)
    led.mark_reconciled(USDT, T0, 0.05)
    led.close()
    db = sqlite3.connect(path)  # as written before reconciliations.mark existed
    db.executescript(
        "CREATE TABLE r AS SELECT venue, at, apr FROM reconciliations;"
        "DROP TABLE reconciliations;"
        "CREATE TABLE reconciliations (venue TEXT PRIMARY KEY, at TEXT NOT NULL, apr REAL NOT NULL);"
        "INSERT INTO reconciliations SELECT * FROM r; DROP TABLE r;"
        "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
    )
    db.commit()
    db.close()
    led = Ledger(path)
    assert led.schema_version() == SCHEMA_VERSION == 4
    assert led.last_reconciled() == {USDT: (T0, 0.05)} and led.reconciled_marks() == {}
    led.mark_reconciled(USDT, T0, 0.05, 0.999)
    assert led.reconciled_marks() == {USDT: 0.999}
    led.close()


def test_a_sync_books_every_venues_accrual_in_one_transaction(tmp_path: Path) -> None:
    """One ``accrual`` transaction a sync (its memo names the venues), one position/income pair
    per venue that moved; a venue whose report did not move gets no leg; the books stay sealed."""
    led = books(tmp_path)
    other = "aave-v3-ethereum-usdc"
    led.post(
        T0,
        "deposit",
        [("idle:ethereum", -usd_to_units(100_000)), (f"position:{other}", usd_to_units(100_000))],
    )
    t1 = T0 + timedelta(hours=1)
    before = led._count("transactions")
    reported = {USDT: POSITION + 1_000_000, other: usd_to_units(100_000) + 5_000, "quiet": 0}
    rates = {USDT: 0.05, other: 0.5}
    assert reconcile(led, reported, rates, t1, ReconcileSettings()) == []
    assert led._count("transactions") == before + 1
    kind, memo = led._db.execute("SELECT kind, memo FROM transactions ORDER BY id DESC").fetchone()
    assert (kind, memo) == ("accrual", f"{other},{USDT}")
    assert led.account(f"income:{USDT}") == -1_000_000
    assert led.account(f"income:{other}") == -5_000
    assert led.total_units() == 0 and led.audit() == [] and led.verify() == []
    # nothing moved: no transaction at all
    assert reconcile(led, reported, rates, t1 + timedelta(hours=1), ReconcileSettings()) == []
    assert led._count("transactions") == before + 1
