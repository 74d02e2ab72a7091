from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.money import units_to_str, usd_to_units
from vault.ledger import EQUITY, FEES, Ledger, LedgerError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.sqlite3")
    led.deposit_capital(T0, "ethereum", usd_to_units("1000000"))
    yield led
    led.close()


def test_money_conversions_are_exact_and_round_toward_zero():
    assert usd_to_units("0.1") + usd_to_units("0.2") == usd_to_units("0.3")
    assert usd_to_units(1.0000009) == 1_000_000
    assert usd_to_units("-1.0000009") == -1_000_000
    assert units_to_str(1_500_000) == "1.500000"
    for bad in ("nan", "inf", "abc"):
        with pytest.raises(ValueError):
            usd_to_units(bad)


def test_initial_capital_is_booked_once(tmp_path, ledger):
    ledger.deposit_capital(T0, "ethereum", usd_to_units("5"))  # same idempotency key: ignored
    assert ledger.balances().nav_units == usd_to_units("1000000")
    assert ledger.account(EQUITY) == -usd_to_units("1000000")
    assert ledger.is_initialised()


def test_unbalanced_and_overdrawn_transactions_are_refused(ledger):
    with pytest.raises(LedgerError, match="sum to 1"):
        ledger.post(T0, "bad", [("idle:ethereum", -1), ("position:a", 2)])
    with pytest.raises(LedgerError, match="negative"):
        ledger.post(
            T0,
            "bad",
            [("idle:ethereum", -usd_to_units("2000000")), ("position:a", usd_to_units("2000000"))],
        )
    assert ledger.balances().positions_units == {}
    assert ledger.audit() == []


def test_posts_inside_atomically_commit_together_or_not_at_all(tmp_path, ledger):
    """A sync's accruals are one transaction: a refused post inside it undoes the others, a
    refused post inside it that the caller catches undoes only itself (a savepoint), and what
    commits survives a reopen."""
    one = usd_to_units("10")
    with pytest.raises(LedgerError, match="negative"), ledger.atomically():
        ledger.post(T0, "accrual", [("position:a", one), ("income:a", -one)])
        ledger.post(T0, "accrual", [("position:b", -one), ("income:b", one)])  # b holds nothing
    assert ledger.balances().positions_units == {}
    with ledger.atomically():
        ledger.post(T0, "accrual", [("position:a", one), ("income:a", -one)])
        with pytest.raises(LedgerError):
            ledger.post(T0, "accrual", [("position:b", -one), ("income:b", one)])
        ledger.mark_reconciled("a", T0, 0.05)
    assert ledger.balances().positions_units == {"a": one}
    assert ledger.audit() == [] and ledger.verify() == []
    ledger.close()
    again = Ledger(tmp_path / "ledger.sqlite3")
    try:
        assert again.balances().positions_units == {"a": one}
        assert "a" in again.last_reconciled()
    finally:
        again.close()


def test_write_ahead_move_survives_a_restart_and_books_once(tmp_path, ledger):
    amount = usd_to_units("250000.123456")
    ledger.begin_move(T0, "k1", {"action": "deposit", "venue_id": "a", "idempotency_key": "k1"})
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.sqlite3")
    assert [m["idempotency_key"] for m in reopened.pending_moves()] == ["k1"]
    postings = [("idle:ethereum", -amount), ("position:a", amount)]
    assert reopened.finish_move(T0, "k1", "deposit", postings) is True
    assert (
        reopened.finish_move(T0, "k1", "deposit", postings) is False
    )  # replayed: not booked twice
    assert reopened.pending_moves() == []
    bal = reopened.balances()
    assert bal.positions_units == {"a": amount}
    assert bal.nav_units == usd_to_units("1000000")
    reopened.close()


def test_audit_detects_a_tampered_balance(ledger):
    ledger.post(T0, "deposit", [("idle:ethereum", -100), ("position:a", 100)])
    assert ledger.audit() == []
    ledger._db.execute("UPDATE balances SET units = units + 1 WHERE account = 'position:a'")
    problems = ledger.audit()
    assert any("position:a" in p for p in problems)


