"""Each limit of ``optimizer/limits.py`` built alone against a small cycle, its constraint checked
by itself (cvxportfolio's ``_build_constraint`` + ``cons.value()`` pattern, ``tests/test_constraints.py``
there): ``LimitRig.holds(x_usd)`` evaluates the limit's constraints at a point, ``LimitRig.most(...)``
solves the tiny LP "how far can this expression go under this limit alone" on HiGHS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pytest

from core.types import PortfolioState, VenueCosts, VenueKind, VenueSnapshot
from optimizer import OptimizerSettings, RiskLimits
from optimizer.config import LiquidityFloor
from optimizer.cycle import CycleData, build_cycle, queued_exits
from optimizer.limits import (
    GroupCaps,
    Limit,
    LiquidityFloors,
    MinIdle,
    ModelVars,
    RiskBudget,
    Turnover,
    VenueBox,
)
from optimizer.testing import make_snapshot

NAV_USD = 1_000_000.0
SETTINGS = OptimizerSettings(limit_buffer_ratio=0.0)


@dataclass
class LimitRig:
    """One limit's constraints on their own variables: ``x`` (positions / NAV), ``idle``."""

    limit: Limit
    cycle: CycleData
    x: cp.Variable
    idle: cp.Expression
    constraints: list[cp.Constraint]
    flight_constraints: list[cp.Constraint]

    def holds(self, x_usd: Sequence[float]) -> bool:
        """Every constraint of the limit at ``x_usd`` (auxiliary variables free: the best case for
        them, found by an LP, as the full model would)."""
        fixed = [self.x == np.asarray(x_usd, dtype=float) / NAV_USD]
        problem = cp.Problem(cp.Minimize(0), self.constraints + self.flight_constraints + fixed)
        problem.solve(solver=cp.HIGHS)
        return problem.status == cp.OPTIMAL

    def holds_directly(self, x_usd: Sequence[float]) -> bool:
        """``cons.value()`` at ``x_usd``, for limits with no auxiliary variable."""
        self.x.value = np.asarray(x_usd, dtype=float) / NAV_USD
        return all(bool(c.value(tolerance=1e-9)) for c in self.constraints)

    def most(self, weights: Sequence[float]) -> float:
        """max Σ w_i x_i (USD) under this limit alone, x >= 0 and Σ x <= the investable budget."""
        w = np.asarray(weights, dtype=float)
        budget = [self.x >= 0, cp.sum(self.x) <= self.cycle.investable]
        problem = cp.Problem(
            cp.Maximize(w @ self.x), self.constraints + self.flight_constraints + budget
        )
        problem.solve(solver=cp.HIGHS)
        assert problem.status == cp.OPTIMAL, problem.status
        return float(problem.value) * NAV_USD


def limit_alone(
    limit: Limit,
    snaps: Sequence[VenueSnapshot],
    positions_usd: dict[str, float] | None = None,
    limits: RiskLimits | None = None,
    in_flight_usd: float = 0.0,
) -> LimitRig:
    """Build ``limit`` against the cycle of ``snaps`` with NAV 1M USD (the rest idle on ethereum),
    and refresh it with that cycle's numbers, as ``AllocationModel`` does for all of them."""
    positions = positions_usd or {}
    portfolio = PortfolioState(
        positions_usd=positions,
        idle_usd=NAV_USD - sum(positions.values()) - in_flight_usd,
        in_flight_usd=in_flight_usd,
    )
    cycle = build_cycle(snaps, portfolio, limits or RiskLimits(), SETTINGS, "ethereum", buffer=0.0)
    n = len(cycle.venues)
    x = cp.Variable(n, name="x")
    idle = cycle.investable - cp.sum(x)
    queued_idx = np.nonzero(queued_exits(cycle.venues, SETTINGS))[0]
    flight = None
    flight_constraints: list[cp.Constraint] = []
    if len(queued_idx):
        flight = cp.Variable(len(queued_idx), nonneg=True, name="in_flight")
        flight_constraints = [flight >= cycle.x0[queued_idx] - x[queued_idx]]
        idle = idle - cp.sum(flight)
    m = ModelVars(
        x=x,
        idle=idle,
        venues=cycle.venues,
        settings=SETTINGS,
        home_chain="ethereum",
        flight=flight,
        queued_idx=queued_idx,
    )
    constraints = limit.build(m)
    limit.update(cycle)
    return LimitRig(limit, cycle, x, idle, constraints, flight_constraints)


