"""``yieldvault backtest sweep``: a grid of limit/optimizer settings, each point one replay of ``ours``,
run on Dask distributed (a ``LocalCluster`` of worker processes by default, ``--scheduler
tcp://HOST:PORT`` for a real cluster), then the frontier of net APY against max drawdown.

A point is on the frontier when no other point has a net APY at least as high *and* a max drawdown
at least as low, one of them strictly. Writes ``sweep.json`` (every point, deterministic order),
``frontier.md`` (the table) and ``frontier.png`` (the plot) in ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from backtest.run import BacktestConfig, BadInput, Prepared, run_prepared

SECTIONS = ("limits", "optimizer")


def parse_grid(specs: list[str]) -> list[tuple[str, list[Any]]]:
    """``["limits.max_venue_ratio=0.2,0.3"]`` -> ``[("limits.max_venue_ratio", [0.2, 0.3])]``."""
    if not specs:
        raise BadInput("--grid", "at least one KEY=V1,V2,... is required")
    out = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section not in SECTIONS or not name or not values.strip():
            raise BadInput(
                "--grid", f"expected limits.KEY=V1,V2 or optimizer.KEY=V1,V2, got {spec!r}"
            )
        out.append((key.strip(), [yaml.safe_load(v) for v in values.split(",")]))
    return out


def apply_point(cfg: BacktestConfig, point: dict[str, Any]) -> BacktestConfig:
    """The config with the point's values, validated by the same models as the YAML."""
    limits = cfg.limits.model_dump()
    settings = cfg.settings.model_dump()
    for key, value in point.items():
        section, _, name = key.partition(".")
        target = limits if section == "limits" else settings
        if name not in target:
            raise BadInput("--grid", f"{key}: unknown key")
        target[name] = value
    try:
        return BacktestConfig(
            type(cfg.limits)(**limits),
            type(cfg.settings)(**settings),
            cfg.home_chain,
            cfg.capital_usd,
            cfg.source,
        )
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        raise BadInput("--grid", f"{point}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None


def run_point(prepared: Prepared, point: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """One grid point: ``ours`` under the point's config (runs on a Dask worker)."""
    p = Prepared(
        prepared.history,
        prepared.rates,
        prepared.prices,
        apply_point(prepared.config, point),
        prepared.period_seconds,
        prepared.inputs,
    )
    summary, _ = run_prepared(p, Path(out_dir), ["ours"])
    m = summary["strategies"]["ours"]
    keep = (
        "net_apy",
        "max_drawdown",
        "limit_breach_cycles",
        "costs_total_usd",
        "turnover_per_year",
    )
    return {"point": point, **{k: m[k] for k in keep}}


def frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def dominated(a: dict[str, Any]) -> bool:
        return any(
            b["net_apy"] >= a["net_apy"]
            and b["max_drawdown"] <= a["max_drawdown"]
            and (b["net_apy"] > a["net_apy"] or b["max_drawdown"] < a["max_drawdown"])
            for b in rows
        )

    return [r for r in rows if not dominated(r)]


def _plot(rows: list[dict[str, Any]], front: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter([r["max_drawdown"] * 100 for r in rows], [r["net_apy"] * 100 for r in rows], s=14)
    f = sorted(front, key=lambda r: r["max_drawdown"])
    ax.plot([r["max_drawdown"] * 100 for r in f], [r["net_apy"] * 100 for r in f], "r-o", ms=4)
    ax.set_xlabel("max drawdown (%)")
    ax.set_ylabel("net APY (%)")
    ax.set_title("sweep: net APY against max drawdown (frontier in red)")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def run_sweep(
    args: argparse.Namespace, prepared: Prepared, strategies: list[str]
) -> tuple[int, str]:
    grid = parse_grid(args.grid)
    keys = [k for k, _ in grid]
    points = [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in grid))
    ]
    for point in points:  # every point validated before anything runs
        apply_point(prepared.config, point)
    from dask.distributed import Client, LocalCluster

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        )
        client = Client(cluster)
    try:
        shared = client.scatter(prepared, broadcast=True)
        futures = [
            client.submit(run_point, shared, point, str(out / f"point-{k:03d}"), pure=False)
            for k, point in enumerate(points)
        ]
        rows = client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    front = frontier(rows)
    result = {
        "inputs": prepared.inputs,
        "grid": {k: v for k, v in grid},
        "points": rows,
        "frontier": front,
    }
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    (out / "sweep.json").write_text(text)
    lines = ["| " + " | ".join([*keys, "net APY", "max drawdown", "breaches", "frontier"]) + " |"]
    lines.append("|" + " --- |" * (len(keys) + 4))
    for r in rows:
        cells = [str(r["point"][k]) for k in keys]
        cells += [f"{r['net_apy']:.3%}", f"{r['max_drawdown']:.3%}", str(r["limit_breach_cycles"])]
        cells.append("yes" if r in front else "")
        lines.append("| " + " | ".join(cells) + " |")
    (out / "frontier.md").write_text("\n".join(lines) + "\n")
    _plot(rows, front, out / "frontier.png")
    return 0, text if args.json else ""
