"""Idle per chain (optimizer README §4c): capital on two chains is used where it is, a plan bridges
only what a chain lacks, per-chain floors hold, and the checker rejects a plan that spends idle a
chain does not have. Real HiGHS (the segment LP) and the cvxpy reference on the same problem."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from core.types import MoveAction, PortfolioState, VenueCosts
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.checker import CheckContext, check_allocation
from optimizer.testing import LPCurve, make_snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOME = "ethereum"
NAV = 1_000_000.0
FREE = OptimizerSettings(
    min_trade_usd=0.0, min_benefit_cost_ratio=0.0, hysteresis_apr=0.0, limit_buffer_ratio=0.0
)
COSTS = VenueCosts(deposit_usd=3.0, withdraw_usd=3.0, fee_bps=1.0)


def two_chain_market():
    """The best venue is on arbitrum, the second best on home; 300k of idle already on arbitrum."""
    snaps = [
        make_snapshot("arb-lend", apr=0.09, chain="arbitrum", protocol="a", costs=COSTS),
        make_snapshot("home-lend", apr=0.07, protocol="b", costs=COSTS),
        make_snapshot("home-low", apr=0.02, protocol="c", costs=COSTS),
    ]
    pf = PortfolioState(
        positions_usd={},
        idle_usd=NAV,
        idle_by_chain_usd={HOME: 700_000.0, "arbitrum": 300_000.0},
    )
    return snaps, pf


def bridges(d):
    return [(m.from_chain, m.to_chain, m.amount_usd) for m in d.plan.moves if m.action == "bridge"]


def test_capital_on_two_chains_is_used_in_place_and_nothing_is_bridged() -> None:
    snaps, pf = two_chain_market()
    limits = RiskLimits(max_venue_ratio=0.3, min_idle_ratio=0.02)
    d = Optimizer(limits, FREE, HOME).decide(snaps, pf, NOW)
    assert d.status == "optimal" and d.plan.execute, d.reason
    t = d.allocation.target_usd
    # arbitrum's 300k fills the arbitrum venue to its cap; home capital goes to home venues
    assert t["arb-lend"] == pytest.approx(300_000, abs=1.0)
    assert t["home-lend"] == pytest.approx(300_000, abs=1.0)
    assert bridges(d) == []
    assert t["home-low"] == pytest.approx(300_000, abs=1.0)
    assert d.allocation.idle_by_chain_usd["arbitrum"] == pytest.approx(0.0, abs=1.0)
    assert d.allocation.idle_by_chain_usd[HOME] == pytest.approx(100_000, abs=1.0)


def test_a_plan_bridges_only_the_shortfall_once() -> None:
    snaps, pf = two_chain_market()
    limits = RiskLimits(max_venue_ratio=0.45)
    d = Optimizer(limits, FREE, HOME).decide(snaps, pf, NOW)
    assert d.status == "optimal" and d.plan.execute, d.reason
    t = d.allocation.target_usd
    assert t["arb-lend"] == pytest.approx(450_000, abs=1.0)
    legs = bridges(d)
    assert len(legs) == 1 and legs[0][:2] == (HOME, "arbitrum")
    assert legs[0][2] == pytest.approx(150_000, abs=1.0)  # 450k - the 300k already there
    # the plan's cost counts the one leg (gas + 5 bps) and the two deposits
    expected = FREE.bridge_gas_usd + FREE.bridge_fee_bps / 1e4 * legs[0][2]
    moves = [m for m in d.plan.moves if m.action != MoveAction.BRIDGE]
    assert d.plan.cost_usd == pytest.approx(expected + sum(m.cost_usd for m in moves), rel=1e-9)


def test_withdrawn_capital_stays_on_its_chain_for_a_venue_there() -> None:
    """A rotation inside arbitrum: withdraw from the old venue, deposit into the new, no legs."""
    snaps = [
        make_snapshot("arb-old", apr=0.0, chain="arbitrum", protocol="a", costs=COSTS),
        make_snapshot("arb-new", apr=0.09, chain="arbitrum", protocol="b", costs=COSTS),
        make_snapshot("home", apr=0.03, protocol="c", costs=COSTS),
    ]
    pf = PortfolioState(
        positions_usd={"arb-old": 400_000.0, "home": 400_000.0},
        idle_usd=200_000.0,
        idle_by_chain_usd={HOME: 200_000.0},
    )
    d = Optimizer(RiskLimits(max_venue_ratio=0.4), FREE, HOME).decide(snaps, pf, NOW)
    assert d.status == "optimal" and d.plan.execute, d.reason
    assert d.allocation.target_usd["arb-new"] == pytest.approx(400_000, abs=1.0)
    assert d.allocation.target_usd["arb-old"] == pytest.approx(0.0, abs=1.0)
    assert bridges(d) == []  # before per-chain idle: 400k to home and 400k back, 2 legs of fees


def test_a_chain_floor_is_kept_on_that_chain() -> None:
    snaps, pf = two_chain_market()
    limits = RiskLimits(max_venue_ratio=0.3, min_idle_by_chain_usd={"arbitrum": 50_000.0})
    d = Optimizer(limits, FREE, HOME).decide(snaps, pf, NOW)
    assert d.status == "optimal", d.reason
    assert d.allocation.idle_by_chain_usd["arbitrum"] == pytest.approx(50_000, abs=1.0)
    # the venue there still fills to its cap: 250k of arbitrum's idle, and the 50k the floor keeps
    # back is worth bridging from home (2 % APR more, 7 bps once)
    assert d.allocation.target_usd["arb-lend"] == pytest.approx(300_000, abs=1.0)
    legs = bridges(d)
    assert len(legs) == 1 and legs[0][:2] == (HOME, "arbitrum")
    assert legs[0][2] == pytest.approx(50_000, abs=1.0)


def test_the_checker_rejects_spending_idle_a_chain_does_not_have() -> None:
    snaps, pf = two_chain_market()
    limits = RiskLimits()
    target = {"arb-lend": 400_000.0, "home-lend": 300_000.0, "home-low": 0.0}
    idle = NAV - 700_000.0
    ctx = CheckContext(snaps, pf, limits, FREE, HOME)
    x = np.array([target[s.venue.id] for s in snaps])
    # no leg: arbitrum has 300k and the plan deposits 400k there
    rep = ctx.check(x, idle, bridges=[])
    assert not rep.ok and rep.violations[0].startswith("chain_idle[arbitrum]")
    assert "spends idle arbitrum does not have" in rep.violations[0]
    # a leg that brings the 100k from home: passes
    assert ctx.check(x, idle, bridges=[(HOME, "arbitrum", 100_000.0)]).ok
    # a leg from a chain that has nothing
    rep = ctx.check(x, idle, bridges=[("base", "arbitrum", 100_000.0)])
    assert not rep.ok and rep.violations[0].startswith("chain_idle[base]")
    # the total-only check (no routing given) cannot see it: that is what the legs are for
    assert check_allocation(snaps, pf, target, idle, limits, FREE, HOME).ok
    # a per-chain floor
    floors = RiskLimits(min_idle_by_chain_usd={HOME: 350_000.0})
    rep = CheckContext(snaps, pf, floors, FREE, HOME).check(
        x, idle, bridges=[(HOME, "arbitrum", 100_000.0)]
    )
    assert not rep.ok and "chain_idle[ethereum]" in rep.violations[0]


def test_idle_by_chain_must_add_up() -> None:
    snaps, _ = two_chain_market()
    pf = PortfolioState(positions_usd={}, idle_usd=NAV, idle_by_chain_usd={HOME: 10.0})
    d = Optimizer(RiskLimits(), FREE, HOME).decide(snaps, pf, NOW)
    assert d.status == "solver_error" and "idle_by_chain_usd sums to 10.00 USD" in d.reason


@pytest.mark.parametrize("share_on_arbitrum", [0.0, 0.3, 0.8])
def test_segment_simplex_and_cvxpy_agree_with_idle_on_several_chains(
    share_on_arbitrum: float,
) -> None:
    snaps = [
        make_snapshot(
            f"v{i}", LPCurve(2e5 * (1 + i), 3e6 * (1 + i), 0.2), chain=c, protocol=f"p{i}"
        )
        for i, c in enumerate(["arbitrum", "arbitrum", "base", HOME, HOME, "base"])
    ]
    arb = share_on_arbitrum * 600_000.0
    pf = PortfolioState(
        positions_usd={"v0": 200_000.0, "v3": 200_000.0},
        idle_usd=600_000.0,
        idle_by_chain_usd={HOME: 600_000.0 - arb, "arbitrum": arb},
    )
    limits = RiskLimits(max_venue_ratio=0.3, min_idle_by_chain_usd={"base": 20_000.0})
    opt = Optimizer(limits, FREE, HOME)
    d = opt.decide(snaps, pf, NOW)
    assert d.status == "optimal", d.reason
    model = opt._model
    seg = model.solve()
    ref = model.solve_cvxpy()
    assert seg.detail == "segment simplex"
    assert seg.objective == pytest.approx(ref.objective, rel=1e-6)
    # the cheaper the arbitrum idle, the less is bridged: the legs' total is what the chains lack
    assert d.allocation.idle_by_chain_usd["base"] >= 20_000 - 1.0
