"""Incidents that unfold over time (mockfeeds/incidents.py): a depeg along a real daily path, an
exploit preceded by outflows and an oracle off the market, a bank run to 100 % utilization."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mockfeeds.incidents import REAL_PATHS, path_price
from mockfeeds.market import Market
from mockfeeds.state import MarketError
from tests.mockfeeds_world import cfg

HOUR = 3600.0
DAY = 86_400.0
AAVE = "aave-v3-usdc-ethereum"


def market(tmp_path: Path | None = None) -> Market:
    return Market.from_config(cfg(), state_path=tmp_path / "w.json" if tmp_path else None)


def test_path_interpolates_the_daily_closes() -> None:
    ust = REAL_PATHS["ust-2022-05"]
    assert path_price(ust, 0) == ust[0] and path_price(ust, 99) == ust[-1]
    assert path_price(ust, 3.5) == pytest.approx((0.9947 + 0.754) / 2)


def test_depeg_path_follows_ust_hour_by_hour_and_marks_positions(tmp_path: Path) -> None:
    m = market(tmp_path)
    m.deposit("earn-usdt-flexible", "100000.000000", "d1")
    m.start_scenario(
        {"name": "depeg_path", "chain": "ethereum", "token": "USDT", "duration_seconds": 16 * DAY}
    )
    seen = []
    for _ in range(3 * 24 + 6):
        m.advance(HOUR)
        seen.append(m.marks["ethereum:USDT"])
    # 6 h into day 3 -> 4 of the path (0.9947 -> 0.754), one hourly step at a time
    steps = [a - b for a, b in itertools.pairwise(seen)]
    assert max(steps) < 0.011 and seen[-1] == pytest.approx(
        0.9947 - 6 / 24 * (0.9947 - 0.754), abs=2e-3
    )
    pos = float(m.position_usd_dec("earn-usdt-flexible"))
    assert pos == pytest.approx(100_000 * seen[-1], rel=2e-3)
    # survives a restart mid-path and goes on from where it was
    m.save()
    m2 = Market.from_config(cfg(), state_path=tmp_path / "w.json")
    m2.advance(DAY)
    assert m2.marks["ethereum:USDT"] == pytest.approx(
        path_price(REAL_PATHS["ust-2022-05"], 4.25), abs=2e-3
    )
    with pytest.raises(MarketError, match=r"params\.path"):
        m2.start_scenario(
            {"name": "depeg_path", "chain": "ethereum", "token": "USDT", "params": {"path": "luna"}}
        )


def test_exploit_path_outflow_and_oracle_before_the_loss_and_pause() -> None:
    m = market()
    m.deposit(AAVE, "200000.000000", "d1")
    v = m.by_id[AAVE]
    others0 = v.s_others
    m.start_scenario(
        {
            "name": "exploit_path",
            "venue": AAVE,
            "params": {
                "lead_seconds": 6 * HOUR,
                "outflow_fraction": 0.4,
                "oracle_bps": 300,
                "loss_fraction": 0.3,
            },
            "duration_seconds": 2 * DAY,
        }
    )
    m.advance(3 * HOUR)
    assert v.s_others == pytest.approx(others0 * 0.8, rel=0.02)  # half the lead: 20 % gone
    assert v.oracle_offset_bps == 300 and not v.paused
    assert float(m.position_usd_dec(AAVE)) == pytest.approx(200_000, rel=1e-3)
    m.advance(3 * HOUR)
    assert v.paused and v.oracle_offset_bps == 0
    assert float(m.position_usd_dec(AAVE)) == pytest.approx(140_000, rel=1e-3)
    with pytest.raises(MarketError):
        m.withdraw(AAVE, "1000.000000", "w1")
    m.advance(2 * DAY)
    assert not v.paused


def test_bank_run_drives_utilization_to_100_percent_then_books_bad_debt() -> None:
    m = market()
    m.deposit(AAVE, "200000.000000", "d1")
    v = m.by_id[AAVE]
    m.start_scenario(
        {
            "name": "bank_run",
            "venue": AAVE,
            "params": {"loss_fraction": 0.1},
            "duration_seconds": 12 * HOUR,
        }
    )
    us = []
    for _ in range(11):
        m.advance(HOUR)
        us.append(v.utilization())
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(us))
    assert us[0] < 0.9 and us[-1] >= 0.998
    assert v.available_usd(m) < 200_000  # withdrawals wait
    before = float(m.position_usd_dec(AAVE))
    m.advance(HOUR)
    assert float(m.position_usd_dec(AAVE)) == pytest.approx(before * 0.9, rel=1e-3)
