"""Alert rules and scrape config: promtool lint, promtool unit tests, and their coverage.

Needs promtool (Debian package prometheus; .ci/install-prometheus.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM_DIR = ROOT / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM_DIR / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package prometheus; run .ci/install-prometheus.sh)",
)

REQUIRED_ALERTS = {
    "YieldvaultDown",
    "YieldvaultFeedStale",
    "YieldvaultSolverFailing",
    "YieldvaultLimitBreached",
    "YieldvaultNoRecentRebalance",
    "YieldvaultNavDrawdown",
    "YieldvaultVenueFrozen",
    "YieldvaultMoveUnresolved",
    "YieldvaultPlanAwaiting",
    "YieldvaultReconciliationBreak",
    "YieldvaultLedgerIntegrity",
    "YieldvaultGuardExit",
    "YieldvaultGuardPause",
    "YieldvaultGuardFreeze",
}


def alert_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_required_alert_exists_with_severity_and_annotations():
    rules = alert_rules()
    assert {r["alert"] for r in rules} == REQUIRED_ALERTS
    for r in rules:
        assert r["alert"].startswith("Yieldvault")
        assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
        assert r["annotations"]["summary"].strip() and r["annotations"]["description"].strip(), r[
            "alert"
        ]
        assert "for" in r, f"{r['alert']} has no `for`: a single bad scrape would page"


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    firing, silent = set(), set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else silent).add(t["alertname"])
    assert firing >= REQUIRED_ALERTS, f"no firing test for {REQUIRED_ALERTS - firing}"
    assert silent >= REQUIRED_ALERTS, f"no silent test for {REQUIRED_ALERTS - silent}"


@needs_promtool
def test_rules_pass_promtool_lint():
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_pass_their_promtool_unit_tests():
    result = promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_unit_tests_catch_a_changed_threshold(tmp_path):
    """Control: loosen one threshold in a copy of the rules and the unit tests must fail."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM_DIR, copy)
    rules = copy / "rules" / "yieldvault-alerts.yml"
    text = rules.read_text()
    assert "yieldvault_limit_utilization_ratio > 1.001" in text
    rules.write_text(
        text.replace(
            "yieldvault_limit_utilization_ratio > 1.001", "yieldvault_limit_utilization_ratio > 1.5"
        )
    )
    result = promtool("test", "rules", *[str(copy / "tests" / p.name) for p in TEST_FILES])
    assert result.returncode != 0
    assert "YieldvaultLimitBreached" in result.stdout + result.stderr


@needs_promtool
def test_scrape_config_is_valid_and_scrapes_the_daemon_job():
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    # every rule selects job="yieldvault"
    assert "yieldvault" in jobs
    assert config["rule_files"] == ["rules/*.yml"]
