"""Capital in flight whose landing the books know counts toward the liquidity floors it lands within.

Seen at scale ($50M over 1,000 venues): bridge legs above Across' instant limits stayed in flight
for a while; the optimizer counted that capital only within the longest exit time (3 days), so
the 1-day floor looked broken and every cycle held "infeasible" until the transfers landed. The
daemon now passes the ledger's landing horizons (bridges: Across' slow-fill window; queued
withdrawals: their venue's exit time) in ``PortfolioState.in_flight_landing``.
"""

from core.types import PortfolioState
from optimizer import Optimizer
from tests.test_optimizer_churn import HOME, LIMITS, SETTINGS, T0, market

NAV = 1_000_000.0


def portfolio(landing: tuple[tuple[float, float], ...]) -> PortfolioState:
    # 700k is on a bridge, 250k sits in Lido (3-day queue), only 50k is idle: within one day, only
    # the bridge can make the 30 % floor.
    return PortfolioState(
        positions_usd={"lido-steth": 250_000.0},
        idle_usd=50_000.0,
        in_flight_usd=700_000.0,
        in_flight_landing=landing,
    )


def test_unknown_landing_counts_only_within_the_longest_exit_time():
    decision = Optimizer(LIMITS, SETTINGS, HOME).decide(market(), portfolio(()), T0)
    assert decision.status == "infeasible"
    assert not decision.plan.execute


def test_a_bridge_landing_within_the_floor_makes_it_feasible():
    decision = Optimizer(LIMITS, SETTINGS, HOME).decide(
        market(), portfolio(((2 / 24, 700_000.0),)), T0
    )
    assert decision.status == "optimal", decision.reason
    assert decision.violations == ()
    # capital in flight is never invested: targets plus idle stay within what is not in flight
    assert (
        sum(decision.allocation.target_usd.values()) + decision.allocation.idle_usd
        <= NAV - 700_000.0 + 1e-6
    )


def test_landing_beyond_the_floor_does_not_count():
    decision = Optimizer(LIMITS, SETTINGS, HOME).decide(
        market(), portfolio(((2.0, 700_000.0),)), T0
    )
    assert decision.status == "infeasible"
