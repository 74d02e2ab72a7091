"""The test curves' batched incomes (:mod:`optimizer.testing`), one compiled loop each (Numba).

``bench solver`` samples every curve of its synthetic market every cycle (10,000 venues x 131
points); in NumPy the three expressions below cost ~35-50 ms of the 10k fit stage, while the
production curves the daemon fits (Aave v3 reserves) run through a compiled loop of the same kind
(:mod:`adapters.aave_income_kernel`, ~5 ms for 10k x 131). So the bench's curves are evaluated the
way production's are, and the fit stage measures what production pays. Per row ``i`` and point
``x = min(x[i, k], cap_i)`` (NaN stays NaN, as ``np.minimum``):

    dilution (DilutionCurve):   a_i x / (s_i + x)           a_i = I_i + (1 - h) E_i
    lp       (LPCurve):         a_i x / (t_i + x) - il_i x   a_i = F_i + (1 - h) E_i, il_i = σ_i²/8
    flat     (FlatCurve):       a_i x                        a_i = apr_i + (1 - h) e_i

The same IEEE operations in the same order as the NumPy expressions they replace (no fast-math),
so the values are equal bit for bit (``tests/test_optimizer_speed_equivalence.py``). Compiled or
loaded from numba's cache when this module is imported, never inside a decide.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types as nt
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
_F1, _F2 = nt.float64[::1], nt.float64[:, ::1]


@numba.njit(nt.float64(nt.float64, nt.float64), cache=True, nogil=True, error_model="numpy")
def _cap(x: float, cap: float) -> float:  # pragma: no cover - compiled
    """``np.minimum(x, cap)`` for one element (NaN in either gives NaN)."""
    if math.isnan(x) or math.isnan(cap):
        return math.nan
    return x if x < cap else cap


@numba.njit(_F2(_F1, _F1, _F1, _F2), cache=True, nogil=True, error_model="numpy")
def dilution_rows(
    a: FloatArray, s: FloatArray, cap: FloatArray, x: FloatArray
) -> FloatArray:  # pragma: no cover - compiled
    """``a_i min(x, cap_i) / (s_i + min(x, cap_i))`` for every ``x[i, k]``."""
    n, m = x.shape
    out = np.empty((n, m))
    for i in range(n):
        ai, si, ci = a[i], s[i], cap[i]
        for k in range(m):
            xv = _cap(x[i, k], ci)
            out[i, k] = ai * xv / (si + xv)
    return out


@numba.njit(_F2(_F1, _F1, _F1, _F1, _F2), cache=True, nogil=True, error_model="numpy")
def lp_rows(
    a: FloatArray, t: FloatArray, il: FloatArray, cap: FloatArray, x: FloatArray
) -> FloatArray:  # pragma: no cover - compiled
    """``a_i y / (t_i + y) - il_i y`` with ``y = min(x[i, k], cap_i)``."""
    n, m = x.shape
    out = np.empty((n, m))
    for i in range(n):
        ai, ti, li, ci = a[i], t[i], il[i], cap[i]
        for k in range(m):
            xv = _cap(x[i, k], ci)
            out[i, k] = ai * xv / (ti + xv) - li * xv
    return out


@numba.njit(_F2(_F1, _F1, _F2), cache=True, nogil=True, error_model="numpy")
def flat_rows(a: FloatArray, cap: FloatArray, x: FloatArray) -> FloatArray:  # pragma: no cover
    """``a_i min(x[i, k], cap_i)``."""
    n, m = x.shape
    out = np.empty((n, m))
    for i in range(n):
        ai, ci = a[i], cap[i]
        for k in range(m):
            out[i, k] = ai * _cap(x[i, k], ci)
    return out
