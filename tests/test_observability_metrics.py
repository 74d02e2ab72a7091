"""The metrics catalog (vault/metrics.py): names, documentation, bounded labels, exposition.

``promtool check metrics`` runs on the exposition of a registry filled with realistic values for
the embedded default config's venues; it needs Debian's prometheus package (.ci/install-prometheus.sh).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.config import VenueConfig
from core.types import Venue, VenueKind, VenueSnapshot, YieldCurve
from vault.metrics import FEED_ERROR_REASONS, OUTCOMES, SOLVER_STATUSES, Metrics, metrics_handler

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package prometheus; run .ci/install-prometheus.sh)",
)


def default_venues() -> list[Venue]:
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    return [VenueConfig.model_validate(v).to_venue() for v in config["venues"]]


class _FlatCurve(YieldCurve):
    def __init__(self, apr: float) -> None:
        self.rate = apr

    def real_income_usd(self, x_usd):
        return self.rate * np.asarray(x_usd, dtype=float)


def filled_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """A Metrics registry after a few realistic cycles over the default config's venues."""
    m = Metrics(registry)
    venues = default_venues()
    now = time.time()
    m.set_build_info("0.1.0")
    m.declare_venues(venues)
    m.declare_feeds([v.id for v in venues], started_at=now - 60)
    m.set_schedule(2, 5, started_at=now - 60)
    nav = 1_000_000.0
    positions = {v.id: 150_000.0 + 10_000 * i for i, v in enumerate(venues)}
    for i, v in enumerate(venues):
        m.observe_feed_poll(v.id, 0.004 + 0.01 * i, ok=True, at=now - 1)
        m.record_snapshot(
            VenueSnapshot(
                venue=v,
                observed_at=datetime.fromtimestamp(now - 2, UTC),
                curve=_FlatCurve(0.04),
                real_apr=0.03 + 0.005 * i,
                emission_apr=0.01 if v.kind is VenueKind.LP else 0.0,
                tvl_usd=50_000_000.0 * (i + 1),
                exit_liquidity_usd=5_000_000.0,
                frozen=(v.kind is VenueKind.BRIDGE_ARB),
            )
        )
        m.set_allocation(v.id, v.kind, v.chain, positions[v.id], positions[v.id] * 1.05)
        m.set_venue_realized_apr(v.id, v.kind, v.chain, 0.031 + 0.004 * i if i else None)
    m.observe_feed_poll(venues[0].id, 5.0, ok=False, reason="timeout")
    m.observe_feed_poll(venues[1].id, 0.02, ok=False, reason="invalid_payload")
    idle = nav - sum(positions.values()) - 5_000
    m.set_portfolio(nav, idle, 5_000, realized_apr=0.041)
    m.set_bridge_in_flight(1, 5_000)
    for limit, scope, ratio in [
        ("min_idle_ratio", "portfolio", 0.8),
        ("max_venue_ratio", "portfolio", 0.45),
        ("max_kind_ratio", "lp", 0.7),
        ("max_dependency_ratio", "lido", 0.44),
        ("liquidity_floor", "1d", 0.9),
        ("max_avg_risk_score", "portfolio", 0.85),
    ]:
        m.set_limit_utilization(limit, ratio, scope)
    m.record_rebalance("executed", "optimal", 0.012, 42_000.0, 0.043, 60_000.0, 35.0, 210.0)
    m.record_rebalance("held", "optimal", 0.004, 42_100.0, 0.0431, 800.0, 12.0, 9.0)
    m.record_rebalance("failed", "infeasible", 0.003)
    m.record_rebalance("held", "optimal", 0.005, 42_150.0, 0.0432, 0.0, 0.0, 0.0)
    m.mark_cycle_success("poll", now)
    m.mark_cycle_success("rebalance", now)
    m.declare_guards([v.id for v in venues], ("depeg", "outflow", "nav_drawdown"))
    m.set_guards([(venues[0].id, "depeg", 2)], [venues[0].id], [], pause=False)
    m.count_guard_trip("depeg")
    return m


def samples(m: Metrics) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float:
    return samples(m)[(name, frozenset(labels.items()))]


