"""How a move reaches a venue, apart from what its answer means for the books.

A :class:`Transport` carries one paper-execution call (``method``, a path below ``/paper/v1``, a
JSON body) and returns the venue's JSON object, or raises one of two errors:

* :class:`VenueRefused` (the venue said no: nothing moved; HTTP 4xx other than 409);
* :class:`OutcomeUnknown` (it may or may not have moved money: timeout, 5xx, a broken answer, or a
  409 "idempotency key reused with another request"); the move stays written ahead and is
  replayed under the same key.

Two transports, one contract (``mockfeeds/README.md``, "Positions (paper)"):

* :class:`HttpTransport`: aiohttp to a simulated market's ``/paper/v1`` API (``yieldvault
  mock-feeds``, or the daemon's embedded market);
* :class:`InProcessTransport`: a market object in the same process (the backtester's replayed
  market, or a ``mockfeeds.market.Market``), through :func:`mockfeeds.paper_api.paper_request`, the same
  router the HTTP handlers call; answers are copied through JSON, so they have exactly the HTTP
  shapes and never alias the market's own records. It does not inject the market's HTTP faults
  (latency, 5xx, malformed JSON): those are the HTTP layer's.

The booking side is ``vault.executor.PaperExecutor``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from mockfeeds.paper_api import PaperMarket, paper_request
from mockfeeds.state import MarketError


class VenueRefused(Exception):
    """The venue refused the call: nothing moved. ``field`` and ``reason`` are the venue's words."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class OutcomeUnknown(Exception):
    """The call may or may not have moved money; replay it under the same idempotency key."""


class Transport(Protocol):
    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One call below ``/paper/v1`` (``"POST", "/deposit", {...}``); the venue's JSON object.

        Raises :class:`VenueRefused` or :class:`OutcomeUnknown`.
        """
        ...


#: the paper account a call is for (vault/identity.py: the vault id); without it, "default"
ACCOUNT_HEADER = "X-Paper-Account"


class HttpTransport:
    """The simulated market's ``/paper/v1`` endpoints over HTTP (aiohttp, one shared session)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        account: str | None = None,
    ):
        self._session = session
        self._base = base_url.rstrip("/") + "/paper/v1"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = {ACCOUNT_HEADER: account} if account else {}

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method, self._base + path, json=body, timeout=self._timeout, headers=self._headers
            ) as resp:
                payload = await resp.json(content_type=None)
                if resp.status == 409:
                    # The key was used before with another body: what happened to the first is unknown.
                    raise OutcomeUnknown(
                        f"{method} {path}: idempotency key reused with a different request"
                    )
                if 400 <= resp.status < 500:
                    err = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
                    raise VenueRefused(
                        str(err.get("field") or "?"),
                        str(err.get("reason") or f"HTTP {resp.status}"),
                    )
                if resp.status >= 500:
                    raise OutcomeUnknown(f"{method} {path}: HTTP {resp.status}")
                if not isinstance(payload, dict):
                    raise OutcomeUnknown(f"{method} {path}: expected a JSON object")
                return payload
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise OutcomeUnknown(f"{method} {path}: {type(exc).__name__}: {exc}") from exc


class InProcessTransport:
    """A market object in this process answers the calls (no sockets, no event-loop waits).

    ``market`` needs only the methods of :class:`mockfeeds.paper_api.PaperMarket`. A refusal
    (``MarketError`` with a 4xx status) is :class:`VenueRefused`, a 409 or 5xx
    :class:`OutcomeUnknown`, as over HTTP. Any other exception is a bug in the market and is
    raised as it is (the move stays written ahead, as after a crash).
    """

    def __init__(self, market: PaperMarket, *, account: str | None = None):
        self.market = market
        self.account = account

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        # the body goes through JSON as it would on the wire (no shared mutable values either way)
        sent = json.loads(json.dumps(body)) if body is not None else None
        try:
            answer = paper_request(self.market, method, path, sent, self.account)
        except MarketError as exc:
            if exc.status == 409:
                raise OutcomeUnknown(
                    f"{method} {path}: idempotency key reused with a different request"
                ) from exc
            if 400 <= exc.status < 500:
                raise VenueRefused(str(exc.field or "?"), exc.reason) from exc
            raise OutcomeUnknown(f"{method} {path}: {exc.status} {exc.reason}") from exc
        return dict(json.loads(json.dumps(answer, allow_nan=True)))
