"""An in-process daemon on the embedded default (its own simulated market, ephemeral ports), for
the operator API's tests: real aiohttp server, real SQLite, real solver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from vault.api.config import ApiToken, hash_token
from vault.daemon import Daemon
from vault.settings import DEFAULT_CONFIG, Settings, load_settings, read_yaml

BASE_KINDS = {"staking", "lending", "lp", "bridge_arb", "fixed"}
READ_TOKEN = "read-token-0123456789abcdef"
OPERATE_TOKEN = "operate-token-0123456789abcdef"
TOKENS = (
    ApiToken(label="alice-read", scope="read", sha256=hash_token(READ_TOKEN)),
    ApiToken(label="bob-operate", scope="operate", sha256=hash_token(OPERATE_TOKEN)),
)


def write_config(
    path: Path,
    *,
    tokens: bool = True,
    vault: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
) -> Path:
    """The embedded default with these sections changed, as a file a reload can re-read."""
    data = read_yaml(DEFAULT_CONFIG)
    # The composite venues (loop, hedged LP, NFT rental) are left out: on main at 12:45 UTC the
    # stETH loop's report outruns its rate bound from the second cycle, an open reconciliation
    # break that holds every move (reported to the integrator); these tests are about the operator.
    data["venues"] = [v for v in data["venues"] if v["kind"] in BASE_KINDS]
    lim = data["limits"]
    lim["max_kind_ratio"] = {k: r for k, r in lim["max_kind_ratio"].items() if k in BASE_KINDS}
    lim.pop("illiquid_kinds", None)
    data["feeds"]["embedded_market"] = str(DEFAULT_CONFIG.parent / "market.default.yaml")
    data["schedule"] = {
        "poll_interval_seconds": 3600,
        "rebalance_interval_seconds": 3600,
        **(schedule or {}),
    }
    data["vault"] = {**data["vault"], **(vault or {})}
    data["limits"] = {**data["limits"], **(limits or {})}
    if tokens:
        data["api"] = {"tokens": [t.model_dump() for t in TOKENS]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def settings_for(data_dir: Path, **sections: Any) -> tuple[Settings, Path]:
    config = write_config(data_dir.parent / f"{data_dir.name}-config.yaml", **sections)
    return load_settings(config, listen="127.0.0.1:0", data_dir=data_dir), config


@contextlib.asynccontextmanager
async def running(settings: Settings, config_path: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, config_dir=config_path.parent, config_path=config_path)
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def call(
    session: aiohttp.ClientSession,
    daemon: Daemon,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    async with session.request(
        method, f"{daemon.listen_url}{path}", headers=auth(token), json=body
    ) as resp:
        ctype = resp.headers.get("Content-Type", "")
        payload = await resp.json() if "json" in ctype else await resp.text()
        return resp.status, payload
