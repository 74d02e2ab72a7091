"""Who may call what: every route x (no token, bad token, read, operate), and the unconfigured case."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest

from tests.api_daemon import OPERATE_TOKEN, READ_TOKEN, call, running, settings_for
from tests.daemon_process import REPO
from vault.api.app import ROUTES
from vault.api.auth import match_token
from vault.api.config import hash_token
from vault.settings import ConfigError, load_settings

VENUE = "lido-steth"
# (method, path as called, operate token's status) for every route of the table
CALLS = {
    ("GET", "/api/v1/status"): ("/api/v1/status", None, 200),
    ("GET", "/api/v1/rebalances"): ("/api/v1/rebalances?limit=5", None, 200),
    ("GET", "/api/v1/rebalances/{id}"): ("/api/v1/rebalances/999", None, 404),
    ("GET", "/api/v1/plans/pending"): ("/api/v1/plans/pending", None, 200),
    ("GET", "/api/v1/plans/{id}"): ("/api/v1/plans/999", None, 404),
    ("GET", "/api/v1/actions"): ("/api/v1/actions", None, 200),
    ("GET", "/api/v1/config"): ("/api/v1/config", None, 200),
    ("POST", "/api/v1/plans/{id}/approve"): ("/api/v1/plans/999/approve", None, 404),
    ("POST", "/api/v1/plans/{id}/reject"): ("/api/v1/plans/999/reject", None, 404),
    ("POST", "/api/v1/plans/{id}/results"): (
        "/api/v1/plans/999/results",
        {"results": [{"idempotency_key": "k", "status": "failed"}]},
        409,  # paper mode takes no signer's results
    ),
    ("POST", "/api/v1/pause"): ("/api/v1/pause", {"scope": "deposits"}, 200),
    ("POST", "/api/v1/resume"): ("/api/v1/resume", {"scope": "all"}, 200),
    ("POST", "/api/v1/venues/{id}/freeze"): (f"/api/v1/venues/{VENUE}/freeze", None, 200),
    ("POST", "/api/v1/venues/{id}/unfreeze"): (f"/api/v1/venues/{VENUE}/unfreeze", None, 200),
    ("POST", "/api/v1/venues/{id}/exit"): (f"/api/v1/venues/{VENUE}/exit", None, 200),
    ("GET", "/api/v1/ledger/breaks"): ("/api/v1/ledger/breaks", None, 200),
    ("POST", "/api/v1/ledger/breaks/{id}/book"): (
        f"/api/v1/ledger/breaks/{VENUE}/book",
        {"reason": "a test"},
        404,  # no open break
    ),
    ("GET", "/api/v1/guards"): ("/api/v1/guards", None, 200),
    ("POST", "/api/v1/guards/resume"): ("/api/v1/guards/resume", {"guard": "depeg"}, 200),
    ("POST", "/api/v1/rebalance"): ("/api/v1/rebalance", {"reason": "a test"}, 200),
    ("POST", "/api/v1/config/reload"): ("/api/v1/config/reload", None, 200),
}
OPENAPI = ("GET", "/api/v1/openapi.json")


def test_every_route_has_an_expectation():
    assert {(r.method, r.path) for r in ROUTES} == set(CALLS)


async def test_auth_matrix(tmp_path):
    settings, config = settings_for(tmp_path / "var")
    wrong: list[str] = []
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz", "/metrics"):
            for token in (None, "not-a-token-at-all", READ_TOKEN):
                status, _ = await call(session, daemon, "GET", path, token)
                if status not in (200, 503) or (path != "/readyz" and status != 200):
                    wrong.append(f"GET {path} token={token}: {status}")
        table = {**CALLS, OPENAPI: ("/api/v1/openapi.json", None, 200)}
        for (method, _), (path, body, operate_status) in table.items():
            expected = {
                None: 401,
                "bad-token-0123456789abcdef": 401,
                READ_TOKEN: 403 if method == "POST" else operate_status,
                OPERATE_TOKEN: operate_status,
            }
            for token, want in expected.items():
                status, payload = await call(session, daemon, method, path, token, body)
                if status != want:
                    wrong.append(f"{method} {path} token={token}: {status} != {want}: {payload}")
                elif status >= 400:
                    err = payload["error"]
                    assert set(err) <= {"field", "reason", "problems"} and err["reason"]
                    if status == 401:
                        assert err["field"] == "Authorization"
                    if status == 403:
                        assert "scope 'read'" in err["reason"]
        actions = daemon.control.actions(limit=100)
    assert wrong == []
    # every mutation by the operate token is recorded under its label, never the token
    assert {a["action"] for a in actions} >= {"pause", "resume", "freeze", "unfreeze", "exit"}
    assert {a["who"] for a in actions} == {"bob-operate"}
    assert OPERATE_TOKEN not in json.dumps(actions)
    assert {a["result"] for a in actions if a["action"] == "approve"} == {"refused"}


async def test_no_token_configured_reads_open_on_loopback_mutations_refused(tmp_path):
    settings, config = settings_for(tmp_path / "var", tokens=False)
    async with running(settings, config) as daemon, aiohttp.ClientSession() as session:
        status, body = await call(session, daemon, "GET", "/api/v1/status")
        assert status == 200 and body["operator"]["directives"]["paused"] is None
        for (method, _), (path, payload, _) in CALLS.items():
            if method != "POST":
                continue
            status, body = await call(session, daemon, "POST", path, None, payload)
            assert status == 403, (path, status, body)
            assert body["error"]["field"] == "api.tokens"
            assert "yieldvault ctl hash-token" in body["error"]["reason"]
        assert daemon.control.directive_rows() == []  # nothing was imposed


def test_token_compare_and_env_json(monkeypatch):
    settings, _ = settings_for_env(monkeypatch)
    assert [t.label for t in settings.api.tokens] == ["ci"]
    assert match_token("x" * 20, settings.api.tokens).label == "ci"
    assert match_token("x" * 21, settings.api.tokens) is None


def settings_for_env(monkeypatch):
    entry = {"label": "ci", "scope": "read", "sha256": hash_token("x" * 20)}
    monkeypatch.setenv("YIELDVAULT_API__TOKENS", json.dumps([entry]))
    return load_settings(listen="0.0.0.0:9500"), entry


def test_non_loopback_listen_without_a_token_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(listen="0.0.0.0:0", data_dir=tmp_path)
    assert info.value.problems[0].startswith("api.tokens:")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli",
            "run",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "api.tokens" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_token_config_names_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "YIELDVAULT_API__TOKENS", json.dumps([{"label": "x", "scope": "admin", "sha256": "00"}])
    )
    with pytest.raises(ConfigError) as info:
        load_settings(data_dir=tmp_path)
    fields = " ".join(info.value.problems)
    assert "api.tokens.0.scope" in fields and "api.tokens.0.sha256" in fields
