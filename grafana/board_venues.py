"""The Venues dashboard (``grafana/dashboards/``, written by ``generate_dashboards.py``)."""

from __future__ import annotations

from typing import Any

from dashboard_kit import V, dashboard, layout, stat, target, timeseries


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
                                "Predicted marginal APR (real + emission, before the haircut) against the realized APR of our position, and what the rate forecast added to each venue's rate (its expected average over the holding horizon minus its level now: negative for a spike expected to fade).",
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
                                    target(
                                        f"yieldvault_venue_rate_forecast_shift_ratio{{{V}}}",
                                        "{{venue}} forecast shift",
                                        "C",
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
