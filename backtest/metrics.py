"""Per-strategy metrics from a replay's cycle records and books.

With NAV ``V_k`` at cycle times ``t_k`` (the books' NAV after the cycle's moves, marks included):

* net APY after every cost: ``(V_end / V_0)^(1/years) - 1`` (costs are in V: they left the books);
* predicted APR: the mean over cycles of the decision's predicted APR (income at its target / NAV);
  realized APR: ``ln(V_end / V_0) / years``;
* max drawdown: ``max_k (1 - V_k / max_{l<=k} V_l)``; worst day: the lowest daily return, with daily
  NAV the last cycle of each UTC day;
* daily-return volatility ``std(r_d) sqrt(365)``; Sortino ``mean(r_d) / sqrt(mean(min(r_d, 0)^2))
  sqrt(365)`` (target 0; None without a losing day);
* turnover per year: deposits plus withdrawals applied / mean NAV / years;
* costs by kind (ledger ``expense:*`` postings grouped by transaction kind), executed plans,
  limit breaches (cycles whose holdings break a hard limit beyond the drift band);
* per stress window: the loss (worst NAV inside the window against the NAV at its start) and the
  time to get out (hours from the window's start until the stressed assets hold <= 1 % of NAV;
  None when never inside the window plus 7 days; 0 when not exposed at the start).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backtest.engine import StrategyRun, nav_series
from backtest.history import iso, parse_utc

YEAR_SECONDS = 365.0 * 86_400
DAY_SECONDS = 86_400
EXIT_SHARE = 0.01


@dataclass(frozen=True)
class StressWindow:
    name: str
    start: str
    end: str
    assets: tuple[str, ...]  # the reserves' symbols under stress (time to get out is for these)
    note: str


STRESS_WINDOWS: tuple[StressWindow, ...] = (
    StressWindow(
        "svb_weekend",
        "2023-03-10",
        "2023-03-14",
        ("USDC", "DAI"),
        "Silicon Valley Bank held 3.3 bn of USDC's reserves: USDC 0.961, DAI 0.963 on 2023-03-11",
    ),
    StressWindow(
        "usdc_rate_spike_2024_12",
        "2024-12-12",
        "2024-12-15",
        ("USDC",),
        "USDC supply APR peaks at 57 % on 2024-12-13 (utilization near 1: exits need cash)",
    ),
    StressWindow(
        "usde_unwind_2025_02",
        "2025-02-21",
        "2025-02-25",
        ("USDE",),
        "USDe reserve drawn to utilization 1.0002 on 2025-02-22 (Bybit hack weekend)",
    ),
)


def _r(x: float | None, nd: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def daily_returns(ts: np.ndarray, nav: np.ndarray) -> np.ndarray:
    day = ts // DAY_SECONDS
    last = np.flatnonzero(np.diff(day) != 0)  # last cycle of each day
    closes = np.concatenate((nav[last], nav[-1:]))
    closes = np.concatenate((nav[:1], closes))
    return closes[1:] / closes[:-1] - 1.0


def strategy_metrics(
    run: StrategyRun,
    venue_assets: dict[str, str],
    windows: Sequence[StressWindow] = STRESS_WINDOWS,
) -> dict[str, object]:
    ts, nav = nav_series(run)
    years = max((int(ts[-1]) - int(ts[0])) / YEAR_SECONDS, 1e-9)
    v0, v1 = float(nav[0]), float(nav[-1])
    capital = v0 + 0.0
    peak = np.maximum.accumulate(nav)
    drawdown = 1.0 - nav / peak
    rd = daily_returns(ts, nav)
    downside = np.minimum(rd, 0.0)
    dd = math.sqrt(float(np.mean(downside**2))) if rd.size else 0.0
    predicted = [r.predicted_apr for r in run.records if r.predicted_apr is not None]
    traded = sum(r.traded_units for r in run.records) / 1e6
    breaches = [r for r in run.records if r.breaches]
    first_breach = breaches[0] if breaches else None
    out: dict[str, object] = {
        "start_nav_usd": _r(capital, 2),
        "end_nav_usd": _r(v1, 2),
        "net_apy": _r((v1 / v0) ** (1.0 / years) - 1.0),
        "realized_apr": _r(math.log(v1 / v0) / years),
        "predicted_apr_mean": _r(float(np.mean(predicted)) if predicted else None),
        "max_drawdown": _r(float(drawdown.max())),
        "worst_day_return": _r(float(rd.min()) if rd.size else None),
        "daily_volatility_annualised": _r(
            float(np.std(rd)) * math.sqrt(365.0) if rd.size else None
        ),
        "sortino": _r(float(np.mean(rd)) / dd * math.sqrt(365.0) if dd > 0 else None, 3),
        "turnover_per_year": _r(traded / float(np.mean(nav)) / years, 4),
        "costs_usd": {k: _r(u / 1e6, 2) for k, u in sorted(run.costs_units.items())},
        "costs_total_usd": _r(sum(run.costs_units.values()) / 1e6, 2),
        "executed_plans": run.executed_plans,
        "cycles": len(run.records),
        "limit_breach_cycles": len(breaches),
        "first_breach": None
        if first_breach is None
        else {"at": iso(first_breach.ts), "limit": first_breach.breaches[0]},
        "drift_band_cycles": sum(1 for r in run.records if r.drift_breaches),
        "stress": {},
    }
    stress: dict[str, object] = {}
    for w in windows:
        a = parse_utc(w.start, "stress", "start")
        b = parse_utc(w.end, "stress", "end")
        inside = (ts >= a) & (ts <= b)
        if not inside.any():
            continue
        k0 = int(np.flatnonzero(inside)[0])
        base = float(nav[k0 - 1]) if k0 > 0 else float(nav[k0])
        worst = float(nav[inside].min())

        def exposure(k: int, w: StressWindow = w) -> float:
            rec = run.records[k]
            held = sum(
                u for v, u in rec.positions_units.items() if venue_assets.get(v, "") in w.assets
            )
            return held / max(rec.nav_units, 1)

        start_exposure = exposure(k0)
        out_hours: float | None = None
        if start_exposure <= EXIT_SHARE:
            out_hours = 0.0
        else:
            horizon = b + 7 * DAY_SECONDS
            for k in range(k0, len(run.records)):
                if ts[k] > horizon:
                    break
                if exposure(k) <= EXIT_SHARE:
                    out_hours = (int(ts[k]) - a) / 3600.0
                    break
        stress[w.name] = {
            "window": [w.start, w.end],
            "loss": _r(max(0.0, 1.0 - worst / base)),
            "exposure_at_start": _r(start_exposure, 4),
            "hours_to_get_out": out_hours,
        }
    out["stress"] = stress
    return out


def summarize(
    runs: Sequence[StrategyRun], venue_assets: dict[str, str]
) -> dict[str, dict[str, object]]:
    """Metrics per strategy plus each one's quality gap to the hindsight bound (net APY points)."""
    table = {r.name: strategy_metrics(r, venue_assets) for r in runs}
    bound = table.get("hindsight", {}).get("net_apy")
    for row in table.values():
        apy = row["net_apy"]
        row["gap_to_hindsight_apy"] = (
            _r(float(bound) - float(apy))
            if isinstance(bound, float) and isinstance(apy, float)
            else None
        )
    return table
