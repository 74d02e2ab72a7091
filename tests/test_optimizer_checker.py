"""The independent checker catches a deliberately violating allocation for every limit."""

from __future__ import annotations

import pytest

from core.types import PortfolioState, VenueKind
from optimizer import OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from optimizer.config import LiquidityFloor
from optimizer.testing import FlatCurve, make_snapshot

NAV = 1_000_000.0
SETTINGS = OptimizerSettings()

SNAPS = [
    make_snapshot("a", apr=0.10, risk_score=8, dependencies=("lido",)),
    make_snapshot(
        "b", apr=0.05, protocol="compound-v3", chain="arbitrum", exit_liquidity_usd=100_000
    ),
    make_snapshot("slow", apr=0.04, kind=VenueKind.STAKING, protocol="lido", exit_days=7),
    make_snapshot("frozen", apr=0.04, protocol="morpho", frozen=True),
    make_snapshot("small", FlatCurve(0.04, capacity_usd=50_000), protocol="spark", tvl_usd=450_000),
]
START = PortfolioState(positions_usd={"b": 200_000, "frozen": 100_000}, idle_usd=700_000)


def check(target: dict[str, float], limits: RiskLimits, portfolio: PortfolioState = START):
    full = {s.venue.id: portfolio.positions_usd.get(s.venue.id, 0.0) for s in SNAPS} | target
    idle = portfolio.nav_usd - sum(full.values())
    return check_allocation(SNAPS, portfolio, full, idle, limits, SETTINGS, "ethereum")


def assert_caught(rep, name: str) -> None:
    assert any(v.startswith(name) for v in rep.violations), rep.violations


def test_holding_passes_everything():
    rep = check({}, RiskLimits())
    assert rep.ok, rep.violations


@pytest.mark.parametrize(
    ("name", "target", "limits"),
    [
        ("venue_usd", {"a": 300_000}, RiskLimits(max_venue_usd=250_000)),
        ("venue_ratio", {"a": 300_000}, RiskLimits(max_venue_ratio=0.25)),
        ("venue_tvl", {"small": 50_000 + 1_000}, RiskLimits(max_venue_tvl_ratio=0.1)),
        (
            "max_kind_ratio[lending]",
            {"a": 600_000},
            RiskLimits(max_kind_ratio={VenueKind.LENDING: 0.6}),
        ),
        (
            "max_chain_ratio[arbitrum]",
            {"b": 300_000},
            RiskLimits(max_chain_ratio={"arbitrum": 0.25}),
        ),
        (
            "max_protocol_ratio[aave-v3]",
            {"a": 300_000},
            RiskLimits(max_protocol_ratio={"aave-v3": 0.25}),
        ),
        (
            "max_dependency_ratio[lido]",
            {"a": 200_000, "slow": 200_000},
            RiskLimits(max_dependency_ratio={"lido": 0.35}),
        ),
        ("max_avg_risk_score", {"a": 600_000}, RiskLimits(max_avg_risk_score=4.0)),
        ("min_idle_ratio", {"a": 650_000}, RiskLimits(min_idle_ratio=0.1)),
        (
            "liquidity_floors[1d]",
            {"slow": 650_000},
            RiskLimits(liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.3),)),
        ),
        ("max_turnover_ratio", {"a": 300_000}, RiskLimits(max_turnover_ratio=0.2)),
        ("frozen", {"frozen": 150_000}, RiskLimits()),
        ("withdrawal_bound", {"b": 50_000}, RiskLimits()),
        ("capacity", {"small": 60_000}, RiskLimits()),
    ],
)
def test_checker_catches(name, target, limits):
    assert_caught(check(target, limits), name)


def test_checker_catches_liquidity_above_exit_liquidity():
    # 'b' holds 300k but only 100k can leave now: only 100k of it counts as liquid
    limits = RiskLimits(liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.5),))
    # 1d-liquid: 250k idle + 100k of b + 100k frozen
    rep = check({"b": 300_000, "slow": 350_000}, limits)
    assert_caught(rep, "liquidity_floors[1d]")


def test_checker_catches_lost_capital_and_negative_amounts():
    full = {s.venue.id: START.positions_usd.get(s.venue.id, 0.0) for s in SNAPS} | {"a": 100_000}
    # idle not reduced
    rep = check_allocation(SNAPS, START, full, 700_000.0, RiskLimits(), SETTINGS, "ethereum")
    assert_caught(rep, "conservation")
    full = full | {"a": -5_000.0}
    rep = check_allocation(SNAPS, START, full, 705_000.0, RiskLimits(), SETTINGS, "ethereum")
    assert_caught(rep, "non_negative")


