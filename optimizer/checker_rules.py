"""The checker's report (violations in words, their relative size, the utilisation of every limit),
its helpers, and the rules that read a venue's state keys (NFT rentals' floor drawdown, loops'
health factor, leverage and collateral discount). Part of the independent checker
(:mod:`optimizer.checker`): shares no code with the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.types import VenueSnapshot
from optimizer.config import RiskLimits

__all__ = ["CheckReport", "Enough", "amounts", "check_state_rules", "ratio"]


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
