"""The segment LP's warm side (:mod:`optimizer.fastlp`): the columns one cycle's LP is built from,
the last optimum and its basis, and the re-solve of a change of row bounds alone from that basis
(the cost-reserve passes change only ``idle_reserve``: optimizer README §7a), without HiGHS.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


_BASIC = int(highspy.HighsBasisStatus.kBasic)


def status_codes(basis: highspy.HighsBasis) -> NDArray[np.int8]:
    """The basis's column statuses as our codes (kZero / kNonbasic, free columns: lower)."""
    codes = np.array([int(s) for s in basis.col_status], dtype=np.int8)
    return np.where(codes > 2, 0, codes).astype(np.int8)


@dataclass(frozen=True, slots=True)
class Columns:
    """The column side of one cycle's segment LP (:meth:`optimizer.fastlp.SegmentLP._columns`), NAV units."""

    src: tuple[object, ...]  # the cycle's arrays it was built from (compared by identity)
    nav_usd: float
    width: FloatArray  # (n, S) slot widths
    is_left: BoolArray  # (n, S) slot left of x0
    below: BoolArray  # (n, S) slot below the exit liquidity
    above: FloatArray  # (n,) x0 above the top of the domain
    lbx: FloatArray  # (n,) lower bounds
    R1: int  # coupling rows (the x-rows follow)
    nrow: int
    ncol: int  # the columns passed to HiGHS: ``kept`` of ``full_ncol``
    full_ncol: int  # n S slots, then the legs' segments
    kept: NDArray[np.int64]
    offset: float  # Σ g(lb)
    cost: FloatArray
    upper: FloatArray
    start: NDArray[np.int32]
    index: NDArray[np.int32]
    value: FloatArray
    legs: int
    J: int


@dataclass(frozen=True, slots=True)
class LastOptimum:
    """The last optimum found for ``cols``: column values, row activities, HiGHS's basic variables
    (column ``j >= 0``, row ``-1 - i``), the objective and the row bounds it was found for."""

    cols: Columns
    values: FloatArray
    row_value: FloatArray
    basic: NDArray[np.int64]
    objective: float
    row_ub: FloatArray


def rhs_only(
    last: LastOptimum | None, cols: Columns, row_ub: FloatArray
) -> tuple[FloatArray, float, LastOptimum] | None:
    """The optimum after a change of row bounds alone, from the last optimal basis, if that basis
    stays primal feasible (then it stays optimal: its reduced costs do not depend on the bounds).

    With ``B`` the basic variables (columns, and rows whose activity ``r_i = A_i x`` is basic),
    every row ``A_i x - r_i = 0``, nonbasic rows at their upper bound and nonbasic columns at a
    bound: a change ``Δu`` of the bounds moves the basic variables by ``M Δz = e``, where ``M``
    holds the basic columns of ``[A  -I]`` and ``e_i = Δu_i`` on the nonbasic rows, 0 on the
    basic ones (a 40-60 square system). Returns the new values, objective and optimum to keep;
    ``None``: the basis no longer fits (HiGHS runs)."""
    if last is None or last.cols is not cols:
        return None
    values, rows_value, basic, obj = last.values, last.row_value, last.basic, last.objective
    nrow = cols.nrow
    delta = row_ub - last.row_ub
    if not np.all(np.isfinite(delta)):
        return None
    is_row = basic < 0
    basic_rows = -basic[is_row] - 1
    basic_cols = basic[~is_row]
    M = np.zeros((nrow, nrow))
    where_cols = np.nonzero(~is_row)[0]
    for p, j in zip(where_cols.tolist(), basic_cols.tolist(), strict=True):
        lo, hi = cols.start[j], cols.start[j + 1]
        M[cols.index[lo:hi], p] = cols.value[lo:hi]
    M[basic_rows, np.nonzero(is_row)[0]] = -1.0
    e = delta.copy()
    e[basic_rows] = 0.0
    try:
        dz = np.linalg.solve(M, e)
    except np.linalg.LinAlgError:
        return None
    x_b = values[basic_cols] + dz[~is_row]
    r_b = rows_value[basic_rows] + dz[is_row]
    tol = 1e-9
    if np.any(x_b < -tol) or np.any(x_b > cols.upper[basic_cols] + tol):
        return None
    if np.any(r_b > row_ub[basic_rows] + tol):
        return None
    new_values = values.copy()
    new_values[basic_cols] = x_b
    new_rows = np.where(np.isin(np.arange(nrow), basic_rows), 0.0, row_ub)
    new_rows[basic_rows] = r_b
    new_obj = obj + float(cols.cost[basic_cols] @ dz[~is_row])
    return new_values, new_obj, LastOptimum(cols, new_values, new_rows, basic, new_obj, row_ub)


def basic_variables(
    row_status: list[highspy.HighsBasisStatus], values: FloatArray, cols: Columns
) -> NDArray[np.int64] | None:
    """The basic variables as HiGHS numbers them (column ``j``, row ``-1 - i``): the basic rows
    from the basis (a few dozen statuses) and, as columns, those strictly between their bounds
    (a nonbasic column sits exactly on one). ``None`` when the two do not make a basis (a basic
    column on a bound, a degenerate vertex): then a bounds-only change is left to HiGHS.
    (``Highs.getBasicVariables`` would say it directly, but it crashed the process on a small
    random market; reading the whole column status list costs ~40 ms per 100k columns.)"""
    basic_rows = [i for i, s in enumerate(row_status) if int(s) == _BASIC]
    inside = np.nonzero((values > 0.0) & (values < cols.upper))[0]
    if len(inside) + len(basic_rows) != cols.nrow:
        return None
    return np.concatenate([inside, -1 - np.array(basic_rows, dtype=np.int64)])
