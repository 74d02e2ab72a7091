"""The building blocks of the yieldvault dashboards: one data source uid, one layout rule, a
description and unit on every panel (used by the ``board_*.py`` files and
``generate_dashboards.py``). Standard library only."""

from __future__ import annotations

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
