"""The vault's paper executor, talking to a market object in the same process instead of over HTTP.

All booking (write-ahead moves, postings, gas, fees, in-flight accounts, accrual sync) is
``vault.executor.PaperExecutor``'s own code; only its one transport method ``_call`` is replaced,
mapping the ``/paper/v1`` routes onto the market's methods and its :class:`MarketError` onto the
executor's ``VenueRefused`` (4xx) or ``OutcomeUnknown`` (409: a key reused with another body).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from core.types import Venue
from mockfeeds.state import MarketError
from vault.executor import OutcomeUnknown, PaperExecutor, VenueRefused
from vault.ledger import Ledger


class InProcessExecutor(PaperExecutor):
    def __init__(
        self,
        market: Any,
        *,
        ledger: Ledger,
        venues: Mapping[str, Venue],
        home_chain: str,
        clock: Callable[[], datetime],
    ):
        super().__init__(
            session=None,  # type: ignore[arg-type]
            base_url="inproc://market",
            ledger=ledger,
            venues=venues,
            home_chain=home_chain,
            clock=clock,
            bridge_wait_seconds=0.0,  # simulated time does not pass inside a cycle
        )
        self.market = market

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        m, b = self.market, dict(body or {})
        try:
            if method == "POST" and path == "/deposit":
                return m.deposit(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
            if method == "POST" and path == "/withdraw":
                return m.withdraw(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
            if method == "POST" and path == "/bridge":
                return m.bridge(
                    b.get("from_chain"),
                    b.get("to_chain"),
                    b.get("amount_usd"),
                    b.get("idempotency_key"),
                )
            if method == "GET" and path == "/positions":
                return m.positions_view()
            if method == "GET" and path.startswith("/bridge/"):
                return m.transfer(path.removeprefix("/bridge/"))
            if method == "GET" and path.startswith("/withdrawals/"):
                return m.withdrawal(path.removeprefix("/withdrawals/"))
        except MarketError as exc:
            if exc.status == 409:
                raise OutcomeUnknown(f"{method} {path}: {exc.reason}") from None
            raise VenueRefused(str(exc.field), exc.reason) from None
        raise VenueRefused("path", f"no route {method} {path}")
