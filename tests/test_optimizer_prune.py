"""Pruning on exact costs (plan.prune_unprofitable): pairs and whole plans that lose money are undone.

The model amortises gas (README §3); the exact cost of a swap under a binding cap can exceed its gain.
Seen on bench quality seed 1 rebalance_with_turnover: a 16.9k swap between two LP venues inside the
LP kind cap (its withdrawal -58.69 USD, its deposit +33.85 USD over the horizon) could not be undone
alone (the deposit would then break the kind cap), so the plan lost 13 USD where holding lost nothing.
"""

from __future__ import annotations

import numpy as np

from core.types import VenueCosts
from optimizer import OptimizerSettings
from optimizer.checker import CheckReport
from optimizer.plan import move_values_usd, prune_unprofitable
from optimizer.testing import FlatCurve, make_snapshot

SETTINGS = OptimizerSettings()
GAS = VenueCosts(deposit_usd=5.0, withdraw_usd=5.0)
SNAPS = [
    make_snapshot("old", FlatCurve(0.050), costs=GAS),
    make_snapshot(
        "new", FlatCurve(0.051), costs=GAS
    ),  # 0.1 % more: 1.6 USD over 30 d on 20k, gas 10
    make_snapshot("best", FlatCurve(0.100), costs=VenueCosts(deposit_usd=1.0)),
]
X0 = np.array([100_000.0, 0.0, 0.0])
INVESTABLE = 110_000.0  # 10k idle


def verdict(ok: bool) -> CheckReport:
    return CheckReport() if ok else CheckReport(violations=["cap"], excess=[1.0])


def prune(target, check):
    t = np.asarray(target, dtype=float)
    return prune_unprofitable(
        SNAPS, X0, t, CheckReport(), SETTINGS, "ethereum", check, INVESTABLE, 0.0
    )


def test_a_losing_swap_under_a_cap_is_undone_as_a_pair():
    target = [80_000.0, 20_000.0, 5_000.0]
    values = move_values_usd(SNAPS, X0, np.array(target), SETTINGS, "ethereum")
    assert values[0] < 0 < values[1] and values[0] + values[1] < 0 < values[2]
    calls = []

    def cap(t):  # "old" + "new" share a cap at 100k: the withdrawal cannot be undone alone
        calls.append(t.copy())
        return verdict(t[0] + t[1] <= 100_000.0 + 1e-6)

    out, rep = prune(target, cap)
    assert rep.ok
    np.testing.assert_allclose(out, [100_000.0, 0.0, 5_000.0])  # the profitable deposit stays


def test_a_plan_that_loses_in_total_is_the_holding_when_holding_passes():
    # nothing can be undone alone or in pairs (the checker accepts only the target and the holding),
    # the moves' exact values sum to less than 0: holding is better and keeps every limit
    target = np.array([80_000.0, 20_000.0, 0.0])
    assert move_values_usd(SNAPS, X0, target, SETTINGS, "ethereum").sum() < 0
    only = lambda t: verdict(bool(np.allclose(t, target) or np.allclose(t, X0)))  # noqa: E731
    out, rep = prune(target, only)
    assert rep.ok
    np.testing.assert_allclose(out, X0)
    # and when the holding breaks a limit (a restore), the plan stays as it is
    out, _ = prune(target, lambda t: verdict(bool(np.allclose(t, target))))
    np.testing.assert_allclose(out, target)
