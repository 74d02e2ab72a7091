"""Paper execution as plain calls: one router from ``(method, path, body)`` to the market.

``mockfeeds/routes/paper.py``'s ``/paper/v1/...`` handlers and ``vault.transport.InProcessTransport`` both
call :func:`paper_request`, so a move answered over HTTP and one answered in the same process go
through the same code and get the same JSON (see ``mockfeeds/README.md``, "Positions (paper)").

:class:`PaperMarket` is the narrow set of market methods paper execution needs: the simulated
:class:`mockfeeds.market.Market` has them, and a replayed market (the backtester's) implements
them to serve history through the same executor. Each returns a JSON-ready dict and raises
:class:`mockfeeds.state.MarketError` (field, reason, HTTP status) when it refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mockfeeds.state import MarketError


class PaperMarket(Protocol):
    """What a market must offer to be traded on by the paper executor.

    Every call brings the market up to its own clock first (``sync``) and is idempotent by key:
    a repeated key with the same request answers the first result; with another request it raises
    ``MarketError(..., 409)``.
    """

    def deposit(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        """``{"venue","action","status","amount_usd","applied_usd","fee_usd","position_usd",
        "idempotency_key","sim_time"}``; amounts are USD decimal strings with 6 decimals."""
        ...

    def withdraw(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        """As ``deposit``, plus ``status`` "completed" | "queued", ``withdrawal_id`` (None when
        completed) and ``settles_at``."""
        ...

    def bridge(
        self, from_chain: Any, to_chain: Any, amount_usd: Any, idempotency_key: Any
    ) -> dict[str, Any]:
        """The transfer record (as :meth:`transfer`)."""
        ...

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        """``{"transfer_id","from_chain","to_chain","amount_usd","fee_usd","received_usd",
        "created_at","arrives_at","status": "in_flight"|"filled","idempotency_key","sim_time"}``."""
        ...

    def withdrawal(self, withdrawal_id: str) -> dict[str, Any]:
        """``{"withdrawal_id","venue","amount_usd","requested_at","settles_at",
        "status": "pending"|"settled"}``."""
        ...

    def positions_view(self) -> dict[str, Any]:
        """``{"positions": [{"venue","position_usd","pending_withdrawal_usd"}],
        "in_flight_bridge_usd","sim_time"}`` (accrued yield included)."""
        ...

    def save_if_dirty(self) -> None:
        """Make the writes so far durable (a paper write is durable before it is acknowledged);
        a market without a state file does nothing."""
        ...


def paper_request(
    market: PaperMarket,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """Answer one paper-execution call for paper ``account`` (a vault id; None: "default");
    ``path`` is below ``/paper/v1`` (e.g. ``/deposit``, ``/bridge/t-1``). Raises
    :class:`MarketError` for a refusal or an unknown route.

    A market with paper accounts has ``use_account(account)`` (a context manager, as
    :class:`mockfeeds.market.Market`); one without serves only the default account.
    """
    use_account = getattr(market, "use_account", None)
    if use_account is None:
        if account not in (None, "default"):
            raise MarketError("account", "this market has one paper account: 'default'")
        return _route(market, method, path, body or {})
    with use_account(account):
        return _route(market, method, path, body or {})


def _route(market: PaperMarket, method: str, path: str, b: Mapping[str, Any]) -> dict[str, Any]:
    parts = path.strip("/").split("/")
    if method == "POST" and len(parts) == 1 and parts[0] in ("deposit", "withdraw", "bridge"):
        if parts[0] == "deposit":
            out = market.deposit(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
        elif parts[0] == "withdraw":
            out = market.withdraw(b.get("venue"), b.get("amount_usd"), b.get("idempotency_key"))
        else:
            out = market.bridge(
                b.get("from_chain"),
                b.get("to_chain"),
                b.get("amount_usd"),
                b.get("idempotency_key"),
            )
        market.save_if_dirty()  # durable before it is acknowledged
        return out
    if method == "GET" and parts == ["positions"]:
        return market.positions_view()
    if method == "GET" and len(parts) == 2 and parts[0] == "bridge":
        return market.transfer(parts[1])
    if method == "GET" and len(parts) == 2 and parts[0] == "withdrawals":
        return market.withdrawal(parts[1])
    raise MarketError(None, f"no such endpoint: {method} /paper/v1{path}", 404)
