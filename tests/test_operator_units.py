"""The operator side's plain parts, one at a time: the store, directives, approval, reload, export."""

from __future__ import annotations

from datetime import UTC, datetime

from core.types import Move, MoveAction, Plan, Venue, VenueCosts, VenueKind
from vault.api.config import hash_token
from vault.approval import books_context, drift_reason, needs_approval
from vault.control import OperatorStore
from vault.ledger import Balances
from vault.reload import diff, effective_config, limit_keys, restart_keys
from vault.settings import DEFAULT_CONFIG, load_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_directives_persist_and_combine(tmp_path):
    store = OperatorStore(tmp_path / "operator.sqlite3")
    assert store.set_directive(T0, "pause", "deposits", "bob", "")
    assert not store.set_directive(T0, "pause", "deposits", "bob", "")  # already in force
    store.set_directive(T0, "freeze", "a", "bob", "depeg")
    store.set_directive(T0, "exit", "b", "carol", "")
    store.close()
    store = OperatorStore(tmp_path / "operator.sqlite3")  # a restart reads the rows back
    d = store.directives()
    assert d.no_new_deposits and not d.hold_all
    assert d.freeze == {"a"} and d.exit == {"b"}
    assert d.reasons["a"] == "operator bob: freeze (depeg)" and "carol" in d.reasons["b"]
    store.set_directive(T0, "pause", "all", "bob", "")
    assert store.directives().hold_all
    assert store.clear_directive("pause") == 2
    assert not store.directives().hold_all and not store.directives().no_new_deposits


def test_a_plan_changes_status_once(tmp_path):
    store = OperatorStore(tmp_path / "operator.sqlite3")
    pid = store.add_plan(
        created_at=T0,
        expires_at=T0,
        status="pending",
        kind="approval",
        plan={"moves": []},
        context={},
    )
    assert store.transition(pid, ("pending",), "approved", at=T0, who="bob")
    assert not store.transition(pid, ("pending",), "approved", at=T0, who="eve")
    assert store.transition(pid, ("approved",), "executing", at=T0)
    assert not store.transition(pid, ("approved",), "executing", at=T0)  # executes once
    plan = store.plan(pid)
    assert plan is not None and plan.status == "executing" and plan.decided_by == "bob"


def test_actions_are_recorded_newest_first(tmp_path):
    store = OperatorStore(tmp_path / "operator.sqlite3")
    for i in range(3):
        store.record_action(T0, "bob", "pause", result="ok", params={"i": i})
    rows = store.actions(limit=2)
    assert [r["params"]["i"] for r in rows] == [2, 1]
    assert [r["params"]["i"] for r in store.actions(limit=5, before_id=rows[-1]["id"])] == [0]


def plan_of(*amounts: tuple[MoveAction, float]) -> Plan:
    moves = tuple(Move(a, "v", x, f"k{i}") for i, (a, x) in enumerate(amounts))
    return Plan(moves, 10.0, 1.0, True, "")


def test_which_plans_wait_for_approval():
    small = plan_of((MoveAction.DEPOSIT, 50_000.0), (MoveAction.BRIDGE, 500_000.0))
    big = plan_of((MoveAction.WITHDRAW, 60_000.0), (MoveAction.DEPOSIT, 60_000.0))
    assert not needs_approval(big, "auto", 1.0)
    assert needs_approval(small, "manual", 1e12)
    assert not needs_approval(small, "above_usd", 100_000.0)  # bridge legs are not turnover
    assert needs_approval(big, "above_usd", 100_000.0)


def test_an_approved_plan_is_stale_beyond_the_drift_band():
    then = Balances({"ethereum": 500_000_000_000}, {"a": 500_000_000_000}, {})
    context = books_context(then)
    inside = Balances({"ethereum": 500_000_000_000}, {"a": 507_000_000_000}, {})  # +0.7 % of NAV
    assert drift_reason(context, inside, 0.015, ["a"], []) is None
    beyond = Balances({"ethereum": 500_000_000_000}, {"a": 520_000_000_000}, {})
    reason = drift_reason(context, beyond, 0.015, ["a"], [])
    assert reason is not None and "position a moved 20000.000000 USD" in reason
    assert "frozen or exiting" in str(drift_reason(context, inside, 0.015, ["a"], ["a"]))


def test_reload_diff_redaction_and_live_keys():
    old = load_settings(DEFAULT_CONFIG)
    token = {"label": "ci", "scope": "read", "sha256": hash_token("t" * 20)}
    new = old.model_copy(
        update={
            "limits": old.limits.model_copy(update={"max_venue_ratio": 0.3}),
            "api": old.api.model_validate({"tokens": [token]}),
            "listen": "127.0.0.1:1",
        }
    )
    changes = diff(old, new)
    keys = [c["key"] for c in changes]
    assert "limits.max_venue_ratio" in keys and "listen" in keys
    assert restart_keys(changes) == ["listen"]
    shown = effective_config(new)["api"]["tokens"][0]
    assert shown == {"label": "ci", "scope": "read", "sha256": "(redacted)"}
    assert token["sha256"] not in str(changes)
    line = (
        "min_idle_ratio 0.02 leaves 0.98 of NAV to invest, but max_venue_ratio 0.05 x 5 venues cap"
    )
    assert limit_keys(line) == ["limits.max_venue_ratio", "limits.min_idle_ratio"]


def test_export_minimum_outcome_is_floored_after_fee_and_slippage(tmp_path):
    from vault.export import ExportExecutor

    venue = Venue("a", VenueKind.LP, "p", "ethereum", "X", costs=VenueCosts(fee_bps=25))
    ex = ExportExecutor(
        reader=None,  # type: ignore[arg-type]
        ledger=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        venues={"a": venue},
        plans_dir=tmp_path,
        deadline_seconds=60,
        slippage_bps=50,
        bridge_fee_bps=5,
        wall_clock=lambda: T0,
        clock=lambda: T0,
    )
    deposit = Move(MoveAction.DEPOSIT, "a", 1.0, "k")
    assert ex.min_outcome_units(deposit, 1_000_003) == 992_502  # floor(1_000_003 x 0.9925)
    bridge = Move(MoveAction.BRIDGE, "a", 1.0, "k", "ethereum", "base")
    assert ex.min_outcome_units(bridge, 1_000_000) == 994_500
