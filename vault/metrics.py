"""The daemon's Prometheus metrics: the whole catalog, on a registry the daemon owns.

Every metric the daemon exports is created here, on the registry given to :class:`Metrics`
(never on prometheus_client's global default registry, so tests can build as many as they like).
The daemon calls the plain recording methods below with primitive values; it never touches a
prometheus_client object. ``docs/metrics.md`` lists every name with its meaning, and the alert
rules in ``prometheus/rules/`` and dashboards in ``grafana/dashboards/`` are built on them.

Naming follows Prometheus practice: ``yieldvault_`` prefix, base units in the name (``_usd``,
``_seconds``, ``_ratio`` for decimals such as APR 0.05 = 5 %), ``_total`` on counters. Labels are
bounded: venue labels come only from configured venues (:meth:`Metrics.declare_venues`), feeds from
:meth:`Metrics.declare_feeds`, and outcome, solver status, feed error reason and cycle from the
fixed sets below.
"""

from __future__ import annotations

import asyncio
import math
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import prometheus_client
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from adapters.errors import REASONS

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


class Metrics:
    """Every yieldvault metric, registered on ``registry`` (a fresh one when ``None``).

    Recording methods take primitive values and are safe to call from any thread (the solver
    runs in a worker thread). Venue-labelled methods raise ``ValueError`` for a venue that was not
    declared with :meth:`declare_venues`, so label values stay bounded by configuration. Feeds are
    declared on first use if :meth:`declare_feeds` did not name them (feed names come from the
    config too).

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

    # --- declaration -------------------------------------------------------------------------

    def declare_venues(self, venues: Iterable[VenueLike | tuple[str, Any, str]]) -> None:
        """Allow these venues as label values and export their allocation, target and frozen flag at 0.

        Accepts ``core.types.Venue`` / ``VenueConfig`` objects or ``(id, kind, chain)`` tuples. APR, TVL
        and observation time appear with the venue's first snapshot, since 0 would be a false value.
        """
        for venue in venues:
            key = _venue_key(venue)
            self._venues.add(key)
            self.allocation_usd.labels(*key).set(0)
            self.allocation_target_usd.labels(*key).set(0)
            self.venue_frozen.labels(*key).set(0)

    def declare_feeds(self, feeds: Iterable[str], started_at: float | None = None) -> None:
        """Allow these feed names as label values; counters start at 0, last success at ``started_at``.

        Starting the last-success time at the daemon's start makes a feed that never succeeds go
        stale (and alert) a few intervals after start, instead of looking 56 years stale at once.
        """
        at = self.started_at if started_at is None else started_at
        for feed in feeds:
            feed = str(feed)
            if feed in self._feeds:
                continue
            self._feeds.add(feed)
            self.feed_poll_duration.labels(feed=feed)
            for reason in FEED_ERROR_REASONS:
                self.feed_errors_total.labels(feed=feed, reason=reason)
            self.feed_last_success.labels(feed=feed).set(at)

    def set_schedule(
        self,
        poll_interval_seconds: float,
        rebalance_interval_seconds: float,
        started_at: float | None = None,
    ) -> None:
        """Export the configured job intervals (the staleness alerts scale with them).

        ``started_at`` resets each job's last-success time; by default it stays at the Metrics'
        creation time.
        """
        self.schedule_interval.labels(cycle="poll").set(poll_interval_seconds)
        self.schedule_interval.labels(cycle="rebalance").set(rebalance_interval_seconds)
        if started_at is not None:
            for cycle in CYCLES:
                self.last_success.labels(cycle=cycle).set(started_at)

    def set_build_info(self, version: str) -> None:
        """Export ``yieldvault_build_info{version, python_version} 1``."""
        self.build_info.info({"version": str(version), "python_version": platform.python_version()})

    # --- portfolio ---------------------------------------------------------------------------

    def set_portfolio(
        self,
        nav_usd: float,
        idle_usd: float,
        in_flight_usd: float,
        realized_apr: float | None = None,
    ) -> None:
        """NAV and its idle and in-flight parts; ``realized_apr`` of the NAV when the daemon knows it."""
        self.nav_usd.set(nav_usd)
        self.idle_usd.set(idle_usd)
        self.in_flight_usd.set(in_flight_usd)
        if realized_apr is not None:
            self.portfolio_realized_apr.set(realized_apr)

    def declare_guards(self, venues: Iterable[str], guards: Iterable[str]) -> None:
        """Export every (venue, guard) breaker as closed, every trip counter and directive at 0."""
        guards = tuple(guards)
        venues = tuple(venues)
        self._guard_venues = {*venues, GUARD_PORTFOLIO}
        for g in guards:
            self.guard_trips_total.labels(guard=g)
            for v in venues:
                if g != "nav_drawdown":
                    self.guard_state.labels(venue=v, guard=g).set(0)
        self.guard_state.labels(venue=GUARD_PORTFOLIO, guard="nav_drawdown").set(0)
        for v in venues:
            for action in ("exit", "freeze"):
                self.guard_directive.labels(venue=v, action=action).set(0)
        self.guard_directive.labels(venue=GUARD_PORTFOLIO, action="pause").set(0)

    def set_guards(
        self,
        states: Iterable[tuple[str, str, int]],
        exit_venues: Iterable[str],
        freeze_venues: Iterable[str],
        pause: bool,
    ) -> None:
        """Breaker states ((venue or "*", guard, 0/1/2)) and the directives they impose now."""
        known = self._guard_venues
        for venue, guard, code in states:
            v = GUARD_PORTFOLIO if venue == "*" else venue
            if v in known:
                self.guard_state.labels(venue=v, guard=guard).set(code)
        exits, freezes = set(exit_venues), set(freeze_venues)
        for v in known - {GUARD_PORTFOLIO}:
            self.guard_directive.labels(venue=v, action="exit").set(1 if v in exits else 0)
            self.guard_directive.labels(venue=v, action="freeze").set(1 if v in freezes else 0)
        self.guard_directive.labels(venue=GUARD_PORTFOLIO, action="pause").set(1 if pause else 0)

    def count_guard_trip(self, guard: str) -> None:
        self.guard_trips_total.labels(guard=guard).inc()

    def set_unresolved_moves(self, count: int) -> None:
        """Moves written ahead whose venue answer is not booked yet (0 in a healthy daemon)."""
        self.unresolved_moves.set(count)

    def count_operator_action(self, action: str) -> None:
        """One operator action (``OPERATOR_ACTIONS``; anything else counts as ``other``)."""
        label = action if action in OPERATOR_ACTIONS else "other"
        self.operator_actions_total.labels(action=label).inc()

    def set_plans_awaiting(self, count: int) -> None:
        self.plans_awaiting.set(count)

    def set_money_safety(self, breaks: int, integrity_ok: bool) -> None:
        """Open reconciliation breaks and whether the ledger file still passes its checks."""
        self.reconciliation_breaks.set(breaks)
        self.ledger_integrity_ok.set(1 if integrity_ok else 0)

    def set_bridge_in_flight(self, transfers: int, usd: float) -> None:
        """Bridge transfers sent and not yet filled: their number and USD value."""
        self.bridge_transfers_in_flight.set(transfers)
        self.bridge_in_flight_usd.set(usd)

    def set_limit_utilization(self, limit: str, ratio: float, scope: str | None = None) -> None:
        """Utilization of one risk limit: used / allowed (for floors: required / available).

        ``limit`` is the config key (``max_venue_ratio``, ``liquidity_floor``, ...); ``scope`` names
        what it applies to (``portfolio``, a kind, chain, protocol, venue id, or ``1d`` for a floor).
        Without ``scope``, a ``limit`` written ``family:scope`` (``max_kind_ratio:lp``) is split at
        the first colon, and a plain one applies to the ``portfolio``. Both come from configuration,
        so they are bounded.
        """
        limit = str(limit)
        if scope is None:
            limit, _, scope = limit.partition(":")
            scope = scope or "portfolio"
        self.limit_utilization.labels(limit=limit, scope=str(scope)).set(ratio)

    # --- venues ------------------------------------------------------------------------------

    def _labels(self, venue: str, kind: Any, chain: str) -> tuple[str, str, str]:
        key = (str(venue), str(kind), str(chain))
        if key not in self._venues:
            raise ValueError(
                f"venue {key} was not declared with Metrics.declare_venues (labels must stay bounded)"
            )
        return key

    def set_allocation(
        self, venue: str, kind: Any, chain: str, current_usd: float, target_usd: float | None
    ) -> None:
        """Current position value and (when a solve produced one) the target, in USD."""
        key = self._labels(venue, kind, chain)
        self.allocation_usd.labels(*key).set(current_usd)
        if target_usd is not None:
            self.allocation_target_usd.labels(*key).set(target_usd)

    def set_venue_apr(
        self,
        venue: str,
        kind: Any,
        chain: str,
        real_apr: float,
        emission_apr: float,
        realized_apr: float | None = None,
    ) -> None:
        """Predicted marginal APR split into real and emission yield; realized APR when known."""
        key = self._labels(venue, kind, chain)
        self.venue_predicted_apr.labels(*key, "real").set(real_apr)
        self.venue_predicted_apr.labels(*key, "emission").set(emission_apr)
        if realized_apr is not None:
            self.venue_realized_apr.labels(*key).set(realized_apr)

    def set_venue_realized_apr(
        self, venue: str, kind: Any, chain: str, realized_apr: float | None
    ) -> None:
        """Realized APR of our position in the venue; ``None`` (no position history) exports NaN."""
        self.venue_realized_apr.labels(*self._labels(venue, kind, chain)).set(
            _finite_or_nan(realized_apr)
        )

    def set_venue_tvl(
        self,
        venue: str,
        kind: Any,
        chain: str,
        tvl_usd: float,
        exit_liquidity_usd: float | None = None,
    ) -> None:
        """The venue's TVL and, when the feed reports it, the liquidity withdrawable now."""
        key = self._labels(venue, kind, chain)
        self.venue_tvl_usd.labels(*key).set(tvl_usd)
        if exit_liquidity_usd is not None:
            self.venue_exit_liquidity_usd.labels(*key).set(exit_liquidity_usd)

    def set_venue_observed(self, venue: str, kind: Any, chain: str, observed_at: float) -> None:
        """Unix time (wall clock, UTC) the venue's latest good snapshot was observed at."""
        self.venue_observed_timestamp.labels(*self._labels(venue, kind, chain)).set(observed_at)

    def set_venue_frozen(self, venue: str, kind: Any, chain: str, frozen: bool) -> None:
        """Whether the venue is frozen (may shrink, may not grow)."""
        self.venue_frozen.labels(*self._labels(venue, kind, chain)).set(1 if frozen else 0)

    def set_venue_state(
        self,
        venue: str,
        kind: Any,
        chain: str,
        *,
        real_apr: float,
        emission_apr: float,
        tvl_usd: float,
        frozen: bool,
        observed_at: float,
        exit_liquidity_usd: float | None = None,
        realized_apr: float | None = None,
    ) -> None:
        """Everything one snapshot says about a venue, in one call.

        ``observed_at`` is Unix time on the wall clock (Prometheus subtracts it from its own
        ``time()``), not the simulated market's clock.
        """
        self.set_venue_apr(venue, kind, chain, real_apr, emission_apr, realized_apr)
        self.set_venue_tvl(venue, kind, chain, tvl_usd, exit_liquidity_usd)
        self.set_venue_observed(venue, kind, chain, observed_at)
        self.set_venue_frozen(venue, kind, chain, frozen)

    def record_snapshot(self, snapshot: Any, observed_at: float | None = None) -> None:
        """Record one ``core.types.VenueSnapshot``: predicted APRs, TVL, exit liquidity, frozen flag.

        A frozen snapshot is the last good one, so its APR and TVL are still exported, and its
        observation time is too (that is what makes its staleness visible). ``observed_at``
        overrides ``snapshot.observed_at`` when the daemon wants wall-clock rather than feed time.
        """
        v = snapshot.venue
        self.set_venue_apr(v.id, v.kind, v.chain, snapshot.real_apr, snapshot.emission_apr)
        self.set_venue_tvl(v.id, v.kind, v.chain, snapshot.tvl_usd, snapshot.exit_liquidity_usd)
        at = observed_at if observed_at is not None else snapshot.observed_at.timestamp()
        self.set_venue_observed(v.id, v.kind, v.chain, at)
        self.set_venue_frozen(v.id, v.kind, v.chain, snapshot.frozen)
        key = self._labels(v.id, v.kind, v.chain)
        for measure in RISK_MEASURES.get(str(v.kind), ()):
            if measure in snapshot.state:
                self.venue_risk.labels(*key, measure).set(
                    _finite_or_nan(float(snapshot.state[measure]))
                )

    # --- feeds and cycles --------------------------------------------------------------------

    def observe_feed_poll(
        self,
        feed: str,
        duration_seconds: float,
        ok: bool,
        reason: str | None = None,
        at: float | None = None,
    ) -> None:
        """One poll of a feed: its duration; on success its wall-clock time ``at``.

        A failed poll with a ``reason`` is also counted in ``yieldvault_feed_errors_total``; with
        ``reason=None`` only its duration is recorded (count the error with :meth:`count_feed_error`,
        e.g. once per refused venue).
        """
        feed = str(feed)
        self.declare_feeds([feed])
        self.feed_poll_duration.labels(feed=feed).observe(duration_seconds)
        if ok:
            if at is None:
                raise ValueError("a successful poll needs its time `at`")
            self.feed_last_success.labels(feed=feed).set(at)
        elif reason is not None:
            self.count_feed_error(feed, reason)

    def count_feed_error(self, feed: str, reason: str) -> None:
        """Count one refused response or payload; a ``reason`` outside :data:`FEED_ERROR_REASONS` counts as ``other``."""
        feed = str(feed)
        self.declare_feeds([feed])
        label = reason if reason in FEED_ERROR_REASONS else "other"
        self.feed_errors_total.labels(feed=feed, reason=label).inc()

    def mark_cycle_success(self, kind: str, at: float) -> None:
        """A periodic job (``poll`` or ``rebalance``) completed at unix time ``at``.

        A rebalance cycle counts as a success when it ends executed, held or gated, not failed.
        """
        if kind not in CYCLES:
            raise ValueError(f"cycle must be one of {CYCLES}, got {kind!r}")
        self.last_success.labels(cycle=kind).set(at)

    def record_rebalance(
        self,
        outcome: str,
        solver_status: str,
        solve_seconds: float | None,
        objective_usd: float | None = None,
        predicted_apr: float | None = None,
        turnover_usd: float = 0.0,
        cost_usd: float = 0.0,
        expected_gain_usd: float | None = None,
    ) -> None:
        """One rebalance cycle.

        ``outcome``: executed (the plan's moves ran), held (no move needed, or dry-run), gated (the
        plan does not pay for its costs: the benefit/cost gate held it back), failed (infeasible,
        solver error, failed check, venue sync or execution failure).
        ``solver_status`` is one of :data:`SOLVER_STATUSES`; ``solve_seconds`` is ``None`` when no
        solve ran. ``objective_usd`` and ``predicted_apr`` come from an optimal solve and are left
        unchanged when ``None``. ``turnover_usd``, ``cost_usd`` and ``expected_gain_usd`` describe the
        plan; they are added to the executed totals only when the outcome is ``executed``.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        if solver_status not in SOLVER_STATUSES:
            raise ValueError(
                f"solver_status must be one of {SOLVER_STATUSES}, got {solver_status!r}"
            )
        self.rebalances_total.labels(outcome=outcome).inc()
        self.solves_total.labels(status=solver_status).inc()
        for status in SOLVER_STATUSES:
            self.solver_status.labels(status=status).set(1 if status == solver_status else 0)
        if solve_seconds is not None:
            self.solver_duration.observe(solve_seconds)
        if objective_usd is not None:
            self.solver_objective_usd.set(objective_usd)
        if predicted_apr is not None:
            self.portfolio_predicted_apr.set(predicted_apr)
        self.plan_turnover_usd.set(turnover_usd)
        self.plan_cost_usd.set(cost_usd)
        if expected_gain_usd is not None:
            self.plan_expected_gain_usd.set(expected_gain_usd)
        if outcome == "executed":
            self.executed_turnover_usd_total.inc(turnover_usd)
            self.execution_costs_usd_total.inc(cost_usd)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format 0.0.4 (what ``promtool check metrics`` reads)."""
        return prometheus_client.generate_latest(self.registry)


