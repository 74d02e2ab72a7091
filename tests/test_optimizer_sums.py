"""optimizer.sums.total is float(a.sum()) bit for bit (value and sign of zero), on every length."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer.sums import total


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1, a) == math.copysign(1, b)
    )


@pytest.mark.parametrize("n", range(0, 12))
def test_total_equals_numpy_sum_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(800):
        wide = rng.normal(size=2 * n + 1) * 10.0 ** rng.uniform(-9, 10, size=2 * n + 1)
        for a in (wide[:n], wide[::2][:n]):  # contiguous and strided
            assert _same(total(a), float(a.sum()))


def test_total_on_zeros_infinities_and_nan() -> None:
    with np.errstate(invalid="ignore", over="ignore"):
        for v in (
            [],
            [-0.0],
            [-0.0, -0.0],
            [0.0, -0.0],
            [math.inf, 1.0],
            [math.inf, -math.inf],
            [math.nan, 1.0],
            [1e308, 1e308],
            [-0.0] * 9,
        ):
            a = np.array(v, dtype=float)
            assert _same(total(a), float(a.sum())), v


def test_total_of_other_arrays_is_numpys() -> None:
    m = np.arange(6, dtype=float).reshape(2, 3)
    assert total(m) == float(m.sum())
    ints = np.arange(5)
    assert total(ints) == 10.0
