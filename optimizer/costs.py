"""Size-dependent move costs: convex functions of the amount moved, in USD (README §3a).

Three costs grow faster than the amount, so a linear model (a fee in bps plus gas) under-prices
large tickets:

- **Across bridge legs.** The LP fee is the hub pool's rate averaged over the utilization move the
  transfer itself causes (``protocols.across.lp_fee_pct`` over ``utilization_after``), so the fee
  *per USD* grows with the amount. The Across adapter samples the route's quote
  (``/api/suggested-fees?amount=``) at a few amounts and records them in the snapshot's state
  (``quote_amount_usd_k``, ``quote_fee_pct_k``: LP + capital fee, no gas). The fee is the hub
  pool's (one per L1 token), but a route may override the rate model (Across prices L2 -> L2
  routes lower): our legs go through home, so the routes out of the home chain price them (per
  amount, the median over those routes; none: over every route). The curve is the lower convex hull of ``(0, 0)`` and the sampled
  ``(a_k, a_k·pct_k)``, linear between samples and at the last slope beyond the largest.
  Each leg adds the destination fill gas (``bridge_gas_by_chain_usd``, else ``bridge_gas_usd``).
  No Across snapshot: the linear ``bridge_fee_bps``.
- **LP zaps.** A one-token deposit into a constant-product pool swaps half of it first (fee on the
  swapped half plus price impact against the reserves ``TVL/2``); a withdrawal to one token swaps
  the volatile half back against what the burn leaves: ``protocols.uniswap.zap_cost_usd``
  (``single_sided_entry_cost_fraction`` / ``single_sided_exit_cost_fraction``). Venues whose
  snapshot carries ``swap_fee`` in its state (the DefiLlama LP adapter, the benchmark's LP
  pools); their linear ``fee_bps`` is not added (it was the linear stand-in for the same swap).
  Pool TVL = the snapshot's TVL without us plus our position.
- **Gas** per transaction: fixed, per venue (``costs.deposit_usd`` / ``withdraw_usd``) and per
  chain for bridge legs; the model amortises it over a reference move (``gas_reference_ratio``).

- **Selling below peg.** A withdrawal from a venue whose asset trades more than
  ``depeg_discount_band_bps`` below its peg forfeits ``1 - price/peg`` of the amount if the peg
  returns (:func:`depeg_discount`): an opportunity cost the model charges on the way out only, so
  the optimizer does not sell a depegged position for yield (a guard's exit is a bound, not a
  choice). Not a cash cost: the plan's predicted cost and the checker leave it out.

``cost_model: linear`` (settings) turns all of this off: the behaviour before size-dependent costs.
The model folds these convex costs into each venue's concave pieces (:mod:`optimizer.cycle`) and
into the bridge legs' segments (:mod:`optimizer.limits`, :mod:`optimizer.fastlp`); the plan
(:mod:`optimizer.plan`) and the independent checker price the same curves at the exact amounts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.marks import peg_mark
from core.types import VenueSnapshot
from optimizer.config import OptimizerSettings
from protocols import uniswap

FloatArray = NDArray[np.float64]

#: how many quotes an Across snapshot may carry (state keys ``quote_amount_usd_0`` ...)
MAX_QUOTES = 16


@dataclass(frozen=True, slots=True)
class ConvexCost:
    """A convex piecewise-linear cost ``c(a)`` (USD) of moving ``a >= 0`` USD, ``c(0) = 0``: knots
    ``(a_k, c_k)`` (``a_0 = 0``), linear between them and at the last slope beyond the last one."""

    amounts_usd: FloatArray
    costs_usd: FloatArray
    # slopes() and the finite pieces' widths, computed on first use (the knots never change)
    _slopes: FloatArray | None = field(default=None, init=False, repr=False, compare=False)
    _widths: FloatArray | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def linear(cls, rate: float) -> ConvexCost:
        """``rate`` per USD (one curve per rate is kept: a cycle without Across quotes asks for the
        same linear fee three times, the model, the plan and the checker)."""
        hit = _LINEAR.get(float(rate))
        if hit is None:
            hit = cls(np.array([0.0, 1.0]), np.array([0.0, float(rate)]))
            if len(_LINEAR) > 64:
                _LINEAR.clear()
            _LINEAR[float(rate)] = hit
        return hit

    @classmethod
    def from_samples(cls, amounts_usd: Sequence[float], costs_usd: Sequence[float]) -> ConvexCost:
        """The lower convex hull of ``(0, 0)`` and the samples (a quote a hair below the hull, from
        rounding, is dropped: the cost stays convex, so the LP's pieces stay ordered)."""
        pts = sorted(
            {
                (0.0, 0.0),
                *(
                    (float(a), float(c))
                    for a, c in zip(amounts_usd, costs_usd, strict=True)
                    if a > 0
                ),
            }
        )
        hull: list[tuple[float, float]] = []
        for p in pts:
            while len(hull) >= 2:
                (x1, y1), (x2, y2) = hull[-2], hull[-1]
                # drop the middle point when it lies on or above the chord from hull[-2] to p
                if (y2 - y1) * (p[0] - x1) >= (p[1] - y1) * (x2 - x1):
                    hull.pop()
                else:
                    break
            hull.append(p)
        if len(hull) == 1:
            return cls.linear(0.0)
        a = np.array([h[0] for h in hull])
        c = np.array([h[1] for h in hull])
        return cls(a, c)

    def slopes(self) -> FloatArray:
        """Cost per USD on each piece (non-decreasing); the last one holds beyond the last knot.
        Read-only (computed once)."""
        s = self._slopes
        if s is None:
            s = np.diff(self.costs_usd) / np.diff(self.amounts_usd)
            s.flags.writeable = False
            object.__setattr__(self, "_slopes", s)
        return s

    def widths_usd(self) -> FloatArray:
        """The widths of the pieces between knots but the last (the last piece is unbounded),
        USD; read-only (computed once)."""
        w = self._widths
        if w is None:
            w = np.diff(self.amounts_usd)[:-1]
            w.flags.writeable = False
            object.__setattr__(self, "_widths", w)
        return w

    def __call__(self, amount_usd: FloatArray | float) -> FloatArray:
        if isinstance(amount_usd, float | int):
            return np.asarray(self.at(float(amount_usd)))
        a = np.maximum(np.asarray(amount_usd, dtype=float), 0.0)
        top_a, top_c = self.amounts_usd[-1], self.costs_usd[-1]
        inside = np.interp(a, self.amounts_usd, self.costs_usd)
        return np.where(a > top_a, top_c + self.slopes()[-1] * (a - top_a), inside)

    def at(self, amount_usd: float) -> float:
        """``c(a)`` of one amount in plain floats (a bridge leg), as ``np.interp`` computes it
        between the knots (``tests/test_optimizer_costs.py`` compares both)."""
        a = max(amount_usd, 0.0)
        xs, ys = self.amounts_usd.tolist(), self.costs_usd.tolist()
        if a > xs[-1]:
            return ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (a - xs[-1])
        j = bisect.bisect_right(xs, a) - 1
        if xs[j] == a:
            return ys[j]
        slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
        return slope * (a - xs[j]) + ys[j]


_LINEAR: dict[float, ConvexCost] = {}


def quote_points(snap: VenueSnapshot) -> list[tuple[float, float]]:
    """``(amount USD, LP + capital fee fraction)`` of an Across snapshot's sampled quotes."""
    out = []
    for k in range(MAX_QUOTES):
        a = snap.state.get(f"quote_amount_usd_{k}")
        p = snap.state.get(f"quote_fee_pct_{k}")
        if a is None or p is None:
            break
        if np.isfinite(a) and np.isfinite(p) and a > 0 and 0 <= p < 1:
            out.append((float(a), float(p)))
    return out


def bridge_fee_curve(
    snaps: Sequence[VenueSnapshot], settings: OptimizerSettings, home_chain: str | None = None
) -> ConvexCost:
    """The fee (no gas) of one bridge leg as a function of its amount: from the Across quotes in
    ``snaps`` (the median fee fraction per sampled amount over the routes out of ``home_chain``,
    or over every route when none leaves it), else linear at ``bridge_fee_bps``; linear too under
    ``cost_model: linear``."""
    linear = ConvexCost.linear(settings.bridge_fee_bps / 1e4)
    if settings.cost_model == "linear":
        return linear
    routes = [s for s in snaps if s.venue.protocol == "across" and quote_points(s)]
    home = [s for s in routes if s.venue.chain == home_chain]
    by_amount: dict[float, list[float]] = {}
    for s in home or routes:
        for a, p in quote_points(s):
            by_amount.setdefault(round(a, 2), []).append(p)
    if not by_amount:
        return linear
    amounts = sorted(by_amount)
    return ConvexCost.from_samples(amounts, [a * float(np.median(by_amount[a])) for a in amounts])


def leg_gas_usd(settings: OptimizerSettings, to_chain: str) -> float:
    """Gas of one bridge leg onto ``to_chain`` (the relayer's fill there, which Across charges)."""
    if settings.cost_model == "linear":
        return settings.bridge_gas_usd
    return float(settings.bridge_gas_by_chain_usd.get(to_chain, settings.bridge_gas_usd))


@dataclass(frozen=True, slots=True)
class ZapPools:
    """The venues priced by their pool's reserves (LP zaps): a mask, pool TVL without us, swap fee."""

    mask: NDArray[np.bool_]
    tvl_others_usd: FloatArray
    fee: FloatArray

    @classmethod
    def of(cls, snaps: Sequence[VenueSnapshot], settings: OptimizerSettings) -> ZapPools:
        n = len(snaps)
        if settings.cost_model == "linear" or not any("swap_fee" in s.state for s in snaps):
            # no pool priced by its reserves (what the masked arrays below give then)
            return cls(np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n))
        rows = [(s.state.get("swap_fee", math.nan), s.tvl_usd) for s in snaps]
        fee, tvl = np.array(rows, dtype=float).reshape(n, 2).T
        mask = np.isfinite(fee) & (fee >= 0) & (fee < 1) & np.isfinite(tvl) & (tvl > 0)
        if settings.cost_model == "linear":
            mask = np.zeros(n, dtype=bool)
        return cls(mask, np.where(mask, tvl, 0.0), np.where(mask, fee, 0.0))

    def impact_usd(self, x0_usd: FloatArray, target_usd: FloatArray) -> FloatArray:
        """The zap cost of moving each venue from ``x0`` to ``target`` (broadcasts: ``target`` may
        be ``(n, k)`` against ``x0`` of ``(n,)``); 0 for venues not priced by reserves."""
        x0 = np.asarray(x0_usd, dtype=float)
        t = np.asarray(target_usd, dtype=float)
        if t.ndim == 2:
            x0 = x0[:, None]
        mask = self.mask if t.ndim == 1 else self.mask[:, None]
        tvl = (self.tvl_others_usd if t.ndim == 1 else self.tvl_others_usd[:, None]) + x0
        fee = self.fee if t.ndim == 1 else self.fee[:, None]
        delta = t - x0
        into = uniswap.zap_cost_usd(np.maximum(delta, 0.0), tvl, fee, exit=False)
        out = uniswap.zap_cost_usd(np.maximum(-delta, 0.0), tvl, fee, exit=True)
        return np.where(mask, np.where(delta > 0, into, out), 0.0)


