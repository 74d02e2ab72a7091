"""Grafana dashboards, provisioning and the compose stack: what Grafana and Prometheus need.

Offline checks: the committed JSON is what grafana/generate_dashboards.py writes; uids, panel ids
and grid positions are valid; every panel has a description, unit and query on the fixed data
source; every metric a query names exists in the catalog; every query parses (promtool); and the
compose file, the scrape config and the provisioning agree on names, ports and paths. Whether the
queries return data against a live daemon is tests/test_observability_prometheus.py's job.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from vault.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
PROMTOOL = shutil.which("promtool")


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "generate_dashboards", GRAFANA / "generate_dashboards.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
DASHBOARDS = {p.name: json.loads(p.read_text()) for p in DASHBOARD_FILES}


def all_panels(dash: dict) -> list[dict]:
    out, stack = [], list(dash["panels"])
    while stack:
        p = stack.pop(0)
        out.append(p)
        stack.extend(p.get("panels", []))
    return out


def exposed_names() -> set[str]:
    """Every sample name a Metrics registry exposes (histogram _bucket/_sum/_count included)."""
    m = Metrics()
    m.declare_venues([("v", "lp", "c")])
    m.declare_feeds(["f"])
    m.set_schedule(1, 1)
    m.set_build_info("test")
    m.declare_guards(["v"], ["depeg"])
    m.set_venue_state(
        "v",
        "lp",
        "c",
        real_apr=0,
        emission_apr=0,
        tvl_usd=1,
        frozen=False,
        observed_at=0,
        exit_liquidity_usd=1,
        realized_apr=0,
    )
    m.venue_risk.labels("v", "loop", "c", "health_factor").set(1.0)  # a composite kind's state
    m.set_limit_utilization("x", 0)
    m.record_rebalance("held", "optimal", 0.1, 1, 0.01, 0, 0, 0)
    names = set()
    for family in text_string_to_metric_families(m.exposition().decode()):
        names.update(s.name for s in family.samples)
    return names


METRIC_NAME = re.compile(r"\b(yieldvault_[a-z0-9_]+)\b")


def test_the_four_dashboards_exist_and_are_generated_from_the_script():
    assert set(DASHBOARDS) == {"overview.json", "venues.json", "optimizer.json", "feeds.json"}
    assert gen.main(["--check"]) == 0, (
        "grafana/dashboards/*.json differ from the generator: run it and commit"
    )


def test_dashboard_model_fields():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    for name, d in DASHBOARDS.items():
        assert 8 <= len(d["uid"]) <= 40 and re.fullmatch(r"[a-zA-Z0-9_-]+", d["uid"]), name
        assert d["title"] and 36 <= d["schemaVersion"] <= 42, name
        assert "id" not in d or d["id"] is None, (
            f"{name}: a fixed numeric id clashes across Grafana instances"
        )
        assert isinstance(d["panels"], list) and d["panels"], name


def test_panel_ids_are_unique_and_grid_positions_valid():
    for name, d in DASHBOARDS.items():
        panels = all_panels(d)
        ids = [p["id"] for p in panels]
        assert all(isinstance(i, int) and i > 0 for i in ids), name
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for p in panels:
            g = p["gridPos"]
            assert set(g) >= {"h", "w", "x", "y"}, (name, p["title"])
            assert all(isinstance(g[k], int) for k in "hwxy"), (name, p["title"])
            assert g["h"] >= 1 and 1 <= g["w"] <= 24 and g["x"] >= 0 and g["y"] >= 0, (
                name,
                p["title"],
            )
            assert g["x"] + g["w"] <= 24, f"{name}: {p['title']} runs past the 24-column grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]


def test_every_panel_has_description_unit_and_queries_on_the_fixed_datasource():
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    (ds,) = provisioned["datasources"]
    assert ds["uid"] == gen.DATASOURCE_UID and ds["type"] == "prometheus"
    for name, d in DASHBOARDS.items():
        for p in all_panels(d):
            where = f"{name}: {p.get('title')}"
            if p["type"] == "row":
                continue
            assert p["type"] in {"timeseries", "stat", "table"}, where
            assert p.get("title") and p.get("description"), where
            assert p["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
            assert p["datasource"] == {"type": "prometheus", "uid": ds["uid"]}, where
            assert p.get("targets"), f"{where} has no query"
            refs = [t["refId"] for t in p["targets"]]
            assert len(set(refs)) == len(refs), where
            for t in p["targets"]:
                assert t["datasource"]["uid"] == ds["uid"], where
                assert t.get("expr", "").strip(), f"{where} has an empty query"


def test_rate_windows_use_rate_interval_and_variables_are_defined():
    grafana_builtins = {"__rate_interval", "__interval", "__range"}
    for name, d in DASHBOARDS.items():
        defined = {v["name"] for v in d["templating"]["list"]}
        assert {"chain", "kind", "venue"} <= defined, name
        for title, ref, expr in gen.panel_queries(d):
            for fn, window in re.findall(r"\b(rate|irate|increase)\(.*?\[([^\]]+)\]", expr):
                if fn in ("rate", "irate"):
                    assert window == "$__rate_interval", (
                        f"{name}: {title} {ref}: {fn}() over {window}"
                    )
                else:
                    assert window in ("$__rate_interval", "$__range"), f"{name}: {title} {ref}"
            used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", expr)) - grafana_builtins
            assert used <= defined, f"{name}: {title} uses undefined {used - defined}"


def test_template_variables_come_from_allocation_labels():
    for name, d in DASHBOARDS.items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        for label in ("chain", "kind", "venue"):
            v = variables[label]
            assert v["type"] == "query" and v["datasource"]["uid"] == gen.DATASOURCE_UID, name
            assert re.fullmatch(
                rf"label_values\(yieldvault_allocation_usd(\{{.*\}})?, {label}\)",
                v["query"]["query"],
            ), name
            assert v["includeAll"] and v["allValue"] == ".*", name


def test_every_metric_a_dashboard_or_alert_names_is_exported():
    names = exposed_names()
    exprs = [(n, t, e) for n, d in DASHBOARDS.items() for t, _, e in gen.panel_queries(d)]
    exprs += [
        (n, v["name"], v["query"]["query"])
        for n, d in DASHBOARDS.items()
        for v in d["templating"]["list"]
    ]
    for path in (ROOT / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [
                (path.name, r.get("alert", r.get("record")), r["expr"]) for r in group["rules"]
            ]
    for where, title, expr in exprs:
        for metric in METRIC_NAME.findall(expr):
            assert metric in names, (
                f"{where}: {title} queries {metric}, which the daemon does not export"
            )


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package prometheus; run .ci/install-prometheus.sh)",
)
def test_every_dashboard_query_parses(tmp_path):
    """promtool parses each query (as a recording rule) after Grafana's variables are substituted."""
    rules = [
        {"record": f"panel:{d['uid'].replace('-', '_')}:{i}", "expr": gen.evaluable(expr)}
        for d in DASHBOARDS.values()
        for i, (_, _, expr) in enumerate(gen.panel_queries(d))
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    # control: a broken query is reported
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "bad", "rules": [{"record": "x:y", "expr": "sum(rate(x[1m])"}]}]}
        )
    )
    assert (
        subprocess.run(
            [PROMTOOL, "check", "rules", str(path)], capture_output=True, timeout=60
        ).returncode
        != 0
    )


