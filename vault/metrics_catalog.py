"""The catalog of the daemon's Prometheus metrics: every family, its help text and its label set,
created on a registry the daemon owns (never on prometheus_client's global default registry, so
tests can build as many as they like), and the closed label sets. :class:`vault.metrics.Metrics`
adds the recording methods the daemon calls.

Naming follows Prometheus practice: ``yieldvault_`` prefix, base units in the name (``_usd``,
``_seconds``, ``_ratio`` for decimals such as APR 0.05 = 5 %), ``_total`` on counters. Labels are
bounded: venue labels come only from configured venues (``Metrics.declare_venues``), feeds from
``Metrics.declare_feeds``, and outcome, solver status, feed error reason and cycle from the
fixed sets below.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from adapters.errors import REASONS
from optimizer.costs import MOVE_COST_KINDS

# The `_created` companions of every counter and histogram are noise for this daemon (it never
# resets a counter without restarting) and double the series count. The switch is process-wide.
prometheus_client.disable_created_metrics()

#: how a rebalance cycle ended
OUTCOMES: tuple[str, ...] = ("executed", "held", "gated", "failed")
#: what the solver (and the independent checker) said about the last problem; ``not_run`` when the
#: cycle failed before the solver could run (e.g. syncing positions with the venues failed)
SOLVER_STATUSES: tuple[str, ...] = (
    "optimal",
    "infeasible",
    "solver_error",
    "check_failed",
    "no_venues",
    "not_run",
)
#: why a feed poll or a venue's data was refused: the adapters' closed set (``adapters.errors.REASONS``)
#: plus ``other``, which counts anything outside it
FEED_ERROR_REASONS: tuple[str, ...] = (*sorted(REASONS), "other")
#: the daemon's periodic jobs
CYCLES: tuple[str, ...] = ("poll", "rebalance")
OPERATOR_ACTIONS: tuple[str, ...] = (
    "pause",
    "resume",
    "freeze",
    "unfreeze",
    "exit",
    "approve",
    "reject",
    "reload",
    "plan_results",
    "book_break",
    "guard_resume",
    "other",
)
#: the two parts of a venue's predicted yield, kept apart so emissions can be discounted
APR_COMPONENTS: tuple[str, ...] = ("real", "emission")

# A warm, DPP-compiled re-solve of a few venues takes milliseconds; a cold first solve or a large
# universe takes up to seconds (time_limit_seconds defaults to 10).
SOLVER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Loopback mock feeds answer in a few ms, public APIs in 50 ms to seconds; the timeout is 5 s.
FEED_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

VENUE_LABELS = ("venue", "kind", "chain")
#: the ``measure`` label of ``yieldvault_venue_risk_ratio``: a closed set per venue kind, read
#: from the snapshot's ``state`` (the adapters of the composite kinds set them)
RISK_MEASURES: dict[str, tuple[str, ...]] = {
    "loop": ("health_factor", "leverage", "liquidation_distance", "steth_eth_price"),
    "hedged_lp": ("funding_apr", "carry_apr", "residual_std_apr"),
    "nft_rental": ("floor_drawdown", "occupancy"),
}
#: the venue label of a guard that judges the whole portfolio (the NAV drawdown breaker)
GUARD_PORTFOLIO = "portfolio"


class VenueLike(Protocol):
    """Anything with a venue's id, kind and chain: ``core.types.Venue``, ``core.config.VenueConfig``."""

    id: str
    kind: Any
    chain: str


def _venue_key(venue: VenueLike | tuple[str, Any, str]) -> tuple[str, str, str]:
    if isinstance(venue, tuple):
        venue_id, kind, chain = venue
    else:
        venue_id, kind, chain = venue.id, venue.kind, venue.chain
    # str() of a StrEnum member is its value ("lp"), which is what the label must hold
    return (str(venue_id), str(kind), str(chain))


def _finite_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