def test_forced_exposure_above_a_cap_is_tolerated_but_not_growth():
    portfolio = PortfolioState(positions_usd={"b": 500_000}, idle_usd=500_000)
    limits = RiskLimits(max_venue_ratio=0.3)
    # b can only shed 100k: 400k stays, above the 300k cap, and that is not this plan's fault
    assert check({"b": 400_000}, limits, portfolio).ok
    assert_caught(check({"b": 450_000}, limits, portfolio), "venue_ratio")


def test_utilization_names_are_bounded_and_binding_reads_one():
    limits = RiskLimits(
        min_idle_ratio=0.2,
        max_kind_ratio={VenueKind.LENDING: 0.5},
        max_turnover_ratio=0.5,
        liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.2),),
        max_avg_risk_score=5,
    )
    rep = check({"a": 100_000}, limits)
    assert set(rep.utilization) == {
        "venue_ratio:max",
        "kind:lending",
        "risk_score",
        "min_idle",
        "liquidity:1d",
        "turnover",
    }
    rep = check({"a": 300_000}, RiskLimits(max_venue_ratio=0.3))
    assert rep.ok and rep.utilization["venue_ratio:max"] == pytest.approx(1.0)


# -- queued withdrawals are in flight, not idle (README §4) -------------------------------------------
QUEUED = PortfolioState(positions_usd={"slow": 300_000, "b": 200_000}, idle_usd=500_000)


def check_with_idle(
    target: dict[str, float],
    idle: float,
    limits: RiskLimits,
    portfolio: PortfolioState = QUEUED,
    **kw,
):
    full = {s.venue.id: portfolio.positions_usd.get(s.venue.id, 0.0) for s in SNAPS} | target
    return check_allocation(SNAPS, portfolio, full, idle, limits, SETTINGS, "ethereum", **kw)


def test_checker_rejects_idle_that_counts_a_queued_withdrawal():
    # 'slow' (7-day queue) gives back 200k, and the plan spends it on 'a' in the same breath
    # idle = NAV - Σ targets: counts the 200k
    rep = check({"slow": 100_000, "a": 700_000}, RiskLimits(), QUEUED)
    assert_caught(rep, "queued_withdrawal")
    assert "slow" in rep.violations[0]
    # booked as it happens (200k in flight, idle pays the deposit): the deposit is more than idle holds
    rep = check_with_idle({"slow": 100_000, "a": 700_000}, 500_000 - 700_000, RiskLimits())
    assert_caught(rep, "conservation: idle is negative")
    # a plan that only deposits what is idle passes, with the 200k in flight
    rep = check_with_idle({"slow": 100_000, "a": 500_000}, 0.0, RiskLimits())
    assert rep.ok, rep.violations


def test_checker_min_idle_does_not_count_capital_in_flight():
    rep = check_with_idle({"slow": 100_000, "a": 450_000}, 50_000, RiskLimits(min_idle_ratio=0.1))
    assert_caught(rep, "min_idle_ratio")  # 50k idle; the 200k in flight does not count


def test_checker_counts_a_queued_withdrawal_toward_floors_at_its_horizon():
    target, idle = {"slow": 100_000, "a": 450_000}, 50_000
    week = RiskLimits(liquidity_floors=(LiquidityFloor(days=7, min_ratio=0.45),))
    day = RiskLimits(liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.45),))
    # within 7 days: 50k idle + 200k in flight + 100k left in slow + a (450k, instant) + b (100k liquid)
    assert check_with_idle(target, idle, week).ok
    # within 1 day: the 200k in flight (7-day queue) and 'slow' do not count: 50k + 450k + 100k of b ... enough
    assert check_with_idle(target, idle, day).ok
    tight = RiskLimits(liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.65),))
    assert_caught(check_with_idle(target, idle, tight), "liquidity_floors[1d]")
    assert check_with_idle(
        target, idle, RiskLimits(liquidity_floors=(LiquidityFloor(days=7, min_ratio=0.65),))
    ).ok


def test_checker_counts_capital_already_in_flight_at_its_known_horizon_or_the_longest_exit():
    pf = PortfolioState(positions_usd={"b": 200_000}, idle_usd=100_000, in_flight_usd=700_000)
    hold = {"b": 200_000}
    floor = lambda d, r: RiskLimits(liquidity_floors=(LiquidityFloor(days=d, min_ratio=r),))  # noqa: E731
    # origin unknown: counts only within the longest exit time of any venue (7 days here)
    assert_caught(check_with_idle(hold, 100_000, floor(1, 0.3), pf), "liquidity_floors[1d]")
    assert check_with_idle(hold, 100_000, floor(7, 0.8), pf).ok
    # known to land within 0.5 day: counts toward the 1-day floor
    assert check_with_idle(hold, 100_000, floor(1, 0.8), pf, in_flight_known=((0.5, 700_000),)).ok
    assert_caught(
        check_with_idle(hold, 100_000, floor(1, 0.8), pf, in_flight_known=((2.0, 700_000),)),
        "liquidity_floors[1d]",
    )
