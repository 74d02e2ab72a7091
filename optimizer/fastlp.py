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

import highspy
import numpy as np
import scipy.sparse as sp
from numpy._core.umath import clip as _clip  # type: ignore[attr-defined]  # np.clip's ufunc
from numpy.typing import NDArray

from optimizer.cycle import CycleData
from optimizer.cycle_facts import SMALL_SET
from optimizer.fastlp_basis import Columns, LastOptimum
from optimizer.fastlp_highs import SegmentResult as SegmentResult
from optimizer.fastlp_highs import run_highs
from optimizer.highs import quiet_highs
from optimizer.pwl_kernel import segment_matrix
from optimizer.sums import total

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class SegmentLP:
    """Built from a compiled :class:`AllocationModel` (its limits hold the structure: groups, masks)."""

    def __init__(self, model) -> None:
        from optimizer.limits import (
            ChainIdle,
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
        self.chain = next((lim for lim in model.limits if isinstance(lim, ChainIdle)), None)
        if self.chain is not None and self.chain.active:
            where = {c: j for j, c in enumerate(self.chain.chains)}
            self.chain_of = np.array([where[v.chain] for v in model.venues], dtype=np.int64)
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
        self.highs = quiet_highs()
        self.highs.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self.highs.setOptionValue("dual_feasibility_tolerance", 1e-9)
        self.highs.setOptionValue("time_limit", float(model.settings.time_limit_seconds))
        # measured on the 1k bench: presolve costs ~25 ms and removes nothing useful from this LP;
        # the dual simplex restarted from the previous cycle's basis needs a handful of iterations
        self.highs.setOptionValue("presolve", "off")
        self.highs.setOptionValue("solver", "simplex")
        self.highs.setOptionValue("simplex_strategy", 1)  # dual
        # no scaling: the LP is in NAV units already (coefficients 0/1 and risk scores, slopes ~APRs,
        # bounds <= 1); measured at 1k venues, a warm run 7.5 -> 3.9 ms, the same optima
        self.highs.setOptionValue("simplex_scale_strategy", 0)
        # the last basis over the full columns (lower 0, basic 1, upper 2) and the row statuses
        self._status: tuple[NDArray[np.int8], list[highspy.HighsBasisStatus]] | None = None
        self._basis_shape: tuple[int, int] | None = None
        # the CSC of the constant x-rows over the venues
        self._x_cache: tuple[NDArray[np.int64], NDArray[np.int64], FloatArray] | None = None
        # below SMALL_SET venues ``M @ lb`` of the x-rows on Python floats (:meth:`_x_rows_at`):
        # per row its (column, value) pairs in CSR order, the order scipy's matvec adds them in
        self._x_terms: list[list[tuple[int, float]]] | None = None
        if n < SMALL_SET:
            Mr = sp.csr_matrix(self.x_rows)
            self._x_terms = [
                list(
                    zip(
                        Mr.indices[Mr.indptr[r] : Mr.indptr[r + 1]].tolist(),
                        Mr.data[Mr.indptr[r] : Mr.indptr[r + 1]].tolist(),
                        strict=True,
                    )
                )
                for r in range(Mr.shape[0])
            ]
        self._venue_rows = np.arange(n)[:, None]  # row indices for picking one piece per slot
        # HiGHS's constant inputs, by size: passModel copies them, so one array serves every cycle
        self._no_lower: dict[int, FloatArray] = {}
        self._zeros: dict[int, FloatArray] = {}
        self._continuous: dict[int, NDArray[np.int32]] = {}
        self._cols: Columns | None = None  # the last cycle's columns (kept while its inputs are)
        self._passed: Columns | None = None  # the columns HiGHS holds
        self._last: LastOptimum | None = None
        self.solves = 0
        self.warm_solves = 0  # solves that started from a kept basis
        self.rhs_only_solves = 0  # re-solves where only row bounds changed and the basis still fits
        self.run_seconds = 0.0

    def adopt_basis(self, other: SegmentLP) -> None:
        """Start from ``other``'s last basis (a model rebuilt for the same venue set: the same
        columns and rows, README §5); used only if the next LP has the same shape."""
        if other.n == self.n and other._status is not None:
            self._status, self._basis_shape = other._status, other._basis_shape

    # ------------------------------------------------------------------------------------------
    def _slots(
        self, d: CycleData
    ) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray, BoolArray]:
        """Per venue ``P + 1`` slots: (left end, width, slope, left-of-x0 flag, below-c flag), NAV units."""
        nav = d.nav_usd
        beta = d.pwl.breakpoints / nav  # (n, P+1)
        lb, ub = beta[:, :1], beta[:, -1:]
        # the exit liquidity, cut into the slots; ``np.clip`` is this ufunc behind a Python wrapper
        c = _clip(d.exit_liquidity[:, None], lb, ub)
        pts = np.sort(np.concatenate([beta, c], axis=1), axis=1)  # (n, P+2)
        left, right = pts[:, :-1], pts[:, 1:]
        width = np.maximum(right - left, 0.0)
        # (n, P) slopes in NAV units (costs folded in)
        a, _ = d.objective_pieces(self.model.settings)
        mid = 0.5 * (left + right)
        P = a.shape[1]
        # the piece a slot lies on: how many inner breakpoints are at or left of its middle (a
        # count, never below 0: so ``minimum`` is the clip to [0, P - 1]), its slope picked by
        # index pairs (what ``take_along_axis`` builds, without its Python-level checks)
        piece = np.minimum((beta[:, None, 1:-1] <= mid[:, :, None]).sum(axis=2), P - 1)
        slope = a[self._venue_rows, piece]
        tol = 1e-12
        x0 = d.x0[:, None]
        is_left = right <= x0 + tol
        below = right <= c + tol
        return left, width, slope, is_left, below

    def _x_csc(self) -> tuple[NDArray[np.int64], NDArray[np.int64], FloatArray]:
        """The constant rows (groups, risk) over the venues, CSC (start, row, value), zeros dropped,
        rows ascending: column ``(i, k)`` of the segment LP carries venue ``i``'s column. Built once."""
        if self._x_cache is None:
            Mc = sp.csc_matrix(self.x_rows)
            Mc.eliminate_zeros()  # a risk score of 0, a venue in no group
            Mc.sort_indices()
            self._x_cache = (
                Mc.indptr.astype(np.int64),
                Mc.indices.astype(np.int64),
                np.ascontiguousarray(Mc.data, dtype=np.float64),
            )
        return self._x_cache

    def solve(self, d: CycleData) -> SegmentResult:
        t0 = time.perf_counter()
        try:
            return self._solve(d, t0)
        except Exception as exc:
            return SegmentResult(
                "solver_error", None, None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
            )

    def _solve(self, d: CycleData, t0: float) -> SegmentResult:
        """The cycle's LP on HiGHS (:func:`optimizer.fastlp_highs.run_highs`)."""
        return run_highs(self, d, t0)

    def _columns(self, d: CycleData) -> Columns:
        """Everything of the cycle's LP but the row bounds: the slots, the objective, the matrix and
        the leg columns. Kept while the cycle's column inputs are the same objects (a cost-reserve
        pass changes only ``idle_reserve``, i.e. row bounds: README §7a)."""
        src = (
            d.pwl,
            d.x0,
            d.lb,
            d.exit_liquidity,
            d.cost_in,
            d.cost_out,
            d.bridge_widths,
            d.bridge_slopes,
            d.chain_index,
        )
        last = self._cols
        if (
            last is not None
            and last.nav_usd == d.nav_usd
            and all(a is b for a, b in zip(last.src, src, strict=True))
        ):
            return last
        n = self.n
        lbx = np.asarray(self.box.lb.value, dtype=float)
        _, width, slope, is_left, below = self._slots(d)
        S = width.shape[1]
        q = self.queued[:, None]
        # objective: Σ g(lb) + Σ slope · s
        a, b = d.objective_pieces(self.model.settings)
        g_lb = a[:, 0] * lbx + b[:, 0]  # the first piece at lb (lb is its left end)
        # a position above the top of its domain (x0 > ub: it must shrink) is left of x0 all along:
        # |x - x0| and (x0 - x)⁺ carry the constant x0 - ub on top of the slots
        above = np.maximum(d.x0 - d.pwl.breakpoints[:, -1] / d.nav_usd, 0.0)
        # coupling rows as blocks: (row number per column, coefficient per column); a block's row
        # numbers are ascending after the blocks before it (the row bounds: _row_upper, same order)
        blocks: list[tuple[NDArray[np.int64] | int, FloatArray]] = []
        # min idle: Σ s - Σ_{Q,left} s
        blocks.append((0, (1.0 - (is_left & q)).ravel().astype(np.float64)))
        R1 = 1
        C = 0
        if self.chain is not None and self.chain.active:
            # idle per chain (README §4c): Σ_{i on c} (s - Σ_{Q,left} s) - inflow_c; one row per
            # chain, a venue's slots in its chain's row only; the legs are columns after the slots
            C = len(self.chain.chains)
            coef = (1.0 - (is_left & q)).astype(float)
            blocks.append((np.repeat(R1 + self.chain_of, S), coef.ravel()))
            R1 += C
        if self.floors is not None:
            # liquidity floors: Σ s - Σ_{Q,left,not landing} s - Σ_{z, below} s
            for j in range(len(self.floor_days)):
                notland = (q & ~self.land_mask[j][:, None]) & is_left
                zm = self.z_mask[j][:, None] & below
                blocks.append((R1, (1.0 - notland - zm).ravel()))
                R1 += 1
        if self.turnover is not None:
            blocks.append((R1, np.where(is_left, -1.0, 1.0).ravel()))
            R1 += 1
        nS = n * S
        block_rows = np.empty((nS, len(blocks)), dtype=np.int64)
        block_values = np.empty((nS, len(blocks)))
        for k, (row, coef_k) in enumerate(blocks):
            block_rows[:, k] = row
            block_values[:, k] = coef_k
        cost = np.ascontiguousarray(slope.ravel(), dtype=np.float64)
        upper = np.ascontiguousarray(width.ravel(), dtype=np.float64)
        legs = C - 1 if C > 1 else 0
        J = 0
        leg_rows = np.zeros((0, 2), dtype=np.int32)
        leg_vals = np.zeros((0, 2))
        if legs:
            # bridge legs: out_c (home -> c) then back_c (c -> home), each on J segments of its convex
            # cost (widths w_j, annualised slopes: non-decreasing, so the simplex fills them in order);
            # -T(out - back) in the chain rows: two entries a column
            from optimizer.limits import leg_pieces

            w, slopes = leg_pieces(d, legs)
            J = len(w)
            annual = 365.0 / self.model.settings.holding_horizon_days
            chain_row0 = 1
            chain_rows = chain_row0 + np.arange(1, C)
            rows_l: list[NDArray[np.int32]] = []
            vals_l: list[FloatArray] = []
            for sign in (1.0, -1.0):  # out, back
                rows_pair = np.stack([np.full(legs, chain_row0), chain_rows], axis=1)  # (legs, 2)
                vals_pair = np.stack([np.full(legs, sign), np.full(legs, -sign)], axis=1)
                rows_l.append(np.repeat(rows_pair, J, axis=0).astype(np.int32))
                vals_l.append(np.repeat(vals_pair, J, axis=0))
            leg_rows, leg_vals = np.concatenate(rows_l), np.concatenate(vals_l)
            cost = np.concatenate([cost, -annual * slopes.ravel()])
            upper = np.concatenate(
                [upper, np.tile(np.where(np.isfinite(w), w, highspy.kHighsInf), 2 * legs)]
            )
        full_ncol = len(upper)
        # columns of width 0 (a two-chord venue's spare slots, a slot cut twice at the same point)
        # are fixed at 0: they are left out of the LP (the same LP, and HiGHS's time per run grows
        # with its columns: 10k venues, 170 -> 98 ms), unless basic in the basis the solve starts from
        keep = upper > 0.0
        if self._status is not None and len(self._status[0]) == full_ncol:
            keep |= self._status[0] == 1
        kept = np.nonzero(keep)[0]
        kept_slots, kept_legs = (
            (kept[kept < nS], kept[kept >= nS] - nS) if legs else (kept, kept[:0])
        )
        # the matrix over the kept columns, CSC, compiled (optimizer/pwl_kernel.py segment_matrix)
        mc = self._x_csc()
        start, index, value = segment_matrix(
            kept_slots, S, block_rows, block_values, mc[0], mc[1], mc[2], R1
        )
        if len(kept_legs):
            start = np.concatenate(
                [start, start[-1] + 2 * np.arange(1, len(kept_legs) + 1, dtype=np.int32)]
            ).astype(np.int32)
            index = np.concatenate([index, leg_rows[kept_legs].ravel()])
            value = np.concatenate([value, leg_vals[kept_legs].ravel()])
        cost, upper = cost[kept], upper[kept]
        ncol = len(kept)
        self._cols = Columns(
            src=src,
            nav_usd=d.nav_usd,
            width=width,
            is_left=is_left,
            below=below,
            above=above,
            lbx=lbx,
            R1=R1,
            nrow=R1 + self.x_rows.shape[0],
            ncol=ncol,
            full_ncol=full_ncol,
            kept=kept,
            offset=total(g_lb),
            cost=cost,
            upper=upper,
            start=start,
            index=index,
            value=value,
            legs=legs,
            J=J,
        )
        return self._cols

    def _row_upper(self, d: CycleData, cols: Columns) -> FloatArray:
        """The rows' upper bounds (their lower bounds are -inf), in :meth:`_columns`' row order."""
        width, is_left, above, lbx = cols.width, cols.is_left, cols.above, cols.lbx
        B = float(self.model.budget.value)
        q = self.queued[:, None]
        lb_sum = total(lbx)
        left_q_width = float((width * (is_left & q)).sum()) + total(above[self.queued])
        # min idle: ... <= B - Σ lb - Σ_{Q,left} ω - m'
        rows_ub: list[float] = [
            B - lb_sum - left_q_width - float(np.asarray(self.min_idle.rhs.value, dtype=float))
        ]
        if self.chain is not None and self.chain.active:
            # ... <= avail_c - Σ_{i on c} (lb + [queued] (Σ_left ω + above))
            C = len(self.chain.chains)
            per_venue = lbx + np.where(self.queued, (width * is_left).sum(axis=1) + above, 0.0)
            avail = np.asarray(self.chain.avail.value, dtype=float)
            rhs_chain = avail - np.bincount(self.chain_of, weights=per_venue, minlength=C)
            rows_ub.extend(float(u) for u in rhs_chain[:C])
        if self.floors is not None:
            # ... <= B - Σ lb - Σ_{Q left not landing} ω + Σ_z min(lb, L) - floor
            floor_rhs = np.asarray(self.floors.floor.value, dtype=float)
            L = d.exit_liquidity
            for j in range(len(floor_rhs)):
                notland = (q & ~self.land_mask[j][:, None]) & is_left
                zconst = total(np.minimum(lbx, L)[self.z_mask[j]])
                notland_const = float((width * notland).sum()) + total(
                    above[self.queued & ~self.land_mask[j]]
                )
                rows_ub.append(B - lb_sum - notland_const + zconst - floor_rhs[j])
        if self.turnover is not None:
            rows_ub.append(
                float(self.turnover.max_ratio) - float((width * is_left).sum()) - total(above)
            )
        # x-rows: groups, risk: M x <= rhs  ->  M_i per column of venue i
        x_rhs = [np.asarray(g.cap.value, dtype=float) for g in self.groups]
        if self.risk is not None:
            x_rhs.append(np.array([float(np.asarray(self.risk.rhs.value, dtype=float))]))
        M = self.x_rows
        if self._x_terms is not None:
            rows_ub.extend(self._x_rows_at(np.concatenate(x_rhs).tolist() if x_rhs else [], lbx))
            return np.array(rows_ub, dtype=np.float64)
        rhs_x = np.concatenate(x_rhs) - (M @ lbx) if M.shape[0] else np.zeros(0)
        return np.ascontiguousarray(np.concatenate([np.array(rows_ub), rhs_x]), dtype=np.float64)

    def _x_rows_at(self, rhs: list[float], lbx: FloatArray) -> list[float]:
        """``rhs - M @ lbx`` on Python floats (below SMALL_SET venues): each row's products added
        from 0.0 in CSR order, as scipy's ``csr_matvec`` adds them (no FMA: the same IEEE
        operations, so the same bits; ``tests/test_optimizer_small_paths.py`` pins it)."""
        assert self._x_terms is not None
        lb = lbx.tolist()
        out: list[float] = []
        for r, terms in enumerate(self._x_terms):
            acc = 0.0
            for j, v in terms:
                acc += v * lb[j]
            out.append(rhs[r] - acc)
        return out

    def _result(
        self, values: FloatArray, obj: float, cols: Columns, detail: str, t0: float
    ) -> SegmentResult:
        n, S = self.n, cols.width.shape[1]
        if cols.ncol < cols.full_ncol:
            full = np.zeros(cols.full_ncol)
            full[cols.kept] = values
            values = full
        s = _clip(values[: n * S].reshape(n, S), 0.0, cols.width)
        out = back = None
        if cols.legs:
            seg = np.maximum(values[n * S :], 0.0).reshape(2, cols.legs, cols.J).sum(axis=2)
            out, back = seg[0], seg[1]
        x = cols.lbx + s.sum(axis=1)
        return SegmentResult("optimal", x, obj, time.perf_counter() - t0, detail, out, back)