class MetricFamilies:
    """Every yieldvault metric family, registered on ``registry`` (a fresh one when ``None``);
    the recording methods are :class:`vault.metrics.Metrics`'.

    ``started_at`` (Unix time, default: now) is where the last-success timestamps start.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, started_at: float | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.started_at = time.time() if started_at is None else started_at
        reg = self.registry
        self._venues: set[tuple[str, str, str]] = set()
        self._feeds: set[str] = set()
        self._guard_venues: set[str] = set()

        # process_* (CPU, memory, start time), python_info and python_gc_*, as on the default registry
        prometheus_client.ProcessCollector(registry=reg)
        prometheus_client.PlatformCollector(registry=reg)
        prometheus_client.GCCollector(registry=reg)

        self.build_info = Info(
            "yieldvault_build", "Version of the running daemon (value is always 1).", registry=reg
        )

        # portfolio
        self.nav_usd = Gauge(
            "yieldvault_nav_usd",
            "Net asset value: idle + positions + in flight, in USD.",
            registry=reg,
        )
        self.idle_usd = Gauge(
            "yieldvault_idle_usd", "Capital held idle on the home chain, in USD.", registry=reg
        )
        self.in_flight_usd = Gauge(
            "yieldvault_in_flight_usd",
            "Capital between venues (bridge legs, withdrawal queues), counted in NAV, in USD.",
            registry=reg,
        )
        self.portfolio_predicted_apr = Gauge(
            "yieldvault_portfolio_predicted_apr_ratio",
            "Predicted net APR of the target allocation at the last rebalance (decimal, 0.05 = 5 %).",
            registry=reg,
        )
        self.portfolio_realized_apr = Gauge(
            "yieldvault_portfolio_realized_apr_ratio",
            "Realized net APR of the NAV over the daemon's trailing window (decimal); NaN until known.",
            registry=reg,
        )
        self.bridge_transfers_in_flight = Gauge(
            "yieldvault_bridge_transfers_in_flight",
            "Bridge transfers sent and not yet filled.",
            registry=reg,
        )
        self.bridge_in_flight_usd = Gauge(
            "yieldvault_bridge_in_flight_usd",
            "USD value of bridge transfers not yet filled.",
            registry=reg,
        )
        self.unresolved_moves = Gauge(
            "yieldvault_unresolved_moves",
            "Moves sent to a venue whose outcome is not booked yet (replayed each cycle; the daemon holds meanwhile).",
            registry=reg,
        )
        self.reconciliation_breaks = Gauge(
            "yieldvault_reconciliation_breaks",
            "Venues whose report the books cannot explain (open breaks); the daemon holds meanwhile.",
            registry=reg,
        )
        self.ledger_integrity_ok = Gauge(
            "yieldvault_ledger_integrity_ok",
            "1 while the ledger file passes its checks; 0 once it was deleted, replaced or altered.",
            registry=reg,
        )

        # operator API
        self.operator_actions_total = Counter(
            "yieldvault_operator_actions_total",
            "Operator actions taken through the API (ok or refused), by action.",
            ["action"],
            registry=reg,
        )
        self.plans_awaiting = Gauge(
            "yieldvault_plans_awaiting",
            "Plans waiting for an operator's approval or a signer's report.",
            registry=reg,
        )

        # per venue
        self.allocation_usd = Gauge(
            "yieldvault_allocation_usd",
            "Current position value per venue, in USD.",
            VENUE_LABELS,
            registry=reg,
        )
        self.allocation_target_usd = Gauge(
            "yieldvault_allocation_target_usd",
            "Target position per venue from the last optimal solve, in USD.",
            VENUE_LABELS,
            registry=reg,
        )
        self.venue_predicted_apr = Gauge(
            "yieldvault_venue_predicted_apr_ratio",
            "Predicted marginal APR of a venue from its latest snapshot, by component (real or emission, "
            "before the emission haircut; decimal).",
            (*VENUE_LABELS, "component"),
            registry=reg,
        )
        self.venue_rate_forecast_shift = Gauge(
            "yieldvault_venue_rate_forecast_shift_ratio",
            "What the last decide's rate forecast added to a venue's rate (decimal APR): its expected "
            "average over the holding horizon minus its level now (optimizer.rate_forecast; 0 at spot "
            "or before a venue has enough history). Negative: a spike the optimizer expects to fade.",
            VENUE_LABELS,
            registry=reg,
        )
        self.venue_realized_apr = Gauge(
            "yieldvault_venue_realized_apr_ratio",
            "Realized APR of our position in a venue (decimal); NaN while there is no position history.",
            VENUE_LABELS,
            registry=reg,
        )
        self.venue_tvl_usd = Gauge(
            "yieldvault_venue_tvl_usd",
            "Total value locked in a venue per its feed, in USD.",
            VENUE_LABELS,
            registry=reg,
        )
        self.venue_exit_liquidity_usd = Gauge(
            "yieldvault_venue_exit_liquidity_usd",
            "What could be withdrawn from a venue right now, in USD.",
            VENUE_LABELS,
            registry=reg,
        )
        self.venue_risk = Gauge(
            "yieldvault_venue_risk_ratio",
            "A composite venue's risk state from its latest snapshot: a loop's health factor, "
            "leverage and liquidation distance, a hedged LP's funding, carry and residual risk "
            "(annual ratios), an NFT rental's floor drawdown and occupancy; dimensionless.",
            (*VENUE_LABELS, "measure"),
            registry=reg,
        )
        self.venue_observed_timestamp = Gauge(
            "yieldvault_venue_observed_timestamp_seconds",
            "Unix time the venue's latest good snapshot was observed at.",
            VENUE_LABELS,
            registry=reg,
        )
        self.venue_frozen = Gauge(
            "yieldvault_venue_frozen",
            "1 while a venue is frozen (bad or stale data: may shrink, may not grow), else 0.",
            VENUE_LABELS,
            registry=reg,
        )

        # protocol-health guards (guard/): venue "portfolio" for the NAV drawdown breaker
        self.guard_state = Gauge(
            "yieldvault_guard_state",
            "Breaker of one guard on one venue: 0 closed, 1 cooling (signal clear, action still held), 2 tripped.",
            ("venue", "guard"),
            registry=reg,
        )
        self.guard_trips_total = Counter(
            "yieldvault_guard_trips_total",
            "Breakers that tripped (closed -> tripped), per guard; contagion counts per venue it reaches.",
            ("guard",),
            registry=reg,
        )
        self.guard_directive = Gauge(
            "yieldvault_guard_directive",
            "1 while the guards impose this action on the venue (exit, freeze; pause on venue portfolio), else 0.",
            ("venue", "action"),
            registry=reg,
        )

        # risk limits
        self.limit_utilization = Gauge(
            "yieldvault_limit_utilization_ratio",
            "How much of each risk limit is used (1 = at the limit, above 1 = breached).",
            ("limit", "scope"),
            registry=reg,
        )

        # rebalancing and the optimizer
        self.rebalances_total = Counter(
            "yieldvault_rebalances_total",
            "Rebalance cycles by outcome.",
            ("outcome",),
            registry=reg,
        )
        self.solves_total = Counter(
            "yieldvault_solves_total", "Optimizer runs by solver status.", ("status",), registry=reg
        )
        self.solver_status = Gauge(
            "yieldvault_solver_status",
            "1 for the status of the last optimizer run, 0 for the others.",
            ("status",),
            registry=reg,
        )
        self.solver_duration = Histogram(
            "yieldvault_solver_duration_seconds",
            "Wall time of one optimizer run (solve and independent check).",
            buckets=SOLVER_BUCKETS,
            registry=reg,
        )
        self.solver_objective_usd = Gauge(
            "yieldvault_solver_objective_usd",
            "Objective of the last optimal solve: risk-adjusted expected net income, USD per year.",
            registry=reg,
        )
        self.plan_turnover_usd = Gauge(
            "yieldvault_plan_turnover_usd",
            "Sum of move amounts of the last plan, in USD.",
            registry=reg,
        )
        self.plan_cost_usd = Gauge(
            "yieldvault_plan_cost_usd",
            "Expected cost (gas, fees) of the last plan, in USD.",
            registry=reg,
        )
        self.plan_expected_gain_usd = Gauge(
            "yieldvault_plan_expected_gain_usd",
            "Expected gain of the last plan over the holding horizon, in USD.",
            registry=reg,
        )
        self.executed_turnover_usd_total = Counter(
            "yieldvault_executed_turnover_usd", "USD moved by executed plans.", registry=reg
        )
        self.execution_costs_usd_total = Counter(
            "yieldvault_execution_costs_usd",
            "Expected costs of executed plans, in USD.",
            registry=reg,
        )
        # per executed move, by kind (optimizer.costs.MOVE_COST_KINDS): the plan's predicted cost
        # and what the books charged (fees and gas), side by side (issue 13)
        self.move_cost_usd_total = Counter(
            "yieldvault_move_cost_usd",
            "Costs of executed moves by kind, as the plan predicted them (basis=predicted) and as"
            " booked (basis=executed: fees and gas), in USD.",
            ["kind", "basis"],
            registry=reg,
        )
        for kind in MOVE_COST_KINDS:
            for basis in ("predicted", "executed"):
                self.move_cost_usd_total.labels(kind=kind, basis=basis)

        # feeds
        self.feed_poll_duration = Histogram(
            "yieldvault_feed_poll_duration_seconds",
            "Wall time of one feed poll, successful or not.",
            ("feed",),
            buckets=FEED_BUCKETS,
            registry=reg,
        )
        self.feed_errors_total = Counter(
            "yieldvault_feed_errors_total",
            "Failed feed polls by reason.",
            ("feed", "reason"),
            registry=reg,
        )
        self.feed_last_success = Gauge(
            "yieldvault_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last successful poll (the daemon's start until the first one).",
            ("feed",),
            registry=reg,
        )

        # schedule
        self.schedule_interval = Gauge(
            "yieldvault_schedule_interval_seconds",
            "Configured interval of each periodic job; alerts scale their thresholds with it.",
            ("cycle",),
            registry=reg,
        )
        self.last_success = Gauge(
            "yieldvault_last_success_timestamp_seconds",
            "Unix time each periodic job last completed (the daemon's start until the first one).",
            ("cycle",),
            registry=reg,
        )

        # unknown until the first solve / the first stretch of history; 0 would be a false value
        for gauge in (
            self.portfolio_predicted_apr,
            self.portfolio_realized_apr,
            self.solver_objective_usd,
            self.plan_expected_gain_usd,
        ):
            gauge.set(math.nan)
        for outcome in OUTCOMES:
            self.rebalances_total.labels(outcome=outcome)
        for status in SOLVER_STATUSES:
            self.solves_total.labels(status=status)
            self.solver_status.labels(status=status).set(0)
        for cycle in CYCLES:
            self.last_success.labels(cycle=cycle).set(self.started_at)
        for action in OPERATOR_ACTIONS:
            self.operator_actions_total.labels(action=action)
