"""``yieldvault ctl`` against a running daemon: JSON out, one clear line and exit 2 on errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from tests.api_daemon import OPERATE_TOKEN, READ_TOKEN, running, settings_for
from tests.daemon_process import REPO
from vault.api.config import hash_token


async def ctl(
    url: str, token: str | None, *args: str, module: str = "vault.ctl"
) -> tuple[int, str, str]:
    env = {**os.environ, "YIELDVAULT_URL": url}
    env.pop("YIELDVAULT_TOKEN", None)
    if token:
        env["YIELDVAULT_TOKEN"] = token
    argv = [sys.executable, "-m", module, *(["ctl"] if module == "vault.cli" else []), *args]
    # a thread, not asyncio's child watcher (which took 7-10 s a call under pytest-aiohttp here)
    proc = await asyncio.to_thread(
        subprocess.run, argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stdout, proc.stderr


async def test_ctl_commands(tmp_path):
    settings, config = settings_for(tmp_path / "var")
    async with running(settings, config) as daemon:
        url = daemon.listen_url
        assert url is not None
        code, out, _ = await ctl(url, READ_TOKEN, "status", module="vault.cli")  # yieldvault ctl
        assert code == 0 and json.loads(out)["mode"] == "paper"
        code, out, _ = await ctl(url, READ_TOKEN, "rebalances", "--limit", "3")
        assert code == 0 and "rebalances" in json.loads(out)
        code, _, err = await ctl(url, READ_TOKEN, "pause")
        assert code == 2 and err.strip().startswith("error: Authorization:") and "HTTP 403" in err
        assert len(err.strip().splitlines()) == 1
        code, _, err = await ctl(url, None, "status")
        assert code == 2 and "HTTP 401" in err
        code, out, _ = await ctl(url, OPERATE_TOKEN, "pause", "--deposits")
        assert code == 0 and json.loads(out)["directives"]["paused"] == "deposits"
        code, out, _ = await ctl(url, OPERATE_TOKEN, "exit", "lido-steth")
        assert code == 0 and json.loads(out)["directives"]["exiting"] == ["lido-steth"]
        code, _, err = await ctl(url, OPERATE_TOKEN, "exit", "no-such-venue")
        assert code == 2 and "no configured venue 'no-such-venue'" in err
        code, _, err = await ctl(url, OPERATE_TOKEN, "approve", "42")
        assert code == 2 and "HTTP 404" in err
        code, out, _ = await ctl(url, OPERATE_TOKEN, "resume")
        assert code == 0 and json.loads(out)["directives"]["paused"] is None
        code, out, _ = await ctl(url, OPERATE_TOKEN, "reload")
        assert code == 0 and json.loads(out)["diff"] == []
        code, out, _ = await ctl(url, OPERATE_TOKEN, "rebalance", "--reason", "now")
        assert code == 0 and json.loads(out)["action"] == "rebalance"
        assert daemon.control.directives().exit == frozenset({"lido-steth"})


async def test_ctl_unreachable_and_hash_token(tmp_path):
    code, _, err = await ctl("http://127.0.0.1:9", None, "status")
    assert code == 1 and err.startswith("error: cannot reach the daemon at http://127.0.0.1:9")
    code, out, _ = await ctl("http://unused", None, "hash-token", "my-own-token-0123456789")
    assert code == 0 and hash_token("my-own-token-0123456789") in out
    code, _, err = await ctl("http://unused", None, "hash-token", "short")
    assert code == 2 and "at least 16" in err
