from datetime import UTC, datetime, timedelta

import pytest

from vault.performance import RealizedApr

T0 = datetime(2026, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_realized_apr_recovers_a_constant_rate_and_charges_costs():
    r = RealizedApr(half_life_days=1)
    nav, pos, income = 1_000_000_000_000, 500_000_000_000, 0
    r.update(T0, nav, {"a": pos}, {"a": income})
    assert r.portfolio is None and r.venues == {}
    for day in range(1, 6):
        earned = pos * 0.05 / 365  # 5 % APR on the position, accrued daily
        income -= earned
        nav += earned - 1_000_000  # and one dollar of gas a day
        pos += earned
        r.update(T0 + day * DAY, int(nav), {"a": int(pos)}, {"a": int(income)})
    assert r.venues["a"] == pytest.approx(0.05, rel=1e-3)
    # half the NAV earns 5 %, minus 365 USD/yr of gas
    expected_net = (0.05 * 500_000 - 365) / 1_000_000
    assert r.portfolio == pytest.approx(expected_net, rel=2e-2)


def test_a_loss_is_a_negative_rate_and_time_must_move_forward():
    r = RealizedApr(half_life_days=0.5)
    r.update(T0, 100, {"lp": 100}, {"lp": 0})
    r.update(T0 + DAY, 99, {"lp": 99}, {"lp": 1})  # the position lost one unit
    assert r.venues["lp"] == pytest.approx(-0.01 * 365)
    before = r.venues["lp"]
    # same timestamp: ignored, not a division by zero
    r.update(T0 + DAY, 50, {"lp": 50}, {"lp": 50})
    assert r.venues["lp"] == before
    with pytest.raises(ValueError, match="half_life_days"):
        RealizedApr(0)
