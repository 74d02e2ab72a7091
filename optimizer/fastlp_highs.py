"""The segment LP (:mod:`optimizer.fastlp`) on HiGHS: passing it, warm starts, reading the optimum.

A cycle's columns go to HiGHS once (``passModel``, the array form: NumPy in, no per-element
conversion); while they stay the same, only the row bounds change (``changeRowsBounds``) and the
dual simplex goes on from its basis, or, when the kept optimum's basis still fits the new bounds,
no solve runs at all (:func:`optimizer.fastlp_basis.rhs_only`). New columns start from the last
basis mapped onto them (the statuses of the full column set, lower 0 / basic 1 / upper 2). A time
limit that runs out keeps where the simplex got to, so the next cycle continues from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import highspy
import numpy as np
from numpy.typing import NDArray

from optimizer.cycle import CycleData
from optimizer.fastlp_basis import Columns, LastOptimum, basic_variables, rhs_only, status_codes

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SegmentResult:
    status: str  # "optimal" | "infeasible" | "solver_error"
    x: FloatArray | None
    objective: float | None
    seconds: float
    detail: str = ""
    # the bridge legs of the optimum (README §4c), NAV units: home -> chain, chain -> home
    bridge_out: FloatArray | None = None
    bridge_back: FloatArray | None = None


class SegmentLP(Protocol):
    """What this side reads and keeps of :class:`optimizer.fastlp.SegmentLP` (a protocol, so the
    two modules do not import each other): its HiGHS instance, the columns HiGHS holds, the kept
    optimum and basis, the counters, and the column and row builders."""

    model: Any
    highs: highspy.Highs
    solves: int
    warm_solves: int
    rhs_only_solves: int
    run_seconds: float
    _passed: Columns | None
    _last: LastOptimum | None
    _status: tuple[NDArray[np.int8], list[highspy.HighsBasisStatus]] | None
    _basis_shape: tuple[int, int] | None
    _no_lower: dict[int, FloatArray]
    _zeros: dict[int, FloatArray]
    _continuous: dict[int, NDArray[np.int32]]

    def _columns(self, d: CycleData) -> Columns: ...

    def _row_upper(self, d: CycleData, cols: Columns) -> FloatArray: ...

    def _result(
        self, values: FloatArray, obj: float, cols: Columns, detail: str, t0: float
    ) -> SegmentResult: ...


def run_highs(lp: SegmentLP, d: CycleData, t0: float) -> SegmentResult:
    """Hand the cycle's segment LP to HiGHS (its columns once, then only what changed) and read
    the optimum and the basis the next cycle starts from."""
    cols = lp._columns(d)
    row_ub = lp._row_upper(d, cols)
    ncol, nrow = cols.ncol, cols.nrow
    h = lp.highs
    lp.run_seconds = 0.0
    shortcut = rhs_only(lp._last, cols, row_ub) if lp._passed is cols else None
    if shortcut is not None:
        values, obj, lp._last = shortcut
        lp.rhs_only_solves += 1
        lp.solves += 1
        return lp._result(values, obj, cols, "segment simplex", t0)
    if lp._passed is cols:
        # the same columns in HiGHS already: new row bounds, and HiGHS goes on from its basis
        h.changeRowsBounds(  # type: ignore[attr-defined]  # in highspy, not in its stub
            nrow, np.arange(nrow, dtype=np.int32), minus_inf(lp, nrow), row_ub
        )
        warm = True
    else:
        # the array form of passModel: numpy in, no element-by-element conversion (assigning the
        # HighsLp's index_/value_ vectors from numpy cost ~50 ms at 1k venues, ~0.3 µs an entry)
        lp._passed = None
        lp._last = None
        status = h.passModel(
            ncol,
            nrow,
            len(cols.index),
            _COLWISE,
            _MAXIMIZE,
            cols.offset,
            cols.cost,
            const_array(lp._zeros, ncol, np.float64, 0.0),
            cols.upper,
            minus_inf(lp, nrow),
            row_ub,
            cols.start,
            cols.index,
            cols.value,
            const_array(lp._continuous, ncol, np.int32, 0),
        )
        if status == highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS refused the segment LP (passModel)")
        lp._passed = cols
        warm = lp._status is not None and lp._basis_shape == (cols.full_ncol, nrow)
        if warm and lp._status is not None:
            # the previous cycle's basis: a valid start, usually a few pivots away
            basis = highspy.HighsBasis()
            basis.col_status = _STATUS[lp._status[0][cols.kept]].tolist()
            basis.row_status = lp._status[1]
            basis.valid = True
            h.setBasis(basis)
    settings = lp.model.settings
    limit = settings.time_limit_seconds if warm else settings.cold_time_limit_seconds
    # HiGHS checks time_limit against the instance's *cumulative* run time (getRunTime), not the
    # time of this run: after a 30 s cold solve at 10k venues every warm solve "hit" a 10 s
    # limit at once and fell back to cvxpy (measured: run time 6.2 s, then a 5 s limit stops the
    # next run after 0.06 s). The limit is set as an offset from where the clock stands.
    h.setOptionValue("time_limit", float(h.getRunTime()) + float(limit))
    if warm:
        lp.warm_solves += 1
    t_run = time.perf_counter()
    h.run()
    lp.run_seconds = time.perf_counter() - t_run
    model_status = h.getModelStatus()
    lp.solves += 1
    elapsed = time.perf_counter() - t0
    if model_status == highspy.HighsModelStatus.kOptimal:
        sol = h.getSolution()
        values = np.asarray(sol.col_value)
        obj = float(h.getObjectiveValue())  # info.objective_function_value, without the copy
        basis = h.getBasis()
        row_status = list(basis.row_status)
        basic = basic_variables(row_status, values, cols)
        codes = np.zeros(cols.full_ncol, dtype=np.int8)
        if basic is None:  # a basic column on a bound: read the statuses (slow, rare)
            codes[cols.kept] = status_codes(basis)
        else:
            finite = np.isfinite(cols.upper)
            sub = np.where(finite & (values >= cols.upper), 2, 0).astype(np.int8)
            sub[basic[basic >= 0]] = 1
            codes[cols.kept] = sub
        lp._status, lp._basis_shape = (codes, row_status), (cols.full_ncol, nrow)
        lp._last = (
            None
            if basic is None
            else LastOptimum(cols, values, np.asarray(sol.row_value), basic, obj, row_ub)
        )
        return lp._result(values, obj, cols, "segment simplex", t0)
    lp._last = None
    if model_status == highspy.HighsModelStatus.kTimeLimit:
        # a cold start that ran out of time (10k venues on a loaded box: the first dual simplex
        # can take longer than time_limit_seconds): keep where it got to, so that the next cycle
        # continues from there instead of starting cold again, and again falling back to cvxpy
        basis = h.getBasis()
        lp._status = None
        if basis.valid:
            codes = np.zeros(cols.full_ncol, dtype=np.int8)
            codes[cols.kept] = status_codes(basis)
            lp._status = (codes, list(basis.row_status))
        lp._basis_shape = (cols.full_ncol, nrow)
    else:
        lp._status = None
    if model_status == highspy.HighsModelStatus.kInfeasible:
        return SegmentResult("infeasible", None, None, elapsed, "segment simplex: infeasible")
    return SegmentResult(
        "solver_error",
        None,
        None,
        elapsed,
        f"segment simplex: {h.modelStatusToString(model_status)}",
    )


def minus_inf(lp: SegmentLP, nrow: int) -> FloatArray:
    """The rows' lower bounds (-inf), one array per row count (HiGHS copies it)."""
    return const_array(lp._no_lower, nrow, np.float64, -highspy.kHighsInf)


def const_array(cache: dict[int, Any], size: int, dtype: type, fill: float) -> Any:
    """One read-only array of ``size`` times ``fill`` per size (HiGHS copies its inputs)."""
    arr = cache.get(size)
    if arr is None:
        arr = cache[size] = np.full(size, fill, dtype=dtype)
        arr.flags.writeable = False
    return arr


_COLWISE = int(highspy.MatrixFormat.kColwise.value)
_MAXIMIZE = int(highspy.ObjSense.kMaximize.value)

# HiGHS's basis statuses by our codes (0 lower, 1 basic, 2 upper)
_STATUS = np.array(
    [
        highspy.HighsBasisStatus.kLower,
        highspy.HighsBasisStatus.kBasic,
        highspy.HighsBasisStatus.kUpper,
    ],
    dtype=object,
)
