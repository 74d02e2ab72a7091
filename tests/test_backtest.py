"""The backtester: gates, the replayed market, conservation and the checker at every step,
determinism, the look-ahead check and the CLI's error contract."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backtest.history import LENDING_COLUMNS, HistoryError, load_lending
from backtest.lookahead import check_lookahead
from backtest.market import history_venues
from backtest.run import load_config, prepare, run_prepared, shared_data
from backtest.sources import load_stablecoin_prices, load_uniswap_v2, lp_period_returns
from backtest.strategies import STRATEGIES
from vault.ledger import Ledger

REAL = shared_data("aave_v3_ethereum_hourly.csv.gz")
needs_real = pytest.mark.skipif(
    REAL is None, reason="shared/data/aave_v3_ethereum_hourly.csv.gz absent"
)


def write_history(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LENDING_COLUMNS)
        w.writerows(rows)
    return path


def synthetic_rows(
    days: int = 4, step_hours: int = 1, network: str = "ethereum", seed: int = 3
) -> list[list[object]]:
    """Three stablecoin reserves on a kinked curve (Uopt 0.9, slope1 5 %, slope2 60 %, RF 10 %),
    utilization a bounded random walk; USDT's rate overtakes USDC's half way."""
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = []
    u = {"USDC": 0.80, "USDT": 0.70, "DAI": 0.75}
    t0 = np.datetime64("2024-01-01T00:00:00")
    n = days * 24 // step_hours + 1
    for k in range(n):
        t = str(t0 + np.timedelta64(k * step_hours, "h")) + "Z"
        for sym in ("DAI", "USDC", "USDT"):
            drift = 0.004 if (sym == "USDT" and k > n // 2) else 0.0
            u[sym] = float(np.clip(u[sym] + drift + rng.normal(0, 0.003), 0.3, 0.97))
            rb = 0.05 * u[sym] / 0.9 if u[sym] <= 0.9 else 0.05 + 0.6 * (u[sym] - 0.9) / 0.1
            rs = rb * u[sym] * 0.9
            supplied = 5e8 if sym != "DAI" else 2e8
            rows.append(
                [
                    t,
                    network,
                    sym,
                    f"{supplied:.2f}",
                    f"{supplied * u[sym]:.2f}",
                    "0",
                    f"{rs:.8f}",
                    f"{rb:.8f}",
                ]
            )
    return rows


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vault.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


# -- gates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda r: r.__setitem__(0, r[0][:-1]), "hour_utc", "no UTC offset"),
        (lambda r: r.__setitem__(6, ""), "supply_apr", "refusing to invent"),
        (lambda r: r.__setitem__(3, "-5"), "supplied_usd", "negative"),
        (lambda r: r.__setitem__(4, "9e12"), "borrowed_usd", "utilization > 1"),
        (lambda r: r.__setitem__(7, "12"), "borrow_apr", "outside"),
        (lambda r: r.__setitem__(3, "abc"), "supplied_usd", "not a number"),
        (lambda r: r.__setitem__(2, ""), "symbol", "empty"),
    ],
)
def test_gate_names_row_field_and_reason(tmp_path: Path, mutate, field: str, reason: str) -> None:
    rows = synthetic_rows(days=1)
    mutate(rows[10])
    path = write_history(tmp_path / "h.csv", rows)
    with pytest.raises(HistoryError) as err:
        load_lending(path)
    assert err.value.field == field
    assert reason in err.value.reason
    assert err.value.where == f"{path}:12"


def test_gate_refuses_a_missing_hour_and_a_duplicate(tmp_path: Path) -> None:
    rows = synthetic_rows(days=1)
    gap = [r for r in rows if not (r[0] == rows[30][0] and r[2] == "USDC")]
    with pytest.raises(HistoryError, match=r"USDC has no row for .* not invented"):
        load_lending(write_history(tmp_path / "gap.csv", gap))
    dup = [*rows, rows[5]]
    with pytest.raises(HistoryError, match="duplicate row"):
        load_lending(write_history(tmp_path / "dup.csv", dup))
    missing = [[c for i, c in enumerate(r) if i != 5] for r in rows]
    with (tmp_path / "cols.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c for c in LENDING_COLUMNS if c != "liquidations_usd"])
        w.writerows(missing)
    with pytest.raises(HistoryError) as err:
        load_lending(tmp_path / "cols.csv")
    assert err.value.field == "liquidations_usd"


def test_any_source_in_the_contract_runs_unchanged(tmp_path: Path) -> None:
    """Another network, a daily step, gzipped: no code change."""
    rows = synthetic_rows(days=40, step_hours=24, network="arbitrum")
    path = tmp_path / "other.csv.gz"
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LENDING_COLUMNS)
        w.writerows(rows)
    h = load_lending(path)
    assert h.step_seconds == 86_400 and {r.network for r in h.reserves} == {"arbitrum"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("vault: {home_chain: arbitrum}\n")
    p = prepare(path, cfg, period="1d", prices_path=None)
    summary, runs = run_prepared(p, tmp_path / "out", ["ours", "stay_home"])
    assert summary["strategies"]["ours"]["cycles"] == 41
    assert runs[0].executed_plans >= 1


# -- conservation, checker, determinism -------------------------------------------------------------


def test_conservation_and_checker_at_every_step_over_a_whole_replay(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=3))
    p = prepare(path, None, period="6h", prices_path=None)
    summary, runs = run_prepared(p, tmp_path / "out", list(STRATEGIES), audit_every_cycle=True)
    for run in runs:
        assert run.audit_problems == []
        ledger = Ledger(run.ledger_path)
        try:
            assert ledger.total_units() == 0
            capital = 1_000_000 * 10**6
            income = sum(ledger.account(f"income:{v.id}") for v in history_venues(p.history))
            expenses = ledger.account("expense:gas") + ledger.account("expense:fees")
            assert ledger.balances().nav_units == capital - income - expenses
        finally:
            ledger.close()
    assert summary["strategies"]["ours"]["limit_breach_cycles"] == 0
    assert summary["strategies"]["hindsight"]["limit_breach_cycles"] == 0
    # chase_best puts everything in one reserve: it breaks max_venue_ratio, and the check sees it
    assert summary["strategies"]["chase_best"]["limit_breach_cycles"] > 0


def test_summary_is_byte_identical_on_the_same_inputs(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=3))
    outs = []
    for k in (1, 2):
        res = run_cli(
            "backtest",
            "--history",
            str(path),
            "--out",
            str(tmp_path / f"o{k}"),
            "--json",
            "--strategies",
            "ours,greedy_apy,hindsight",
        )
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
        assert json.loads(res.stdout)["strategies"]["ours"]["cycles"] == 13
    assert outs[0] == outs[1]
    assert (tmp_path / "o1" / "summary.json").read_bytes() == (
        tmp_path / "o2" / "summary.json"
    ).read_bytes()
    assert (tmp_path / "o1" / "ledger-ours.sqlite3").is_file()


# -- look-ahead -------------------------------------------------------------------------------------


def test_lookahead_check_passes_for_ours_and_catches_a_peeking_strategy(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=3))
    p = prepare(path, None, period="6h", prices_path=None)
    result = check_lookahead(p, tmp_path / "la", cuts=2, seed=1)
    assert result["identical"], result
    assert all(c["cycles_compared"] >= 2 for c in result["cuts"])
    peeking = check_lookahead(p, tmp_path / "la2", cuts=2, seed=1, strategy="hindsight")
    assert not peeking["identical"]  # hindsight reads the next period: the check must see it


def test_lookahead_check_passes_with_the_rate_forecast_at_work(tmp_path: Path) -> None:
    """The forecast fits each reserve's past rates kept in the memory. On a history where it
    changes the decisions (DAI on Arbitrum and USDT on Base trade the best rate every 6 h: spot
    rates bridge after it, the forecast sees the spread revert), a cut after it has started must
    give the same decisions as the whole run."""
    rows = synthetic_rows(days=3)
    times = sorted({r[0] for r in rows})
    for r in rows:
        r[1] = {"DAI": "arbitrum", "USDT": "base"}.get(str(r[2]), "ethereum")
        if r[2] in ("DAI", "USDT"):
            high = (r[2] == "DAI") == (times.index(r[0]) // 6 % 2 == 0)
            r[6], r[7] = ("0.12000000", "0.14666667") if high else ("0.02000000", "0.02444444")
    path = write_history(tmp_path / "h.csv", rows)
    p = prepare(path, None, period="1h", prices_path=None)
    assert p.config.settings.rate_forecast == "mean_reversion"
    spot = dataclasses.replace(
        p,
        config=dataclasses.replace(
            p.config, settings=p.config.settings.model_copy(update={"rate_forecast": "spot"})
        ),
    )
    _s, (forecast_run,) = run_prepared(p, tmp_path / "f", ["ours"])
    _s, (spot_run,) = run_prepared(spot, tmp_path / "s", ["ours"])
    differ = [
        k
        for k, (a, b) in enumerate(zip(forecast_run.records, spot_run.records, strict=True))
        if a.digest != b.digest
    ]
    assert differ, "the forecast never changed a decision: the check below would not test it"
    result = check_lookahead(p, tmp_path / "la", cuts=3, seed=2)
    assert result["identical"], result
    assert max(c["cycles_compared"] for c in result["cuts"]) > differ[0], (differ, result["cuts"])


# -- CLI errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--rebalance-every", "soon"], "--rebalance-every: expected a duration"),
        (["--strategies", "ours,magic"], "--strategies: unknown ['magic']"),
        (["--from", "2024-01-03", "--to", "2024-01-02"], "--to: 2024-01-02 is not after"),
        (["--assets", "WBTC"], "--assets: none of ['WBTC']"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_field(
    tmp_path: Path, extra: list[str], needle: str
) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=1))
    res = run_cli("backtest", "--history", str(path), "--out", str(tmp_path / "o"), *extra)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_cli_bad_history_and_config_exit_2(tmp_path: Path) -> None:
    rows = synthetic_rows(days=1)
    rows[7][6] = ""
    bad = write_history(tmp_path / "bad.csv", rows)
    res = run_cli("backtest", "--history", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "supply_apr: empty while supplied_usd > 0" in res.stderr
    assert f"{bad}:9" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("backtest", "--history", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "no such file" in res.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("limits: {max_venue_ratio: 3}\n")
    good = write_history(tmp_path / "good.csv", synthetic_rows(days=1))
    res = run_cli(
        "backtest", "--history", str(good), "--config", str(cfg), "--out", str(tmp_path / "o")
    )
    assert res.returncode == 2 and "limits.max_venue_ratio" in res.stderr
    assert "Traceback" not in res.stderr


# -- the other sources ------------------------------------------------------------------------------


def test_stablecoin_marks_show_the_svb_depeg() -> None:
    path = shared_data("stablecoin_prices_daily.csv")
    if path is None:
        pytest.skip("shared/data/stablecoin_prices_daily.csv absent")
    prices = load_stablecoin_prices(path)
    ts = int(np.datetime64("2023-03-11T12:00:00", "s").astype(int))
    assert prices.mark("usd-coin", ts) == pytest.approx(0.961065)
    assert prices.mark("usd-coin", int(prices.days[-1]) + 86_400) is None  # past the file: none


def test_uniswap_lp_fees_and_impermanent_loss_on_the_real_path() -> None:
    path = shared_data("uniswap_v2_usdc_weth_snapshots.csv.gz")
    if path is None:
        pytest.skip("shared/data/uniswap_v2_usdc_weth_snapshots.csv.gz absent")
    h = load_uniswap_v2(path)
    a = int(np.datetime64("2021-05-10", "s").astype(int))
    b = int(np.datetime64("2021-05-24", "s").astype(int))
    r = lp_period_returns(h, a, b)  # the May 2021 ETH crash: ETH ~3,900 -> ~2,100
    assert r.price_return_hold < -0.15
    assert r.impermanent_loss < -0.01
    assert 0.0 < r.fee_return < 0.05 and r.fee_apr > 0.05


@needs_real
def test_real_history_loads_with_its_known_shape() -> None:
    h = load_lending(REAL)  # type: ignore[arg-type]
    assert len(h) == 26_141 and h.step_seconds == 3600
    assert [r.symbol for r in h.reserves] == ["DAI", "USDC", "USDE", "USDT", "WETH"]
    assert float(np.nanmax(h.supply_apr[:, 1])) == pytest.approx(0.57, abs=0.01)


def test_default_config_loads() -> None:
    cfg = load_config(None)
    assert cfg.home_chain == "ethereum" and cfg.limits.max_venue_ratio == 0.4


# -- sweep ------------------------------------------------------------------------------------------


def test_sweep_on_a_local_dask_cluster_writes_the_frontier(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=2))
    out = tmp_path / "sweep"
    res = run_cli(
        "backtest",
        "sweep",
        "--history",
        str(path),
        "--out",
        str(out),
        "--json",
        "--grid",
        "limits.max_venue_ratio=0.3,0.5",
        "--grid",
        "optimizer.min_benefit_cost_ratio=1,3",
        "--workers",
        "2",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(res.stdout)
    assert len(result["points"]) == 4
    assert result["frontier"] and all(p in result["points"] for p in result["frontier"])
    assert {p["point"]["limits.max_venue_ratio"] for p in result["points"]} == {0.3, 0.5}
    assert (out / "frontier.png").stat().st_size > 1000
    assert "| limits.max_venue_ratio |" in (out / "frontier.md").read_text()


def test_sweep_refuses_an_unknown_key_before_running(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.csv", synthetic_rows(days=1))
    res = run_cli(
        "backtest",
        "sweep",
        "--history",
        str(path),
        "--out",
        str(tmp_path / "s"),
        "--grid",
        "limits.max_magic=1,2",
    )
    assert res.returncode == 2 and "--grid: limits.max_magic: unknown key" in res.stderr


def test_simulated_market_source_runs_through_the_adapters_and_the_books(tmp_path: Path) -> None:
    """--market: the mockfeeds world, polled by the daemon's adapters on loopback, seeded."""
    market = Path(__file__).resolve().parent.parent / "config" / "market.default.yaml"
    res = run_cli(
        "backtest",
        "--market",
        str(market),
        "--days",
        "0.5",
        "--rebalance-every",
        "6h",
        "--strategies",
        "ours,stay_home",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "sim"),
        "--json",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    s = json.loads(res.stdout)
    assert s["inputs"]["seed"] == 3 and s["strategies"]["ours"]["cycles"] == 3
    assert s["strategies"]["ours"]["executed_plans"] >= 1
    assert (tmp_path / "sim" / "report.html").is_file()
    res = run_cli("backtest", "--market", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "--market" in res.stderr


def test_bench_side_by_side_the_fast_path_decides_exactly_as_the_plain_one(tmp_path: Path) -> None:
    """The speed work changes the cost, not the run: batched, memoised curves and the in-memory
    ledger give the same plans and the same final NAV to the unit as scalar builds on a file ledger."""
    from backtest.bench import _side_by_side

    h = load_lending(write_history(tmp_path / "h.csv", synthetic_rows(days=2)))
    result = _side_by_side(h)
    assert result["same_outcome"] is True
    assert result["before"]["cycles"] == result["after"]["cycles"] == 49
    assert result["after"]["curve_builds"] <= result["before"]["curve_builds"]
    assert set(result["after"]["phase_ms_per_cycle"]) >= {"snapshots", "decide", "cycle", "check"}
    cpu = result["after"]["phase_cpu_ms_per_cycle"]
    assert set(cpu) >= {"snapshots", "decide", "cycle", "cycle_without_decide", "check", "market"}
    # CPU shares, not bounds: the parts add up (cycle = decide + the rest), none negative
    assert cpu["cycle_without_decide"] == pytest.approx(cpu["cycle"] - cpu["decide"], abs=0.02)
    assert min(cpu.values()) >= 0.0
