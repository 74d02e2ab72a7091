"""End to end: `yieldvault run` on the embedded default puts capital in the composite venues
that pay (the stETH loop and the hedged LP do at the default market's rates), within the limits,
and exports their risk state."""

import pytest

from tests.daemon_process import DaemonProcess
from tests.test_e2e import allocated_venues

pytestmark = pytest.mark.slow


def risk(daemon: DaemonProcess) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["venue"], dict(labels)["measure"]): value
        for (name, labels), value in daemon.metrics().items()
        if name == "yieldvault_venue_risk_ratio"
    }


def test_the_daemon_allocates_to_the_loop_and_the_hedged_lp(tmp_path):
    daemon = DaemonProcess(tmp_path / "var")
    try:
        daemon.wait_until(lambda: daemon.get("/healthz")[0] == 200, 30, "/healthz")
        venues = daemon.wait_until(
            lambda: (
                {"aave-v3-steth-loop", "uniswap-v2-usdc-weth-hedged"}
                <= set(allocated_venues(daemon))
                and allocated_venues(daemon)
            ),
            60,
            "allocations in the loop and the hedged LP",
        )
        nav = daemon.json("/api/v1/status")["nav_usd"]
        nav = float(nav)
        # within the limits of config/default.yaml: 20 % per composite kind, lido + loop <= 40 %
        assert venues["aave-v3-steth-loop"] <= 0.20 * nav * 1.01
        assert venues["uniswap-v2-usdc-weth-hedged"] <= 0.20 * nav * 1.01
        assert venues["aave-v3-steth-loop"] + venues.get("lido-steth", 0.0) <= 0.40 * nav * 1.01
        assert venues.get("azuki-rental", 0.0) <= 0.05 * nav * 1.01
        measures = daemon.wait_until(
            lambda: ("aave-v3-steth-loop", "health_factor") in risk(daemon) and risk(daemon),
            30,
            "the loop's health factor exported",
        )
        assert 1.04 <= measures[("aave-v3-steth-loop", "health_factor")] < 1.2
        assert ("uniswap-v2-usdc-weth-hedged", "carry_apr") in measures
        assert ("azuki-rental", "occupancy") in measures
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.logs()[-3000:]
