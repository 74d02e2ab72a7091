"""``yieldvault ctl``: a terminal client of the operator API.

    yieldvault ctl status | rebalances [--limit N] | pending | pause [--deposits] | resume [--deposits]
                   approve ID | reject ID [--reason R] | freeze VENUE | unfreeze VENUE | exit VENUE
                   reload | hash-token [TOKEN]

The daemon's URL comes from ``YIELDVAULT_URL`` (default ``http://127.0.0.1:9500``), the bearer
token from ``YIELDVAULT_TOKEN`` (optional for reads on an unconfigured loopback daemon). The answer
is printed as JSON; an error is one line on stderr (``error: <field>: <reason> (HTTP 403)``) and
exit code 2; an unreachable daemon is exit code 1. ``python -m vault.ctl ...`` is the same client
without loading the daemon's modules (0.1 s instead of 3 s). ``hash-token`` makes a token (or takes yours) and
prints it with its SHA-256 and an ``api.tokens`` entry; it needs no daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from vault.api.config import hash_token, new_token

DEFAULT_URL = "http://127.0.0.1:9500"


def add_parser(sub: Any) -> None:
    ctl = sub.add_parser(
        "ctl", help="operator client of a running daemon (YIELDVAULT_URL, YIELDVAULT_TOKEN)"
    )
    c = ctl.add_subparsers(dest="ctl", required=True)
    c.add_parser("status", help="positions, NAV, last rebalance, operator state")
    rb = c.add_parser("rebalances", help="the audit trail, newest first")
    rb.add_argument("--limit", type=int, default=10)
    c.add_parser("pending", help="plans waiting for approval or for a signer")
    for name, text in (("pause", "pause every move"), ("resume", "lift the pause")):
        p = c.add_parser(name, help=f"{text} (--deposits: new deposits only)")
        p.add_argument("--deposits", action="store_true")
        if name == "pause":
            p.add_argument("--reason", default="")
    for name in ("approve", "reject"):
        p = c.add_parser(name, help=f"{name} a pending plan")
        p.add_argument("id", type=int)
        p.add_argument("--reason", default="")
    for name in ("freeze", "unfreeze", "exit"):
        p = c.add_parser(name, help=f"{name} a venue")
        p.add_argument("venue")
        p.add_argument("--reason", default="")
    c.add_parser("reload", help="re-read the daemon's config file (validated first)")
    rn = c.add_parser("rebalance", help="run a rebalance now rather than at the next interval")
    rn.add_argument("--reason", default="")
    h = c.add_parser("hash-token", help="make a token (or hash yours) for api.tokens")
    h.add_argument("token", nargs="?", default=None)
    h.add_argument("--label", default="operator")
    h.add_argument("--scope", choices=["read", "operate"], default="operate")


def _request(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    url = os.environ.get("YIELDVAULT_URL", DEFAULT_URL).rstrip("/") + path
    headers = {"Accept": "application/json"}
    token = os.environ.get("YIELDVAULT_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {
                "error": {"field": None, "reason": raw[:200].decode(errors="replace")}
            }


def _route(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    cmd = args.ctl
    if cmd == "status":
        return "GET", "/api/v1/status", None
    if cmd == "rebalances":
        return "GET", f"/api/v1/rebalances?limit={args.limit}", None
    if cmd == "pending":
        return "GET", "/api/v1/plans/pending", None
    if cmd in ("pause", "resume"):
        body: dict[str, Any] = {"scope": "deposits" if args.deposits else "all"}
        if cmd == "pause" and args.reason:
            body["reason"] = args.reason
        return "POST", f"/api/v1/{cmd}", body
    if cmd in ("approve", "reject"):
        return "POST", f"/api/v1/plans/{args.id}/{cmd}", {"reason": args.reason}
    if cmd in ("freeze", "unfreeze", "exit"):
        return "POST", f"/api/v1/venues/{args.venue}/{cmd}", {"reason": args.reason}
    if cmd == "rebalance":
        return "POST", "/api/v1/rebalance", {"reason": args.reason}
    return "POST", "/api/v1/config/reload", None


def main(args: argparse.Namespace) -> int:
    if args.ctl == "hash-token":
        token = args.token or new_token()
        if len(token) < 16:
            print("error: token: use at least 16 characters", file=sys.stderr)
            return 2
        entry = {"label": args.label, "scope": args.scope, "sha256": hash_token(token)}
        print(f"token:  {token}")
        print(f"sha256: {entry['sha256']}")
        print(f"api.tokens entry: {json.dumps(entry)}")
        print(f"environment: YIELDVAULT_API__TOKENS='{json.dumps([entry])}'")
        return 0
    method, path, body = _route(args)
    try:
        status, payload = _request(method, path, body)
    except (urllib.error.URLError, OSError) as exc:
        url = os.environ.get("YIELDVAULT_URL", DEFAULT_URL)
        reason = getattr(exc, "reason", exc)
        print(
            f"error: cannot reach the daemon at {url} (YIELDVAULT_URL): {reason}", file=sys.stderr
        )
        return 1
    if status >= 400:
        err = payload.get("error", {}) if isinstance(payload, dict) else {}
        print(f"error: {err.get('field')}: {err.get('reason')} (HTTP {status})", file=sys.stderr)
        for problem in err.get("problems", [])[1:]:
            print(f"  - {problem.get('field')}: {problem.get('reason')}", file=sys.stderr)
        return 2
    print(json.dumps(payload, indent=2, sort_keys=True))
    return 0


def standalone(argv: list[str] | None = None) -> int:
    """``python -m vault.ctl ...``: the same client without loading the daemon's modules (fast)."""
    parser = argparse.ArgumentParser(prog="yieldvault")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(["ctl", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(standalone())