moves = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "accrue", "bridge", "land", "fee"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=1, max_value=10**12),
    ),
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(moves)
def test_capital_is_conserved_at_every_commit(tmp_path_factory, ops):
    led = Ledger(tmp_path_factory.mktemp("l") / "ledger.sqlite3")
    led.deposit_capital(T0, "ethereum", usd_to_units("1000000"))
    for i, (op, venue, units) in enumerate(ops):
        bal = led.balances()
        idle = bal.idle_units.get("ethereum", 0)
        pos = bal.positions_units.get(venue, 0)
        if op == "deposit":
            lines = [("idle:ethereum", -min(units, idle)), (f"position:{venue}", min(units, idle))]
        elif op == "withdraw":
            lines = [(f"position:{venue}", -min(units, pos)), ("idle:ethereum", min(units, pos))]
        elif op == "accrue":
            lines = [(f"position:{venue}", units % 10**6), (f"income:{venue}", -(units % 10**6))]
        elif op == "bridge":
            lines = [("idle:ethereum", -min(units, idle)), (f"in_flight:t{i}", min(units, idle))]
        elif op == "land":
            flights = bal.in_flight_units
            if not flights:
                continue
            tid, amt = next(iter(flights.items()))
            lines = (
                [(f"in_flight:{tid}", -amt), ("idle:arbitrum", amt - 1), (FEES, 1)]
                if amt > 1
                else []
            )
        else:
            fee = min(units % 1000, idle)
            lines = [("idle:ethereum", -fee), (FEES, fee)]
        led.post(T0, op, lines)
        after = led.balances()
        expenses = led.account(FEES)
        income = sum(led.account(f"income:{v}") for v in "abc")
        assert after.nav_units == -(led.account(EQUITY) + income + expenses)
    assert led.audit() == []
    led.close()


def test_kept_balances_follow_every_write_and_never_a_rolled_back_one(tmp_path, ledger):
    """``balances()`` keeps its answer between writes: a post here, a commit by another
    connection (the CLI's ``book-break``), and a rollback all show in the next read."""
    one = usd_to_units("1")
    assert ledger.balances().idle_units == {"ethereum": usd_to_units("1000000")}
    ledger.post(T0, "deposit", [("idle:ethereum", -one), ("position:a", one)])
    assert ledger.balances().positions_units == {"a": one}
    other = Ledger(tmp_path / "ledger.sqlite3")
    other.post(T0, "deposit", [("idle:ethereum", -one), ("position:b", one)])
    other.close()
    assert ledger.balances().positions_units == {"a": one, "b": one}
    with pytest.raises(RuntimeError), ledger.atomically():
        ledger.post(T0, "deposit", [("idle:ethereum", -one), ("position:c", one)])
        assert ledger.balances().positions_units == {"a": one, "b": one, "c": one}
        raise RuntimeError("abort the transaction")
    assert ledger.balances().positions_units == {"a": one, "b": one}
    assert ledger.balances().nav_units == usd_to_units("1000000")


def test_an_account_posted_twice_in_one_transaction_is_checked_at_every_line(ledger):
    """A transaction's balances are added in one statement, except when it names an account twice:
    then line by line, so an asset that dips below zero between two lines is still refused."""
    one = usd_to_units("1")
    dips = [("position:a", -one), ("position:a", 2 * one), ("idle:ethereum", -one)]
    with pytest.raises(LedgerError, match="position:a would go negative"):
        ledger.post(T0, "bad", dips)
    ledger.post(T0, "ok", [("position:a", 2 * one), ("position:a", -one), ("idle:ethereum", -one)])
    assert ledger.balances().positions_units == {"a": one}
    # distinct accounts in one statement: the first negative line in the posting's order is named
    with pytest.raises(LedgerError, match="position:a would go negative"):
        ledger.post(
            T0, "bad", [("position:a", -2 * one), ("position:b", one), ("idle:ethereum", one)]
        )
    assert ledger.balances().positions_units == {"a": one}
    assert ledger.audit() == []


def test_kept_breaks_and_intents_follow_every_write(tmp_path, ledger):
    """``open_breaks()`` and ``pending_moves()`` are kept between writes like ``balances()``: a
    break recorded, an intent written and one cleared, another connection's write all show at once,
    and a caller changing the list it got does not change the next answer."""
    assert ledger.open_breaks() == []
    ledger.record_break(T0, "a", 10, 20, 0, "a report the books cannot explain")
    assert [b.venue for b in ledger.open_breaks()] == ["a"]
    ledger.open_breaks().clear()
    assert [b.venue for b in ledger.open_breaks()] == ["a"]
    ledger.begin_move(T0, "k1", {"venue": "a", "amount_usd": "1"})
    moves = ledger.pending_moves()
    assert [m["venue"] for m in moves] == ["a"]
    moves[0]["venue"] = "changed by the caller"
    assert ledger.pending_moves()[0]["venue"] == "a"
    other = Ledger(tmp_path / "ledger.sqlite3")
    other.record_break(T0, "b", 10, 30, 0, "another")
    other.abandon_move("k1")
    other.close()
    assert [b.venue for b in ledger.open_breaks()] == ["a", "b"]
    assert ledger.pending_moves() == []