def test_compose_provisioning_and_scrape_config_agree():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"yieldvault", "mockfeeds", "prometheus", "grafana"} <= set(services)

    def mounts(service: str) -> dict[str, str]:
        out = {}
        for spec in services[service].get("volumes", []):
            source, target, *_ = spec.split(":")
            out[target] = source
        return out

    # every bind mount exists in the repository
    for name in services:
        for source in mounts(name).values():
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"

    # Prometheus reads this repository's config and rules and scrapes the daemon service's port
    prom = mounts("prometheus")
    assert prom["/etc/prometheus"] == "./prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "yieldvault"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "yieldvault"
    assert services["yieldvault"]["environment"]["YIELDVAULT_LISTEN"].endswith(f":{port}")

    # the daemon polls the market service at the port it listens on
    feeds_url = services["yieldvault"]["environment"]["YIELDVAULT_FEEDS__ROOT_URL"]
    market_cmd = services["mockfeeds"]["command"]
    assert market_cmd[0] == "mock-feeds"
    assert (
        feeds_url
        == f"http://mockfeeds:{market_cmd[market_cmd.index('--listen') + 1].split(':')[1]}"
    )
    assert services["yieldvault"]["environment"]["YIELDVAULT_FEEDS__EMBEDDED_MARKET"] == "null"
    assert services["yieldvault"]["depends_on"]["mockfeeds"]["condition"] == "service_healthy"
    # the daemon runs a config that ships in the image (Dockerfile: COPY config /app/config)
    config_file = services["yieldvault"]["environment"]["YIELDVAULT_CONFIG_FILE"]
    assert (
        config_file.startswith("/app/config/")
        and (ROOT / "config" / Path(config_file).name).exists()
    )
    assert services["yieldvault"]["environment"]["YIELDVAULT_LISTEN"].startswith("0.0.0.0:")

    # Grafana: provisioning and dashboards mounted where the provider looks; data source -> Prometheus
    graf = mounts("grafana")
    assert graf["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "yieldvault.yaml").read_text()
    )
    (p,) = provider["providers"]
    assert graf[p["options"]["path"]] == "./grafana/dashboards"
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ][0]
    assert ds["url"] == "http://prometheus:9090"
    # $__rate_interval is computed from the data source's declared scrape interval
    assert ds["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (
        home.startswith(p["options"]["path"] + "/")
        and (GRAFANA / "dashboards" / Path(home).name).exists()
    )
    # images are pinned
    for name in ("prometheus", "grafana"):
        assert ":" in services[name]["image"] and not services[name]["image"].endswith(":latest")