#: the move kinds the predicted and the executed costs are compared by (metric label ``kind``)
MOVE_COST_KINDS = (
    "bridge",
    "lp_entry",
    "lp_exit",
    "lending_deposit",
    "lending_withdraw",
    "other_deposit",
    "other_withdraw",
)


def depeg_discount(snaps: Sequence[VenueSnapshot], band_bps: float | None) -> FloatArray:
    """Per venue, the fraction of a withdrawal forfeited by selling below peg:
    ``d = 1 - mark`` where that exceeds ``band_bps / 1e4``, else 0 (None: 0 everywhere), with
    ``mark = price / peg`` (:func:`core.marks.peg_mark`); a venue whose mark is unknown is
    charged nothing."""
    out = np.zeros(len(snaps))
    if band_bps is None:
        return out
    for i, s in enumerate(snaps):
        mark = peg_mark(s)
        if mark is not None and (1.0 - mark) * 10_000 > band_bps:
            out[i] = min(1.0 - mark, 1.0)
    return out


def move_cost_kind(action: str, venue_kind: str | None) -> str:
    """The cost kind of a move: ``bridge``, or by venue kind and side (``lp_entry`` / ``lp_exit``,
    ``lending_deposit`` / ``lending_withdraw``, ``other_deposit`` / ``other_withdraw``)."""
    if str(action) == "bridge":
        return "bridge"
    deposit = str(action) == "deposit"
    if venue_kind == "lp":
        return "lp_entry" if deposit else "lp_exit"
    if venue_kind == "lending":
        return "lending_deposit" if deposit else "lending_withdraw"
    return "other_deposit" if deposit else "other_withdraw"
