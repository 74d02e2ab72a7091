"""What an operator can do to a running daemon; every call is recorded and counted.

Each method takes the caller's label (a token's label, never the token), changes the daemon's
operator state (``vault.control.OperatorStore``), records the action with its result in
``operator_actions`` and counts it in ``yieldvault_operator_actions_total{action}``. A refusal is
recorded too and raised as an ``ApiError`` naming the field and the reason.

Directives take effect at the next cycle (the cycle reads them at its start); approve and a
signer's report also ask for a cycle now rather than at the next interval.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

import structlog

from optimizer import check_feasibility
from vault import reload as config_reload
from vault.api.errors import ApiError, problem_field
from vault.control import OPEN_STATUSES
from vault.export import ReportError
from vault.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from vault.control import OperatorStore
    from vault.daemon_operator import OperatorHooks

log = structlog.get_logger("vault.operations")


class Operations:
    def __init__(self, daemon: OperatorHooks):
        self.daemon = daemon

    @property
    def store(self) -> OperatorStore:
        return self.daemon.store

    def _plan_dict(self, plan_id: int) -> dict[str, Any]:
        plan = self.store.plan(plan_id)
        return plan.as_dict() if plan is not None else {}

    def _record(
        self,
        who: str,
        action: str,
        result: Literal["ok", "refused"],
        detail: str,
        target: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        self.store.record_action(
            self.daemon.wall_now(),
            who,
            action,
            target=target,
            params=params,
            result=result,
            detail=detail,
        )
        self.daemon.metrics.count_operator_action(action)
        self.daemon.metrics.set_plans_awaiting(self.awaiting())
        log.info(
            "operator_action", who=who, action=action, target=target, result=result, detail=detail
        )

    def _refuse(self, who: str, action: str, err: ApiError, target: str = "") -> ApiError:
        self._record(who, action, "refused", f"{err.field}: {err.reason}", target)
        return err

    def directives_view(self) -> dict[str, Any]:
        d = self.store.directives()
        paused = "all" if d.hold_all else "deposits" if d.no_new_deposits else None
        return {
            "paused": paused,
            "frozen": sorted(d.freeze),
            "exiting": sorted(d.exit),
            "rows": self.store.directive_rows(),
        }

    def _ok(
        self, who: str, action: str, detail: str, target: str = "", **extra: Any
    ) -> dict[str, Any]:
        self._record(who, action, "ok", detail, target, params=extra.pop("params", None))
        return {"action": action, "result": "ok", "detail": detail, **extra}

    # -- pause ---------------------------------------------------------------------------

    def pause(self, who: str, scope: str, reason: str) -> dict[str, Any]:
        changed = self.store.set_directive(self.daemon.wall_now(), "pause", scope, who, reason)
        what = "every move" if scope == "all" else "new deposits"
        detail = f"paused {what}" if changed else f"{what} already paused"
        return self._ok(
            who,
            "pause",
            detail,
            scope,
            changed=changed,
            directives=self.directives_view(),
            params={"scope": scope, "reason": reason},
        )

    def resume(self, who: str, scope: str) -> dict[str, Any]:
        lifted = (
            self.store.clear_directive("pause")
            if scope == "all"
            else self.store.clear_directive("pause", "deposits")
        )
        detail = f"lifted {lifted} pause(s)" if lifted else "nothing was paused"
        return self._ok(
            who,
            "resume",
            detail,
            scope,
            changed=bool(lifted),
            directives=self.directives_view(),
            params={"scope": scope},
        )

    # -- venues --------------------------------------------------------------------------

    def _venue(self, who: str, action: str, venue: str) -> None:
        if venue not in self.daemon.venues:
            raise self._refuse(
                who, action, ApiError(404, "id", f"no configured venue {venue!r}"), venue
            )

    def freeze(self, who: str, venue: str, reason: str) -> dict[str, Any]:
        self._venue(who, "freeze", venue)
        changed = self.store.set_directive(self.daemon.wall_now(), "freeze", venue, who, reason)
        detail = (
            f"{venue} frozen (may shrink, never grow)" if changed else f"{venue} already frozen"
        )
        return self._ok(
            who, "freeze", detail, venue, changed=changed, directives=self.directives_view()
        )

    def exit(self, who: str, venue: str, reason: str) -> dict[str, Any]:
        self._venue(who, "exit", venue)
        changed = self.store.set_directive(self.daemon.wall_now(), "exit", venue, who, reason)
        detail = f"{venue} exiting (target 0)" if changed else f"{venue} already exiting"
        return self._ok(
            who, "exit", detail, venue, changed=changed, directives=self.directives_view()
        )

    def unfreeze(self, who: str, venue: str) -> dict[str, Any]:
        self._venue(who, "unfreeze", venue)
        lifted = self.store.clear_directive("freeze", venue) + self.store.clear_directive(
            "exit", venue
        )
        detail = f"{venue} may grow again" if lifted else f"{venue} was neither frozen nor exiting"
        return self._ok(
            who, "unfreeze", detail, venue, changed=bool(lifted), directives=self.directives_view()
        )

    # -- plans ---------------------------------------------------------------------------

    def _open_plan(self, who: str, action: str, plan_id: int, kind: str = "approval") -> Any:
        plan = self.store.plan(plan_id)
        if plan is None or plan.kind != kind:
            what = "plan" if plan is None else f"{plan.kind} plan"
            raise self._refuse(
                who,
                action,
                ApiError(404, "id", f"no {kind} plan {plan_id} ({what} not found)"),
                str(plan_id),
            )
        return plan

    def approve(self, who: str, plan_id: int) -> dict[str, Any]:
        plan = self._open_plan(who, "approve", plan_id)
        self.daemon.expire_plans()
        if not self.store.transition(
            plan_id, ("pending",), "approved", at=self.daemon.wall_now(), who=who
        ):
            now = self.store.plan(plan_id)
            raise self._refuse(
                who,
                "approve",
                ApiError(
                    409,
                    "id",
                    f"plan {plan_id} is {now.status if now else plan.status}, not pending",
                ),
                str(plan_id),
            )
        self.daemon.request_cycle()
        return self._ok(
            who,
            "approve",
            f"plan {plan_id} approved; it executes at the next cycle if the books "
            "have not moved beyond the drift band",
            str(plan_id),
            plan=self._plan_dict(plan_id),
        )

    def reject(self, who: str, plan_id: int, reason: str) -> dict[str, Any]:
        plan = self._open_plan(who, "reject", plan_id)
        ok = self.store.transition(
            plan_id,
            ("pending", "approved"),
            "rejected",
            at=self.daemon.wall_now(),
            who=who,
            detail=reason,
        )
        if not ok:
            now = self.store.plan(plan_id)
            raise self._refuse(
                who,
                "reject",
                ApiError(
                    409,
                    "id",
                    f"plan {plan_id} is {now.status if now else plan.status}, not pending",
                ),
                str(plan_id),
            )
        return self._ok(
            who,
            "reject",
            f"plan {plan_id} rejected",
            str(plan_id),
            plan=self._plan_dict(plan_id),
        )

    async def plan_results(
        self, who: str, plan_id: int, reports: list[dict[str, Any]]
    ) -> dict[str, Any]:
        exporter = self.daemon.exporter
        if exporter is None:
            raise self._refuse(
                who,
                "plan_results",
                ApiError(409, "vault.mode", "results are taken in export mode only"),
                str(plan_id),
            )
        self._open_plan(who, "plan_results", plan_id, kind="export")
        booked: list[dict[str, Any]] = []
        try:
            async with self.daemon.cycle_lock:  # never books while a cycle syncs the venues
                for report in reports:
                    booked.append(await exporter.book_report(plan_id, report))
        except ReportError as exc:
            self.daemon.after_report(plan_id, booked)
            raise self._refuse(
                who,
                "plan_results",
                ApiError(
                    exc.status, exc.field, f"{exc.reason} ({len(booked)} earlier result(s) booked)"
                ),
                str(plan_id),
            ) from None
        left = self.daemon.after_report(plan_id, booked)
        return self._ok(
            who,
            "plan_results",
            f"{len(booked)} result(s) taken; {len(left)} move(s) of plan {plan_id} unreported",
            str(plan_id),
            plan=self._plan_dict(plan_id),
            params={"results": reports},
        )

    async def book_break(self, who: str, venue: str, reason: str) -> dict[str, Any]:
        """Book an open reconciliation break's difference by hand (``vault.reconcile.book_break``:
        position += reported - books against ``equity:breaks``, never income), between cycles."""
        from vault.reconcile import NoOpenBreak, book_break, describe_break

        async with self.daemon.cycle_lock:
            try:
                brk = book_break(self.daemon.ledger, venue, reason, self.daemon.clock())
            except NoOpenBreak as exc:
                raise self._refuse(
                    who,
                    "book_break",
                    ApiError(404, "venue", str(exc).partition(": ")[2] or str(exc)),
                    venue,
                ) from None
            except ValueError as exc:
                field, _, why = str(exc).partition(": ")
                raise self._refuse(
                    who, "book_break", ApiError(400, field or "reason", why or str(exc)), venue
                ) from None
        self.daemon.request_cycle()
        return self._ok(
            who,
            "book_break",
            f"break on {venue} booked: {describe_break(brk)['difference_usd']} USD",
            venue,
            params={"reason": reason, "break": describe_break(brk)},
        )

    def guard_resume(self, who: str, venue: str | None, guard: str | None) -> dict[str, Any]:
        """Queue a resume of tripped guard breakers (``vault.guard_store.request_resume``, the same
        call as ``yieldvault guards resume``); the daemon applies it at its next cycle."""
        from vault.guard_store import request_resume

        target = f"{venue or '*any*'}/{guard or '*any*'}"
        try:
            req = request_resume(
                self.daemon.settings.data_dir,
                venue,
                guard,
                now=self.daemon.wall_now(),
                by=who,
                venues=set(self.daemon.venues),
            )
        except ValueError as exc:
            field, _, why = str(exc).partition(": ")
            status = 404 if field == "venue" else 400  # as /venues/{id}: no such venue
            raise self._refuse(who, "guard_resume", ApiError(status, field, why), target) from None
        self.daemon.request_cycle()
        return self._ok(
            who,
            "guard_resume",
            f"resume #{req.id} queued for venue={venue or 'any'} guard={guard or 'any'}; "
            "applied at the next cycle",
            target,
            params={"venue": venue, "guard": guard},
        )

    # -- rebalance now ----------------------------------------------------------------------

    def rebalance(self, who: str, reason: str) -> dict[str, Any]:
        """Ask for a cycle now (after a resume, an approval, a freeze) rather than at the next
        interval. It runs the whole cycle as scheduled ones do: directives, the gate, the
        checker, approval; the answer says which rebalance was the latest when it was asked."""
        last = self.daemon.ledger.last_rebalance()
        if not self.daemon.request_cycle():
            raise self._refuse(
                who,
                "rebalance",
                ApiError(409, "rebalance", "the daemon has no rebalance schedule running"),
            )
        last_id = last.id if last is not None else 0
        return self._ok(
            who,
            "rebalance",
            f"a rebalance runs now (the latest before it is #{last_id})",
            last_rebalance_id=last_id,
            params={"reason": reason},
        )

    def awaiting(self) -> int:
        return len(self.store.plans(OPEN_STATUSES))

    # -- config reload ---------------------------------------------------------------------

    async def reload(self, who: str) -> dict[str, Any]:
        d = self.daemon
        if d.config_path is None:
            raise self._refuse(
                who, "reload", ApiError(409, "config", "the daemon was not started from a file")
            )
        old = d.settings
        try:
            new = load_settings(d.config_path, listen=old.listen, data_dir=old.data_dir)
        except ConfigError as exc:
            problems = [problem_field(p) for p in exc.problems]
            raise self._refuse(who, "reload", _refusal(problems)) from None
        changes = config_reload.diff(old, new)
        problems = [
            (
                key,
                "changes need a restart (live keys: limits, optimizer, api, vault.approval*, "
                "vault.export_*)",
            )
            for key in config_reload.restart_keys(changes)
        ]
        if not problems:
            nav_usd = d.ledger.balances().nav_units / 1e6
            lines = await asyncio.to_thread(
                check_feasibility,
                list(d.venues.values()),
                new.limits,
                nav_usd,
                new.vault.home_chain,
                new.optimizer,
            )
            for line in lines:
                for key in config_reload.limit_keys(line) or ["limits"]:
                    problems.append((key, f"infeasible: {line}"))
        if problems:
            raise self._refuse(who, "reload", _refusal(problems))
        if changes:
            await d.apply_settings(new)
        detail = f"applied {len(changes)} change(s)" if changes else "no change"
        result = self._ok(who, "reload", detail, params={"diff": changes})
        result["diff"] = changes
        return result


def _refusal(problems: list[tuple[str | None, str]]) -> ApiError:
    field, reason = problems[0]
    noun = "problem" if len(problems) == 1 else "problems"
    return ApiError(
        422,
        field,
        f"config refused ({len(problems)} {noun}), the old config keeps running: {reason}",
        problems,
    )