def three() -> list[VenueSnapshot]:
    return [
        make_snapshot("a", protocol="aave-v3", risk_score=2.0, exit_liquidity_usd=50_000),
        make_snapshot("b", protocol="compound-v3", chain="arbitrum", risk_score=4.0),
        make_snapshot(
            "c",
            kind=VenueKind.STAKING,
            protocol="lido",
            risk_score=6.0,
            exit_days=3.0,
            costs=VenueCosts(),
        ),
    ]


def test_venue_box_caps_each_venue_and_keeps_what_cannot_leave():
    limits = RiskLimits(max_venue_ratio=0.3)
    rig = limit_alone(VenueBox(), three(), {"a": 200_000.0}, limits)
    assert rig.most([1, 0, 0]) == pytest.approx(300_000, rel=1e-9)
    assert rig.most([0, 1, 0]) == pytest.approx(300_000, rel=1e-9)
    # a holds 200k and its pool lets 50k out now: at least 150k stays
    assert -rig.most([-1, 0, 0]) == pytest.approx(150_000, rel=1e-9)
    assert rig.holds_directly([300_000, 0, 0]) and not rig.holds_directly([300_001, 0, 0])
    assert not rig.holds_directly([149_000, 0, 0])


def test_min_idle_keeps_its_share_idle():
    rig = limit_alone(MinIdle(RiskLimits(min_idle_ratio=0.05)), three())
    assert rig.most([1, 1, 1]) == pytest.approx(950_000, rel=1e-9)
    assert rig.holds_directly([950_000, 0, 0]) and not rig.holds_directly([950_001, 0, 0])


def test_group_caps_bind_the_group_and_nothing_else():
    rig = limit_alone(GroupCaps("chain", {"ethereum": 0.4}), three())
    assert rig.most([1, 0, 1]) == pytest.approx(400_000, rel=1e-9)  # a and c are on ethereum
    assert rig.most([0, 1, 0]) == pytest.approx(NAV_USD, rel=1e-9)  # b is not
    assert not rig.holds_directly([300_000, 0, 100_001])


def test_a_dependency_cap_counts_a_venue_against_every_protocol_it_rests_on():
    snaps = [
        make_snapshot("steth-lend", protocol="aave-v3", dependencies=("lido",)),
        make_snapshot("lido", kind=VenueKind.STAKING, protocol="lido"),
        make_snapshot("plain", protocol="compound-v3"),
    ]
    rig = limit_alone(GroupCaps("dependency", {"lido": 0.25}), snaps)
    assert rig.most([1, 1, 0]) == pytest.approx(250_000, rel=1e-9)
    assert rig.most([0, 0, 1]) == pytest.approx(NAV_USD, rel=1e-9)


def test_the_risk_budget_bounds_the_nav_weighted_score():
    rig = limit_alone(RiskBudget(RiskLimits(max_avg_risk_score=3.0)), three())
    # scores 2, 4, 6 and idle 0: Σ r_i x_i <= 3 NAV
    assert rig.most([2, 4, 6]) == pytest.approx(3 * NAV_USD, rel=1e-9)
    assert rig.holds_directly([0, 0, 500_000]) and not rig.holds_directly([0, 0, 500_001])


def test_a_liquidity_floor_counts_idle_and_what_leaves_in_time():
    floors = RiskLimits(liquidity_floors=[LiquidityFloor(days=1, min_ratio=0.6)])
    rig = limit_alone(LiquidityFloors(floors), three())
    # c (3-day queue) never counts within a day: at most 40 % may go there
    assert rig.most([0, 0, 1]) == pytest.approx(400_000, rel=1e-6)
    # a counts only up to its exit liquidity (50k): 40 % + 50k may go to a and c together
    assert rig.most([1, 0, 1]) == pytest.approx(450_000, rel=1e-6)
    assert rig.most([0, 1, 0]) == pytest.approx(NAV_USD, rel=1e-6)  # b is instant and deep
    assert rig.holds([0, 0, 400_000]) and not rig.holds([0, 0, 401_000])


def test_the_turnover_limit_bounds_the_sum_of_moves():
    rig = limit_alone(Turnover(RiskLimits(max_turnover_ratio=0.1)), three(), {"a": 300_000.0})
    assert rig.most([0, 1, 0]) == pytest.approx(100_000, rel=1e-6)  # new money moved
    assert rig.holds([250_000, 50_000, 0]) and not rig.holds([240_000, 61_000, 0])