def catalog_names(m: Metrics) -> set[str]:
    """Names of the yieldvault_ families as exposed (counters with their _total)."""
    names = set()
    for family in text_string_to_metric_families(m.exposition().decode()):
        if family.name.startswith("yieldvault_"):
            names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def documented_names() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(yieldvault_[a-z0-9_]+)` \|", text, flags=re.MULTILINE))


# --- exposition -------------------------------------------------------------------------------


@needs_promtool
def test_promtool_check_metrics_passes_on_a_filled_registry():
    text = filled_metrics().exposition()
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert b"yieldvault_nav_usd" in text


@needs_promtool
def test_promtool_check_metrics_rejects_a_bad_name():
    """Control: the lint really runs, so the test above can fail."""
    bad = b"# HELP yieldvault_solve_ms Solve time.\n# TYPE yieldvault_solve_ms counter\nyieldvault_solve_ms 3\n"
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=bad, capture_output=True, timeout=30
    )
    assert result.returncode != 0
    assert b"_total" in result.stdout + result.stderr


def test_catalog_and_docs_list_the_same_metrics():
    exposed = catalog_names(filled_metrics())
    documented = documented_names()
    assert exposed - documented == set(), "exported but not in docs/metrics.md"
    assert documented - exposed == set(), "in docs/metrics.md but not exported"


def test_core_names_fixed_by_the_design_exist_with_their_labels():
    s = samples(filled_metrics())
    names = {name for name, _ in s}
    for name in (
        "yieldvault_nav_usd",
        "yieldvault_solver_duration_seconds_bucket",
        "yieldvault_build_info",
    ):
        assert name in names
    alloc = [dict(lbl) for name, lbl in s if name == "yieldvault_allocation_usd"]
    assert len(alloc) == len(default_venues()) and all(
        set(a) == {"venue", "kind", "chain"} for a in alloc
    )
    outcomes = {dict(lbl)["outcome"] for name, lbl in s if name == "yieldvault_rebalances_total"}
    assert outcomes == set(OUTCOMES)
    errs = {dict(lbl)["reason"] for name, lbl in s if name == "yieldvault_feed_errors_total"}
    assert errs == set(FEED_ERROR_REASONS)


def test_names_follow_prometheus_units():
    """Every yieldvault metric names its unit, or is one of the few plain counts and flags."""
    unitless = {
        "yieldvault_build_info",
        "yieldvault_bridge_transfers_in_flight",
        "yieldvault_unresolved_moves",
        "yieldvault_reconciliation_breaks",
        "yieldvault_ledger_integrity_ok",
        "yieldvault_venue_frozen",
        "yieldvault_solver_status",
        "yieldvault_rebalances_total",
        "yieldvault_solves_total",
        "yieldvault_feed_errors_total",
        "yieldvault_operator_actions_total",
        "yieldvault_plans_awaiting",
        "yieldvault_guard_state",
        "yieldvault_guard_trips_total",
        "yieldvault_guard_directive",
    }
    for name in catalog_names(filled_metrics()):
        if name in unitless:
            continue
        assert re.search(r"_(usd|seconds|ratio)(_total)?$", name), name


def test_a_fresh_registry_has_bounded_preinitialised_series():
    m = Metrics()
    m.declare_venues([("lido-steth", "staking", "ethereum")])
    m.declare_feeds(["lido-steth"], started_at=1000.0)
    m.set_schedule(2, 5, started_at=1000.0)
    assert (
        value(m, "yieldvault_allocation_usd", venue="lido-steth", kind="staking", chain="ethereum")
        == 0
    )
    assert (
        value(m, "yieldvault_venue_frozen", venue="lido-steth", kind="staking", chain="ethereum")
        == 0
    )
    assert value(m, "yieldvault_rebalances_total", outcome="gated") == 0
    assert value(m, "yieldvault_feed_errors_total", feed="lido-steth", reason="timeout") == 0
    assert value(m, "yieldvault_feed_last_success_timestamp_seconds", feed="lido-steth") == 1000.0
    assert value(m, "yieldvault_last_success_timestamp_seconds", cycle="rebalance") == 1000.0
    assert value(m, "yieldvault_schedule_interval_seconds", cycle="poll") == 2
    assert all(value(m, "yieldvault_solver_status", status=s) == 0 for s in SOLVER_STATUSES)
    assert math.isnan(value(m, "yieldvault_portfolio_predicted_apr_ratio"))


def test_registries_are_independent():
    a, b = Metrics(), Metrics()
    a.set_portfolio(5.0, 1.0, 0.0)
    assert value(a, "yieldvault_nav_usd") == 5.0
    assert value(b, "yieldvault_nav_usd") == 0.0


def test_undeclared_venue_is_refused_and_feeds_are_declared_on_first_use():
    m = Metrics(started_at=500.0)
    m.declare_venues([("lido-steth", VenueKind.STAKING, "ethereum")])
    m.set_allocation("lido-steth", VenueKind.STAKING, "ethereum", 1.0, 2.0)  # StrEnum kind is fine
    with pytest.raises(ValueError, match="declare_venues"):
        m.set_allocation("unknown", "staking", "ethereum", 1.0, 2.0)
    with pytest.raises(ValueError, match="declare_venues"):
        m.set_venue_frozen("lido-steth", "lending", "ethereum", True)  # kind does not match
    m.observe_feed_poll("aave", 0.1, ok=False)
    # first use pre-initialises every reason and starts the last success at the Metrics' start
    assert value(m, "yieldvault_feed_errors_total", feed="aave", reason="schema") == 0
    assert value(m, "yieldvault_feed_last_success_timestamp_seconds", feed="aave") == 500.0
    assert value(m, "yieldvault_last_success_timestamp_seconds", cycle="poll") == 500.0


def test_failed_poll_without_reason_records_duration_only_and_count_feed_error_counts():
    m = Metrics()
    m.observe_feed_poll("aave", 0.3, ok=False, reason=None)
    m.count_feed_error("aave", "schema")
    m.count_feed_error("aave", "schema")
    assert value(m, "yieldvault_feed_poll_duration_seconds_count", feed="aave") == 1
    assert value(m, "yieldvault_feed_errors_total", feed="aave", reason="schema") == 2
    assert sum(v for (n, lbl), v in samples(m).items() if n == "yieldvault_feed_errors_total") == 2


def test_feed_error_reasons_are_the_adapters_reasons_plus_other():
    errors = pytest.importorskip("adapters.errors")
    assert set(FEED_ERROR_REASONS) == set(errors.REASONS) | {"other"}


def test_limit_scope_is_split_from_the_name_or_given():
    m = Metrics()
    m.set_limit_utilization("max_kind_ratio:lp", 0.5)
    m.set_limit_utilization("min_idle_ratio", 0.9)
    m.set_limit_utilization("liquidity_floor", 1.2, scope="1d")
    assert value(m, "yieldvault_limit_utilization_ratio", limit="max_kind_ratio", scope="lp") == 0.5
    assert (
        value(m, "yieldvault_limit_utilization_ratio", limit="min_idle_ratio", scope="portfolio")
        == 0.9
    )
    assert (
        value(m, "yieldvault_limit_utilization_ratio", limit="liquidity_floor", scope="1d") == 1.2
    )


def test_set_venue_state_records_a_whole_snapshot():
    m = Metrics()
    key = ("aave-v3-usdc-ethereum", "lending", "ethereum")
    m.declare_venues([key])
    m.set_venue_state(
        *key, real_apr=0.04, emission_apr=0.002, tvl_usd=9e8, frozen=True, observed_at=1234.0
    )
    labels = dict(zip(("venue", "kind", "chain"), key, strict=False))
    assert value(m, "yieldvault_venue_predicted_apr_ratio", component="real", **labels) == 0.04
    assert value(m, "yieldvault_venue_predicted_apr_ratio", component="emission", **labels) == 0.002
    assert value(m, "yieldvault_venue_tvl_usd", **labels) == 9e8
    assert value(m, "yieldvault_venue_frozen", **labels) == 1
    assert value(m, "yieldvault_venue_observed_timestamp_seconds", **labels) == 1234.0


def test_unknown_reason_counts_as_other_and_unknown_outcome_or_status_is_refused():
    m = Metrics()
    m.declare_feeds(["f"], started_at=0.0)
    m.observe_feed_poll("f", 0.2, ok=False, reason="ConnectionResetError: peer said no")
    assert value(m, "yieldvault_feed_errors_total", feed="f", reason="other") == 1
    assert value(m, "yieldvault_feed_last_success_timestamp_seconds", feed="f") == 0.0
    m.observe_feed_poll("f", 0.1, ok=True, at=123.0)
    assert value(m, "yieldvault_feed_last_success_timestamp_seconds", feed="f") == 123.0
    assert value(m, "yieldvault_feed_poll_duration_seconds_count", feed="f") == 2
    with pytest.raises(ValueError):
        m.record_rebalance("skipped", "optimal", 0.1)
    with pytest.raises(ValueError):
        m.record_rebalance("held", "optimal_inaccurate", 0.1)
    m.record_rebalance("failed", "not_run", 0.0)  # venue sync failed before the solver ran
    assert value(m, "yieldvault_solver_status", status="not_run") == 1
    with pytest.raises(ValueError):
        m.mark_cycle_success("backtest", 1.0)


def test_record_rebalance_counts_outcomes_status_and_executed_totals():
    m = filled_metrics()
    assert value(m, "yieldvault_rebalances_total", outcome="executed") == 1
    assert value(m, "yieldvault_rebalances_total", outcome="held") == 2
    assert value(m, "yieldvault_rebalances_total", outcome="failed") == 1
    assert value(m, "yieldvault_solves_total", status="infeasible") == 1
    assert value(m, "yieldvault_solver_status", status="optimal") == 1
    assert value(m, "yieldvault_solver_status", status="infeasible") == 0
    assert value(m, "yieldvault_solver_duration_seconds_count") == 4
    assert value(m, "yieldvault_solver_duration_seconds_bucket", le="0.005") == 3
    # only the executed plan adds to the totals; the held one does not
    assert value(m, "yieldvault_executed_turnover_usd_total") == 60_000.0
    assert value(m, "yieldvault_execution_costs_usd_total") == 35.0
    # a failed run leaves the last objective and prediction in place
    assert value(m, "yieldvault_solver_objective_usd") == 42_150.0
    assert value(m, "yieldvault_portfolio_predicted_apr_ratio") == pytest.approx(0.0432)


def test_record_snapshot_exports_apr_components_tvl_and_frozen():
    m = filled_metrics()
    lp = dict(venue="uniswap-v2-usdc-weth-ethereum", kind="lp", chain="ethereum")
    assert value(m, "yieldvault_venue_predicted_apr_ratio", component="emission", **lp) == 0.01
    assert value(
        m, "yieldvault_venue_predicted_apr_ratio", component="real", **lp
    ) == pytest.approx(0.04)
    assert value(m, "yieldvault_venue_tvl_usd", **lp) == 150_000_000.0
    bridge = dict(venue="across-usdc-arbitrum-base", kind="bridge_arb", chain="arbitrum")
    assert value(m, "yieldvault_venue_frozen", **bridge) == 1
    assert value(m, "yieldvault_venue_frozen", **lp) == 0
    lido = dict(venue="lido-steth", kind="staking", chain="ethereum")
    assert math.isnan(value(m, "yieldvault_venue_realized_apr_ratio", **lido))
    assert time.time() - value(m, "yieldvault_venue_observed_timestamp_seconds", **lido) < 60


async def test_metrics_handler_serves_the_registry_over_aiohttp(aiohttp_client):
    from aiohttp import web

    m = filled_metrics()
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(m))
    client = await aiohttp_client(app)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    body = await resp.text()
    assert 'yieldvault_allocation_usd{chain="ethereum",kind="staking",venue="lido-steth"}' in body
    # what Prometheus 2.x asks for: OpenMetrics, which must carry the same families
    resp = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert "yieldvault_rebalances_total" in await resp.text()
