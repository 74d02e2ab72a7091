"""Generate the yieldvault Grafana dashboards (classic JSON model) into ``grafana/dashboards/``.

Run ``python grafana/generate_dashboards.py`` after changing a panel and commit the JSON it writes;
Grafana provisions the JSON, this script is only how it is kept consistent (one data source uid,
one layout rule, a description and unit on every panel). Standard library only.

``python grafana/generate_dashboards.py --check`` exits 1 when the committed JSON differs from what
the script would write (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

DATASOURCE_UID = "yieldvault-prometheus"
DS = {"type": "prometheus", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
OUT_DIR = Path(__file__).resolve().parent / "dashboards"

# Every venue-labelled selector filters on the three template variables.
V = 'venue=~"$venue", kind=~"$kind", chain=~"$chain"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "expr": expr,
        "refId": ref,
        "legendFormat": legend or "__auto",
    }
    if instant:
        t.update({"instant": True, "range": False, "format": "table"})
    else:
        t.update({"instant": False, "range": True})
    return t


def _thresholds(steps: list[tuple[float | None, str]] | None) -> dict[str, Any]:
    steps = steps or [(None, "green")]
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    *,
    stack: bool = False,
    bars: bool = False,
    thresholds: list[tuple[float | None, str]] | None = None,
    min_: float | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if (stack or bars) else 10,
        "showPoints": "never",
        "spanNulls": True,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
    }
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": custom,
        "thresholds": _thresholds(thresholds),
    }
    if min_ is not None:
        defaults["min"] = min_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "calcs": ["lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    *,
    thresholds: list[tuple[float | None, str]] | None = None,
    text_mode: str = "auto",
    mappings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": _thresholds(thresholds),
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area" if text_mode == "auto" else "none",
            "justifyMode": "auto",
            "textMode": text_mode,
            "orientation": "auto",
        },
    }


def table(title: str, description: str, targets: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": _thresholds(None)},
            "overrides": [],
        },
        # one row per series: drop the time column, keep the labels and the value
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True, "__name__": True, "job": True}},
            },
        ],
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    }


def layout(rows: list[tuple[int, list[tuple[int, dict[str, Any]]]]]) -> list[dict[str, Any]]:
    """Place panels row by row: each row is (height, [(width, panel), ...]) on Grafana's 24-column grid."""
    panels = []
    y = 0
    next_id = 1
    for height, row in rows:
        x = 0
        for width, panel in row:
            if x + width > 24:
                raise ValueError(f"row at y={y} is wider than 24 columns")
            panels.append(
                {"id": next_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}, **panel}
            )
            next_id += 1
            x += width
        y += height
    return panels


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-var"},
        "refresh": 2,  # on time range change, so newly configured venues appear
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
        "regex": "",
        "skipUrlSync": False,
    }


VENUE_VARIABLES = [
    query_variable("chain", "Chain", "label_values(yieldvault_allocation_usd, chain)"),
    query_variable(
        "kind", "Kind", 'label_values(yieldvault_allocation_usd{chain=~"$chain"}, kind)'
    ),
    query_variable(
        "venue",
        "Venue",
        'label_values(yieldvault_allocation_usd{chain=~"$chain", kind=~"$kind"}, venue)',
    ),
]


def dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]], variables=None
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["yieldvault"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "title": "yieldvault",
                "type": "dashboards",
                "tags": ["yieldvault"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": list(variables if variables is not None else VENUE_VARIABLES)},
        "panels": panels,
    }


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


def venues() -> dict[str, Any]:
    return dashboard(
        "yieldvault-venues",
        "yieldvault / Venues",
        "Each venue's predicted and realized yield, size, our share and how fresh its data is.",
        layout(
            [
                (
                    9,
                    [
                        (
                            12,
                            timeseries(
                                "APR: predicted vs realized",
                                "Predicted marginal APR (real + emission, before the haircut) against the realized APR of our position.",
                                [
                                    target(
                                        f"sum by (venue) (yieldvault_venue_predicted_apr_ratio{{{V}}})",
                                        "{{venue}} predicted",
                                        "A",
                                    ),
                                    target(
                                        f"yieldvault_venue_realized_apr_ratio{{{V}}}",
                                        "{{venue}} realized",
                                        "B",
                                    ),
                                ],
                                "percentunit",
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Predicted APR: real vs emission",
                                "Predicted marginal APR split into real yield (fees, interest) and reward-token emissions.",
                                [
                                    target(
                                        f"yieldvault_venue_predicted_apr_ratio{{{V}}}",
                                        "{{venue}} {{component}}",
                                    ),
                                ],
                                "percentunit",
                                stack=True,
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
                                "TVL",
                                "Total value locked in each venue, per its feed.",
                                [
                                    target(f"yieldvault_venue_tvl_usd{{{V}}}", "{{venue}}"),
                                ],
                                "currencyUSD",
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Our share of TVL",
                                "Our position over the venue's TVL (the max_venue_tvl_ratio limit caps it).",
                                [
                                    target(
                                        f"yieldvault_allocation_usd{{{V}}} / yieldvault_venue_tvl_usd{{{V}}}",
                                        "{{venue}}",
                                    ),
                                ],
                                "percentunit",
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Exit liquidity",
                                "What could be withdrawn from each venue right now.",
                                [
                                    target(
                                        f"yieldvault_venue_exit_liquidity_usd{{{V}}}", "{{venue}}"
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
                                "Allocation vs target",
                                "Current position and the target of the last optimal solve, per venue.",
                                [
                                    target(
                                        f"yieldvault_allocation_usd{{{V}}}",
                                        "{{venue}} current",
                                        "A",
                                    ),
                                    target(
                                        f"yieldvault_allocation_target_usd{{{V}}}",
                                        "{{venue}} target",
                                        "B",
                                    ),
                                ],
                                "currencyUSD",
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Data staleness",
                                "Age of each venue's latest good snapshot; a venue freezes past the staleness limit.",
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
                (
                    8,
                    [
                        (
                            8,
                            timeseries(
                                "Loops: health factor",
                                "Each loop's account health factor (liquidation below 1; the limits exit below min_loop_health_factor) and leverage.",
                                [
                                    target(
                                        f'yieldvault_venue_risk_ratio{{{V}, measure="health_factor"}}',
                                        "{{venue}} HF",
                                        "A",
                                    ),
                                    target(
                                        f'yieldvault_venue_risk_ratio{{{V}, measure="liquidation_distance"}}',
                                        "{{venue}} distance to liquidation",
                                        "B",
                                    ),
                                ],
                                "none",
                                thresholds=[(None, "red"), (1.0, "orange"), (1.04, "green")],
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "Hedged LPs: funding and carry",
                                "Expected funding the short receives and the carry (funding/2 - LVR - re-hedging), annual; below minus the fee APR the hedge costs more than the fees.",
                                [
                                    target(
                                        f'yieldvault_venue_risk_ratio{{{V}, measure="funding_apr"}}',
                                        "{{venue}} funding",
                                        "A",
                                    ),
                                    target(
                                        f'yieldvault_venue_risk_ratio{{{V}, measure="carry_apr"}}',
                                        "{{venue}} carry",
                                        "B",
                                    ),
                                ],
                                "percentunit",
                            ),
                        ),
                        (
                            8,
                            timeseries(
                                "NFT rentals: floor drawdown and occupancy",
                                "The floor below its 7-day high (the limits sell past max_nft_floor_drawdown) and the share of listings rented.",
                                [
                                    target(
                                        f'yieldvault_venue_risk_ratio{{{V}, measure="floor_drawdown"}}',
                                        "{{venue}} drawdown",
                                        "A",
                                    ),
                                    target(
                                        f'yieldvault_venue_risk_ratio{{{V}, measure="occupancy"}}',
                                        "{{venue}} occupancy",
                                        "B",
                                    ),
                                ],
                                "percentunit",
                                min_=0,
                            ),
                        ),
                    ],
                ),
                (
                    6,
                    [
                        (
                            24,
                            stat(
                                "Frozen",
                                "Per venue: frozen (bad or stale data: may shrink, may not grow) or OK.",
                                [
                                    target(f"yieldvault_venue_frozen{{{V}}}", "{{venue}}"),
                                ],
                                "none",
                                thresholds=[(None, "green"), (1, "red")],
                                text_mode="value_and_name",
                                mappings=[
                                    {
                                        "type": "value",
                                        "options": {
                                            "0": {"text": "OK", "index": 0},
                                            "1": {"text": "FROZEN", "index": 1},
                                        },
                                    },
                                ],
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
                                "Guard breakers",
                                "Protocol-health guards per venue and guard: 0 closed, 1 cooling (signal clear, action still held), 2 tripped. Venue portfolio is the NAV drawdown breaker. guard/README.md.",
                                [
                                    target(
                                        'max by (venue, guard) (yieldvault_guard_state{venue=~"$venue|portfolio"})',
                                        "{{venue}} {{guard}}",
                                    ),
                                ],
                                "none",
                                min_=0,
                            ),
                        ),
                        (
                            12,
                            timeseries(
                                "Guard directives and trips",
                                "What the guards impose now (1 = exit / freeze on the venue, pause on portfolio) and trips per guard over the range.",
                                [
                                    target(
                                        'max by (venue, action) (yieldvault_guard_directive{venue=~"$venue|portfolio"})',
                                        "{{venue}} {{action}}",
                                        "A",
                                    ),
                                    target(
                                        "sum by (guard) (increase(yieldvault_guard_trips_total[$__range]))",
                                        "trips {{guard}}",
                                        "B",
                                    ),
                                ],
                                "none",
                                min_=0,
                            ),
                        ),
                    ],
                ),
            ]
        ),
    )


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
            ]
        ),
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
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1m"}


def panel_queries(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) for every target of every panel, rows included."""
    out = []
    stack = list(dash.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))  # collapsed rows nest their panels
        for t in panel.get("targets", []):
            out.append((panel.get("title", ""), t.get("refId", ""), t.get("expr", "")))
    return out


def evaluable(expr: str, variables: dict[str, str] | None = None) -> str:
    """``expr`` with Grafana's interval variables and the template variables replaced.

    Template variables default to ``.*`` (what "All" sends); ``variables`` overrides per name.
    """
    for name, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(name, value)
    for name in re.findall(r"\$\{?([A-Za-z_]\w*)\}?", expr):
        value = (variables or {}).get(name, ".*")
        expr = re.sub(r"\$\{?" + name + r"\b\}?", lambda _, value=value: value, expr)
    return expr


DASHBOARDS = {
    "overview.json": overview,
    "venues.json": venues,
    "optimizer.json": optimizer,
    "feeds.json": feeds,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON is out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run python grafana/generate_dashboards.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
