"""The replayed market (backtest/market.py): curves through the observed rate, no data after now,
exact withdrawals off par, hindsight's marks, a market that creates money caught; the prefetched
curves and batch-checked rate strategies equal the ones built one at a time."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from backtest.engine import ConservationError, RunConfig, replay_strategy
from backtest.history import load_lending
from backtest.market import ReplayMarket, history_venues
from backtest.rates import fit_rate_models
from backtest.run import prepare, run_prepared
from backtest.sources import load_stablecoin_prices
from backtest.strategies import STRATEGIES, make_strategy
from core.money import usd_to_units
from tests.test_backtest import synthetic_rows, write_history

# -- the replayed market ----------------------------------------------------------------------------


def test_market_curve_passes_through_the_observed_rate_and_our_deposit_lowers_it(
    tmp_path: Path,
) -> None:
    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=2)))
    rates = fit_rate_models(h)
    m = ReplayMarket(h, rates, history_venues(h))
    m.advance_to(int(h.times[10]))
    for snap in m.snapshots():
        j = m.by_id[snap.venue.id]
        observed = float(h.supply_apr[10, j])
        assert float(snap.curve.apr(np.array([1e-6]))[0]) == pytest.approx(observed, rel=1e-6)
        big = float(snap.curve.apr(np.array([1e8]))[0])
        assert big < observed  # $100M more supply lowers utilization and the rate
    with pytest.raises(Exception, match="exceeds position"):
        m.withdraw("aave-v3-ethereum-usdc", "1.000000", "k1")


def test_market_never_serves_data_after_now(tmp_path: Path) -> None:
    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=2)))
    m = ReplayMarket(h, fit_rate_models(h), history_venues(h))
    m.advance_to(int(h.times[5]) + 1800)  # between two rows: the earlier one
    assert m.now_ts == int(h.times[5])
    assert all(s.observed_at.timestamp() <= m.now_ts for s in m.snapshots())
    before = [(s.venue.id, s.real_apr, s.tvl_usd) for s in m.snapshots()]
    h.supply_apr[6:] = 9.0  # poison the future: what is served now must not change
    h.supplied_usd[6:] = 1.0
    assert [(s.venue.id, s.real_apr, s.tvl_usd) for s in m.snapshots()] == before
    assert [s.real_apr for s in m.hindsight_snapshots(3600)] == [9.0] * 3  # the one that may look


def write_marks(path: Path, days: int = 5, seed: int = 5) -> Path:
    """Daily marks off par from 2024-01-01 (USDC, USDT, DAI between 0.96 and 1.04)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Date", "usd-coin", "tether", "dai"])
        for k in range(days):
            day = str(np.datetime64("2024-01-01") + np.timedelta64(k, "D"))
            w.writerow([day, *(f"{v:.6f}" for v in rng.uniform(0.96, 1.04, 3))])
    return path


