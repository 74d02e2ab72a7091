"""The rate forecast (optimizer/forecast.py, README §3b): its AR(1) math on a known series, a decision
that no longer pays bridges for an alternating spread, the memory round trip, and spot at cold
start."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from core.types import PortfolioState, VenueCosts
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.forecast import (
    PHI_MAX,
    RateHistory,
    expected_average_rate,
    fit_ar1,
    level_rates,
)
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory
from optimizer.testing import KinkedLendingCurve, make_snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(hours=6)
HOME = "ethereum"
NAV = 1_000_000.0
COSTS = VenueCosts(deposit_usd=2.0, withdraw_usd=2.0)
LIMITS = RiskLimits(max_venue_ratio=0.6, min_idle_ratio=0.02)
SPOT = OptimizerSettings()
FORECAST = OptimizerSettings(rate_forecast="mean_reversion", rate_forecast_min_observations=8)


def ar1(phi: float, mu: float, sigma: float, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    y = [mu]
    for e in rng.standard_normal(n - 1):
        y.append(mu + phi * (y[-1] - mu) + sigma * float(e))
    return y


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_the_fit_recovers_a_known_ar1(phi: float) -> None:
    mu_hat, phi_hat = fit_ar1(ar1(phi, 0.05, 0.002, 20_000, seed=7)) or (math.nan, math.nan)
    assert mu_hat == pytest.approx(0.05, abs=5e-4)
    assert phi_hat == pytest.approx(phi, abs=0.02)


def test_the_fit_clamps_phi_and_refuses_what_it_cannot_fit() -> None:
    # an alternating series has lag-1 autocorrelation -1: clamped to 0 (the mean is the forecast)
    fit = fit_ar1([0.04, 0.08] * 10)
    assert fit is not None and fit[1] == 0.0 and fit[0] == pytest.approx(0.06)
    # a trend is a unit root: clamped below 1
    trend = fit_ar1([0.01 * i for i in range(50)])
    assert trend is not None and 0.9 < trend[1] <= PHI_MAX
    assert fit_ar1([0.05] * 10) is None  # constant: nothing to fit
    assert fit_ar1([0.05, 0.06]) is None  # too short


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.8, 0.99])
@pytest.mark.parametrize("k", [1, 4, 120])
def test_the_expected_average_is_the_mean_of_the_j_step_forecasts(phi: float, k: int) -> None:
    r0, mu = 0.09, 0.05
    brute = sum(mu + phi**j * (r0 - mu) for j in range(k)) / k
    assert expected_average_rate(r0, mu, phi, k) == pytest.approx(brute, rel=1e-12)


def test_the_expected_average_at_its_limits() -> None:
    r0, mu = 0.09, 0.05
    assert expected_average_rate(r0, mu, PHI_MAX, 120) == pytest.approx(r0, abs=1e-8)  # random walk
    assert expected_average_rate(r0, mu, 0.5, 0.25) == r0  # a horizon within one period: r0
    assert expected_average_rate(r0, mu, 0.0, 1e9) == pytest.approx(mu, abs=1e-10)


def test_rate_history_shifts_follow_the_series_and_need_enough_of_it() -> None:
    h = RateHistory(window=50)
    series = [0.04, 0.08] * 10
    for i, r in enumerate(series[:-1]):
        h.record(["v"], [r], NOW + i * STEP)
    assert h.shifts(["v"], np.array([0.04]), SPOT) is None  # spot: no shift whatever the history
    short = OptimizerSettings(rate_forecast="mean_reversion", rate_forecast_min_observations=30)
    assert h.shifts(["v"], np.array([0.04]), short) is None  # too few observations: spot
    h.record(["v"], [series[-1]], NOW + (len(series) - 1) * STEP)
    shift = h.shifts(["v", "unseen"], np.array([0.08, 0.07]), FORECAST)
    assert shift is not None
    k = 30 * 86_400 / STEP.total_seconds()
    # phi = 0: the average over 120 periods is mu + (r0 - mu)/120
    assert shift[0] == pytest.approx(0.06 + 0.02 / k - 0.08, rel=1e-9)
    assert shift[1] == 0.0  # no history of its own: spot
    # a second observation at the same time replaces the first
    h.record(["v"], [0.5], NOW + (len(series) - 1) * STEP)
    assert list(h.series["v"])[-1] == ((NOW + (len(series) - 1) * STEP).timestamp(), 0.5)


def test_level_rates_read_the_curve_where_we_trade() -> None:
    kinked = KinkedLendingCurve(
        supply_usd=5e6, borrow_usd=4.8e6, base=0.0, slope1=0.04, slope2=0.6, u_opt=0.9
    )
    s = make_snapshot("k", kinked)
    at_zero = level_rates([s], 0.5, 0.0)[0]
    at_ref = level_rates([s], 0.5, 400_000.0)[0]
    assert at_zero == pytest.approx(s.real_apr)
    assert at_ref == pytest.approx(float(kinked.income_usd(np.array([400_000.0]))[0]) / 400_000.0)
    assert at_ref < at_zero  # above the kink the spike at x -> 0 is removed by the deposit


def test_settings_reject_a_forecast_that_never_starts() -> None:
    with pytest.raises(ValidationError, match="rate_forecast_min_observations"):
        OptimizerSettings(rate_forecast_window=10, rate_forecast_min_observations=11)
    with pytest.raises(ValidationError, match="rate_forecast"):
        OptimizerSettings(rate_forecast="ewma")  # type: ignore[arg-type]


# -- decisions ------------------------------------------------------------------------------------


def market(cycle: int) -> list:
    """Home and polygon lending, their rates swapping every cycle (4 % / 8 %): a spread that reverts
    within one period, but a move to polygon costs a bridge leg each way (5 bp + gas)."""
    hi, lo = (0.08, 0.04) if cycle % 2 else (0.04, 0.08)
    return [
        make_snapshot("home", apr=hi, protocol="a", costs=COSTS),
        make_snapshot("poly", apr=lo, chain="polygon", protocol="b", costs=COSTS),
    ]


def replay(settings: OptimizerSettings, cycles: int, memory: OptimizerMemory = EMPTY_MEMORY):
    """Execute every plan (the allocation becomes the holdings, costs aside); the decisions."""
    opt = Optimizer(LIMITS, settings, HOME)
    pf = PortfolioState(positions_usd={}, idle_usd=NAV)
    out = []
    for c in range(cycles):
        d = opt.decide(market(c), pf, NOW + c * STEP, memory=memory)
        memory = d.memory
        out.append(d)
        if d.plan.execute:
            a = d.allocation
            pf = PortfolioState(
                positions_usd=dict(a.target_usd),
                idle_usd=a.idle_usd,
                idle_by_chain_usd=dict(a.idle_by_chain_usd),
            )
    return out, pf


def bridged(decisions) -> int:
    return sum(1 for d in decisions if d.plan.execute for m in d.plan.moves if m.action == "bridge")


def test_spot_churns_across_the_bridge_and_the_forecast_does_not() -> None:
    spot, _ = replay(SPOT, 24)
    assert bridged(spot[8:]) >= 10  # spot: to polygon and back on most cycles
    fc, _ = replay(FORECAST, 24)
    # cold (fewer than 8 observations) it is spot: the same decisions
    for a, b in zip(spot[:7], fc[:7], strict=True):
        assert a.allocation == b.allocation and a.plan == b.plan
    assert bridged(fc[8:]) == 0, [d.reason for d in fc[8:] if d.plan.execute]
    # the forecast values both venues near their 6 % mean: the gate holds
    assert all(not d.plan.execute for d in fc[9:])


def test_memory_round_trips_the_series_and_a_restart_decides_the_same() -> None:
    run, _ = replay(FORECAST, 12)
    mem = run[-1].memory
    assert set(mem.rate_series) == {"home", "poly"} and len(mem.rate_series["home"]) == 12
    back = OptimizerMemory.from_json(json.loads(json.dumps(mem.to_json())))
    assert back.rate_series == mem.rate_series
    # one decide more: the uninterrupted optimizer and a fresh one given the stored memory agree
    pf = PortfolioState(positions_usd={"home": 590_000.0}, idle_usd=NAV - 590_000.0)
    at = NOW + 12 * STEP
    a = Optimizer(LIMITS, FORECAST, HOME).decide(market(12), pf, at, memory=mem)
    b = Optimizer(LIMITS, FORECAST, HOME).decide(market(12), pf, at, memory=back)
    assert a.allocation == b.allocation and a.plan == b.plan
    assert a.memory.rate_series == b.memory.rate_series


def test_a_memory_stored_before_the_forecast_reads_as_empty_series() -> None:
    run, _ = replay(FORECAST, 3)
    stored = run[-1].memory.to_json()
    del stored["rate_series"]
    assert OptimizerMemory.from_json(stored).rate_series == {}


def test_spot_records_nothing_and_is_unchanged() -> None:
    run, _ = replay(SPOT, 3)
    assert run[-1].memory.rate_series == {}
    assert all(d.rate_shift is None for d in run)


def test_the_decision_reports_its_shifts_and_the_daemon_exports_them() -> None:
    """``Decision.rate_shift`` is what the decide valued each venue with (cold: None); the
    daemon exports it as ``yieldvault_venue_rate_forecast_shift_ratio`` (0 until then)."""
    from vault.metrics import Metrics

    run, _ = replay(FORECAST, 12)
    assert all(d.rate_shift is None for d in run[:7])  # fewer than 8 observations: spot
    shift = run[-1].rate_shift
    assert shift is not None and set(shift) == {"home", "poly"}
    # the rates swap every cycle around a 6 % mean: the forecast pulls the high one down, the low up
    now = market(11)
    hi, lo = ("home", "poly") if now[0].real_apr > now[1].real_apr else ("poly", "home")
    assert shift[hi] < 0.0 < shift[lo]
    m = Metrics()
    m.declare_venues([("home", "lending", "ethereum"), ("poly", "lending", "polygon")])
    name = "yieldvault_venue_rate_forecast_shift_ratio"
    assert (
        m.registry.get_sample_value(name, {"venue": "home", "kind": "lending", "chain": "ethereum"})
        == 0.0
    )
    m.set_venue_rate_forecast_shift("poly", "lending", "polygon", shift["poly"])
    got = m.registry.get_sample_value(
        name, {"venue": "poly", "kind": "lending", "chain": "polygon"}
    )
    assert got == shift["poly"]


def test_the_shift_moves_the_objective_slopes_and_the_gains_by_exactly_s() -> None:
    """The level shift ``s_i x`` (README §3b): every piece of venue ``i`` steepens by ``s_i``, its
    intercepts stay, and a move's gain over the horizon adds ``s_i (target - x0) H/365``."""
    from optimizer.cycle import build_cycle
    from optimizer.pricing import PlanContext

    snaps = market(0)
    pf = PortfolioState(positions_usd={"home": 300_000.0}, idle_usd=NAV - 300_000.0)
    s = np.array([-0.01, 0.02])
    spot = build_cycle(snaps, pf, LIMITS, SPOT, HOME)
    moved = build_cycle(snaps, pf, LIMITS, SPOT, HOME, rate_shift=s)
    a0, b0 = spot.objective_pieces(SPOT)
    a1, b1 = moved.objective_pieces(SPOT)
    np.testing.assert_allclose(a1, a0 + s[:, None], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(b1, b0)
    x0 = np.array([300_000.0, 0.0])
    target = np.array([100_000.0, 400_000.0])
    g0 = PlanContext(snaps, x0, SPOT, HOME).gains_usd(target)
    g1 = PlanContext(snaps, x0, SPOT, HOME, rate_shift=s).gains_usd(target)
    np.testing.assert_allclose(g1 - g0, s * (target - x0) * 30 / 365, rtol=1e-12)


def test_the_backtest_hindsight_stays_at_spot_and_ours_follows_the_config() -> None:
    from backtest.strategies import make_strategy

    ours = make_strategy("ours", LIMITS, FORECAST, HOME)
    hindsight = make_strategy("hindsight", LIMITS, FORECAST, HOME)
    assert ours.optimizer.settings.rate_forecast == "mean_reversion"  # type: ignore[attr-defined]
    assert hindsight.optimizer.settings.rate_forecast == "spot"  # type: ignore[attr-defined]
