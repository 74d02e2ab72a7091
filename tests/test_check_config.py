"""`yieldvault check-config`: a good config passes; each kind of bad config is named, exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vault.cli import main
from vault.settings import DEFAULT_CONFIG, ConfigError, load_settings

DEFAULT = yaml.safe_load(DEFAULT_CONFIG.read_text())


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    # the embedded market file is referenced relative to the config's folder
    (tmp_path / "market.default.yaml").write_text(
        (DEFAULT_CONFIG.parent / "market.default.yaml").read_text()
    )
    return path


def with_change(path: str, value) -> dict:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return data


def run_check(capsys, path: Path) -> tuple[int, str]:
    code = main(["check-config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_embedded_default_is_valid(capsys):
    code, out = run_check(capsys, DEFAULT_CONFIG)
    assert code == 0, out
    assert "OK" in out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ("limits.max_venue_ration", 0.3),
            "limits.max_venue_ration: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            ("schedule.poll_interval_seconds", "fast"),
            "schedule.poll_interval_seconds",
            id="wrong-type",
        ),
        pytest.param(
            ("limits.min_idle_ratio", 1.5),
            "limits.min_idle_ratio: Input should be less than or equal to 1",
            id="impossible-value",
        ),
        pytest.param(("venues.1.risk_score", -1), "venues.1.risk_score", id="negative-risk-score"),
        pytest.param(("venues.2.kind", "casino"), "venues.2.kind", id="unknown-venue-kind"),
        pytest.param(
            ("listen", "localhost"), "listen: Value error, expected HOST:PORT", id="bad-listen"
        ),
        pytest.param(
            ("limits.max_chain_ratio", {"solana": 0.5}),
            "limits.max_chain_ratio: no configured venue is on chain ['solana']",
            id="limit-on-unknown-chain",
        ),
        pytest.param(
            (
                "limits.liquidity_floors",
                [{"days": 1, "min_ratio": 0.5}, {"days": 1, "min_ratio": 0.2}],
            ),
            "liquidity_floors: two floors with the same days",
            id="two-floors-same-horizon",
        ),
    ],
)
def test_bad_configs_are_rejected_naming_the_key(tmp_path, capsys, change, expected):
    code, out = run_check(capsys, write(tmp_path, with_change(*change)))
    assert code == 2
    assert expected.replace("Value error, ", "") in out.replace("Value error, ", ""), out


def test_duplicate_venue_ids_are_rejected(tmp_path, capsys):
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["venues"].append(dict(data["venues"][0]))
    code, out = run_check(capsys, write(tmp_path, data))
    assert code == 2
    assert "id 'lido-steth' appears twice" in out


def test_yaml_syntax_error_names_line_and_column(tmp_path, capsys):
    code, out = run_check(capsys, write(tmp_path, "vault:\n  mode: paper\n limits: [\n"))
    assert code == 2
    assert "line 3" in out and "YAML syntax error" in out


def test_missing_file_is_named(tmp_path, capsys):
    code, out = run_check(capsys, tmp_path / "nope.yaml")
    assert code == 2
    assert "nope.yaml" in out and "cannot read the file" in out


def test_limits_that_cannot_hold_the_capital_are_named(tmp_path, capsys):
    """Caps whose sum is below the share of NAV that must be invested (all but min idle): named."""
    data = with_change(
        "limits.max_kind_ratio",
        {
            "staking": 0.1,
            "lending": 0.1,
            "lp": 0.1,
            "bridge_arb": 0.1,
            "fixed": 0.1,
            "loop": 0.1,
            "hedged_lp": 0.1,
            "nft_rental": 0.1,
        },
    )
    code, out = run_check(capsys, write(tmp_path, data))
    assert code == 2
    assert "max_kind_ratio" in out and "min_idle_ratio" in out, out


def test_venue_caps_too_small_for_the_venues_are_named(tmp_path, capsys):
    code, out = run_check(capsys, write(tmp_path, with_change("limits.max_venue_ratio", 0.1)))
    assert code == 2
    assert "max_venue_ratio" in out, out


def test_environment_overrides_yaml_and_is_validated(monkeypatch):
    monkeypatch.setenv("YIELDVAULT_SCHEDULE__POLL_INTERVAL_SECONDS", "7")
    monkeypatch.setenv("YIELDVAULT_LIMITS__MIN_IDLE_RATIO", "0.1")
    settings = load_settings(DEFAULT_CONFIG)
    assert settings.schedule.poll_interval_seconds == 7
    assert settings.limits.min_idle_ratio == 0.1
    assert (
        settings.limits.max_venue_ratio == DEFAULT["limits"]["max_venue_ratio"]
    )  # untouched siblings survive
    monkeypatch.setenv("YIELDVAULT_SCHEDULE__POLL_INTERVAL_SECONDS", "-3")
    with pytest.raises(ConfigError) as err:
        load_settings(DEFAULT_CONFIG)
    assert any(p.startswith("schedule.poll_interval_seconds") for p in err.value.problems)


def test_run_refuses_a_bad_config_with_exit_code_2(tmp_path):
    path = write(tmp_path, with_change("limits.min_idle_ratio", 2))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli",
            "run",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "var"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "limits.min_idle_ratio" in proc.stderr
    assert not (tmp_path / "var" / "ledger.sqlite3").exists()  # refused before touching anything
