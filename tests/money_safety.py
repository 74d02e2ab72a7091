"""Helpers of the money-safety tests (issue 12): a command that must refuse, adoption, the books'
income."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.money import usd_to_units
from tests.daemon_process import FAST_SCHEDULE, REPO, free_port
from vault.integrity import open_verified
from vault.ledger import Ledger


def copy_of(stopped_vault: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "var"
    shutil.copytree(stopped_vault, data_dir)
    return data_dir


def run_refused(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`yieldvault run` (or another command) that must refuse: exit 2, one stderr line, no traceback."""

    cmd = args or ("run", "--listen", f"127.0.0.1:{free_port()}")
    proc = subprocess.run(
        [sys.executable, "-m", "vault.cli", *cmd, "--data-dir", str(data_dir)],
        cwd=REPO,
        env={**os.environ, **FAST_SCHEDULE, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc


def adopt(data_dir: Path, reason: str, env: dict[str, str] | None = None) -> None:
    """`yieldvault ledger adopt`: books what the venue holds as the opening balance; must succeed."""
    command = ("ledger", "adopt", "--reason", reason, "--data-dir", str(data_dir))
    adopted = subprocess.run(
        [sys.executable, "-m", "vault.cli", *command],
        cwd=REPO,
        env={**os.environ, **FAST_SCHEDULE, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert adopted.returncode == 0, adopted.stderr


CAPITAL_UNITS = usd_to_units(1_000_000)


def income_units(led: Ledger) -> int:
    """Everything the books ever credited as income (accruals and mark gains), in base units."""
    rows = led._db.execute("SELECT units FROM balances WHERE account LIKE 'income:%'")
    return -sum(units for (units,) in rows)


def nav_units(data_dir: Path) -> int:
    led = open_verified(data_dir / "ledger.sqlite3")
    try:
        return led.balances().nav_units
    finally:
        led.close()
