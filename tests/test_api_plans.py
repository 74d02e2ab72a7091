"""Plans through the API on an in-process daemon: a pending plan expires unapproved, a rejected one
never executes, an approved one whose books moved beyond the drift band is superseded."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp

from tests.api_daemon import OPERATE_TOKEN, call, running, settings_for
from vault.guard_store import FILENAME


async def pending_plan(session, daemon) -> dict:
    for _ in range(300):
        status, body = await call(session, daemon, "GET", "/api/v1/plans/pending", OPERATE_TOKEN)
        assert status == 200
        if body["plans"]:
            return body["plans"][0]
        await asyncio.sleep(0.1)
    raise AssertionError("no pending plan")


async def test_a_pending_plan_expires_and_a_rejected_one_never_runs(tmp_path):
    settings, config = settings_for(
        tmp_path / "var", vault={"approval": "manual", "approval_expiry_seconds": 1.0}
    )
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        plan = await pending_plan(session, daemon)
        assert plan["status"] == "pending" and plan["moves"] and plan["turnover_usd"] > 0
        await asyncio.sleep(1.2)
        status, body = await call(
            session, daemon, "POST", f"/api/v1/plans/{plan['id']}/approve", OPERATE_TOKEN
        )
        assert status == 409 and "is expired" in body["error"]["reason"]
        assert daemon.metrics.plans_awaiting._value.get() == 0
        await daemon.rebalance_once()  # a new cycle: a new plan waits
        again = await pending_plan(session, daemon)
        assert again["id"] != plan["id"]
        status, body = await call(
            session,
            daemon,
            "POST",
            f"/api/v1/plans/{again['id']}/reject",
            OPERATE_TOKEN,
            {"reason": "not today"},
        )
        assert status == 200 and body["plan"]["status"] == "rejected"
        assert body["plan"]["detail"] == "not today" and body["plan"]["decided_by"] == "bob-operate"
        await daemon.rebalance_once()
        assert daemon.ledger.balances().positions_units == {}  # nothing ever executed


async def test_an_approved_plan_whose_books_moved_is_superseded(tmp_path):
    settings, config = settings_for(tmp_path / "var", vault={"approval": "manual"})
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        plan = await pending_plan(session, daemon)
        status, _ = await call(
            session, daemon, "POST", f"/api/v1/plans/{plan['id']}/approve", OPERATE_TOKEN
        )
        assert status == 200
        # The books move beyond the drift band before the next cycle (capital put in).
        daemon.ledger.post(
            daemon.clock(),
            "capital_in",
            [("idle:ethereum", 50_000_000_000), ("equity:deposits", -50_000_000_000)],
        )
        await daemon.rebalance_once()
        old = daemon.control.plan(plan["id"])
        assert old is not None and old.status == "superseded" and "idle moved" in old.detail
        assert daemon.ledger.balances().positions_units == {}  # the stale plan did not run
        fresh = await pending_plan(session, daemon)  # re-decided on the books as they are
        assert fresh["id"] != plan["id"]


async def test_an_open_break_is_booked_by_hand_through_the_api(tmp_path):
    settings, config = settings_for(tmp_path / "var")
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        venue = "aave-v3-usdc-ethereum"
        books = daemon.ledger.account(f"position:{venue}")
        daemon.ledger.record_break(daemon.clock(), venue, books, books + 1_500_000, 0, "test")
        status, body = await call(session, daemon, "GET", "/api/v1/ledger/breaks", OPERATE_TOKEN)
        assert status == 200 and [b["venue"] for b in body["breaks"]] == [venue]
        path = f"/api/v1/ledger/breaks/{venue}/book"
        status, body = await call(session, daemon, "POST", path, OPERATE_TOKEN, {"reason": " "})
        assert status == 400 and body["error"]["field"] == "reason"
        status, body = await call(session, daemon, "POST", path, OPERATE_TOKEN, {})
        assert status == 400 and body["error"]["field"] == "reason"  # required
        status, body = await call(
            session, daemon, "POST", path, OPERATE_TOKEN, {"reason": "venue airdrop, confirmed"}
        )
        assert status == 200 and "1.500000 USD" in body["detail"]
        assert daemon.ledger.account(f"position:{venue}") == books + 1_500_000
        # The venue never held it: the next cycle (asked for at once) finds the books 1.5 USD
        # above the venue's report, a break the other way, held until it is booked in its turn.
        for _ in range(100):
            if daemon.ledger.open_breaks():
                break
            await asyncio.sleep(0.1)
        assert [b.difference_units for b in daemon.ledger.open_breaks()] == [-1_500_000]
        status, body = await call(
            session,
            daemon,
            "POST",
            path,
            OPERATE_TOKEN,
            {"reason": "the test's break was not real"},
        )
        assert status == 200 and daemon.ledger.account(f"position:{venue}") == books
        await daemon.rebalance_once()
        assert daemon.ledger.open_breaks() == [] and daemon.ledger.audit() == []
        status, body = await call(session, daemon, "POST", path, OPERATE_TOKEN, {"reason": "again"})
        assert status == 404 and body["error"]["field"] == "venue"
        actions = [a for a in daemon.control.actions(10) if a["action"] == "book_break"]
        assert [a["result"] for a in actions] == ["refused", "ok", "ok", "refused"]
        assert {a["who"] for a in actions} == {"bob-operate"}


async def test_guard_resume_is_queued_for_the_next_cycle(tmp_path):
    settings, config = settings_for(tmp_path / "var")
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        status, body = await call(
            session, daemon, "POST", "/api/v1/guards/resume", OPERATE_TOKEN, {"guard": "nope"}
        )
        assert status == 400 and body["error"]["field"] == "guard"
        status, body = await call(
            session,
            daemon,
            "POST",
            "/api/v1/guards/resume",
            OPERATE_TOKEN,
            {"venue": "no-such-venue"},
        )
        assert status == 404 and body["error"]["field"] == "venue"
        status, body = await call(
            session, daemon, "POST", "/api/v1/guards/resume", OPERATE_TOKEN, {"guard": "depeg"}
        )
        assert status == 200 and "queued" in body["detail"]
        await daemon.rebalance_once()  # the guard step applies it (the asked-for cycle may have)
        status, body = await call(session, daemon, "GET", "/api/v1/guards", OPERATE_TOKEN)
        assert status == 200 and body["pending_resumes"] == []
        db = sqlite3.connect(tmp_path / "var" / FILENAME)
        try:
            rows = db.execute("SELECT requested_by, applied_at FROM guard_resumes").fetchall()
        finally:
            db.close()
        assert [r[0] for r in rows] == ["bob-operate"] and rows[0][1] is not None


async def test_rebalance_now_runs_a_cycle_before_the_next_interval(tmp_path):
    """The schedule is an hour apart; ``POST /api/v1/rebalance`` runs the next cycle now, recorded
    as the operator's action; a daemon with no schedule running refuses it (409, named)."""
    settings, config = settings_for(tmp_path / "var")
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        for _ in range(600):  # the start's first cycle
            if (last := daemon.ledger.last_rebalance()) is not None:
                break
            await asyncio.sleep(0.1)
        assert last is not None
        status, body = await call(
            session, daemon, "POST", "/api/v1/rebalance", OPERATE_TOKEN, {"reason": "after a fix"}
        )
        assert status == 200 and body["action"] == "rebalance"
        assert body["last_rebalance_id"] == last.id
        for _ in range(600):
            now = daemon.ledger.last_rebalance()
            if now is not None and now.id > last.id:
                break
            await asyncio.sleep(0.1)
        assert now is not None and now.id > last.id  # long before the hour's interval
        action = daemon.control.actions(limit=1)[0]
        assert (action["action"], action["who"], action["result"]) == (
            "rebalance",
            "bob-operate",
            "ok",
        )
        daemon._scheduler.shutdown(wait=False)
        status, body = await call(session, daemon, "POST", "/api/v1/rebalance", OPERATE_TOKEN)
        assert status == 409 and body["error"]["field"] == "rebalance"
