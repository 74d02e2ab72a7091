"""The incidents of the guard table (guard/README.md), as market YAML scenario entries: the
market's library (depeg, exploit, liquidity crunch, rate spike, bridge halt, slashing), the
issue's combined USDT 0.90 + Aave exploit (instant and unfolding) and the real paths (UST May
2022, USDC at SVB, an exploit after outflows, a bank run). ``tests.guard_scenarios`` runs them
against the daemon and in the backtester.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 2, 1, tzinfo=UTC)  # config/market.default.yaml start_time
LEAD_HOURS = 2.0  # the daemon allocates first (and still holds its first allocation)
AAVE = "aave-v3-usdc-ethereum"


@dataclass(frozen=True)
class Case:
    name: str
    scenarios: tuple[dict[str, Any], ...]  # market YAML scenario entries, `at` as hours from LEAD
    window_hours: float  # measured this long after the incident starts
    exit_possible: str  # why an exit could or could not avoid the loss

    def market_entries(self) -> list[dict[str, Any]]:
        out = []
        for sc in self.scenarios:
            sc = dict(sc)
            at = START + timedelta(hours=LEAD_HOURS + float(sc.pop("after_hours", 0.0)))
            out.append({"at": at.isoformat().replace("+00:00", "Z"), **sc})
        return out


DAY = 86_400
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "depeg",
            ({"name": "depeg", "chain": "ethereum", "token": "USDT", "duration_seconds": DAY},),
            36,
            "no: the library's depeg is instant (0.95) and recovers after a day",
        ),
        Case(
            "exploit",
            ({"name": "exploit", "venue": AAVE, "duration_seconds": DAY},),
            36,
            "no: the loss lands at once, and the venue is paused while it lasts",
        ),
        Case(
            "liquidity_crunch",
            ({"name": "liquidity_crunch", "venue": AAVE, "duration_seconds": DAY},),
            36,
            "nothing to avoid: no value is lost while withdrawals wait",
        ),
        Case(
            "rate_spike",
            ({"name": "rate_spike", "venue": AAVE, "duration_seconds": DAY},),
            36,
            "nothing to avoid: a rate spike pays suppliers more",
        ),
        Case(
            "bridge_halt",
            ({"name": "bridge_halt", "chain": "arbitrum", "duration_seconds": DAY},),
            36,
            "nothing to avoid: the route earns nothing while halted, nothing is lost",
        ),
        Case(
            "slashing",
            (
                {
                    "name": "slashing",
                    "venue": "lido-steth",
                    "params": {"validators": 1000},
                    "duration_seconds": 2 * DAY,
                },
            ),
            48,
            "no: the socialised loss lands at the next daily report, before any signal",
        ),
        Case(
            "usdt_090_and_aave_exploit_30",
            (
                {
                    "name": "depeg",
                    "chain": "ethereum",
                    "token": "USDT",
                    "params": {"price": 0.9},
                    "duration_seconds": 3 * DAY,
                },
                {
                    "name": "exploit",
                    "venue": AAVE,
                    "params": {"loss_fraction": 0.3},
                    "duration_seconds": 3 * DAY,
                },
            ),
            24,
            "no: both losses land at once (the depeg and the exploit are instant)",
        ),
        Case(
            "usdt_090_and_aave_exploit_30_unfolding",
            (
                {
                    # UST's May 2022 path scaled to end at 0.90 (1 - 0.1065 x (1 - 0.061)), a day of
                    # the path per 3 h: 0.974 at 15 h, 0.96 at 21 h, 0.90 at 48 h
                    "name": "depeg_path",
                    "chain": "ethereum",
                    "token": "USDT",
                    "params": {"path": "ust-2022-05", "day_seconds": 10_800, "scale": 0.1065},
                    "duration_seconds": 3 * DAY,
                },
                {
                    # 6 h of outflows and an oracle 300 bp off, then 30 % lost and paused
                    "name": "exploit_path",
                    "venue": AAVE,
                    "params": {"lead_seconds": 6 * 3600, "loss_fraction": 0.3},
                    "duration_seconds": 3 * DAY,
                },
            ),
            48,
            "yes: the same two losses, each announced by hours of signals",
        ),
        Case(
            "usdt_along_ust_2022",
            (
                {
                    "name": "depeg_path",
                    "chain": "ethereum",
                    "token": "USDT",
                    "params": {"path": "ust-2022-05", "day_seconds": 21600},
                    "duration_seconds": 5 * DAY,
                },
            ),
            48,
            "yes: the fall takes hours (one day of the path per 6 simulated hours)",
        ),
        Case(
            "usdc_along_svb_2023",
            (
                {
                    "name": "depeg_path",
                    "chain": "ethereum",
                    "token": "USDC",
                    "params": {"path": "usdc-svb-2023-03", "recover": True},
                    "duration_seconds": 8 * DAY,
                },
            ),
            96,
            "nothing held: the vault had left Aave USDC before the fall (day 3 of the path)",
        ),
        Case(
            "exploit_after_outflows",
            (
                {
                    "name": "exploit_path",
                    "venue": AAVE,
                    "params": {"lead_seconds": 6 * 3600, "loss_fraction": 0.5},
                    "duration_seconds": 2 * DAY,
                },
            ),
            24,
            "yes: 6 h of outflows and an oracle off the market before the strike",
        ),
        Case(
            "bank_run_with_bad_debt",
            (
                {
                    "name": "bank_run",
                    "venue": AAVE,
                    "params": {"loss_fraction": 0.2},
                    "duration_seconds": 12 * 3600,
                },
            ),
            24,
            "yes: the run takes hours before utilization reaches 100 %",
        ),
    )
}