def test_a_withdrawal_off_par_shrinks_the_position_by_exactly_the_amount(tmp_path: Path) -> None:
    """The executor books a withdrawal as the position shrinking by what was asked: the market must
    agree to the unit at any mark (above par one token is worth more than a unit)."""
    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=2)))
    prices = load_stablecoin_prices(write_marks(tmp_path / "p.csv"))
    m = ReplayMarket(h, fit_rate_models(h), history_venues(h), prices=prices)
    m.advance_to(int(h.times[3]))
    rng = np.random.default_rng(1)
    for j, v in enumerate(m.venues):
        assert m.marks_micro()[j] != 10**6  # off par, both sides across the three
        m.deposit(v.id, "250000.000000", f"d{j}")
        for k in range(200):
            pos = m.position_units(j)
            amount = int(rng.integers(1, max(pos // 50, 2)))
            res = m.withdraw(v.id, f"{amount / 1e6:.6f}", f"w{j}-{k}")
            assert usd_to_units(res["applied_usd"]) == amount
            assert m.position_units(j) == pos - amount
            assert 0 <= m.credit_units[j] <= 2
        m.withdraw(v.id, f"{m.position_units(j) / 1e6:.6f}", f"all{j}")
        assert m.position_units(j) == 0 and m.tokens[j] == 0 and m.credit_units[j] == 0


def test_books_match_the_market_every_cycle_with_marks_off_par(tmp_path: Path) -> None:
    """Every strategy over a replay whose marks move daily off par: the engine checks books against
    the market to the unit after every cycle (a ConservationError fails the run)."""
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=3))
    p = prepare(path, None, period="6h", prices_path=write_marks(tmp_path / "p.csv"))
    summary, runs = run_prepared(p, tmp_path / "out", list(STRATEGIES), audit_every_cycle=True)
    assert all(r.audit_problems == [] for r in runs)
    assert summary["strategies"]["ours"]["limit_breach_cycles"] == 0
    assert sum(r.executed_plans for r in runs) > len(runs)


def test_hindsight_sees_the_next_periods_mark(tmp_path: Path) -> None:
    """A depeg ahead makes a reserve worth nothing to the hindsight strategy; a recovery ahead pays."""
    from backtest.curves import MarkedCurve

    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=3)))
    prices = load_stablecoin_prices(write_marks(tmp_path / "p.csv"))
    m = ReplayMarket(h, fit_rate_models(h), history_venues(h), prices=prices)
    m.advance_to(int(h.times[18]))  # 18:00: the next 6 h cross midnight, the marks move
    live = {s.venue.id: s for s in m.snapshots()}
    for s in m.hindsight_snapshots(6 * 3600):
        assert isinstance(s.curve, MarkedCurve)
        j = m.by_id[s.venue.id]
        drift = (m.mark_micro_at(j, int(h.times[24])) / int(m.marks_micro()[j]) - 1) * 365 * 4
        assert s.curve.drift_apr == pytest.approx(drift)
        base = live[s.venue.id].curve.apr(np.array([1e-6]))[0]
        if base + drift <= 0:
            assert s.curve.capacity_usd == 0.0  # it takes nothing
        else:
            assert s.curve.capacity_usd > 0.0
            assert s.curve.income_usd(np.array([1e5]))[0] > 0.0
        x = np.linspace(0.0, min(s.curve.capacity_usd, 1e9), 50)
        assert np.all(np.diff(s.curve.income_usd(x)) >= -1e-9)  # non-decreasing up to capacity


def test_a_market_that_creates_money_is_caught(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=2))
    p = prepare(path, None, period="6h", prices_path=None)

    class Leaky(ReplayMarket):
        def positions_view(self):  # type: ignore[no-untyped-def]
            view = super().positions_view()
            self.tokens[0] += 1  # one token unit appears from nowhere, after the venue reported
            return view

    import backtest.engine as engine

    original = engine.ReplayMarket
    engine.ReplayMarket = Leaky  # type: ignore[misc]
    try:
        cfg = RunConfig(p.config.limits, p.config.settings, "ethereum", 1e6, 6 * 3600)
        strategy = make_strategy("equal_weight", cfg.limits, cfg.settings, "ethereum")
        with pytest.raises(ConservationError, match=r"books .* market"):
            import asyncio

            asyncio.run(
                replay_strategy(
                    strategy,
                    p.history,
                    p.rates,
                    history_venues(p.history),
                    cfg,
                    tmp_path / "l.sqlite3",
                )
            )
    finally:
        engine.ReplayMarket = original  # type: ignore[misc]


# -- curves built ahead, strategies checked in batches ------------------------------------------


def test_prefetched_curves_are_the_ones_each_cycle_builds_alone(tmp_path: Path) -> None:
    """A market told its cycle times builds the coming cycles' curves in one batch: every cycle's
    snapshots are what the unoptimised path (one scalar build per reserve per cycle) serves."""
    from backtest.curves import CurveMemo
    from backtest.engine import cycle_times

    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=3)))
    rates = fit_rate_models(h)
    memo = CurveMemo()
    ahead = ReplayMarket(
        h, rates, history_venues(h), curves=memo, cycle_ts=cycle_times(h, 3 * 3600)
    )
    plain = ReplayMarket(h, rates, history_venues(h), curves=CurveMemo(0, batch=False))
    x = np.concatenate(([0.0, 1e-6, 1.0], np.geomspace(1e2, 5e9, 40)))
    cycles = cycle_times(h, 3 * 3600)
    for ts in cycles:
        ahead.advance_to(ts)
        plain.advance_to(ts)
        a, b = ahead.snapshots(), plain.snapshots()
        assert [s.venue.id for s in a] == [s.venue.id for s in b]
        for sa, sb in zip(a, b, strict=True):
            assert sa.curve.capacity_usd == sb.curve.capacity_usd
            assert np.array_equal(sa.curve.income_usd(x, 0.3), sb.curve.income_usd(x, 0.3))
            assert (sa.state, sa.real_apr, sa.tvl_usd) == (sb.state, sb.real_apr, sb.tvl_usd)
    # built ahead: one batch served every cycle (3 reserves x 25 cycles < PREFETCH_CURVES)
    assert memo.builds == 3 * len(cycles) and memo.hits == 3 * len(cycles)


