"""The Optimizer dashboard (``grafana/dashboards/``, written by ``generate_dashboards.py``)."""

from __future__ import annotations

from typing import Any

from dashboard_kit import V, dashboard, layout, stat, target, timeseries


def optimizer() -> dict[str, Any]:
    return dashboard(
        "yieldvault-optimizer",
        "yieldvault / Optimizer",
        "Solver time, status and objective; rebalance outcomes; plan turnover and costs.",
        layout(
            [
                (
                    4,
                    [
                        (
                            6,
                            stat(
                                "Solver status",
                                "Status of the last optimizer run.",
                                [
                                    target("yieldvault_solver_status == 1", "{{status}}"),
                                ],
                                "none",
                                text_mode="name",
                            ),
                        ),
                        (
                            6,
                            stat(
                                "Objective",
                                "Objective of the last optimal solve: risk-adjusted expected net income per year.",
                                [
                                    target("yieldvault_solver_objective_usd", "objective"),
                                ],
                                "currencyUSD",
                            ),
                        ),
                        (
                            6,
                            stat(
                                "Since last rebalance cycle",
                                "Time since a rebalance cycle last completed (executed, held or gated).",
                                [
                                    target(
                                        'time() - yieldvault_last_success_timestamp_seconds{cycle="rebalance"}',
                                        "age",
                                    ),
                                ],
                                "s",
                            ),
                        ),
                        (
                            6,
                            stat(
                                "Executed turnover (range)",
                                "USD moved by executed plans over the dashboard's time range.",
                                [
                                    target(
                                        "increase(yieldvault_executed_turnover_usd_total[$__range])",
                                        "turnover",
                                    ),
                                ],
                                "currencyUSD",
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
                                "Solve time",
                                "Optimizer wall time (solve and check): median, 99th percentile and mean.",
                                [
                                    target(
                                        "histogram_quantile(0.5, sum by (le) (rate(yieldvault_solver_duration_seconds_bucket[$__rate_interval])))",
                                        "p50",
                                        "A",
                                    ),
                                    target(
                                        "histogram_quantile(0.99, sum by (le) (rate(yieldvault_solver_duration_seconds_bucket[$__rate_interval])))",
                                        "p99",
                                        "B",
                                    ),
                                    target(
                                        "rate(yieldvault_solver_duration_seconds_sum[$__rate_interval]) / rate(yieldvault_solver_duration_seconds_count[$__rate_interval])",
                                        "mean",
                                        "C",
                                    ),
                                ],
                                "s",
                                min_=0,
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Solves by status",
                                "Optimizer runs per second by solver status.",
                                [
                                    target(
                                        "sum by (status) (rate(yieldvault_solves_total[$__rate_interval]))",
                                        "{{status}}",
                                    ),
                                ],
                                "ops",
                                stack=True,
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
                                "Rebalance outcomes",
                                "Rebalance cycles per second by outcome: executed, held (not worth its costs), gated (a safety gate stopped it), failed.",
                                [
                                    target(
                                        "sum by (outcome) (rate(yieldvault_rebalances_total[$__rate_interval]))",
                                        "{{outcome}}",
                                    ),
                                ],
                                "ops",
                                stack=True,
                                min_=0,
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Objective",
                                "Risk-adjusted expected net income per year of the last optimal solve.",
                                [
                                    target("yieldvault_solver_objective_usd", "objective"),
                                ],
                                "currencyUSD",
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
                                "Plan turnover",
                                "Sum of the moves in the last plan, executed or not.",
                                [
                                    target("yieldvault_plan_turnover_usd", "turnover"),
                                ],
                                "currencyUSD",
                                min_=0,
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Plan turnover / NAV",
                                "Last plan's turnover as a share of NAV (max_turnover_ratio caps it).",
                                [
                                    target(
                                        "yieldvault_plan_turnover_usd / yieldvault_nav_usd",
                                        "turnover ratio",
                                    ),
                                ],
                                "percentunit",
                                min_=0,
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Plan cost vs expected gain",
                                "Expected cost of the last plan against its expected gain over the holding horizon; a plan executes when the gain pays for the cost.",
                                [
                                    target("yieldvault_plan_cost_usd", "cost", "A"),
                                    target(
                                        "yieldvault_plan_expected_gain_usd", "expected gain", "B"
                                    ),
                                ],
                                "currencyUSD",
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
                                "Executed turnover and costs",
                                "USD per second moved by executed plans and the costs they paid.",
                                [
                                    target(
                                        "rate(yieldvault_executed_turnover_usd_total[$__rate_interval])",
                                        "turnover",
                                        "A",
                                    ),
                                    target(
                                        "rate(yieldvault_execution_costs_usd_total[$__rate_interval])",
                                        "costs",
                                        "B",
                                    ),
                                ],
                                "currencyUSD",
                                min_=0,
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Target allocation by venue",
                                "Target of the last optimal solve per venue, stacked.",
                                [
                                    target(
                                        f"sum by (venue) (yieldvault_allocation_target_usd{{{V}}})",
                                        "{{venue}}",
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
                    8,
                    [
                        (
                            24,
                            timeseries(
                                "Move costs: predicted vs executed, by kind",
                                "USD per second of executed moves' costs by kind (bridge, LP entry/exit, lending deposit/withdraw, other), as the plan predicted them and as booked (fees and gas); the two lines of a kind should lie on top of each other (optimizer README §3a).",
                                [
                                    target(
                                        "sum by (kind, basis) (rate(yieldvault_move_cost_usd_total[$__rate_interval]))",
                                        "{{kind}} {{basis}}",
                                        "A",
                                    ),
                                ],
                                "currencyUSD",
                                min_=0,
                            ),
                        ),
                    ],
                ),
            ]
        ),
    )
