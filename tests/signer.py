"""A small external signer for export-mode tests: ``python -m tests.signer``.

It polls the daemon for an exported plan, "executes" each move in order against the simulated
market's paper endpoints (the request the plan carries, under the move's idempotency key; after
bridge legs it waits for the fill before the deposits they fund), journals every venue answer to
``--journal`` as it goes (a real signer keeps one), and reports each move's outcome to
``POST /api/v1/plans/{id}/results``.

``--crash-after N`` executes N moves, journals them, then exits with code 3 having reported
nothing (a signer that died mid-plan between moving money and saying so). Run again, it replays every move under the same keys: the market
answers a repeated key with its first result, so nothing moves twice, and then it reports.

    python -m tests.signer --daemon URL --token T --market URL --journal FILE [--crash-after N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def http(
    method: str, url: str, body: Any = None, token: str | None = None, account: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if account:
        headers["X-Paper-Account"] = account  # the vault the moves are for
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for_plan(daemon: str, token: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", f"{daemon}/api/v1/plans/pending", token=token)
        exported = (
            [p for p in body.get("plans", []) if p["kind"] == "export"] if status == 200 else []
        )
        if exported:
            status, plan = http("GET", f"{daemon}/api/v1/plans/{exported[0]['id']}", token=token)
            assert status == 200, plan
            return plan
        time.sleep(0.2)
    raise SystemExit(f"no exported plan within {timeout} s")


def units_of(usd: str) -> int:
    whole, _, frac = usd.partition(".")
    return int(whole) * 10**6 + int((frac + "000000")[:6])


def wait_fill(market: str, transfer_id: str, account: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, body = http("GET", f"{market}/paper/v1/bridge/{transfer_id}", account=account)
        if body.get("status") == "filled" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def report_of(move: dict[str, Any], status: int, answer: dict[str, Any], tx: str) -> dict[str, Any]:
    key = move["idempotency_key"]
    if status != 200:
        reason = (answer or {}).get("error", {}).get("reason", f"HTTP {status}")
        return {"idempotency_key": key, "status": "failed", "reason": str(reason)[:400]}
    out: dict[str, Any] = {"idempotency_key": key, "status": "done", "tx_ref": tx}
    if move["action"] == "bridge":
        out |= {"transfer_id": str(answer["transfer_id"]), "fee_usd": answer["fee_usd"]}
    else:
        out["applied_usd"] = answer["applied_usd"]
        if answer.get("status") == "queued":
            out |= {"queued": True, "withdrawal_id": str(answer["withdrawal_id"])}
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--market", required=True)
    p.add_argument("--journal", type=Path, required=True)
    p.add_argument("--crash-after", type=int, default=None)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    plan = wait_for_plan(a.daemon, a.token, a.timeout)
    journal = a.journal.open("a")
    reports = []
    delivered: dict[str, int] = {}  # chain -> units the plan's bridge legs delivered there
    for i, move in enumerate(plan["moves"]):
        if a.crash_after is not None and i >= a.crash_after:
            journal.close()
            return 3  # died mid-plan: nothing reported
        req = move["request"]
        body = dict(req["body"])
        if move["action"] == "deposit" and move["chain"] in delivered:
            units = min(move["amount_units"], delivered[move["chain"]])
            delivered[move["chain"]] -= units
            body["amount_usd"] = f"{units // 10**6}.{units % 10**6:06d}"
        status, answer = http(
            "POST", f"{a.market}/paper/v1{req['path']}", body, account=plan["vault_id"]
        )
        journal.write(
            json.dumps({"plan": plan["plan_id"], "move": move, "status": status, "answer": answer})
            + "\n"
        )
        journal.flush()
        if status == 200 and move["action"] == "bridge":
            filled = wait_fill(a.market, str(answer["transfer_id"]), plan["vault_id"])
            chain = move["to_chain"]
            delivered[chain] = delivered.get(chain, 0) + units_of(filled["received_usd"])
        reports.append(report_of(move, status, answer, tx=f"paper:{move['idempotency_key']}"))
        if body["amount_usd"] != req["body"]["amount_usd"]:
            reports[-1]["amount_usd"] = body["amount_usd"]
        if a.crash_after is not None:
            continue  # this signer dies before it reports anything
        status, body = http(
            "POST", f"{a.daemon}{plan['report_to']}", {"results": reports[-1:]}, token=a.token
        )
        if status != 200:
            print(f"report refused: {status} {body}", file=sys.stderr)
            return 1
    journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
