"""The API's port is bound before the embedded market asks the OS for one.

The market listens on port 0 (any free port); were the API's address bound after it, the OS could
hand the market the very port the API was configured with (a test's ``free_port()`` is such a
port: probed, then released), and the daemon would fail to start with "address already in use".
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from tests.daemon_process import free_port
from vault.daemon import Daemon
from vault.settings import DEFAULT_CONFIG, load_settings


def _bindable(port: int) -> bool:
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
        return True
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE
        return False
    finally:
        probe.close()


async def test_the_api_port_is_held_before_the_market_starts_and_served_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    settings = load_settings(DEFAULT_CONFIG, listen=f"127.0.0.1:{port}", data_dir=tmp_path / "var")
    daemon = Daemon(settings, config_dir=DEFAULT_CONFIG.parent, config_path=DEFAULT_CONFIG)
    seen: list[bool] = []
    start_market = Daemon._start_market

    async def watched(self: Daemon) -> None:
        seen.append(_bindable(port))
        await start_market(self)

    monkeypatch.setattr(Daemon, "_start_market", watched)
    try:
        await daemon.open_books(serve_api=True)
        assert seen == [False]  # the market started while our port was already taken, by us
        assert daemon.feeds_url is not None and f":{port}" not in daemon.feeds_url
        await daemon._start_api()
        assert daemon.listen_url == f"http://127.0.0.1:{port}"
    finally:
        await daemon.stop()
    assert _bindable(port)  # released at stop


async def test_a_start_that_fails_after_binding_releases_the_port(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(DEFAULT_CONFIG, listen=f"127.0.0.1:{port}", data_dir=tmp_path / "var")
    daemon = Daemon(settings, config_dir=DEFAULT_CONFIG.parent, config_path=DEFAULT_CONFIG)
    try:
        await daemon.open_books(serve_api=True)
        assert not _bindable(port)
    finally:
        await daemon.stop()  # the API never served: stop closes the bound socket
    assert _bindable(port)
