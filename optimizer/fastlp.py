"""The same LP as :class:`optimizer.model.AllocationModel`, written on segments and solved by simplex.

Every venue is independent except for a few dozen *coupling* rows (idle, group caps, risk budget,
liquidity floors, turnover). On segments the per-venue structure disappears into variable bounds:

    x_i = lb_i + Σ_k s_ik,   0 <= s_ik <= ω_ik            (ω: the widths of the pieces of g_i)
    g_i(x_i) = g_i(lb_i) + Σ_k a_ik s_ik                   (slopes a_ik non-increasing: concave)

The slots of venue ``i`` are its PWL pieces, cut once more at ``c_i = clip(L_i, lb_i, ub_i)`` (its
exit liquidity) so that every slot lies on one side of ``x0_i`` (a breakpoint already) and of
``c_i``. Then every other per-venue construct of the cvxpy model is linear in ``s``:

    |x_i - x0_i|     = Σ_{k right of x0} s_ik + Σ_{k left of x0} (ω_ik - s_ik)        (turnover)
    (x0_i - x_i)⁺    = Σ_{k left of x0} (ω_ik - s_ik)                                  (queued: in flight)
    min(x_i, L_i)    = min(lb_i, L_i) + Σ_{k below c_i} s_ik                           (liquid within D)

so the LP has only the coupling rows (~30-60) and ``n (P + 1)`` bounded columns, a natural fit for
the bounded dual simplex (HiGHS), instead of ``n (P + 5)`` rows for the interior-point solver.

Exactness. Any feasible ``x`` of the cvxpy model gives a feasible ``s`` (fill each venue's slots in
order) with the same objective, so the segment optimum is at least the cvxpy optimum. Conversely,
for any feasible ``s``, ``x = lb + Σ s`` is feasible for the cvxpy model with an objective at least
as high: in-order filling maximises ``Σ a s`` for a given ``x`` (concavity), and the true turnover,
in-flight amount and liquid amount of ``x`` are at most / at least what the segments count. So
both optima are equal and the ``x`` returned is optimal for the cvxpy model. ``model.py`` keeps the
cvxpy problem as the reference (property tests compare the two to 1e-6) and as the fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from optimizer.cycle import CycleData

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SegmentResult:
    status: str  # "optimal" | "infeasible" | "solver_error"
    x: FloatArray | None
    objective: float | None
    seconds: float
    detail: str = ""


class SegmentLP:
    """Built from a compiled :class:`AllocationModel` (its limits hold the structure: groups, masks)."""

    def __init__(self, model) -> None:
        from optimizer.limits import (
            GroupCaps,
            LiquidityFloors,
            MinIdle,
            RiskBudget,
            Turnover,
            VenueBox,
        )

        self.model = model
        n = len(model.venues)
        self.n = n
        self.queued = np.zeros(n, dtype=bool)
        self.queued[model.queued_idx] = True
        self.box = next(lim for lim in model.limits if isinstance(lim, VenueBox))
        self.min_idle = next(lim for lim in model.limits if isinstance(lim, MinIdle))
        self.groups = [lim for lim in model.limits if isinstance(lim, GroupCaps) and lim.keys]
        self.risk = next((lim for lim in model.limits if isinstance(lim, RiskBudget)), None)
        self.floors = next((lim for lim in model.limits if isinstance(lim, LiquidityFloors)), None)
        self.turnover = next((lim for lim in model.limits if isinstance(lim, Turnover)), None)
        # constant x-rows: one row per group cap, the risk row; all in terms of x
        blocks = [g.G for g in self.groups]
        if self.risk is not None:
            blocks.append(sp.csr_matrix(self.risk.r.reshape(1, -1)))
        self.x_rows = sp.vstack(blocks).tocsr() if blocks else sp.csr_matrix((0, n))
        # liquidity: which venues count toward which floor (z) and which queued withdrawals land within it
        if self.floors is not None:
            e = self.floors.exit_days
            self.floor_days = np.array([f.days for f in self.floors.floors])
            liquid = np.zeros(n, dtype=bool)
            liquid[self.floors.idx] = True
            self.z_mask = liquid[None, :] & (e[None, :] <= self.floor_days[:, None])  # (F, n)
            self.land_mask = self.queued[None, :] & (e[None, :] <= self.floor_days[:, None])
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self.highs.setOptionValue("dual_feasibility_tolerance", 1e-9)
        self.highs.setOptionValue("time_limit", float(model.settings.time_limit_seconds))
        # measured on the 1k bench: presolve costs ~25 ms and removes nothing useful from this LP;
        # the dual simplex restarted from the previous cycle's basis needs a handful of iterations
        self.highs.setOptionValue("presolve", "off")
        self.highs.setOptionValue("solver", "simplex")
        self.highs.setOptionValue("simplex_strategy", 1)  # dual
        self._basis: highspy.HighsBasis | None = None
        self._basis_shape: tuple[int, int] | None = None
        self.solves = 0
        self.run_seconds = 0.0

    # ------------------------------------------------------------------------------------------
    def _slots(
        self, d: CycleData
    ) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray, BoolArray]:
        """Per venue ``P + 1`` slots: (left end, width, slope, left-of-x0 flag, below-c flag), NAV units."""
        nav = d.nav_usd
        beta = d.pwl.breakpoints / nav  # (n, P+1)
        lb, ub = beta[:, :1], beta[:, -1:]
        c = np.clip(d.exit_liquidity[:, None], lb, ub)  # the exit liquidity, cut into the slots
        pts = np.sort(np.concatenate([beta, c], axis=1), axis=1)  # (n, P+2)
        left, right = pts[:, :-1], pts[:, 1:]
        width = np.maximum(right - left, 0.0)
        # (n, P) slopes in NAV units (costs folded in)
        a, _ = d.objective_pieces(self.model.settings)
        mid = 0.5 * (left + right)
        P = a.shape[1]
        piece = np.clip((beta[:, None, 1:-1] <= mid[:, :, None]).sum(axis=2), 0, P - 1)
        slope = np.take_along_axis(a, piece, axis=1)
        tol = 1e-12
        x0 = d.x0[:, None]
        is_left = right <= x0 + tol
        below = right <= c + tol
        return left, width, slope, is_left, below

    def solve(self, d: CycleData) -> SegmentResult:
        t0 = time.perf_counter()
        try:
            return self._solve(d, t0)
        except Exception as exc:
            return SegmentResult(
                "solver_error", None, None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
            )

    def _solve(self, d: CycleData, t0: float) -> SegmentResult:
        n = self.n
        lbx = np.asarray(self.box.lb.value, dtype=float)
        _left, width, slope, is_left, below = self._slots(d)
        S = width.shape[1]
        B = float(self.model.budget.value)
        q = self.queued[:, None]
        # objective: Σ g(lb) + Σ slope · s
        a, b = d.objective_pieces(self.model.settings)
        g_lb = a[:, 0] * lbx + b[:, 0]  # the first piece at lb (lb is its left end)
        cols_venue = np.repeat(np.arange(n), S)
        # rows, each as (coefficient per column, rhs upper bound)
        rows_coef: list[FloatArray] = []
        rows_ub: list[float] = []
        # a position above the top of its domain (x0 > ub: it must shrink) is left of x0 all along:
        # |x - x0| and (x0 - x)⁺ carry the constant x0 - ub on top of the slots
        above = np.maximum(d.x0 - d.pwl.breakpoints[:, -1] / d.nav_usd, 0.0)
        left_q_width = float((width * (is_left & q)).sum()) + float(above[self.queued].sum())
        # min idle: Σ s - Σ_{Q,left} s <= B - Σ lb - Σ_{Q,left} ω - m'
        idle_coef: FloatArray = (1.0 - (is_left & q)).ravel().astype(np.float64)
        rows_coef.append(idle_coef)
        rows_ub.append(
            B
            - float(lbx.sum())
            - left_q_width
            - float(np.asarray(self.min_idle.rhs.value, dtype=float))
        )
        # x-rows: groups, risk: M x <= rhs  ->  M_i per column of venue i
        x_rhs = []
        for g in self.groups:
            x_rhs.append(np.asarray(g.cap.value, dtype=float))
        if self.risk is not None:
            x_rhs.append(np.array([float(np.asarray(self.risk.rhs.value, dtype=float))]))
        M = self.x_rows
        # liquidity floors: Σ s - Σ_{Q,left,not landing} s - Σ_{z, below} s <= B - Σ lb - Σ_{Q left not landing} ω + Σ_z min(lb, L) - floor
        if self.floors is not None:
            floor_rhs = np.asarray(self.floors.floor.value, dtype=float)
            L = d.exit_liquidity
            for j in range(len(floor_rhs)):
                notland = (q & ~self.land_mask[j][:, None]) & is_left
                zm = self.z_mask[j][:, None] & below
                coef = 1.0 - notland - zm
                rows_coef.append(coef.ravel())
                zconst = float(np.minimum(lbx, L)[self.z_mask[j]].sum())
                notland_const = float((width * notland).sum()) + float(
                    above[self.queued & ~self.land_mask[j]].sum()
                )
                rows_ub.append(B - float(lbx.sum()) - notland_const + zconst - floor_rhs[j])
        if self.turnover is not None:
            coef = np.where(is_left, -1.0, 1.0)
            rows_coef.append(coef.ravel())
            rows_ub.append(
                float(self.turnover.max_ratio) - float((width * is_left).sum()) - float(above.sum())
            )
        dense_rows = np.array(rows_coef)  # (R1, n*S)
        # assemble the sparse matrix: dense rows (every column) + x-rows (M_i repeated over slots)
        Mc = M.tocsc()
        Mx = Mc[:, cols_venue] if M.shape[0] else sp.csc_matrix((0, n * S))
        A = sp.vstack([sp.csc_matrix(dense_rows), Mx]).tocsc()
        A.eliminate_zeros()
        rhs_x = np.concatenate(x_rhs) - (M @ lbx) if M.shape[0] else np.zeros(0)
        row_ub = np.concatenate([np.array(rows_ub), rhs_x])
        nrow = A.shape[0]
        lp = highspy.HighsLp()
        lp.num_col_ = n * S
        lp.num_row_ = nrow
        lp.col_cost_ = slope.ravel()
        lp.col_lower_ = np.zeros(n * S)
        lp.col_upper_ = width.ravel()
        lp.row_lower_ = np.full(nrow, -highspy.kHighsInf)
        lp.row_upper_ = row_ub
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.offset_ = float(g_lb.sum())
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr
        lp.a_matrix_.index_ = A.indices
        lp.a_matrix_.value_ = A.data
        lp.a_matrix_.num_col_ = n * S
        lp.a_matrix_.num_row_ = nrow
        h = self.highs
        h.passModel(lp)
        if self._basis is not None and self._basis_shape == (n * S, nrow):
            # the previous cycle's basis: a valid start, usually a few pivots away
            h.setBasis(self._basis)
        t_run = time.perf_counter()
        h.run()
        self.run_seconds = time.perf_counter() - t_run
        status = h.getModelStatus()
        self.solves += 1
        elapsed = time.perf_counter() - t0
        if status == highspy.HighsModelStatus.kOptimal:
            s = np.asarray(h.getSolution().col_value).reshape(n, S)
            s = np.clip(s, 0.0, width)
            x = lbx + s.sum(axis=1)
            obj = float(h.getInfo().objective_function_value)
            self._basis, self._basis_shape = h.getBasis(), (n * S, nrow)
            return SegmentResult("optimal", x, obj, elapsed, "segment simplex")
        self._basis = None
        if status == highspy.HighsModelStatus.kInfeasible:
            return SegmentResult("infeasible", None, None, elapsed, "segment simplex: infeasible")
        return SegmentResult(
            "solver_error", None, None, elapsed, f"segment simplex: {h.modelStatusToString(status)}"
        )
