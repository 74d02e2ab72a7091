"""``float(a.sum())`` of a 1-D float array, bit for bit, without NumPy's per-call cost on a handful of
venues.

NumPy sums a contiguous or strided 1-D float64 array pairwise; below 8 elements its pairwise sum is
the plain loop ``((0.0 + a0) + a1) + ...``, which is what Python's ``sum`` over the same floats
computes (``0 + a0`` is ``a0``, and ``0 + -0.0`` is ``0.0`` in both). A reduction costs ~3 µs a call
on this 2-core box against ~0.5 µs for ``sum(a.tolist())``, and one 4-venue decide makes dozens of
them; 8 or more elements go to NumPy, so its rounding is kept everywhere
(``tests/test_optimizer_sums.py`` compares both on random arrays of every small length).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["total"]

_F8 = np.dtype(np.float64)


def total(a: NDArray[np.float64]) -> float:
    """``float(a.sum())`` of a 1-D float64 array (any other array: NumPy's own sum)."""
    if a.ndim == 1 and a.shape[0] < 8 and a.dtype == _F8:
        return float(sum(a.tolist()))
    return float(a.sum())