class CachedExposition:
    """The exposition built off the event loop, at most once per ``max_age_seconds`` and format.

    Rendering the registry (hundreds of labelled series) takes milliseconds of CPU; on the loop,
    a burst of scrapes stalled /healthz and the rebalances (issue 12: 78 req/s, p99 985 ms,
    /healthz 669 ms). Here it is rendered in a worker thread, every request within
    ``max_age_seconds`` of a render shares it, and concurrent requests share one render. The
    format follows the Accept header (Prometheus text, or OpenMetrics as Prometheus 2.x asks).
    """

    def __init__(
        self,
        metrics: Metrics,
        max_age_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._bodies: dict[str, tuple[float, bytes]] = {}  # content type -> (rendered at, body)
        self._rendering: dict[str, asyncio.Future[bytes]] = {}
        self.renders = 0

    async def body(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) for a request's Accept header."""
        encoder, content_type = prometheus_client.exposition.choose_encoder(accept)
        cached = self._bodies.get(content_type)
        if cached is not None and self._monotonic() - cached[0] < self._max_age:
            return cached[1], content_type
        rendering = self._rendering.get(content_type)
        if rendering is None:
            registry = self._metrics.registry
            rendering = asyncio.ensure_future(asyncio.to_thread(encoder, registry))
            self._rendering[content_type] = rendering
        try:
            body = await asyncio.shield(rendering)
        finally:
            if rendering.done() and self._rendering.get(content_type) is rendering:
                del self._rendering[content_type]
                if not rendering.cancelled() and rendering.exception() is None:
                    self._bodies[content_type] = (self._monotonic(), rendering.result())
                    self.renders += 1
        return body, content_type


def metrics_handler(metrics: Metrics, max_age_seconds: float = 1.0) -> Handler:
    """The aiohttp handler serving ``metrics``' registry (:class:`CachedExposition`); mount it at
    ``GET /metrics``."""
    cache = CachedExposition(metrics, max_age_seconds)

    async def handler(request: web.Request) -> web.Response:
        body, content_type = await cache.body(",".join(request.headers.getall("Accept", [])))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler
