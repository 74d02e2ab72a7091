"""The Overview dashboard (``grafana/dashboards/``, written by ``generate_dashboards.py``)."""

from __future__ import annotations

from typing import Any

from dashboard_kit import V, dashboard, layout, stat, table, target, timeseries


def overview() -> dict[str, Any]:
    util_steps = [(None, "green"), (0.9, "orange"), (1.0, "red")]
    return dashboard(
        "yieldvault-overview",
        "yieldvault / Overview",
        "NAV, net APR, where the capital sits and how close each risk limit is.",
        layout(
            [
                (
                    4,
                    [
                        (
                            4,
                            stat(
                                "NAV",
                                "Net asset value: idle + positions + in flight.",
                                [target("yieldvault_nav_usd", "NAV")],
                                "currencyUSD",
                            ),
                        ),
                        (
                            4,
                            stat(
                                "Net APR predicted",
                                "Predicted net APR of the target allocation at the last rebalance.",
                                [target("yieldvault_portfolio_predicted_apr_ratio", "predicted")],
                                "percentunit",
                            ),
                        ),
                        (
                            4,
                            stat(
                                "Net APR realized",
                                "Realized net APR of the NAV over the daemon's trailing window (empty/NaN until enough history).",
                                [target("yieldvault_portfolio_realized_apr_ratio", "realized")],
                                "percentunit",
                            ),
                        ),
                        (
                            4,
                            stat(
                                "Idle reserve",
                                "Share of NAV held idle on the home chain (the min_idle_ratio limit keeps a floor).",
                                [target("yieldvault_idle_usd / yieldvault_nav_usd", "idle")],
                                "percentunit",
                            ),
                        ),
                        (
                            4,
                            stat(
                                "Highest limit utilization",
                                "The risk limit closest to (or over) its allowance; 100 % means at the limit.",
                                [target("max(yieldvault_limit_utilization_ratio)", "max")],
                                "percentunit",
                                thresholds=util_steps,
                            ),
                        ),
                        (
                            4,
                            stat(
                                "Frozen venues",
                                "Venues with bad or stale data: they may shrink, not grow.",
                                [target(f"sum(yieldvault_venue_frozen{{{V}}})", "frozen")],
                                "none",
                                thresholds=[(None, "green"), (1, "orange")],
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
                                "NAV",
                                "NAV and its idle and in-flight parts.",
                                [
                                    target("yieldvault_nav_usd", "NAV", "A"),
                                    target("yieldvault_idle_usd", "idle", "B"),
                                    target("yieldvault_in_flight_usd", "in flight", "C"),
                                ],
                                "currencyUSD",
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Net APR: predicted vs realized",
                                "Predicted net APR of the target allocation against the realized APR of the NAV.",
                                [
                                    target(
                                        "yieldvault_portfolio_predicted_apr_ratio", "predicted", "A"
                                    ),
                                    target(
                                        "yieldvault_portfolio_realized_apr_ratio", "realized", "B"
                                    ),
                                ],
                                "percentunit",
                            ),
                        ),
                    ],
                ),
                (
                    9,
                    [
                        (
                            8,
                            timeseries(
                                "Allocation by venue",
                                "Current position value per venue, stacked; the gap to NAV is idle and in flight.",
                                [
                                    target(
                                        f"sum by (venue) (yieldvault_allocation_usd{{{V}}})",
                                        "{{venue}}",
                                    ),
                                ],
                                "currencyUSD",
                                stack=True,
                                min_=0,
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Allocation by kind",
                                "Current position value per venue kind, stacked.",
                                [
                                    target(
                                        f"sum by (kind) (yieldvault_allocation_usd{{{V}}})",
                                        "{{kind}}",
                                    ),
                                ],
                                "currencyUSD",
                                stack=True,
                                min_=0,
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Allocation by chain",
                                "Current position value per chain, stacked.",
                                [
                                    target(
                                        f"sum by (chain) (yieldvault_allocation_usd{{{V}}})",
                                        "{{chain}}",
                                    ),
                                ],
                                "currencyUSD",
                                stack=True,
                                min_=0,
                            ),
                        ),
                    ],
                ),
                (
                    9,
                    [
                        (
                            14,
                            timeseries(
                                "Risk limit utilization",
                                "Used / allowed for every risk limit (for liquidity floors: required / available). Above 100 % is a breach.",
                                [
                                    target(
                                        "yieldvault_limit_utilization_ratio", "{{limit}} {{scope}}"
                                    ),
                                ],
                                "percentunit",
                                thresholds=util_steps,
                                min_=0,
                            ),
                        ),
                        (
                            10,
                            table(
                                "Risk limits now",
                                "Current utilization of each risk limit.",
                                [
                                    target("yieldvault_limit_utilization_ratio", "", instant=True),
                                ],
                                "percentunit",
                            ),
                        ),
                    ],
                ),
            ]
        ),
    )
