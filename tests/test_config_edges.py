"""Issue 12's config edge cases: `check-config` and `run` agree, each exit 2 naming key and reason.

Before, `check-config` said OK where `run` crashed with a traceback or idled forever, and a few
inputs (non-UTF-8 file, bad JSON in a YIELDVAULT_ variable) gave tracebacks in both.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.daemon_process import REPO, free_port
from vault.settings import DEFAULT_CONFIG, ConfigError, load_settings

DEFAULT = yaml.safe_load(DEFAULT_CONFIG.read_text())


def venue_index(venue_id: str) -> int:
    return next(i for i, v in enumerate(DEFAULT["venues"]) if v["id"] == venue_id)


AAVE = venue_index("aave-v3-usdc-ethereum")
LIDO = venue_index("lido-steth")


def changed(edit) -> dict:
    data = copy.deepcopy(DEFAULT)
    edit(data)
    return data


CASES = {
    "unknown-adapter": (
        lambda d: d["venues"][AAVE]["feed"].update(adapter="aave_v9"),
        f"venues.{AAVE}.feed.adapter: unknown adapter 'aave_v9'",
    ),
    "adapter-wrong-kind": (
        lambda d: d["venues"][AAVE]["feed"].update(adapter="lido"),
        "serves kinds ['staking'], not lending",
    ),
    "missing-params": (
        lambda d: d["venues"][AAVE]["feed"].update(params={}),
        "feed.params.market: Field required",
    ),
    "unknown-home-chain": (
        lambda d: d["vault"].update(home_chain="mars"),
        "vault.home_chain: no configured venue is on 'mars'",
    ),
    "invalid-root-url": (
        lambda d: d["feeds"].update(root_url="not a url", embedded_market=None),
        "feeds.root_url: expected http(s)://host",
    ),
    "both-market-and-root-url": (
        lambda d: d["feeds"].update(root_url="http://127.0.0.1:9600"),
        "feeds: embedded_market and root_url are both set",
    ),
    "infeasible-limits": (
        lambda d: d["limits"].update(max_venue_ratio=0.05),
        "limits: ",
    ),
}


def write_config(tmp_path: Path, data: dict | bytes) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(data if isinstance(data, bytes) else yaml.safe_dump(data).encode())
    (tmp_path / "market.default.yaml").write_text(
        (DEFAULT_CONFIG.parent / "market.default.yaml").read_text()
    )
    return path


def both_commands(path: Path, env: dict[str, str] | None = None) -> list[tuple[str, int, str]]:
    out = []
    for cmd in (
        ["check-config", str(path)],
        [
            "run",
            "--config",
            str(path),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(path.parent / "var"),
        ],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "vault.cli", *cmd],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        out.append((cmd[0], proc.returncode, proc.stdout + proc.stderr))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_check_config_and_run_both_refuse(tmp_path, case):
    edit, expected = CASES[case]
    path = write_config(tmp_path, changed(edit))
    for command, code, output in both_commands(path):
        assert code == 2, (command, output[-2000:])
        assert expected in output, (command, output[-2000:])
        assert "Traceback" not in output, (command, output[-2000:])


def test_non_utf8_file_is_named_not_a_traceback(tmp_path):
    raw = yaml.safe_dump(DEFAULT).encode().replace(b"ethereum", b"ether\xffeum", 1)
    path = write_config(tmp_path, raw)
    for command, code, output in both_commands(path):
        assert code == 2 and "not UTF-8 text (byte 0xff at line" in output, (command, output)
        assert "Traceback" not in output


def test_bad_json_in_an_environment_variable_is_named(tmp_path):
    path = write_config(tmp_path, DEFAULT)
    env = {"YIELDVAULT_LIMITS__MAX_KIND_RATIO": "{bad"}
    for command, code, output in both_commands(path, env):
        assert code == 2, (command, output[-2000:])
        assert "environment YIELDVAULT_LIMITS__MAX_KIND_RATIO: not valid JSON" in output
        assert "Traceback" not in output


def test_a_50_mb_config_is_refused_at_once(tmp_path):
    raw = yaml.safe_dump(DEFAULT).encode() + b"# " + b"x" * (50 * 1024 * 1024) + b"\n"
    path = write_config(tmp_path, raw)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="at most 1,048,576 bytes"):
        load_settings(path)
    assert time.monotonic() - started < 2  # refused unread (parsing it took 32 s)
    for command, code, output in both_commands(path):
        assert code == 2 and "a config file is at most 1,048,576 bytes" in output, (command, output)
