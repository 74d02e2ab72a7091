"""The checker's report (violations in words, their relative size, the utilisation of every limit),
its helpers, and the rules that read a venue's state keys (NFT rentals' floor drawdown, loops'
health factor, leverage and collateral discount). Part of the independent checker
(:mod:`optimizer.checker`): shares no code with the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.types import VenueSnapshot

if TYPE_CHECKING:
    from optimizer.checker_facts import VenueFacts
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.costs import bridge_fee_curve, leg_gas_usd
from optimizer.sums import total
from protocols import uniswap

__all__ = ["CheckReport", "CostPricer", "Enough", "amounts", "check_state_rules", "ratio"]


@dataclass
class CheckReport:
    violations: list[str] = field(default_factory=list)
    utilization: dict[str, float] = field(default_factory=dict)
    # relative size of each violation (same order)
    excess: list[float] = field(default_factory=list)

    def add(self, message: str, excess: float = math.inf) -> None:
        self.violations.append(message)
        self.excess.append(float(excess))

    @property
    def ok(self) -> bool:
        return not self.violations


def amounts(values) -> np.ndarray:
    """Feed amounts as the rules read them: NaN counts as 0 (unknown liquidity lets nothing out)."""
    a = np.asarray(values, dtype=float)
    return np.maximum(np.where(np.isnan(a), 0.0, a), 0.0)


def ratio(used: float, allowed: float) -> float:
    if allowed > 0:
        return float(used / allowed)
    return 0.0 if used <= 0 else math.inf


class Enough(Exception):
    """A first violation was found and the caller asked for no more."""


def check_state_rules(
    rep: CheckReport,
    snaps: Sequence[VenueSnapshot],
    ids: list[str],
    x: np.ndarray,
    x0: np.ndarray,
    stay: np.ndarray,
    limits: RiskLimits,
    tol: float,
) -> None:
    """NFT rentals: ``floor_drawdown <= max_nft_floor_drawdown``, else ``x <= stay``. Loops:
    ``health_factor >= min_loop_health_factor`` and ``leverage <= max_loop_leverage`` of
    our account, else the target must be what cannot leave (``x <= stay``); a loop whose *target*
    health factor or leverage (what a new deposit opens at) breaks them may not grow (``x <= x0``).
    A loop snapshot without these state keys counts as unhealthy."""
    hf_min, lev_max = limits.min_loop_health_factor, limits.max_loop_leverage
    dd_max, disc_max = limits.max_nft_floor_drawdown, limits.max_loop_collateral_discount
    if hf_min is None and lev_max is None and dd_max is None and disc_max is None:
        return
    worst = 0.0
    for i, s in enumerate(snaps):
        st = s.state
        if str(s.venue.kind) == "nft_rental" and dd_max is not None:
            dd = float(st.get("floor_drawdown", 1.0))
            if not dd <= dd_max and x[i] > stay[i] + tol:
                rep.add(
                    f"nft_floor_drawdown: venue {ids[i]} floor is {dd:.1%} below its 7-day high, "
                    f"beyond max_nft_floor_drawdown {dd_max:g}; it holds {x[i]:,.2f} USD, at most "
                    f"{stay[i]:,.2f} USD (what cannot leave) may stay"
                )
            continue
        if str(s.venue.kind) != "loop" or (hf_min is None and lev_max is None):
            continue
        hf = float(st.get("health_factor", 0.0))
        lev = float(st.get("leverage", math.inf))
        thf = float(st.get("target_health_factor", 0.0))
        tlev = float(st.get("target_leverage", math.inf))
        if hf_min is not None and hf > 0:
            worst = max(worst, hf_min / hf)
        if (hf_min is not None and not hf >= hf_min) or (
            lev_max is not None and not lev <= lev_max
        ):
            if x[i] > stay[i] + tol:
                rep.add(
                    f"loop_health: venue {ids[i]} health factor {hf:.4f} / leverage {lev:.2f} breaks "
                    f"min_loop_health_factor {hf_min} / max_loop_leverage {lev_max}; it holds "
                    f"{x[i]:,.2f} USD, at most {stay[i]:,.2f} USD (what cannot leave) may stay"
                )
        elif (
            (hf_min is not None and not thf >= hf_min)
            or (lev_max is not None and not tlev <= lev_max)
            or (disc_max is not None and not float(st.get("steth_eth_price", 0.0)) >= 1 - disc_max)
        ) and x[i] > max(x0[i], stay[i]) + tol:
            rep.add(
                f"loop_health: venue {ids[i]} opens new deposits at health factor {thf:.4f} / "
                f"leverage {tlev:.2f} with collateral at {float(st.get('steth_eth_price', 0.0)):.4f} "
                f"ETH, outside the loop limits, and grows {x0[i]:,.2f} -> {x[i]:,.2f} USD"
            )
    rep.utilization["loop_health"] = worst


class CostPricer:
    """The checker's own price of a plan (USD), from the raw inputs: every venue move pays its gas
    plus ``fee_bps`` of the amount, except a venue whose snapshot names its pool's ``swap_fee``,
    which pays its zap (``protocols.uniswap.zap_cost_usd`` against the pool's TVL with our
    position); every bridge leg pays the Across fee curve (:func:`optimizer.costs.bridge_fee_curve`,
    the same curve the model and the plan use) plus its fill gas. ``cost_model: linear``: fee_bps
    and the linear bridge fee only. A plan that prices itself below this by more than the
    tolerance under-budgets its own costs (rule ``cost_pricing``)."""

    def __init__(
        self,
        snaps: Sequence[VenueSnapshot],
        x0: np.ndarray,
        settings: OptimizerSettings,
        home_chain: str,
        facts: VenueFacts | None = None,
    ) -> None:
        """``facts``: the checker's venue-set facts of ``snaps`` (gas, fees, the Across routes),
        if the caller has them."""
        self.settings = settings
        self.x0 = x0
        if facts is None:
            from optimizer.checker_facts import VenueFacts as _Facts
            from optimizer.config import RiskLimits

            facts = _Facts.build(tuple(s.venue for s in snaps), RiskLimits(), settings, home_chain)
        self.gas_in, self.gas_out, fee = facts.gas_in, facts.gas_out, facts.fee
        n = len(snaps)
        if settings.cost_model == "linear" or not any("swap_fee" in s.state for s in snaps):
            # no venue zaps (what the masked arrays below give then)
            self.zap, self.any_zap = np.zeros(n, dtype=bool), False
            self.fee, self.swap, self.pool = fee, np.zeros(n), x0
        else:
            rows = [(s.state.get("swap_fee", math.nan), s.tvl_usd) for s in snaps]
            swap, tvl = np.array(rows, dtype=float).reshape(n, 2).T
            self.zap = np.isfinite(swap) & (swap >= 0) & (swap < 1) & np.isfinite(tvl) & (tvl > 0)
            self.any_zap = bool(self.zap.any())
            self.fee = np.where(self.zap, 0.0, fee)
            self.swap = np.where(self.zap, swap, 0.0)
            self.pool = np.where(self.zap, tvl, 0.0) + x0
        self.bridge = bridge_fee_curve([snaps[i] for i in facts.across], settings, home_chain)

    def price_usd(self, x: np.ndarray, bridges: Sequence[tuple[str, str, float]]) -> float:
        delta = np.asarray(x, dtype=float) - self.x0
        # below one base unit (1e-6 USD) is no move: the plan's x0 went through NAV units and back,
        # a hair off the books' position (at 10k venues that charged ~150 venues' gas for nothing)
        delta = np.where(np.abs(delta) < 1e-6, 0.0, delta)
        moved = delta != 0
        gas = np.where(delta > 0, self.gas_in, self.gas_out)
        cost = gas + self.fee * np.abs(delta)
        if self.any_zap:  # (no zap venue: + 0 changes no sum)
            zap_in = uniswap.zap_cost_usd(np.maximum(delta, 0.0), self.pool, self.swap, exit=False)
            zap_out = uniswap.zap_cost_usd(np.maximum(-delta, 0.0), self.pool, self.swap, exit=True)
            cost = cost + np.where(self.zap, zap_in + zap_out, 0.0)
        venues = total(np.where(moved, cost, 0.0))
        legs = sum(
            float(self.bridge(u)) + leg_gas_usd(self.settings, dest) for _, dest, u in bridges
        )
        return venues + legs
