"""adapters.curves_batch: the vectorised Aave curve builder gives aave_lending_curve's curves, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.curves import aave_lending_curve
from adapters.curves_batch import AaveEnvelopeRows, AaveSupplyIncomeRows, aave_lending_curves
from protocols import aave


def _reserves(n: int, seed: int) -> list[tuple[aave.AaveRateStrategy, float, float]]:
    """Pools from $1 to $3.6B, empty to fully drawn, below and above the kink, some with no debt."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        slope1 = float(rng.uniform(0.0, 0.12))
        strategy = aave.AaveRateStrategy(
            float(rng.choice([0.0, 0.01])),
            slope1,
            float(rng.uniform(slope1, 1.0)),
            float(rng.choice([0.45, 0.8, 0.9, 0.92])),
            float(rng.uniform(0.0, 0.5)),
        )
        supplied = float(np.exp(rng.uniform(0.0, 22.0)))
        u = 0.0 if rng.uniform() < 0.05 else float(rng.uniform(0.0, 1.0))
        out.append((strategy, supplied * u, supplied * (1.0 - u)))
    return out


def test_batch_builds_the_scalar_curves_bit_for_bit() -> None:
    reserves = _reserves(800, seed=3)
    scalar = [aave_lending_curve(*r) for r in reserves]
    batch = aave_lending_curves(reserves)
    assert len(batch) == len(scalar)
    bridged = 0
    for a, b in zip(scalar, batch, strict=True):
        assert a.capacity_usd == b.capacity_usd
        assert a.bridges == b.bridges
        bridged += bool(a.bridges)
        x = np.concatenate((np.linspace(0.0, 2.0 * a.capacity_usd + 1.0, 64), [1e-6, 1.0]))
        assert np.array_equal(a.real_income_usd(x), b.real_income_usd(x))
        assert np.array_equal(a.income_usd(x, 0.3), b.income_usd(x, 0.3))
    # the optimizer's batched evaluation (one call for every batch-built curve) = income_usd per curve
    from optimizer.pwl import evaluate_curves

    x = np.abs(np.random.default_rng(4).normal(0.0, 1e7, (len(batch), 9)))
    x[:, 0] = 0.0
    per_curve = np.stack([c.income_usd(x[i], 0.25) for i, c in enumerate(batch)])
    assert np.array_equal(evaluate_curves(batch, x, 0.25), per_curve)
    assert sum(isinstance(c, AaveEnvelopeRows) for c in batch) > len(batch) // 2
    # the sample has both kinds: pools the fast path takes and pools above the kink (a hull bridge)
    assert 0 < bridged < len(reserves) // 2
    assert aave_lending_curves([]) == []


def test_inlined_income_equals_the_protocol_function_and_refuses_negative_sizes() -> None:
    x = np.concatenate(([0.0], np.geomspace(1e-6, 1e10, 200)))
    for strategy, debt, liquidity in _reserves(300, seed=11):
        expected = x * np.asarray(aave.supply_apr_after_deposit(strategy, debt, liquidity, x))
        assert np.array_equal(AaveSupplyIncomeRows(strategy, debt, liquidity)(x), expected)
    with pytest.raises(ValueError, match="deposit must be >= 0"):
        AaveSupplyIncomeRows(*_reserves(1, seed=1)[0])(np.array([1.0, -2.0]))


def test_pools_above_the_kink_are_built_in_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool above its kink (two local peaks, a hull bridge) takes the batch's own bridge path,
    not the scalar builder: the same bridges and values, bit for bit."""
    import adapters.curves_batch as cb

    scalar_bridged = []
    original = cb._scalar

    def counting(*args):  # type: ignore[no-untyped-def]
        curve = original(*args)
        scalar_bridged.append(bool(curve.bridges))
        return curve

    monkeypatch.setattr(cb, "_scalar", counting)
    reserves = _reserves(1200, seed=17)
    batch = aave_lending_curves(reserves)
    bridged = [(r, c) for r, c in zip(reserves, batch, strict=True) if c.bridges]
    assert len(bridged) > 100
    assert sum(scalar_bridged) < len(bridged) // 2  # most bridged pools never reach the scalar path
    for r, c in bridged:
        a = aave_lending_curve(*r)
        assert a.bridges == c.bridges and a.capacity_usd == c.capacity_usd
        x = np.geomspace(1e-3, 2.0 * a.capacity_usd + 1.0, 80)
        assert np.array_equal(a.real_income_usd(x), c.real_income_usd(x))


def test_the_compiled_income_is_the_numpy_expression_bit_for_bit() -> None:
    """``adapters.aave_income_kernel`` against ``_income_numpy`` on random reserves, with the edge
    values the expression handles (no supply at all, U exactly at the kink, above it, a NaN size,
    column views and strided grids as the batch and the optimizer pass them)."""
    from adapters.curves_batch import _income, _income_numpy

    rng = np.random.default_rng(11)
    n = 400
    params = np.column_stack(
        [
            rng.uniform(0.0, 0.01, n),
            rng.uniform(0.02, 0.1, n),
            rng.uniform(0.3, 3.0, n),
            rng.uniform(0.45, 0.95, n),
            rng.uniform(0.0, 0.5, n),
        ]
    )
    debt = rng.uniform(0.0, 1e9, (n, 1))
    liquidity = debt * rng.uniform(0.0, 1.5, (n, 1))
    debt[0, 0] = liquidity[0, 0] = 0.0  # an empty reserve: U = 0 where D + L + x = 0
    x = np.sort(rng.uniform(0.0, 2e9, (n, 64)), axis=1)
    x[:, 0] = 0.0
    x[1, 3] = np.nan
    # U exactly at the kink: D / (D + L + x) = Uopt with x chosen for it
    x[2, 5] = debt[2, 0] / params[2, 3] - debt[2, 0] - liquidity[2, 0]
    rows = np.column_stack([params, debt, liquidity])
    for p, d, liq, xs in [
        (params, debt, liquidity, x),
        (rows[:, :5], rows[:, 5:6], rows[:, 6:7], x[:, ::3]),
        (params, debt, liquidity, x[:, 7:8]),
    ]:
        got, want = _income(p, d, liq, xs), _income_numpy(p, d, liq, xs)
        assert np.array_equal(got, want, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(want))
