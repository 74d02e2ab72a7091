"""``report.html``: one self-contained page (matplotlib PNGs embedded as base64, no external asset).

Plots: NAV of every strategy; ours' allocation over time stacked by venue and by chain; drawdown
of every strategy; costs paid by kind per strategy. Tables: the summary's metrics and stress rows.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from backtest.engine import StrategyRun, nav_series

_METRICS = (
    ("net_apy", "net APY", "{:.3%}"),
    ("predicted_apr_mean", "predicted APR", "{:.3%}"),
    ("realized_apr", "realized APR", "{:.3%}"),
    ("max_drawdown", "max drawdown", "{:.3%}"),
    ("worst_day_return", "worst day", "{:.3%}"),
    ("daily_volatility_annualised", "volatility", "{:.3%}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("turnover_per_year", "turnover / yr", "{:.2f}"),
    ("costs_total_usd", "costs USD", "{:,.0f}"),
    ("executed_plans", "plans", "{}"),
    ("limit_breach_cycles", "breach cycles", "{}"),
    ("gap_to_hindsight_apy", "gap to hindsight", "{:.3%}"),
)


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _dates(ts: np.ndarray) -> np.ndarray:
    """Cycle times as datetime64 (matplotlib's date axis)."""
    return np.array(
        [datetime.fromtimestamp(int(t), UTC).replace(tzinfo=None) for t in ts],
        dtype="datetime64[s]",
    )


def _nav_plot(runs: Sequence[StrategyRun]) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in runs:
        ts, nav = nav_series(r)
        ax.plot(_dates(ts), nav / nav[0], label=r.name, lw=1.0)
    ax.set_title("NAV (start = 1), after every cost")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    return _png(fig)


def _drawdown_plot(runs: Sequence[StrategyRun]) -> str:
    fig, ax = plt.subplots(figsize=(10, 3))
    for r in runs:
        ts, nav = nav_series(r)
        ax.plot(_dates(ts), -(1.0 - nav / np.maximum.accumulate(nav)) * 100, label=r.name, lw=1.0)
    ax.set_title("drawdown (%)")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    return _png(fig)


def _allocation_plot(run: StrategyRun, chain_of: dict[str, str], by: str) -> str:
    ts = np.array([r.ts for r in run.records])
    keys: list[str] = sorted(
        {chain_of.get(v, v) if by == "chain" else v for r in run.records for v in r.positions_units}
    )
    series = np.zeros((len(keys) + 1, len(ts)))
    for k, rec in enumerate(run.records):
        for v, u in rec.positions_units.items():
            key = chain_of.get(v, v) if by == "chain" else v
            series[keys.index(key), k] += u / 1e6
        series[-1, k] = rec.nav_units / 1e6 - series[:-1, k].sum()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.stackplot(_dates(ts), series, labels=[*keys, "idle + in flight"])
    ax.set_title(f"{run.name}: allocation by {by} (USD)")
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    return _png(fig)


def _costs_plot(runs: Sequence[StrategyRun]) -> str:
    kinds = sorted({k for r in runs for k in r.costs_units})
    fig, ax = plt.subplots(figsize=(10, 3.5))
    bottom = np.zeros(len(runs))
    for kind in kinds:
        vals = np.array([r.costs_units.get(kind, 0) / 1e6 for r in runs])
        ax.bar([r.name for r in runs], vals, bottom=bottom, label=kind)
        bottom += vals
    ax.set_title("costs paid by kind (USD)")
    if kinds:
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    return _png(fig)


def _fmt(value: object, pattern: str) -> str:
    if value is None:
        return "–"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return html.escape(str(value))


def render_html(summary: dict, runs: Sequence[StrategyRun], chain_of: dict[str, str]) -> str:
    table = summary["strategies"]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in _METRICS)
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{_fmt(m.get(key), pat)}</td>" for key, _, pat in _METRICS)
        + "</tr>"
        for name, m in table.items()
    )
    stress_rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(w)}</td>"
        f"<td>{_fmt(s.get('loss'), '{:.3%}')}</td><td>{_fmt(s.get('exposure_at_start'), '{:.1%}')}</td>"
        f"<td>{_fmt(s.get('hours_to_get_out'), '{:.0f}')}</td></tr>"
        for name, m in table.items()
        for w, s in m["stress"].items()
    )
    ours = next((r for r in runs if r.name == "ours"), runs[0])
    images = [
        ("NAV", _nav_plot(runs)),
        ("allocation by venue", _allocation_plot(ours, chain_of, "venue")),
        ("allocation by chain", _allocation_plot(ours, chain_of, "chain")),
        ("drawdown", _drawdown_plot(runs)),
        ("costs", _costs_plot(runs)),
    ]
    imgs = "".join(
        f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
        for t, b in images
    )
    inputs = html.escape(", ".join(f"{k}={v}" for k, v in sorted(summary["inputs"].items())))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>yieldvault backtest</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>yieldvault backtest</h1><p>{inputs}</p>
<h2>metrics</h2><table><tr><th>strategy</th>{head}</tr>{rows}</table>
<h2>stress windows</h2><table><tr><th>strategy</th><th>window</th><th>loss</th>
<th>exposure at start</th><th>hours to get out</th></tr>{stress_rows}</table>
{imgs}
</body></html>
"""


def markdown_table(summary: dict) -> str:
    """The metrics table for a README (``python -m backtest.report out/summary.json``)."""
    cols = [(k, label, pat) for k, label, pat in _METRICS]
    lines = ["| strategy | " + " | ".join(label for _, label, _ in cols) + " |"]
    lines.append("| --- |" + " ---: |" * len(cols))
    for name, m in summary["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k), pat) for k, _, pat in cols) + " |")
    lines.append("")
    lines.append("| strategy | stress window | loss | exposure at start | hours to get out |")
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for name, m in summary["strategies"].items():
        for w, s in m["stress"].items():
            lines.append(
                f"| {name} | {w} | {_fmt(s.get('loss'), '{:.3%}')} | "
                f"{_fmt(s.get('exposure_at_start'), '{:.1%}')} | "
                f"{_fmt(s.get('hours_to_get_out'), '{:.0f}')} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    print(markdown_table(json.loads(Path(sys.argv[1]).read_text())), end="")
