"""The guards' state survives a restart exactly, and an operator's resume (CLI) reaches it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.types import PortfolioState
from guard import BreakerState, Guards, GuardSettings, codec
from tests.test_guard import snap
from vault.guard_store import GuardStore, read_status, request_resume

T0 = datetime(2026, 2, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "vault.cli", "guards", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_state_survives_reopen_and_cli_resume_is_applied_once(tmp_path: Path) -> None:
    s = GuardSettings.model_validate({"depeg": {"for_seconds": 0, "cooldown_seconds": 0}})
    g = Guards(s)
    p = PortfolioState({"aave-v3-usdc-ethereum": 1e6}, 0.0)
    vid = "aave-v3-usdc-ethereum"
    _, st = g([snap(vid, asset_price_usd=0.9)], p, T0, None)
    store = GuardStore(tmp_path)
    store.save(st, T0)
    store.close()

    store = GuardStore(tmp_path)  # "restart"
    back = store.load()
    assert json.dumps(codec.dump(back)) == json.dumps(codec.dump(st))
    assert back.breakers[(vid, "depeg")].state is BreakerState.TRIPPED

    bad = _cli("resume", "--guard", "depeeg", data_dir=tmp_path)
    assert bad.returncode == 2 and "guard: 'depeeg' is not a guard" in bad.stderr
    bad = _cli("resume", "--venue", "nope", data_dir=tmp_path)
    assert bad.returncode == 2 and "venue: 'nope' is not a configured venue" in bad.stderr
    ok = _cli("resume", "--venue", vid, "--guard", "depeg", data_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "queued" in ok.stdout

    t = T0 + timedelta(hours=1)
    d, st = g([snap(vid, at=t, asset_price_usd=1.0)], p, t, back)
    assert d.exit == {vid}  # cool-down 0 passed, but an exit waits for the operator
    st, applied = store.apply_pending(s, st, t)
    assert [hit for _, hit in applied] == [[(vid, "depeg")]]
    assert st.breakers[(vid, "depeg")].state is BreakerState.CLOSED
    store.save(st, t, applied)
    assert store.pending_resumes() == []
    store.close()

    status = _cli("status", "--json", data_dir=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {"breakers": [], "pending_resumes": []}
    state, pending = read_status(tmp_path)
    assert not pending and not state.breakers[(vid, "depeg")].active


def test_resume_requested_while_down_waits_in_the_table(tmp_path: Path) -> None:
    req = request_resume(tmp_path, None, "nav_drawdown", now=T0)
    _state, pending = read_status(tmp_path)
    assert [(r.id, r.guard, r.venue) for r in pending] == [(req.id, "nav_drawdown", None)]
