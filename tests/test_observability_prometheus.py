"""Every dashboard query and alert rule, evaluated by a real Prometheus scraping a running daemon.

Starts, on loopback with ephemeral ports, ``yieldvault run`` on the embedded default config with a
1 s schedule, and Debian's ``prometheus`` server scraping it every second with the repository's
alert rules loaded. Twice: with the simulated market (the mock feeds) inside the daemon, and with
``yieldvault mock-feeds`` as a separate process the daemon polls by URL (the docker-compose layout). Once Prometheus holds
a few scrapes and a few solves, every PromQL expression of every dashboard panel (Grafana's
variables substituted: ``$__rate_interval`` -> 1m, template variables -> ``.*`` and then a real
value) and every alert rule goes through ``/api/v1/query``: each must parse and return data with a
finite value, except the allow-lists below, each with its reason.

Needs the ``prometheus`` and ``promtool`` binaries (Debian package ``prometheus``; CI installs it
with .ci/install-prometheus.sh); skipped with that reason without them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
if PROMETHEUS is None or PROMTOOL is None:
    pytest.skip(
        "needs the prometheus and promtool binaries (Debian package prometheus; run .ci/install-prometheus.sh)",
        allow_module_level=True,
    )

_spec = importlib.util.spec_from_file_location(
    "generate_dashboards", ROOT / "grafana" / "generate_dashboards.py"
)
gen = importlib.util.module_from_spec(_spec)  # grafana/ is not a package
_spec.loader.exec_module(gen)

DASHBOARDS = {
    p.name: json.loads(p.read_text())
    for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
}
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
DEFAULT_CONFIG = ROOT / "config" / "default.yaml"
CONFIG_VENUES = {v["id"]: v for v in yaml.safe_load(DEFAULT_CONFIG.read_text())["venues"]}

#: alerts that must stay silent on a healthy daemon: their expression may return nothing. Each
#: still has to evaluate cleanly inside Prometheus, and every metric it names must exist there.
SILENT_ALERTS = {
    "YieldvaultDown": "the daemon is up and scraped",
    "YieldvaultFeedStale": "every feed polls successfully each second",
    "YieldvaultSolverFailing": "the default config solves optimally",
    "YieldvaultLimitBreached": "the optimizer keeps every limit, so no utilization is above 100 %",
    "YieldvaultNoRecentRebalance": "a rebalance completes every second",
    "YieldvaultNavDrawdown": "a fresh paper vault has not lost 2 % of its NAV",
    "YieldvaultVenueFrozen": "the simulated market serves good data for every venue",
    "YieldvaultMoveUnresolved": "every venue answers every move",
    "YieldvaultPlanAwaiting": "vault.approval is auto and the mode paper: no plan waits",
    "YieldvaultReconciliationBreak": "every venue's report is explained by the books and its rate",
    "YieldvaultLedgerIntegrity": "nobody touches the ledger file underneath the daemon",
    "YieldvaultGuardExit": "no protocol-health guard trips on the calm default market",
    "YieldvaultGuardPause": "no protocol-health guard trips on the calm default market",
    "YieldvaultGuardFreeze": "no protocol-health guard trips on the calm default market",
}

#: dashboard targets (dashboard, panel title, refId) allowed to return no data or only NaN, each
#: with its reason. Every other panel, realized APR included, must show data from a live daemon.
_ONE_VENUE = (
    "a per-kind panel; the test puts one venue (the default's loop) into $venue for every panel, "
    "and this kind's measures do not exist for a loop (the Loops panel shows data)"
)
MAY_BE_EMPTY: dict[tuple[str, str, str], str] = {
    ("venues.json", "Hedged LPs: funding and carry", "A"): _ONE_VENUE,
    ("venues.json", "Hedged LPs: funding and carry", "B"): _ONE_VENUE,
    ("venues.json", "NFT rentals: floor drawdown and occupancy", "A"): _ONE_VENUE,
    ("venues.json", "NFT rentals: floor drawdown and occupancy", "B"): _ONE_VENUE,
}

INTERVALS = {"poll": 1, "rebalance": 1}
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(
    what: str,
    check,
    procs: list[subprocess.Popen],
    timeout: float = TIMEOUT,
    interval: float = 0.25,
):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                pytest.fail(
                    f"{p.args[0]} exited with {p.returncode} while waiting for {what}:\n{tail(p)}"
                )
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout} s waiting for {what} (last: {last!r})\n"
        + "\n".join(tail(p) for p in procs)
    )


def tail(p: subprocess.Popen) -> str:
    log = Path(p.log_path)  # type: ignore[attr-defined]
    return f"--- {log.name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log_path, "wb") as out:  # the child keeps its own descriptor
        p = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log_path.parent
        )
    p.log_path = log_path  # type: ignore[attr-defined]
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def yieldvault_exe() -> str:
    exe = Path(sys.executable).parent / "yieldvault"
    return (
        str(exe)
        if exe.exists()
        else (shutil.which("yieldvault") or pytest.fail("yieldvault CLI not installed"))
    )


class Stack:
    def __init__(self, daemon_url: str, prom_url: str, procs: list[subprocess.Popen]):
        self.daemon_url = daemon_url
        self.prom_url = prom_url
        self.procs = procs

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.prom_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = get(url)
        doc = json.loads(body)
        assert doc.get("status") == "success", (
            f"{path} {params}: HTTP {status}: {doc.get('errorType')}: {doc.get('error')}"
        )
        return doc["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", data["resultType"]
        return data["result"]

    def scalar(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])


@pytest.fixture(scope="module", params=["embedded", "mock-feeds"])
def stack(request, tmp_path_factory) -> Stack:
    tmp = tmp_path_factory.mktemp("observability")
    daemon_port, prom_port = free_port(), free_port()
    exe = yieldvault_exe()
    procs: list[subprocess.Popen] = []
    try:
        env = {
            **os.environ,
            "YIELDVAULT_SCHEDULE__POLL_INTERVAL_SECONDS": str(INTERVALS["poll"]),
            "YIELDVAULT_SCHEDULE__REBALANCE_INTERVAL_SECONDS": str(INTERVALS["rebalance"]),
        }
        if request.param == "mock-feeds":
            # as in docker-compose.yml: the market runs alone, the daemon polls it by URL
            market_port = free_port()
            market = spawn(
                [
                    exe,
                    "mock-feeds",
                    "--listen",
                    f"127.0.0.1:{market_port}",
                    "--state",
                    str(tmp / "market.json"),
                ],
                tmp / "mockfeeds.log",
            )
            procs.append(market)
            market_url = f"http://127.0.0.1:{market_port}"
            wait_for(
                "the mock feeds", lambda: get(f"{market_url}/defillama/pools")[0] == 200, procs
            )
            env.update(
                {
                    "YIELDVAULT_FEEDS__EMBEDDED_MARKET": "null",
                    "YIELDVAULT_FEEDS__ROOT_URL": market_url,
                }
            )
        daemon = spawn(
            [
                exe,
                "--log-json",
                "run",
                "--config",
                str(DEFAULT_CONFIG),
                "--listen",
                f"127.0.0.1:{daemon_port}",
                "--data-dir",
                str(tmp / "data"),
            ],
            tmp / "daemon.log",
            env,
        )
        procs.append(daemon)
        daemon_url = f"http://127.0.0.1:{daemon_port}"
        wait_for("the daemon's /metrics", lambda: get(f"{daemon_url}/metrics")[0] == 200, procs)

        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {
                    "job_name": "yieldvault",
                    "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom = spawn(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            tmp / "prometheus.log",
        )
        procs.append(prom)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus to be ready", lambda: get(f"{prom_url}/-/ready")[0] == 200, procs)
        s = Stack(daemon_url, prom_url, procs)

        def scraped_enough() -> bool:
            # >= 3 successful scrapes (rate() over 1m needs two samples), and in Prometheus' latest
            # scrape: several polls, several solves and a completed rebalance cycle
            up = s.query('sum_over_time(up{job="yieldvault"}[1m])')
            if not up or float(up[0]["value"][1]) < 3:
                return False
            solves = s.query("sum(yieldvault_solves_total)")
            polls = s.query("sum(yieldvault_feed_poll_duration_seconds_count)")
            rebalanced = s.query("yieldvault_rebalances_total")
            return (
                bool(solves)
                and float(solves[0]["value"][1]) >= 2
                and bool(polls)
                and float(polls[0]["value"][1]) >= 2 * len(CONFIG_VENUES)
                and sum(float(r["value"][1]) for r in rebalanced) >= 2
            )

        wait_for("scrapes with polls and solves in Prometheus", scraped_enough, procs)
        yield s
    finally:
        for p in reversed(procs):
            stop(p)


# --- the daemon's own exposition ------------------------------------------------------------------


def test_promtool_check_metrics_passes_on_the_running_daemon(stack):
    status, body = get(f"{stack.daemon_url}/metrics")
    assert status == 200
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert b"yieldvault_nav_usd" in body


def test_the_scrape_target_is_healthy(stack):
    (target,) = stack.api("targets")["activeTargets"]
    assert target["health"] == "up", target.get("lastError")
    assert target["labels"]["job"] == "yieldvault"


# --- dashboards -----------------------------------------------------------------------------------


def _real_values(stack: Stack) -> dict[str, str]:
    """A real value for each template variable, as a user would pick one."""
    venue_id = sorted(CONFIG_VENUES)[0]
    feeds = stack.api("label/feed/values")
    return {
        "venue": venue_id,
        "kind": CONFIG_VENUES[venue_id]["kind"],
        "chain": CONFIG_VENUES[venue_id]["chain"],
        "feed": sorted(feeds)[0] if feeds else "",
    }


def _has_finite_value(result: list[dict]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def test_every_dashboard_query_parses_and_returns_data(stack):
    real = _real_values(stack)
    problems, checked = [], 0
    for name, dash in DASHBOARDS.items():
        for title, ref, expr in gen.panel_queries(dash):
            variants = {"all (.*)": gen.evaluable(expr)}
            if re.search(r"\$(venue|kind|chain|feed)\b", expr):
                variants["one value"] = gen.evaluable(expr, real)
            for variant, promql in variants.items():
                checked += 1
                try:
                    result = stack.query(promql)
                except AssertionError as exc:  # a parse or evaluation error
                    problems.append(f"{name} / {title} / {ref} [{variant}]: {exc}")
                    continue
                if (name, title, ref) in MAY_BE_EMPTY:
                    continue
                if not result:
                    problems.append(f"{name} / {title} / {ref} [{variant}]: no data for {promql}")
                elif not _has_finite_value(result):
                    problems.append(
                        f"{name} / {title} / {ref} [{variant}]: only NaN/Inf for {promql}"
                    )
    assert not problems, f"{len(problems)} of {checked} queries failed:\n" + "\n".join(problems)
    assert checked >= 60


def test_allow_list_names_real_targets():
    targets = {(n, t, r) for n, d in DASHBOARDS.items() for t, r, _ in gen.panel_queries(d)}
    assert set(MAY_BE_EMPTY) <= targets, set(MAY_BE_EMPTY) - targets


def test_template_variables_list_the_configured_venues(stack):
    for name, dash in DASHBOARDS.items():
        for var in dash["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
            assert m, f"{name}: {var['name']} is not a label_values() query"
            selector, label = gen.evaluable(m.group(1)), m.group(2)
            values = set(stack.api(f"label/{label}/values", **{"match[]": selector}))
            expected = {
                "venue": set(CONFIG_VENUES),
                "kind": {v["kind"] for v in CONFIG_VENUES.values()},
                "chain": {v["chain"] for v in CONFIG_VENUES.values()},
            }.get(label)
            assert values, f"{name}: variable {var['name']} has no values"
            if expected is not None:
                assert values == expected, f"{name}: variable {var['name']}"


# --- alert rules ----------------------------------------------------------------------------------


def _alert_rules() -> list[dict]:
    return [
        r for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    ]


def test_every_alert_expression_parses_and_returns_data_or_is_silent_by_design(stack):
    names = set(stack.api("label/__name__/values"))
    problems = []
    for rule in _alert_rules():
        alert = rule.get("alert") or rule["record"]
        try:
            result = stack.query(rule["expr"])
        except AssertionError as exc:
            problems.append(f"{alert}: {exc}")
            continue
        if alert in SILENT_ALERTS:
            if result:
                problems.append(
                    f"{alert} is expected silent ({SILENT_ALERTS[alert]}) but returns {result}"
                )
            missing = {
                m for m in re.findall(r"\b(yieldvault_[a-z0-9_]+|up)\b", rule["expr"])
            } - names
            if missing:
                problems.append(
                    f"{alert} is silent only because Prometheus has no {sorted(missing)}"
                )
        elif not result:
            problems.append(f"{alert} returns no data")
    assert not problems, "\n".join(problems)
    assert set(SILENT_ALERTS) <= {r.get("alert") for r in _alert_rules()}


def test_prometheus_evaluates_every_rule_without_error_and_none_is_active(stack):
    def evaluated():
        groups = stack.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return (
            rules
            if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)
            else None
        )

    rules = wait_for("a rule evaluation", evaluated, stack.procs, timeout=15)
    assert {r["name"] for r in rules} == {r.get("alert") or r.get("record") for r in _alert_rules()}
    for r in rules:
        assert r["health"] == "ok", f"{r['name']}: {r.get('lastError')}"
        assert r["state"] == "inactive", (
            f"{r['name']} is {r['state']} on a healthy daemon: {r.get('alerts')}"
        )


# --- the numbers make sense -----------------------------------------------------------------------


def test_capital_identity_and_freshness_hold_in_prometheus(stack):
    nav = stack.scalar("yieldvault_nav_usd")
    assert 0.9e6 < nav < 1.1e6  # the default config deposits 1,000,000 USD
    parts = stack.scalar(
        "sum(yieldvault_allocation_usd) + on() yieldvault_idle_usd + on() yieldvault_in_flight_usd"
    )
    assert parts == pytest.approx(nav, abs=1.0), "idle + positions + in flight != NAV"
    # wall-clock timestamps: ages are small and never negative
    for expr in (
        "time() - yieldvault_feed_last_success_timestamp_seconds",
        "time() - yieldvault_venue_observed_timestamp_seconds",
        "time() - yieldvault_last_success_timestamp_seconds",
    ):
        for r in stack.query(expr):
            age = float(r["value"][1])
            assert -2 <= age <= 60, f"{expr} {r['metric']}: {age} s"
    assert stack.scalar("sum(yieldvault_schedule_interval_seconds)") == sum(INTERVALS.values())


def test_every_feed_succeeds_and_every_venue_has_data(stack):
    """On the healthy default market each feed's last success moves and each venue has a snapshot.

    This is what keeps YieldvaultFeedStale and YieldvaultVenueFrozen silent in steady state, not
    only in the first seconds this test runs for.
    """
    feeds = stack.query("changes(yieldvault_feed_last_success_timestamp_seconds[1m])")
    assert feeds, "no feed has a last-success series"
    stuck = sorted(r["metric"]["feed"] for r in feeds if float(r["value"][1]) < 1)
    assert not stuck, f"feeds with no successful poll while Prometheus watched: {stuck}"
    observed = {
        r["metric"]["venue"] for r in stack.query("yieldvault_venue_observed_timestamp_seconds")
    }
    assert observed == set(CONFIG_VENUES), (
        f"venues without a snapshot: {sorted(set(CONFIG_VENUES) - observed)}"
    )
    frozen = [r["metric"]["venue"] for r in stack.query("yieldvault_venue_frozen == 1")]
    assert not frozen, f"frozen on a healthy market: {frozen}"
