"""Aave v3 daily reserve rates as arrays: :func:`read_rates_csv` (the only I/O), one reserve's
series (:func:`select_series`), its utilization recovered from the two quoted rates
(:func:`recover_utilization`) and the supply APR actually accrued by the liquidity index
(:func:`realized_supply_apr`). The file: ``shared/data/aave_v3_daily_rates.csv``
(``shared/data/README.md``). The kinked-curve fit on these series is :mod:`protocols.realdata`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocols.aave import implied_utilization

FloatArray = NDArray[np.float64]

_FLOAT_COLUMNS = (
    "supply_apr",
    "borrow_apr",
    "reserve_factor",
    "liquidity_index",
    "variable_borrow_index",
)
_TEXT_COLUMNS = ("network", "symbol", "asset")


@dataclass(frozen=True)
class RateTable:
    """The whole CSV as columns: ``date`` (datetime64[D]), text columns, float columns."""

    date: NDArray[np.datetime64]
    network: NDArray[np.str_]
    symbol: NDArray[np.str_]
    asset: NDArray[np.str_]
    supply_apr: FloatArray
    borrow_apr: FloatArray
    reserve_factor: FloatArray
    liquidity_index: FloatArray
    variable_borrow_index: FloatArray

    def __len__(self) -> int:
        return len(self.date)


@dataclass(frozen=True)
class RateSeries:
    """One reserve on one network, sorted by date."""

    network: str
    symbol: str
    asset: str
    date: NDArray[np.datetime64]
    supply_apr: FloatArray
    borrow_apr: FloatArray
    reserve_factor: FloatArray
    liquidity_index: FloatArray

    def __len__(self) -> int:
        return len(self.date)


def read_rates_csv(path: str | Path) -> RateTable:
    """Read ``aave_v3_daily_rates.csv`` with the stdlib csv module. ValueError names the row and
    column of any value that is not a number."""
    columns: dict[str, list[object]] = {
        name: [] for name in ("date", *_TEXT_COLUMNS, *_FLOAT_COLUMNS)
    }
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line_no, row in enumerate(reader, start=2):
            columns["date"].append(row["date"])
            for name in _TEXT_COLUMNS:
                columns[name].append(row[name])
            for name in _FLOAT_COLUMNS:
                try:
                    columns[name].append(float(row[name]))
                except ValueError as exc:
                    raise ValueError(
                        f"{path}:{line_no}: column {name} is not a number: {row[name]!r}"
                    ) from exc

    def text(name: str) -> NDArray[np.str_]:
        return np.array(columns[name], dtype=np.str_)

    def number(name: str) -> FloatArray:
        return np.array(columns[name], dtype=np.float64)

    return RateTable(
        date=np.array(columns["date"], dtype="datetime64[D]"),
        network=text("network"),
        symbol=text("symbol"),
        asset=text("asset"),
        supply_apr=number("supply_apr"),
        borrow_apr=number("borrow_apr"),
        reserve_factor=number("reserve_factor"),
        liquidity_index=number("liquidity_index"),
        variable_borrow_index=number("variable_borrow_index"),
    )


def select_series(
    table: RateTable, network: str, symbol: str, asset: str | None = None
) -> RateSeries:
    """Rows of one reserve, sorted by date. Some networks list two reserves under one symbol
    (arbitrum, optimism and polygon each have native USDC and bridged USDC.e as "USDC"): pass
    ``asset`` (the token address) then, else ValueError."""
    mask = (table.network == network) & (table.symbol == symbol)
    if asset is not None:
        mask &= np.char.lower(table.asset) == asset.lower()
    if not mask.any():
        raise ValueError(f"no rows for network={network!r} symbol={symbol!r} asset={asset!r}")
    assets = np.unique(table.asset[mask])
    if len(assets) > 1:
        raise ValueError(f"{network}/{symbol} has several reserves {list(assets)}; pass asset=")
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(table.date[idx], kind="stable")]
    return RateSeries(
        network=network,
        symbol=symbol,
        asset=str(assets[0]),
        date=table.date[idx],
        supply_apr=table.supply_apr[idx],
        borrow_apr=table.borrow_apr[idx],
        reserve_factor=table.reserve_factor[idx],
        liquidity_index=table.liquidity_index[idx],
    )


def recover_utilization(series: RateSeries) -> FloatArray:
    """``U = R_s / (R_b * (1 - RF))`` per day; NaN where ``R_b <= 0`` (utilization is not
    identifiable from the rates then). Not clipped: rounding can put U a hair above 1."""
    u = np.full(len(series), np.nan)
    ok = (series.borrow_apr > 0.0) & (series.reserve_factor < 1.0)
    if ok.any():
        u[ok] = implied_utilization(
            series.supply_apr[ok], series.borrow_apr[ok], series.reserve_factor[ok]
        )
    return u


def realized_supply_apr(series: RateSeries) -> FloatArray:
    """Supply APR actually accrued between consecutive readings, from the liquidity index:
    ``ln(I_{t+1} / I_t) * 365 / days``. An independent check of the quoted ``supply_apr``
    (ReserveLogic updates the index with the liquidity rate on every interaction)."""
    days = (series.date[1:] - series.date[:-1]).astype(np.float64)
    return np.log(series.liquidity_index[1:] / series.liquidity_index[:-1]) * 365.0 / days
