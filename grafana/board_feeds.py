"""The Feeds dashboard (``grafana/dashboards/``, written by ``generate_dashboards.py``)."""

from __future__ import annotations

from typing import Any

from dashboard_kit import (
    VENUE_VARIABLES,
    V,
    dashboard,
    layout,
    query_variable,
    table,
    target,
    timeseries,
)


def feeds() -> dict[str, Any]:
    feed_var = query_variable(
        "feed", "Feed", "label_values(yieldvault_feed_last_success_timestamp_seconds, feed)"
    )
    F = 'feed=~"$feed"'
    return dashboard(
        "yieldvault-feeds",
        "yieldvault / Feeds",
        "Feed poll latency, errors by reason and freshness.",
        layout(
            [
                (
                    8,
                    [
                        (
                            12,
                            timeseries(
                                "Poll latency p99",
                                "99th percentile of feed poll wall time, per feed.",
                                [
                                    target(
                                        f"histogram_quantile(0.99, sum by (feed, le) (rate(yieldvault_feed_poll_duration_seconds_bucket{{{F}}}[$__rate_interval])))",
                                        "{{feed}}",
                                    ),
                                ],
                                "s",
                                min_=0,
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Poll latency p50",
                                "Median feed poll wall time, per feed.",
                                [
                                    target(
                                        f"histogram_quantile(0.5, sum by (feed, le) (rate(yieldvault_feed_poll_duration_seconds_bucket{{{F}}}[$__rate_interval])))",
                                        "{{feed}}",
                                    ),
                                ],
                                "s",
                                min_=0,
                            ),
                        ),
                    ],
                ),
                (
                    8,
                    [
                        (
                            8,
                            timeseries(
                                "Polls",
                                "Feed polls per second, successful or not.",
                                [
                                    target(
                                        f"sum by (feed) (rate(yieldvault_feed_poll_duration_seconds_count{{{F}}}[$__rate_interval]))",
                                        "{{feed}}",
                                    ),
                                ],
                                "reqps",
                                min_=0,
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Errors by reason",
                                "Failed feed polls per second by feed and reason (timeout, connection, http_status, invalid_payload, stale, other).",
                                [
                                    target(
                                        f"sum by (feed, reason) (rate(yieldvault_feed_errors_total{{{F}}}[$__rate_interval]))",
                                        "{{feed}} {{reason}}",
                                    ),
                                ],
                                "reqps",
                                stack=True,
                                min_=0,
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Error ratio",
                                "Share of polls that failed, per feed.",
                                [
                                    target(
                                        f"sum by (feed) (rate(yieldvault_feed_errors_total{{{F}}}[$__rate_interval]))"
                                        f" / sum by (feed) (rate(yieldvault_feed_poll_duration_seconds_count{{{F}}}[$__rate_interval]))",
                                        "{{feed}}",
                                    ),
                                ],
                                "percentunit",
                                thresholds=[(None, "green"), (0.2, "red")],
                                min_=0,
                            ),
                        ),
                    ],
                ),
                (
                    8,
                    [
                        (
                            12,
                            timeseries(
                                "Since last successful poll",
                                "Age of each feed's last successful poll; the FeedStale alert fires past five poll intervals (at least 60 s).",
                                [
                                    target(
                                        f"time() - yieldvault_feed_last_success_timestamp_seconds{{{F}}}",
                                        "{{feed}}",
                                    ),
                                ],
                                "s",
                                min_=0,
                            ),
                        ),
                        (
                            12,
                            table(
                                "Feeds now",
                                "Seconds since each feed's last successful poll.",
                                [
                                    target(
                                        f"time() - yieldvault_feed_last_success_timestamp_seconds{{{F}}}",
                                        "",
                                        instant=True,
                                    ),
                                ],
                                "s",
                            ),
                        ),
                    ],
                ),
                (
                    8,
                    [
                        (
                            24,
                            timeseries(
                                "Venue data staleness",
                                "Age of each venue's latest good snapshot (filtered by chain, kind and venue).",
                                [
                                    target(
                                        f"time() - yieldvault_venue_observed_timestamp_seconds{{{V}}}",
                                        "{{venue}}",
                                    ),
                                ],
                                "s",
                                min_=0,
                            ),
                        ),
                    ],
                ),
            ]
        ),
        variables=[*VENUE_VARIABLES, feed_var],
    )


# What the tests substitute for Grafana's built-in interval variables before sending a query to
# Prometheus: long enough for rate() to see two 1 s scrapes.
