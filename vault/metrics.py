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

import platform
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import prometheus_client

from core.money import units_to_usd
from optimizer.costs import move_cost_kind
from vault.metrics_catalog import APR_COMPONENTS as APR_COMPONENTS
from vault.metrics_catalog import CYCLES as CYCLES
from vault.metrics_catalog import FEED_BUCKETS as FEED_BUCKETS
from vault.metrics_catalog import FEED_ERROR_REASONS as FEED_ERROR_REASONS
from vault.metrics_catalog import GUARD_PORTFOLIO as GUARD_PORTFOLIO
from vault.metrics_catalog import OPERATOR_ACTIONS as OPERATOR_ACTIONS
from vault.metrics_catalog import OUTCOMES as OUTCOMES
from vault.metrics_catalog import RISK_MEASURES as RISK_MEASURES
from vault.metrics_catalog import SOLVER_BUCKETS as SOLVER_BUCKETS
from vault.metrics_catalog import SOLVER_STATUSES as SOLVER_STATUSES
from vault.metrics_catalog import VENUE_LABELS as VENUE_LABELS
from vault.metrics_catalog import MetricFamilies as MetricFamilies
from vault.metrics_catalog import VenueLike as VenueLike
from vault.metrics_catalog import _finite_or_nan, _venue_key
from vault.metrics_http import CachedExposition as CachedExposition
from vault.metrics_http import metrics_handler as metrics_handler


class MoveCostResult(Protocol):
    """What :meth:`Metrics.record_move_costs` reads of a move's result (``vault.executor.MoveResult``)."""

    @property
    def action(self) -> str: ...
    @property
    def venue_id(self) -> str: ...
    @property
    def status(self) -> object: ...
    @property
    def predicted_cost_units(self) -> int: ...
    @property
    def cost_units(self) -> int: ...


class Metrics(MetricFamilies):
    """Every yieldvault metric (:class:`vault.metrics_catalog.MetricFamilies`) and the recording
    methods the daemon calls with primitive values.

    Recording methods are safe to call from any thread (the solver runs in a worker thread).
    Venue-labelled methods raise ``ValueError`` for a venue that was not declared with
    :meth:`declare_venues`, so label values stay bounded by configuration. Feeds are declared on
    first use if :meth:`declare_feeds` did not name them (feed names come from the config too).
    """

    # --- declaration -------------------------------------------------------------------------

    def declare_venues(self, venues: Iterable[VenueLike | tuple[str, Any, str]]) -> None:
        """Allow these venues as label values and export their allocation, target, frozen flag and
        rate forecast shift at 0 (no decide has valued them away from today's rate yet).

        Accepts ``core.types.Venue`` / ``VenueConfig`` objects or ``(id, kind, chain)`` tuples. APR, TVL
        and observation time appear with the venue's first snapshot, since 0 would be a false value.
        """
        for venue in venues:
            key = _venue_key(venue)
            self._venues.add(key)
            self.allocation_usd.labels(*key).set(0)
            self.allocation_target_usd.labels(*key).set(0)
            self.venue_frozen.labels(*key).set(0)
            self.venue_rate_forecast_shift.labels(*key).set(0)

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

    def set_venue_rate_forecast_shift(
        self, venue: str, kind: Any, chain: str, shift: float
    ) -> None:
        """The rate forecast's level shift the last decide valued the venue with (APR)."""
        self.venue_rate_forecast_shift.labels(*self._labels(venue, kind, chain)).set(shift)

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

    def record_move_costs(
        self, results: Iterable[MoveCostResult], venue_kinds: Mapping[str, str]
    ) -> None:
        """Add each done move's predicted and executed cost to ``yieldvault_move_cost_usd_total``
        by kind (:func:`optimizer.costs.move_cost_kind`; ``venue_kinds``: venue id -> kind)."""
        for r in results:
            if str(r.status) != "done":
                continue
            kind = move_cost_kind(r.action, venue_kinds.get(r.venue_id))
            self.move_cost_usd_total.labels(kind=kind, basis="predicted").inc(
                units_to_usd(max(r.predicted_cost_units, 0))
            )
            self.move_cost_usd_total.labels(kind=kind, basis="executed").inc(
                units_to_usd(max(r.cost_units, 0))
            )

    def exposition(self) -> bytes:
        """The registry in Prometheus text format 0.0.4 (what ``promtool check metrics`` reads)."""
        return prometheus_client.generate_latest(self.registry)