def test_strategies_checked_in_a_batch_equal_the_checked_constructor(tmp_path: Path) -> None:
    from protocols import aave

    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=2)))
    rates = fit_rate_models(h)
    rows = [(i, j) for i in range(0, len(h.times), 7) for j in range(len(h.reserves))]
    made = rates.strategies(rows)
    assert made == [rates.strategy(i, j) for i, j in rows]
    assert [hash(s) for s in made] == [hash(rates.strategy(i, j)) for i, j in rows]
    assert all(type(s) is aave.AaveRateStrategy for s in made)
    # one row the constructor refuses: the batch is made row by row, so its own error is raised
    rates.slope1_apr[7, 1] = rates.slope2_apr[7, 1] + 1.0
    with pytest.raises(ValueError, match=r"slope1_apr .* must be <= slope2_apr"):
        rates.strategies(rows)


def test_curve_memo_keeps_the_newest_entries(tmp_path: Path) -> None:
    from backtest.curves import CurveMemo

    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=1)))
    rates = fit_rate_models(h)
    keys = [
        (rates.strategy(i, j), float(h.borrowed_usd[i, j]), 1e8 + i) for i in range(6) for j in (0,)
    ]
    memo = CurveMemo(4)
    memo.prefetch(keys[:3])
    memo.prefetch(keys[2:])  # one already kept: 3 new builds, the 2 oldest go
    assert memo.builds == 6 and memo.hits == 0
    kept = memo.get(keys[2:])
    assert memo.hits == 4 and memo.builds == 6  # the newest four are served without a build
    assert [c.capacity_usd for c in kept] == [c.capacity_usd for c in CurveMemo(0).get(keys[2:])]
    memo.get(keys[:1])  # the oldest was evicted: built again
    assert memo.builds == 7


def test_capital_comes_home_when_the_history_has_no_reserve_on_the_home_chain(
    tmp_path: Path,
) -> None:
    """An Arbitrum-and-Base history replayed by an Ethereum vault: every move between the two far
    chains routes through home, so a bridge to Ethereum must fill (it was refused as an 'unknown
    chain', and the withdrawn capital sat idle on the far chain); no move of any strategy is
    refused (a deposit may still find nothing landed yet: the bridge fills at the next cycle),
    and the books balance."""
    rows = synthetic_rows(days=3)
    half = sorted({r[0] for r in rows})[36]
    for r in rows:
        r[1] = "base" if r[2] == "USDT" else "arbitrum"
        # DAI (arbitrum) pays best, then USDT (base) does: the capital must move between them
        if r[2] in ("DAI", "USDT"):
            high = (r[2] == "DAI") == (str(r[0]) < str(half))
            r[6], r[7] = ("0.09000000", "0.11000000") if high else ("0.00500000", "0.00611111")
    p = prepare(write_history(tmp_path / "far.csv", rows), None, period="6h", prices_path=None)
    assert p.config.home_chain == "ethereum"
    assert "ethereum" not in {r.network for r in p.history.reserves}
    _summary, runs = run_prepared(p, tmp_path / "out", ["ours", "greedy_apy"])
    m = ReplayMarket(p.history, fit_rate_models(p.history), history_venues(p.history))
    with pytest.raises(Exception, match="unknown chain 'ethereum'"):
        m.bridge("arbitrum", "ethereum", "10.000000", "k-without-home")
    home_legs = 0
    for run in runs:
        assert not run.audit_problems
        db = sqlite3.connect(run.ledger_path)
        rows = db.execute("SELECT results_json FROM rebalances").fetchall()
        db.close()
        results = [r for (text,) in rows for r in json.loads(text)]
        assert results and not [r for r in results if r["status"] == "refused"], run.name
        home_legs += sum(
            r["venue_id"].endswith("->ethereum") and r["applied_units"] > 0 for r in results
        )
    assert home_legs  # DAI's capital went to USDT through the home chain
