"""The Aave v3 kinked rate model against a year of real daily rates (docs/aave-real-data.md).

The data file lives outside the repo, at $YIELDVAULT_SHARED_DIR/data/aave_v3_daily_rates.csv
(default: <repo parent>/shared). Tests that need it are skipped, with the path, if it is absent;
the synthetic tests of the method always run.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from protocols.aave import PRESETS, AaveRateStrategy, borrow_apr, supply_apr
from protocols.realdata import (
    KinkedFit,
    RateSeries,
    RateTable,
    fit_best_optimal_usage_ratio,
    fit_kinked_history,
    implied_slope1,
    read_rates_csv,
    realized_supply_apr,
    recover_utilization,
    segment_piecewise_constant,
    select_series,
)

SHARED_DIR = Path(
    os.environ.get("YIELDVAULT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
DATA_FILE = SHARED_DIR / "data" / "aave_v3_daily_rates.csv"
D = np.datetime64


@pytest.fixture(scope="module")
def table() -> RateTable:
    if not DATA_FILE.is_file():
        pytest.skip(f"real data file absent: {DATA_FILE} (set YIELDVAULT_SHARED_DIR)")
    return read_rates_csv(DATA_FILE)


@pytest.fixture(scope="module")
def usdc(table: RateTable) -> KinkedFit:
    return fit_kinked_history(select_series(table, "ethereum", "USDC"), optimal_usage_ratio=0.92)


# --- the method on synthetic data -------------------------------------------------------------


def test_segmentation_recovers_steps_and_ignores_noise() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat([0.055, 0.065, 0.06, 0.04], [20, 50, 5, 30])
    noisy = truth + rng.uniform(-2e-6, 2e-6, truth.size)
    assert segment_piecewise_constant(noisy, penalty=1e-6) == [
        (0, 20),
        (20, 70),
        (70, 75),
        (75, 105),
    ]
    assert segment_piecewise_constant(np.full(10, 0.05), penalty=1e-6) == [(0, 10)]
    assert segment_piecewise_constant([], penalty=1.0) == []
    with pytest.raises(ValueError, match="finite"):
        segment_piecewise_constant([0.1, np.nan], penalty=1.0)


def _synthetic_series(
    u: np.ndarray, slope1: np.ndarray, slope2: float = 0.10, rf: float = 0.1
) -> RateSeries:
    b = np.empty_like(u)
    s = np.empty_like(u)
    for i, (ui, s1) in enumerate(zip(u, slope1, strict=True)):
        strat = AaveRateStrategy(0.0, float(s1), slope2, 0.92, rf)
        b[i] = borrow_apr(strat, float(ui))
        s[i] = supply_apr(strat, float(ui))
    n = u.size
    return RateSeries(
        network="test",
        symbol="USDC",
        asset="0x0",
        date=D("2025-01-01") + np.arange(n),
        supply_apr=np.round(s, 6),  # the real file quotes 6 decimals
        borrow_apr=np.round(b, 6),
        reserve_factor=np.full(n, rf),
        liquidity_index=np.ones(n),
    )


def test_fit_recovers_synthetic_curve() -> None:
    rng = np.random.default_rng(1)
    u = rng.uniform(0.6, 1.0, 120)
    slope1 = np.repeat([0.055, 0.04], 60)
    fit = fit_kinked_history(_synthetic_series(u, slope1), optimal_usage_ratio=0.92)
    assert [round(s.slope1_apr, 5) for s in fit.segments] == [0.055, 0.04]
    assert all(abs(s.slope2_apr - 0.10) < 1e-3 for s in fit.segments)  # type: ignore[operator]
    assert fit.share_explained == 1.0
    assert np.nanmax(np.abs(fit.utilization - u)) < 1e-4


def test_recover_utilization_nan_without_borrow() -> None:
    series = _synthetic_series(np.array([0.5, 0.8]), np.array([0.05, 0.05]))
    series = dataclasses.replace(series, borrow_apr=np.array([0.0, series.borrow_apr[1]]))
    u = recover_utilization(series)
    assert np.isnan(u[0]) and u[1] == pytest.approx(0.8, abs=1e-4)
    assert np.isnan(implied_slope1(np.array([0.04]), np.array([0.0]))[0])


# --- findings on the real file ------------------------------------------------------------------


def test_file_shape(table: RateTable, usdc: KinkedFit) -> None:
    assert len(table) == 42_443
    assert (
        usdc.n_days == usdc.n_valid == 395
    )  # every day has borrow > 0, so U is recovered every day
    assert usdc.series.reserve_factor.min() == usdc.series.reserve_factor.max() == 0.10
    with pytest.raises(ValueError, match="several reserves"):
        select_series(table, "arbitrum", "USDC")  # native USDC and USDC.e share the symbol


def test_usdc_slope1_is_piecewise_constant_with_governance_steps(usdc: KinkedFit) -> None:
    firsts = [str(s.first_date) for s in usdc.segments]
    slopes = [s.slope1_apr for s in usdc.segments]
    assert firsts == [
        "2025-07-22",
        "2025-08-15",
        "2025-10-25",
        "2025-11-27",
        "2026-01-06",
        "2026-03-08",
    ]
    assert slopes == pytest.approx([0.055, 0.065, 0.060, 0.055, 0.050, 0.040], abs=1e-5)
    # on every below-kink day the implied slope1 sits on its segment's value to within quote rounding
    assert max(s.max_abs_slope1_dev for s in usdc.segments) < 5e-6
    below = ~usdc.above_kink
    assert below.sum() == 360
    # naive implied slope1 (ignoring the kink) is constant on 91 % of all days, not 95 %:
    # the 35 days above the kink carry the slope2 term
    assert usdc.share_slope1_constant == pytest.approx(360 / 395)


def test_usdc_segments_match_governance_snapshots(usdc: KinkedFit) -> None:
    def segment_on(day: str):
        return next(s for s in usdc.segments if s.first_date <= D(day) <= s.last_date)

    # reference/protocol_math.md §1.3: snapshot A (~31 Jul 2025), snapshot B (~Feb 2026), 2026-08-22
    assert segment_on("2025-07-31").slope1_apr == pytest.approx(
        PRESETS["ethereum-usdc-2025-07"].slope1_apr, abs=1e-5
    )
    feb = segment_on("2026-02-15")
    assert feb.slope1_apr == pytest.approx(PRESETS["ethereum-usdc-2026-02"].slope1_apr, abs=1e-5)
    assert feb.slope2_apr == pytest.approx(PRESETS["ethereum-usdc-2026-02"].slope2_apr, abs=1e-3)
    assert segment_on("2026-08-22").slope1_apr == pytest.approx(0.040, abs=1e-5)
    last = usdc.series.date == D("2026-08-22")
    assert usdc.implied_slope1[last][0] == pytest.approx(0.040, abs=1e-5)
    assert usdc.utilization[last][0] == pytest.approx(0.9152, abs=1e-4)


def test_usdc_kink_and_slope2(usdc: KinkedFit) -> None:
    assert usdc.n_above_kink == 35
    lo, hi = usdc.kink_bracket()
    assert lo <= 0.92 <= hi and hi - lo < 5e-4  # the data pins the kink to [0.9200, 0.9203]
    assert usdc.segments[-1].slope2_apr == pytest.approx(0.10, abs=5e-4)
    assert usdc.segments[-1].n_above_kink == 31
    # U = 100 % on 2026-04-20..23: borrow APR at its cap slope1 + slope2 = 14 %
    full = usdc.utilization > 0.9999
    assert [str(d) for d in usdc.series.date[full]] == [
        "2026-04-20",
        "2026-04-21",
        "2026-04-22",
        "2026-04-23",
    ]
    assert usdc.series.borrow_apr[full] == pytest.approx(0.14, abs=1e-4)


def test_usdc_model_explains_all_but_three_days(usdc: KinkedFit) -> None:
    assert usdc.share_explained == pytest.approx(392 / 395)
    unexplained = [str(d) for d in usdc.series.date[~usdc.explained]]
    # above-kink days whose per-day slope2 is 11.6 % / 10.8 % instead of 10 % (see the doc)
    assert unexplained == ["2025-11-08", "2025-11-09", "2026-01-31"]
    below = ~usdc.above_kink
    assert np.max(np.abs(usdc.residual_apr[below])) < 2e-6
    assert np.sqrt(np.mean(usdc.residual_apr[below] ** 2)) < 1e-6


def test_usdc_liquidity_index_confirms_quoted_supply_rate(usdc: KinkedFit) -> None:
    s = usdc.series
    realized = realized_supply_apr(s)
    quoted = (s.supply_apr[1:] + s.supply_apr[:-1]) / 2
    assert realized.mean() == pytest.approx(quoted.mean(), rel=0.02)
    assert np.corrcoef(realized, quoted)[0, 1] > 0.95


def test_other_ethereum_stablecoins_follow_the_same_schedule(table: RateTable) -> None:
    for symbol, expected in (
        (
            "USDT",
            [0.055, 0.06362, 0.065, 0.060, 0.055, 0.050, 0.040],
        ),  # 0.06362 = 6.5 % * 0.92/0.94
        ("DAI", [0.055, 0.065, 0.060, 0.055, 0.050]),
    ):
        fit = fit_kinked_history(select_series(table, "ethereum", symbol), optimal_usage_ratio=0.92)
        assert [s.slope1_apr for s in fit.segments] == pytest.approx(expected, abs=1e-5), symbol
        assert fit.share_explained >= 0.96, symbol


def test_l2_usdc_uses_uopt_090_with_the_same_slope1_steps(table: RateTable) -> None:
    for network, asset in (
        ("arbitrum", "0xaf88d065e77c8cc2239327c5edb3a432268e5831"),
        ("optimism", "0x0b2c639c533813f4aa9d7837caf62653d097ff85"),
        ("linea", None),
    ):
        fit = fit_best_optimal_usage_ratio(select_series(table, network, "USDC", asset))
        assert fit.optimal_usage_ratio == 0.90, network
        assert [s.slope1_apr for s in fit.segments] == pytest.approx(
            [0.055, 0.065, 0.060, 0.055, 0.050, 0.040], abs=1e-5
        ), network
        assert fit.share_explained >= 0.97, network
