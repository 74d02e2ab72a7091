"""The independent checker: every limit, recomputed in NumPy from the raw inputs.

It shares no code with the model (no cvxpy, no PWL, no :mod:`optimizer.cycle`): it reads the
snapshots, the portfolio, the config and a proposed allocation, and returns the violations in
words and the utilisation of every limit. A plan executes only if this list is empty.

Rules (all in USD, with a slack ``τ = check_tolerance_ratio · NAV``):

- conservation: ``Σ target + idle + locked + in_flight + Σ_queued (x0_i - x_i)⁺ = NAV``; no negative
  amounts. A withdrawal from a *queued* venue (``exit_days > instant_exit_days``: a withdrawal queue,
  a redemption delay) goes in flight and lands days later, so it is not in ``idle``: an allocation
  whose idle counts it (a plan funding a deposit with it) is rejected (``queued_withdrawal``);
- withdrawal bound: ``x0_i - x_i <= min(x0_i, exit_liquidity_i)``;
- frozen venues do not grow: ``x_i <= x0_i``; capacity bounds growth only: ``x_i <= max(capacity_i, x0_i)``
  (capacity is what the venue can take from us now, not a risk limit: a position above a capacity that
  shrank may be held, never grown);
- per-venue caps (USD, share of NAV, share of TVL after us), group caps (kind, chain, protocol,
  dependency), risk budget: ``exposure <= max(cap, forced)`` where ``forced`` is the exposure of
  ``lb_i = x0_i - min(x0_i, exit_liquidity_i)``, what cannot leave this cycle;
- floors: ``idle >= min_idle_ratio NAV`` (idle now, nothing in flight);
  ``idle + in_flight landing within D + Σ_{e_i <= D} min(x_i, L_i) >= φ_D NAV``, where a queued
  withdrawal of this plan lands after its venue's ``e_i``, a known part of ``in_flight`` after its
  own horizon (``in_flight_known``) and the rest only within the longest ``e_i`` of any venue;
- turnover: ``Σ |x_i - x0_i| <= T NAV``.

``costs_usd`` checks the state *after* a plan that paid that much (gas, fees) out of NAV, as the
executor books it: conservation and every share-of-NAV limit are then against ``NAV - costs``.

Each violation comes with its relative size (``CheckReport.excess``): ``(used - allowed)/allowed``
for a cap, ``(required - available)/required`` for a floor, ``inf`` for the rules that are not
limits with a size (conservation, locked, withdrawal bound, frozen, negative amounts), so that a
caller can tell a drift of a hair past a limit from a real breach (README §7).

Utilisation is ``used / allowed`` for caps and ``required / available`` for floors (1 = binding,
above 1 = violated), under a bounded set of names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.types import PortfolioState, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits

UNKNOWN_SCORE = 10.0


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


def _amounts(values) -> np.ndarray:
    """Feed amounts as the rules read them: NaN counts as 0 (unknown liquidity lets nothing out)."""
    a = np.asarray(values, dtype=float)
    return np.maximum(np.where(np.isnan(a), 0.0, a), 0.0)


def _ratio(used: float, allowed: float) -> float:
    if allowed > 0:
        return float(used / allowed)
    return 0.0 if used <= 0 else math.inf


def check_allocation(
    snaps: Sequence[VenueSnapshot],
    portfolio: PortfolioState,
    target_usd: Mapping[str, float],
    idle_usd: float,
    limits: RiskLimits,
    settings: OptimizerSettings,
    home_chain: str,
    costs_usd: float = 0.0,
    in_flight_known: Sequence[tuple[float, float]] = (),
) -> CheckReport:
    """``in_flight_known``: ``(days until it lands, USD)`` for the parts of ``portfolio.in_flight_usd``
    whose landing time is known (the rest counts only toward floors at least as long as the longest
    exit time of any venue)."""
    rep = CheckReport()
    nav = float(portfolio.nav_usd) - float(costs_usd)
    tol = settings.check_tolerance_ratio * max(nav, 1.0)
    ids = [s.venue.id for s in snaps]
    known = set(ids)
    x0 = np.array([max(float(portfolio.positions_usd.get(i, 0.0)), 0.0) for i in ids])
    x = np.array([float(target_usd.get(i, portfolio.positions_usd.get(i, 0.0))) for i in ids])
    locked = sum(max(float(v), 0.0) for k, v in portfolio.positions_usd.items() if k not in known)
    exit_liq = _amounts([s.exit_liquidity_usd for s in snaps])
    stay = x0 - np.minimum(x0, exit_liq)  # what cannot leave this cycle
    bad = rep.add

    def over(used: float, allowed: float) -> float:
        return (used - allowed) / allowed if allowed > 0 else math.inf

    def under(need: float, have: float) -> float:
        return (need - have) / need if need > 0 else math.inf

    # a withdrawal from a queued venue is in flight after the plan, not idle
    own_exit = np.array([float(s.venue.exit_days) for s in snaps])
    queued = own_exit > settings.instant_exit_days
    new_flight = np.where(queued, np.maximum(x0 - x, 0.0), 0.0)
    flight_usd = float(new_flight.sum())
    total = float(x.sum()) + idle_usd + locked + float(portfolio.in_flight_usd) + flight_usd
    if abs(total - nav) > tol:
        if flight_usd > tol and abs(total - flight_usd - nav) <= tol:
            names = ", ".join(
                f"{ids[i]} ({new_flight[i]:,.2f} USD, {own_exit[i]:g} d)"
                for i in np.nonzero(new_flight > 0)[0][:5]
            )
            bad(
                f"queued_withdrawal: idle {idle_usd:,.2f} USD counts {flight_usd:,.2f} USD withdrawn from queued venues "
                f"({names}), which is in flight until it settles, not idle"
            )
        else:
            bad(f"conservation: allocation sums to {total:,.2f} USD but NAV is {nav:,.2f} USD")
    if idle_usd < -tol:
        bad(f"conservation: idle is negative ({idle_usd:,.2f} USD)")
    unknown = set(target_usd) - known
    for vid in sorted(unknown):
        if abs(float(target_usd[vid]) - float(portfolio.positions_usd.get(vid, 0.0))) > tol:
            bad(f"locked: venue {vid} has no snapshot and must hold, but its target moves")
    frozen = np.array([s.frozen for s in snaps], dtype=bool)
    capacity = _amounts([s.curve.capacity_usd for s in snaps])
    for i in np.nonzero(x < -tol)[0]:
        bad(f"non_negative: venue {ids[i]} target {x[i]:,.2f} USD")
    for i in np.nonzero(x0 - x > np.minimum(x0, exit_liq) + tol)[0]:
        bad(
            f"withdrawal_bound: venue {ids[i]} withdraws {x0[i] - x[i]:,.2f} USD, exit liquidity is {exit_liq[i]:,.2f} USD"
        )
    for i in np.nonzero(frozen & (x > x0 + tol))[0]:
        bad(
            f"frozen: venue {ids[i]} is frozen ({snaps[int(i)].frozen_reason}) and grows {x0[i]:,.2f} -> {x[i]:,.2f} USD"
        )
    # capacity bounds growth, not holdings: above a capacity that shrank the position may stay (x0 >= stay)
    room = np.maximum(capacity, x0)
    for i in np.nonzero(x > room + tol)[0]:
        bad(
            f"capacity: venue {ids[i]} grows {x0[i]:,.2f} -> {x[i]:,.2f} USD above capacity {capacity[i]:,.2f} USD",
            over(x[i], room[i]),
        )

    def per_venue(name: str, caps: np.ndarray, what: str) -> None:
        allowed = np.maximum(caps, stay)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(
                allowed > 0, x / np.where(allowed > 0, allowed, 1.0), np.where(x <= 0, 0.0, np.inf)
            )
        rep.utilization[f"{name}:max"] = float(util.max()) if len(util) else 0.0
        for i in np.nonzero(x > allowed + tol)[0]:
            bad(
                f"{name}: venue {ids[i]} holds {x[i]:,.2f} USD above {what} ({allowed[i]:,.2f} USD)",
                over(x[i], allowed[i]),
            )

    if limits.max_venue_usd is not None:
        per_venue(
            "venue_usd",
            np.full(len(ids), limits.max_venue_usd),
            f"max_venue_usd {limits.max_venue_usd:,.0f}",
        )
    per_venue(
        "venue_ratio",
        np.full(len(ids), limits.max_venue_ratio * nav),
        f"max_venue_ratio {limits.max_venue_ratio:g} of NAV",
    )
    if limits.max_venue_tvl_ratio is not None:
        r = limits.max_venue_tvl_ratio
        tvl = _amounts([s.tvl_usd for s in snaps])
        # x / (TVL + x) <= r
        caps = np.full(len(ids), math.inf) if r >= 1 else r * tvl / (1 - r)
        per_venue("venue_tvl", caps, f"max_venue_tvl_ratio {r:g} of TVL after us")

    illiquid_kinds = {str(k) for k in limits.illiquid_kinds}
    groups = (
        ("kind", {str(k): v for k, v in limits.max_kind_ratio.items()}, lambda v: (str(v.kind),)),
        ("chain", dict(limits.max_chain_ratio), lambda v: (v.chain,)),
        ("protocol", dict(limits.max_protocol_ratio), lambda v: (v.protocol,)),
        ("dependency", dict(limits.max_dependency_ratio), lambda v: (v.protocol, *v.dependencies)),
        (
            "illiquid",
            {"illiquid": limits.max_illiquid_ratio}
            if limits.max_illiquid_ratio is not None
            else {},
            lambda v: ("illiquid",) if str(v.kind) in illiquid_kinds else (),
        ),
    )

    for family, caps_cfg, members in groups:
        if not caps_cfg:
            continue
        index: dict[str, list[int]] = {key: [] for key in caps_cfg}
        for j, s in enumerate(snaps):
            for key in set(members(s.venue)):
                if key in index:
                    index[key].append(j)
        for key, ratio in caps_cfg.items():
            sel = np.zeros(len(snaps), dtype=bool)
            sel[index[key]] = True
            exposure = float(x[sel].sum()) if len(sel) else 0.0
            forced = float(stay[sel].sum()) if len(sel) else 0.0
            allowed = max(ratio * nav, forced)
            rep.utilization[f"{family}:{key}"] = _ratio(exposure, allowed)
            if exposure > allowed + tol:
                names = ", ".join(ids[i] for i in np.nonzero(sel & (x > 0))[0][:5])
                bad(
                    f"max_{family}_ratio[{key}]: exposure {exposure:,.2f} USD above {ratio:g} of NAV ({allowed:,.2f} USD); venues {names}",
                    over(exposure, allowed),
                )

    _check_state_rules(rep, snaps, ids, x, x0, stay, limits, tol)

    if limits.max_avg_risk_score is not None:
        scores = np.array([float(s.venue.risk_score) for s in snaps])
        used = float(scores @ x) + UNKNOWN_SCORE * locked
        allowed = max(
            limits.max_avg_risk_score * nav, float(scores @ stay) + UNKNOWN_SCORE * locked
        )
        rep.utilization["risk_score"] = _ratio(used, allowed)
        if used > allowed + tol * 10:
            bad(
                f"max_avg_risk_score: NAV-weighted risk score {used / nav:.4f} above {limits.max_avg_risk_score:g}",
                over(used, allowed),
            )

    need_idle = limits.min_idle_ratio * nav
    rep.utilization["min_idle"] = _ratio(need_idle, idle_usd) if need_idle > 0 else 0.0
    if idle_usd < need_idle - tol:
        bad(
            f"min_idle_ratio: idle {idle_usd:,.2f} USD below {limits.min_idle_ratio:g} of NAV ({need_idle:,.2f} USD)",
            under(need_idle, idle_usd),
        )

    if limits.liquidity_floors:
        exit_days = np.array(
            [
                s.venue.exit_days + (settings.bridge_days if s.venue.chain != home_chain else 0.0)
                for s in snaps
            ]
        )
        liquid_part = np.minimum(np.maximum(x, 0.0), exit_liq)
        longest = float(exit_days.max()) if len(exit_days) else 0.0
        known_usd = float(sum(u for _, u in in_flight_known))
        for f in limits.liquidity_floors:
            landing = float(new_flight[exit_days <= f.days].sum()) + float(
                sum(u for d, u in in_flight_known if d <= f.days)
            )
            if f.days >= longest:
                landing += max(float(portfolio.in_flight_usd) - known_usd, 0.0)
            liquid = idle_usd + landing + float(liquid_part[exit_days <= f.days].sum())
            need = f.min_ratio * nav
            rep.utilization[f"liquidity:{f.days:g}d"] = _ratio(need, liquid) if need > 0 else 0.0
            if liquid < need - tol:
                bad(
                    f"liquidity_floors[{f.days:g}d]: {liquid:,.2f} USD withdrawable within {f.days:g} days, below {f.min_ratio:g} of NAV ({need:,.2f} USD)",
                    under(need, liquid),
                )

    if limits.max_turnover_ratio is not None:
        moved = float(np.abs(x - x0).sum())
        allowed = limits.max_turnover_ratio * nav
        rep.utilization["turnover"] = _ratio(moved, allowed)
        if moved > allowed + tol:
            bad(
                f"max_turnover_ratio: moves {moved:,.2f} USD, above {limits.max_turnover_ratio:g} of NAV ({allowed:,.2f} USD)",
                over(moved, allowed),
            )
    return rep


def _check_state_rules(
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
