"""The stepped scenario runs' daemon config (``tests.guard_scenarios._config``).

The executor's bridge wait is a setting, ``executor.bridge_wait_seconds`` (5 wall seconds by
default, the daemon's normal behaviour); the stepped runs set it to 0, since a market whose clock
is paused fills no bridge leg while the executor waits: a cycle checks its legs once and the leg
lands at the cycle after the next clock step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guard_scenarios import _config
from vault.daemon import Daemon
from vault.executor import PaperExecutor
from vault.settings import DEFAULT_CONFIG, ConfigError, load_settings


def test_the_default_waits_and_the_stepped_config_does_not(tmp_path: Path) -> None:
    assert load_settings(DEFAULT_CONFIG).executor.bridge_wait_seconds == 5.0
    stepped = load_settings(_config(tmp_path, None))
    assert stepped.executor.bridge_wait_seconds == 0
    # everything else as the default config has it
    default = load_settings(DEFAULT_CONFIG)
    assert stepped.model_dump(exclude={"executor"}) == default.model_dump(exclude={"executor"})


def test_a_negative_wait_is_refused_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YIELDVAULT_EXECUTOR__BRIDGE_WAIT_SECONDS", "-1")
    with pytest.raises(ConfigError) as err:
        load_settings(DEFAULT_CONFIG)
    assert "executor.bridge_wait_seconds" in err.value.render()


async def test_the_daemon_hands_the_setting_to_its_executor(tmp_path: Path) -> None:
    config = _config(tmp_path, None)
    settings = load_settings(config, listen="127.0.0.1:0", data_dir=tmp_path / "var")
    daemon = Daemon(settings, config_dir=config.parent, config_path=config)
    try:
        await daemon.open_books()
        executor = daemon.executor
        assert isinstance(executor, PaperExecutor)
        assert executor._bridge_wait == 0
    finally:
        await daemon.stop()
