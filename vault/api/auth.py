"""Who may call what: bearer tokens with scopes ``read`` and ``operate``, checked by a middleware.

Rules (``README.md`` "Operator API"):

* ``/healthz``, ``/readyz`` and ``/metrics`` are open (probes and Prometheus).
* Once any token is configured (``api.tokens``), every other route needs
  ``Authorization: Bearer <token>``: none or an unknown one -> 401, a ``read`` token on a route that
  needs ``operate`` -> 403. ``operate`` includes ``read``.
* With no token configured (the embedded default, on loopback) reads are open to loopback clients
  and every mutation is refused (403) with the way to configure a token. A daemon whose ``listen``
  is not on loopback refuses to start without a token (``vault.settings.load_settings``).

A presented token is hashed (SHA-256) and compared against every configured hash with
``hmac.compare_digest``, all of them, so the time taken says nothing about which one nearly matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from vault.api.config import ApiToken, Scope, hash_token, is_loopback
from vault.api.errors import ApiError

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
HOW_TO_CONFIGURE = (
    "no API token is configured, so operator actions are refused: run `yieldvault ctl hash-token`, "
    "put its sha256 in api.tokens (label, scope: operate) or YIELDVAULT_API__TOKENS, restart or "
    "reload, and send the token as 'Authorization: Bearer <token>'"
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's label (never the token) and what it may do."""

    label: str
    scope: Scope | None  # None: no token configured, an open loopback read


CALLER = web.RequestKey("caller", Caller)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def required_scope(method: str) -> Scope:
    """GET and HEAD read; everything else operates."""
    return "read" if method in ("GET", "HEAD") else "operate"


def match_token(presented: str, tokens: Sequence[ApiToken]) -> ApiToken | None:
    """The configured token whose hash equals sha256(presented), compared in constant time."""
    digest = hash_token(presented).encode()
    found: ApiToken | None = None
    for token in tokens:
        if hmac.compare_digest(digest, token.sha256.encode()):
            found = token
    return found


def authenticate(
    method: str, authorization: str | None, remote: str | None, tokens: Sequence[ApiToken]
) -> Caller:
    """The caller of a route that needs a scope, or an ApiError (401/403) saying why not."""
    need = required_scope(method)
    if not tokens:
        if need == "operate":
            raise ApiError(403, "api.tokens", HOW_TO_CONFIGURE)
        if remote is None or not is_loopback(remote):
            raise ApiError(
                403, "api.tokens", "no API token is configured: reads are open on loopback only"
            )
        return Caller("anonymous@loopback", None)
    challenge = {"WWW-Authenticate": 'Bearer realm="yieldvault"'}
    if not authorization:
        raise ApiError(
            401,
            "Authorization",
            "a bearer token is required: send 'Authorization: Bearer <token>'",
            headers=challenge,
        )
    kind, _, presented = authorization.partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "Authorization", "expected 'Bearer <token>'", headers=challenge)
    token = match_token(presented.strip(), tokens)
    if token is None:
        raise ApiError(
            401, "Authorization", "the bearer token is not recognised", headers=challenge
        )
    if need == "operate" and token.scope != "operate":
        raise ApiError(
            403,
            "Authorization",
            f"token {token.label!r} has scope {token.scope!r}; {method} needs scope 'operate'",
        )
    return Caller(token.label, token.scope)


def auth_middleware(
    tokens: Callable[[], Sequence[ApiToken]],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """``tokens()`` is read per request, so a config reload changes the tokens at once."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        request[CALLER] = authenticate(
            request.method, request.headers.get("Authorization"), request.remote, tokens()
        )
        return await handler(request)

    return middleware
