"""The daily 13-chain Aave file as a backtest input: read by its header, converted in memory with the
stated TVL assumption, reserves keyed by address (a relabel is one series), symbols selecting their
variants, and the CLI's contract (exit 2 naming the field)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from backtest.history import HistoryError, base_symbol, load_lending
from backtest.run import DEFAULT_ASSETS, prepare, run_prepared, shared_data
from backtest.sources import (
    DEFAULT_ASSUMED_SUPPLIED_USD,
    daily_aave_to_lending,
    load_history,
)
from tests.test_backtest import run_cli

DAILY = shared_data("aave_v3_daily_rates.csv")
HEADER = [
    "date",
    "network",
    "symbol",
    "asset",
    "supply_apr",
    "borrow_apr",
    "reserve_factor",
    "liquidity_index",
    "variable_borrow_index",
    "frozen",
    "paused",
    "borrowing_enabled",
]
BRIDGED = "0xff970a61a04b1ca14834a43f5de4533ebddb5cc8"


def write_daily(path: Path, days: int = 40, skip: tuple[int, ...] = (3,)) -> Path:
    """Three reserves on two chains in the daily file's own format: arbitrum's native USDC, its
    bridged USDC relabelled USDC.e on day 10 (both labels that day, as the source has it), base's
    USDC and WETH (left out by default). Day ``skip`` is missing from the whole file."""
    rng = np.random.default_rng(5)
    rows = []
    for d in range(days):
        if d in skip:
            continue
        day = str(np.datetime64("2025-07-22") + np.timedelta64(d, "D"))
        reserves = [
            ("arbitrum", "USDC", "0xaf88d065e77c8cc2239327c5edb3a432268e5831", 0.80),
            ("base", "USDC", "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913", 0.85),
            ("base", "WETH", "0x4200000000000000000000000000000000000006", 0.40),
        ]
        bridged = [("USDC", 0.70)] if d < 10 else [("USDC.e", 0.70)]
        frozen = "True" if d >= 30 else "False"  # base's USDC is frozen from day 30
        if d == 10:
            bridged = [("USDC", 0.70), ("USDC.e", 0.70)]
        reserves += [("arbitrum", sym, BRIDGED, u) for sym, u in bridged]
        for network, symbol, asset, u0 in reserves:
            u = float(np.clip(u0 + rng.normal(0, 0.02), 0.1, 0.95))
            rb = 0.06 * u / 0.9
            flag = frozen if (network, symbol) == ("base", "USDC") else "False"
            rows.append(
                [
                    day,
                    network,
                    symbol,
                    asset,
                    f"{rb * u * 0.9:.6f}",
                    f"{rb:.6f}",
                    "0.1",
                    "1.1",
                    "1.2",
                    flag,
                    "False",
                    "True",
                ]
            )
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def test_the_daily_file_converts_in_memory_as_on_disk(tmp_path: Path) -> None:
    src = write_daily(tmp_path / "daily.csv")
    h, info = load_history(src)
    assert info is not None and info["assumed_supplied_usd"] == DEFAULT_ASSUMED_SUPPLIED_USD
    # one reserve per address: the bridged USDC is one series named by its latest label
    assert [r.key for r in h.reserves] == [
        "arbitrum:USDC",
        "arbitrum:USDC.e",
        "base:USDC",
        "base:WETH",
    ]
    assert info["relabelled"] == {
        "arbitrum:USDC.e": {"address": BRIDGED, "symbols": ["USDC", "USDC.e"]}
    }
    assert info["relabel_day_rows_dropped"] == 1
    assert h.step_seconds == 86_400 and len(h) == 40
    assert np.all(h.supplied_usd[np.isfinite(h.supplied_usd)] == DEFAULT_ASSUMED_SUPPLIED_USD)
    # borrowed = U x supplied with U from the two rates: R_s = R_b U (1 - RF)
    j = 0
    u = h.borrowed_usd[0, j] / h.supplied_usd[0, j]
    assert h.supply_apr[0, j] == pytest.approx(h.borrow_apr[0, j] * u * 0.9, rel=1e-4)
    on_disk = tmp_path / "contract.csv"
    daily_aave_to_lending(src, on_disk)
    g = load_lending(on_disk, fill_gaps=1)
    for name in ("supplied_usd", "borrowed_usd", "supply_apr", "borrow_apr", "frozen"):
        np.testing.assert_array_equal(getattr(g, name), getattr(h, name))
    assert g.reserves == h.reserves
    # a frozen row is not live (no snapshot, no deposit), its data kept (a position accrues)
    assert h.frozen_rows() == {"base:USDC": {"rows": 10, "first": "2025-08-21T00:00:00Z"}}
    k = [r.key for r in h.reserves].index("base:USDC")
    assert h.live(29)[k] and not h.live(30)[k] and np.isfinite(h.supply_apr[30, k])


def test_a_symbol_selects_its_variants() -> None:
    for symbol, base in [
        ("USDC.e", "USDC"),
        ("USDbC", "USDC"),
        ("USDC-0xaf88", "USDC"),
        ("USDT0", "USDT"),
        ("DAI.e", "DAI"),
        ("USDe", "USDE"),
        ("sUSDe", "SUSDE"),
        ("GHO", "GHO"),
        ("EURC", "EURC"),
    ]:
        assert base_symbol(symbol) == base, symbol


def test_cli_replays_the_daily_file_and_says_what_it_converted(tmp_path: Path) -> None:
    src = write_daily(tmp_path / "daily.csv")
    out = tmp_path / "out"
    refused = run_cli(
        "backtest", "--history", str(src), "--rebalance-every", "1d", "--out", str(out)
    )
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    # the field, the reserve, the first missing time and the way on
    assert "hour_utc: arbitrum:USDC has no row for 2025-07-25T00:00:00Z" in refused.stderr
    assert "--fill-gaps 1" in refused.stderr
    args = ["backtest", "--history", str(src), "--rebalance-every", "1d", "--fill-gaps", "1"]
    done = run_cli(*args, "--strategies", "ours,stay_home", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    inputs = summary["inputs"]
    # WETH is not a USD vault's: the default assets take USDC and its variants
    assert inputs["reserves"] == ["arbitrum:USDC", "arbitrum:USDC.e", "base:USDC"]
    assert inputs["converted"]["format"] == "aave_v3_daily_rates"
    assert inputs["converted"]["assumed_supplied_usd"] == DEFAULT_ASSUMED_SUPPLIED_USD
    assert set(inputs["converted"]["relabelled"]) == {"arbitrum:USDC.e"}
    assert inputs["fill_gaps"] == {
        "max_periods": 1,
        "reserves": {
            k: {"first": "2025-07-25T00:00:00Z", "longest_run": 1, "periods": 1}
            for k in inputs["reserves"]
        },
    }
    assert summary["strategies"]["ours"]["cycles"] == 40
    assert inputs["frozen_reserves"] == {"base:USDC": {"first": "2025-08-21T00:00:00Z", "rows": 10}}


def test_cli_bad_daily_input_exits_2_naming_the_field(tmp_path: Path) -> None:
    src = write_daily(tmp_path / "daily.csv")
    lines = src.read_text().splitlines()
    cells = lines[5].split(",")
    cells[5] = "n/a"  # borrow_apr
    lines[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    r = run_cli("backtest", "--history", str(bad), "--fill-gaps", "1", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "borrow_apr: not a number: 'n/a'" in r.stderr and f"{bad}:6" in r.stderr
    r = run_cli(
        "backtest", "--history", str(src), "--fill-gaps", "-1", "--out", str(tmp_path / "o")
    )
    assert r.returncode == 2 and "--fill-gaps: must be a whole number" in r.stderr
    neither = tmp_path / "neither.csv"
    neither.write_text("day,chain,rate\n2025-07-22,base,0.05\n")
    r = run_cli("backtest", "--history", str(neither), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "hour_utc: missing column" in r.stderr
    assert "nor the daily Aave file's" in r.stderr


@pytest.mark.skipif(DAILY is None, reason="shared/data/aave_v3_daily_rates.csv absent")
def test_the_real_daily_file_loads_with_its_gaps_relabels_and_ends() -> None:
    h, info = load_history(DAILY)  # type: ignore[arg-type]
    assert info is not None
    assert len(h.reserves) == 111 and h.step_seconds == 86_400
    assert set(info["relabelled"]) == {
        "arbitrum:USDC.e",
        "optimism:USDC.e",
        "polygon:USDC.e",
        "polygon:USDT0",
    }
    with pytest.raises(HistoryError, match="has no row for 2025-07-23T00:00:00Z"):
        h.gated(0)
    g = h.gated(1).select(list(DEFAULT_ASSETS))
    keys = [r.key for r in g.reserves]
    assert len(keys) == 33 and "polygon:USDT0" in keys and "base:USDbC" in keys
    assert not any(base_symbol(r.symbol) not in DEFAULT_ASSETS for r in g.reserves)
    # two USDT reserves have a first day only: they end, with no row invented after it
    assert g.ended() == {
        "arbitrum:USDT": "2025-07-22T00:00:00Z",
        "celo:USDT": "2025-07-22T00:00:00Z",
    }
    # gnosis' USDC is frozen from 2025-11-03 and scroll's from 2026-04-21: no deposit there
    frozen = g.frozen_rows()
    assert frozen["gnosis:USDC"]["first"] == "2025-11-03T00:00:00Z"
    assert frozen["scroll:USDC"]["first"] == "2026-04-21T00:00:00Z"
    filled = g.gaps_filled()
    assert filled["ethereum:USDC"] == {
        "periods": 2,
        "longest_run": 1,
        "first": "2025-07-23T00:00:00Z",
    }


def test_a_baseline_on_a_multichain_history_spends_the_idle_where_it_landed(tmp_path: Path) -> None:
    """Home (ethereum) pays least. Day 0 base's two reserves pay best: a baseline
    bridges there, its deposits wait for the bridge (it lands after the cycle). From day 1
    arbitrum's pay best: the plan must bridge base -> arbitrum, where the idle is (before: it
    assumed every idle dollar at home, bridged nothing and the capital sat idle for good)."""
    reserves = [("base", "USDC", "0xb1"), ("base", "USDbC", "0xb2"), ("ethereum", "USDC", "0xe1")]
    reserves += [("arbitrum", "USDC", "0xa1"), ("arbitrum", "USDC.e", "0xa2")]
    rows = []
    for d in range(8):
        day = str(np.datetime64("2025-07-22") + np.timedelta64(d, "D"))
        for network, symbol, asset in reserves:
            u = 0.9 if (network == "base") == (d == 0) else 0.5
            u = 0.2 if network == "ethereum" else u
            rb = 0.08 * u / 0.9
            rows.append([day, network, symbol, asset, f"{rb * u * 0.9:.6f}", f"{rb:.6f}", "0.1"])
    src = tmp_path / "two_chains.csv"
    with src.open("w", newline="") as fh:
        csv.writer(fh).writerows([HEADER[:7], *rows])
    p = prepare(src, None, period="1d", prices_path=None)
    _, runs = run_prepared(p, tmp_path / "out", ["greedy_apy"])
    last = runs[0].records[-1]
    on_arbitrum = sum(u for v, u in last.positions_units.items() if "arbitrum" in v)
    assert on_arbitrum > 0.7 * last.nav_units
