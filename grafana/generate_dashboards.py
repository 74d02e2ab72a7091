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

# the dashboards are files beside this script, which runs (and is loaded by the tests) by path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from board_feeds import feeds
from board_optimizer import optimizer
from board_overview import overview
from board_venues import venues
from dashboard_kit import DATASOURCE_UID as DATASOURCE_UID
from dashboard_kit import OUT_DIR

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
