"""The daemon's HTTP server: probes, metrics and the operator API (``/api/v1``).

* ``config``: the ``api.*`` settings (bearer tokens as SHA-256 hashes);
* ``auth``: which scope each route needs, and the middleware that enforces it;
* ``errors``: the one JSON error shape every route answers with;
* ``schemas``: request bodies (validated) and the response schemas the OpenAPI document shows;
* ``read_routes`` / ``operate_routes``: the handlers; ``openapi``: the document.

Imports stay lazy here so ``vault.settings`` can import ``vault.api.config`` without the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from vault.api.view import DaemonView


def create_app(daemon: DaemonView) -> web.Application:
    from vault.api.app import build_app

    return build_app(daemon)
