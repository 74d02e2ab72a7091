"""A bank run end to end: `yieldvault run` as a subprocess on the embedded simulated market, the
market's clock paused and stepped by the test (an hour a step, the daemon's rebalances on the new
data awaited after each, ``tests.guard_scenarios.step_market``), run twice (``guards.enabled``
true and false) on the same seeded world.

Over 6 simulated hours the other suppliers of Aave USDC withdraw 60 % of their funds while the
borrowers repay 45 % of the debt, and at the end the pool books 20 % of bad debt on whoever is
still in. With guards, ``outflow`` trips once 30 % of the others' funds are gone (3 h in, exit
liquidity still far above our position) and the vault leaves before the bad debt; without, it
takes its share. The exact figures are in guard/README.md (``python -m tests.guard_scenarios``
has the 24 h case of the table); a separate file from tests/test_guard_e2e.py so the two
pytest-xdist workers can run them side by side (``--dist loadfile``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guard_cases import AAVE, Case
from tests.guard_scenarios import run_case

pytestmark = pytest.mark.slow

BANK_RUN_6H = Case(
    "bank_run_6h",
    (
        {
            "name": "bank_run",
            "venue": AAVE,
            "params": {"loss_fraction": 0.2},
            "duration_seconds": 6 * 3600,
        },
    ),
    7,  # the run, its bad debt at 6 h, and an hour after
    "yes: the run takes hours before utilization reaches 100 %",
)


def test_bank_run_guards_leave_before_the_bad_debt(tmp_path: Path) -> None:
    off = run_case(BANK_RUN_6H, False, tmp_path / "off", step_seconds=3600)
    on = run_case(BANK_RUN_6H, True, tmp_path / "on", step_seconds=3600)
    print(f"bank run 6 h: {off.loss_usd:,.0f} lost without guards, {on.loss_usd:,.0f} with", on)
    assert on.nav_before_usd == pytest.approx(off.nav_before_usd, rel=1e-3)  # the same start
    # without guards the bad debt takes a fifth of what the vault still has in Aave USDC
    assert off.loss_usd > 20_000, off
    assert on.loss_usd <= off.loss_usd / 2, (on, off)
    assert f"{AAVE}/outflow" in on.guard_trips, on
    assert off.guard_trips == ()
    assert on.limit_breach_cycles == 0 and off.limit_breach_cycles == 0  # every limit kept
