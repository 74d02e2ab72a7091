"""The default simulated market for the mockfeeds tests: its config and a frozen-clock copy (the
``mk`` fixture that serves it is in ``tests/conftest.py``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULT = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "config" / "market.default.yaml").read_text()
)


def cfg(**over: Any) -> dict[str, Any]:
    """The default market with its clock stopped (time moves only when a test advances it)."""
    c = copy.deepcopy(DEFAULT)
    c["time_scale"] = 0
    c.update(over)
    return c
