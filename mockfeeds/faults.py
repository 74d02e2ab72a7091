"""Fault injection: rules that make a feed misbehave, per venue or per path prefix.

A rule hits a request when its ``path_prefix`` matches the path, or its ``venue`` is one the
endpoint reports on (a venue rule on a shared endpoint, e.g. ``/defillama/pools``, corrupts only
that venue's row for the value modes, and fails the whole response for the request modes).
``probability`` is drawn from the market's seeded fault RNG; ``count`` hits, then the rule is
removed. Modes (what each does is tested in ``tests/test_mockfeeds_faults.py``):

request modes (whole response)
    ``latency``       sleep ``latency_ms`` before answering (normal body)
    ``timeout``       sleep ``timeout_seconds`` (default 30 s, beyond any sane client timeout), then 504
    ``http_5xx``      answer ``status`` (500–599) with an error body
    ``malformed_json`` the body is cut in the middle of the JSON (content-type still JSON)
    ``oversized``     a valid JSON body padded to ``size_bytes`` (default 12 MiB)
value modes (the affected rows only)
    ``nan``           every value field becomes NaN (the literal ``NaN`` in JSON, ``"NaN"`` in string fields)
    ``absurd``        value fields times ``absurd_factor`` (1e6) and negated TVLs
    ``stale``         timestamps moved ``stale_seconds`` into the past and the values frozen at the first hit
    ``schema_drift``  camelCase keys renamed to snake_case and numbers sent as strings
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

REQUEST_MODES = frozenset({"latency", "timeout", "http_5xx", "malformed_json", "oversized"})
VALUE_MODES = frozenset({"nan", "absurd", "stale", "schema_drift"})
MODES = REQUEST_MODES | VALUE_MODES

#: fields that carry a rate, an amount or a price (what ``nan`` and ``absurd`` corrupt)
VALUE_KEYS = frozenset(
    {
        "tvlUsd",
        "apy",
        "apyBase",
        "apyReward",
        "apyBase7d",
        "apyMean30d",
        "volumeUsd1d",
        "volumeUsd7d",
        "mu",
        "sigma",
        "price",
        "apr",
        "smaApr",
        "liquidityRate",
        "variableBorrowRate",
        "availableLiquidity",
        "totalScaledVariableDebt",
        "liquidityIndex",
        "variableBorrowIndex",
        "supplyRate",
        "borrowRate",
        "totalSupply",
        "totalBorrow",
        "utilization",
        "pct",
        "total",
        "latestAnnualPercentageRate",
        "emissionPerSecond",
        "minDeposit",
        "maxDeposit",
        "maxDepositInstant",
        "maxDepositShortDelay",
        "recommendedDepositInstant",
        "finalizationIn",
        "priceInMarketReferenceCurrency",
    }
)
NEGATE_KEYS = frozenset({"tvlUsd", "availableLiquidity", "totalSupply"})
TIME_KEYS_SECONDS = frozenset({"timeUnix", "lastUpdateTimestamp", "timestamp", "quoteTimestamp"})
ISO_TIME_KEYS = frozenset({"timestamp", "finalizationAt", "nextCalculationAt"})

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass
class FaultRule:
    id: str
    mode: str
    venue: str | None = None
    path_prefix: str | None = None
    probability: float = 1.0
    count: int | None = None
    latency_ms: float = 500.0
    status: int = 503
    timeout_seconds: float = 30.0
    size_bytes: int = 12 * 1024 * 1024
    stale_seconds: float = 7 * 86_400.0
    absurd_factor: float = 1e6
    hits: int = 0
    frozen: dict[str, Any] = field(default_factory=dict)  # stale: first corrupted payload per key

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {self.mode!r}")
        if self.venue is None and self.path_prefix is None:
            raise ValueError("a fault needs a venue or a path_prefix")
        if self.path_prefix is not None and not self.path_prefix.startswith("/"):
            raise ValueError(f"path_prefix must start with '/', got {self.path_prefix!r}")
        if self.path_prefix is not None and self.path_prefix.startswith("/admin"):
            raise ValueError("path_prefix: faults cannot target the /admin endpoints")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability!r}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count!r}")
        if not 500 <= self.status <= 599:
            raise ValueError(f"status must be in 500..599, got {self.status!r}")
        for name in ("latency_ms", "timeout_seconds", "stale_seconds"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.size_bytes < 1:
            raise ValueError(f"size_bytes must be >= 1, got {self.size_bytes!r}")

    def matches(self, path: str, venues: set[str] | frozenset[str]) -> bool:
        if self.path_prefix is not None and path.startswith(self.path_prefix):
            return self.venue is None or self.venue in venues
        return self.path_prefix is None and self.venue is not None and self.venue in venues

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("frozen")
        return d


def _shift_iso(s: str, seconds: float) -> str:
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return s
    shifted = dt - timedelta(seconds=seconds)
    if shifted.tzinfo is None:
        return shifted.isoformat(timespec="milliseconds")
    return shifted.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _numeric_string(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _map_values(obj: Any, fn: Any, key: str | None = None) -> Any:
    if isinstance(obj, dict):
        return {k: _map_values(v, fn, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_values(v, fn, key) for v in obj]
    return fn(key, obj)


def corrupt_nan(obj: Any) -> Any:
    def fn(key: str | None, v: Any) -> Any:
        if key not in VALUE_KEYS or isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return math.nan
        if isinstance(v, str) and _numeric_string(v):
            return "NaN"
        return v

    return _map_values(obj, fn)


def corrupt_absurd(obj: Any, factor: float) -> Any:
    def fn(key: str | None, v: Any) -> Any:
        if key not in VALUE_KEYS or isinstance(v, bool):
            return v
        sign = -1 if key in NEGATE_KEYS else 1
        if isinstance(v, (int, float)):
            return sign * (abs(v) * factor if v else factor)
        if isinstance(v, str) and _numeric_string(v):
            n = float(v)
            big = abs(n) * factor if n else factor
            return (
                str(sign * int(big)) if "." not in v and "e" not in v.lower() else str(sign * big)
            )
        return v

    return _map_values(obj, fn)


def corrupt_stale(obj: Any, seconds: float) -> Any:
    def fn(key: str | None, v: Any) -> Any:
        if key in ISO_TIME_KEYS and isinstance(v, str):
            return _shift_iso(v, seconds)
        if key in TIME_KEYS_SECONDS and isinstance(v, (int, float)) and not isinstance(v, bool):
            return type(v)(v - seconds) if isinstance(v, float) else int(v - seconds)
        return v

    return _map_values(obj, fn)


def corrupt_schema(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            nk = _CAMEL.sub("_", k).lower() if any(c.isupper() for c in k) else k
            out[nk] = corrupt_schema(v)
        return out
    if isinstance(obj, list):
        return [corrupt_schema(v) for v in obj]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return repr(obj)
    return obj


def apply_value_fault(rule: FaultRule, obj: Any, freeze_key: str) -> Any:
    """A corrupted deep copy of ``obj`` (a row or a whole payload) under a value-mode rule."""
    if rule.mode == "nan":
        return corrupt_nan(obj)
    if rule.mode == "absurd":
        return corrupt_absurd(obj, rule.absurd_factor)
    if rule.mode == "schema_drift":
        return corrupt_schema(obj)
    if rule.mode == "stale":
        if freeze_key not in rule.frozen:
            rule.frozen[freeze_key] = corrupt_stale(copy.deepcopy(obj), rule.stale_seconds)
        return copy.deepcopy(rule.frozen[freeze_key])
    raise ValueError(f"not a value mode: {rule.mode}")
