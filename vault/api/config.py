"""The operator API's settings (``api.*``): bearer tokens kept as SHA-256 hashes, never the token.

A token is any string of at least 16 characters the operator makes up (``yieldvault ctl hash-token``
makes one and prints its hash). The daemon stores and compares only ``sha256(token)`` in hex, in
constant time (``hmac.compare_digest``), so the config file and the logs never hold a credential.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated, Literal

from pydantic import Field, field_validator

from core.config import Strict

Scope = Literal["read", "operate"]


class ApiToken(Strict):
    # who the actions are recorded as: never the token itself
    label: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@:-]+$")]
    # read: GET routes; operate: also every POST (pause, approve, freeze, reload, plan results)
    scope: Scope
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ApiSettings(Strict):
    tokens: tuple[ApiToken, ...] = ()

    @field_validator("tokens")
    @classmethod
    def _unique_labels(cls, tokens: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        labels = [t.label for t in tokens]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"label {dupes[0]!r} appears twice")
        return tokens


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as ``api.tokens[].sha256`` holds it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
