"""Request bodies (pydantic, validated: a bad body is a 400 naming the field) and response schemas.

The request models produce their own JSON schema for the OpenAPI document; the response schemas
are written out here as JSON schema, next to the code that fills them (``read_routes``,
``operate_routes``), and a test fuzzes every route against them (``tests/test_api_fuzz.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guard import GUARDS
from vault.api.errors import ApiError

USD_PATTERN = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$"
UsdString = Annotated[str, Field(pattern=USD_PATTERN, description="exact decimal USD")]
NonNegUsd = Annotated[str, Field(pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$")]
MAX_BODY_BYTES = 1 << 20


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PauseBody(Body):
    """all: nothing moves at all; deposits: no venue may grow (withdrawals and exits still run)."""

    scope: Literal["all", "deposits"] = "all"
    reason: Annotated[str, Field(max_length=500)] = ""


class ResumeBody(Body):
    """all: lift every pause; deposits: lift only the pause of new deposits."""

    scope: Literal["all", "deposits"] = "all"


class ReasonBody(Body):
    reason: Annotated[str, Field(max_length=500)] = ""


class BreakBody(Body):
    """Why a reconciliation break's difference is real (required: it goes into the books)."""

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class GuardResumeBody(Body):
    """Which tripped breakers to resume: a venue (``*`` = the portfolio) and/or a guard; none: all."""

    venue: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    guard: Literal[GUARDS] | None = None  # type: ignore[valid-type]


class MoveReport(Body):
    """A signer's report of one exported move: ``done`` (with what the venue applied) or ``failed``.

    For ``done`` the fields are the venue's answer, as the paper endpoints return it: a deposit or
    withdrawal's ``applied_usd`` (``queued`` and ``withdrawal_id`` for a queued exit), a bridge's
    ``fee_usd`` and ``transfer_id``. ``failed`` means nothing moved.
    """

    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)]
    status: Literal["done", "failed"]
    tx_ref: Annotated[str, Field(max_length=200)] = ""
    # what was sent, when less than the plan's amount (a deposit sized by what a bridge delivered)
    amount_usd: NonNegUsd | None = None
    applied_usd: NonNegUsd | None = None
    fee_usd: NonNegUsd | None = None
    transfer_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    queued: bool = False
    withdrawal_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    reason: Annotated[str, Field(max_length=500)] = ""


class ResultsBody(Body):
    results: Annotated[list[MoveReport], Field(min_length=1, max_length=200)]


B = TypeVar("B", bound=Body)


async def read_body(request: web.Request, model: type[B]) -> B:
    """Parse and validate a JSON body; an empty body means the model's defaults."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, None, f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, None, f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "(body)", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "(body)", f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "(body)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append((loc, msg))
        raise ApiError(
            400, problems[0][0], problems[0][1], problems if len(problems) > 1 else ()
        ) from None


# -- response schemas (JSON schema, as the OpenAPI document shows them) -----------------------

STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
NUM = {"type": "number"}
NNUM = {"type": ["number", "null"]}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}
USD = {"type": "string", "pattern": USD_PATTERN}
USD_MAP = {"type": "object", "additionalProperties": USD}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


ERROR = obj(
    {
        "error": obj(
            {"field": NSTR, "reason": STR},
            {"problems": arr(obj({"field": NSTR, "reason": STR}))},
        )
    }
)

DIRECTIVES = obj(
    {
        "paused": {"type": ["string", "null"], "enum": ["all", "deposits", None]},
        "frozen": arr(STR),
        "exiting": arr(STR),
        "rows": arr(obj({"kind": STR, "target": STR, "since": STR, "who": STR, "reason": STR})),
    }
)

REBALANCE = obj(
    {
        "id": INT,
        "started_at": STR,
        "finished_at": STR,
        "outcome": STR,
        "solver_status": STR,
        "reason": STR,
        "nav_usd": USD,
        "inputs": OBJ,
        "decision": OBJ,
        "moves": arr(OBJ),
        "results": arr(OBJ),
    }
)

PLAN = obj(
    {
        "id": INT,
        "created_at": STR,
        "expires_at": STR,
        "status": STR,
        "kind": {"type": "string", "enum": ["approval", "export"]},
        "rebalance_id": {"type": ["integer", "null"]},
        "decided_at": NSTR,
        "decided_by": NSTR,
        "detail": STR,
        "moves": arr(OBJ),
        "results": arr(OBJ),
    },
    {
        "expected_gain_usd": NUM,
        "cost_usd": NUM,
        "turnover_usd": NUM,
        "reason": STR,
        "deadline": STR,
    },
)

BREAK = obj(
    {
        "venue": STR,
        "detected_at": STR,
        "updated_at": STR,
        "books_usd": USD,
        "reported_usd": USD,
        "difference_usd": USD,
        "explained_usd": USD,
        "reason": STR,
    }
)

STATUS = obj(
    {
        "mode": STR,
        "time": STR,
        "nav_usd": USD,
        "idle_usd": USD_MAP,
        "in_flight_usd": USD_MAP,
        "positions": arr(OBJ),
        "rebalances": INT,
        "last_rebalance": {"type": ["object", "null"]},
        "operator": obj({"directives": DIRECTIVES, "approval": STR, "plans_awaiting": INT}),
        "vault_id": NSTR,
        "reconciliation_breaks": arr(BREAK),
        "ledger_integrity": obj({"ok": BOOL, "problem": NSTR}),
        "hold_reason": NSTR,
    }
)

ACTION_RESULT = obj(
    {"action": STR, "result": {"type": "string", "enum": ["ok", "refused"]}, "detail": STR},
    {"directives": DIRECTIVES, "plan": PLAN, "changed": BOOL, "last_rebalance_id": INT},
)

RELOAD_RESULT = obj(
    {
        "action": STR,
        "result": {"type": "string", "enum": ["ok"]},
        "detail": STR,
        "diff": arr(obj({"key": STR, "old": {}, "new": {}})),
    }
)
