"""The inputs besides the lending contract: daily Aave rates (13 chains), stablecoin marks, Uniswap v2.

* :func:`load_history` reads a lending history in either format, told apart by the header: the
  contract, or ``aave_v3_daily_rates.csv`` (rates, no amounts) converted in memory into the
  contract (:func:`daily_aave_rows`; :func:`daily_aave_to_lending` writes the same rows to a file;
  a reserve is its token address on its network, so a relabel is one series). **TVL assumption** (the source has no amounts): every reserve is taken to hold
  ``assumed_supplied_usd`` (default $100M, the order of a mid-size Aave v3 stablecoin reserve on an
  L2 in 2025-26; Ethereum's are 10-60x larger, see the hourly file) on every day, and
  ``borrowed = U * supplied`` with ``U = supply_apr / (borrow_apr * (1 - reserve_factor))`` recovered
  from the two quoted rates (``protocols.realdata.recover_utilization``; the data README). It is an
  assumption, not data: it sets how far our own deposit moves a reserve's rate, nothing else.
* :func:`load_stablecoin_prices`: daily USD prices (CoinGecko ids as columns); the mark of a day
  holds from its 00:00 UTC until the next day's. Gates: a date that parses, prices finite and in
  (0, 10]; an empty cell between an asset's first and last price is an error (not interpolated).
* :func:`load_uniswap_v2` + :func:`lp_period_returns`: the USDC/WETH pair's snapshots. LP fees of a
  period are ``0.30 % * (volumeUSD_t1 - volumeUSD_t0)`` (volumeUSD is cumulative), paid pro rata to
  the pool's value; impermanent loss is the LP value against holding the deposited tokens on the real
  price path ``P = reserve0 / reserve1`` (USDC per WETH): ``IL = 2 sqrt(r) / (1 + r) - 1`` with
  ``r = P_t1 / P_t0`` (protocol_math.md, Uniswap v2).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from backtest.csvread import number
from backtest.history import (
    FROZEN_COLUMN,
    LENDING_COLUMNS,
    HistoryError,
    LendingHistory,
    lending_from_rows,
    open_text,
    parse_utc,
    read_header,
    read_rows,
    write_lending,
)

FloatArray = NDArray[np.float64]

DEFAULT_ASSUMED_SUPPLIED_USD = 100e6
# reserve symbol -> CoinGecko id in stablecoin_prices_daily.csv
COINGECKO_IDS: Mapping[str, str] = {
    "USDC": "usd-coin",
    "USDT": "tether",
    "DAI": "dai",
    "FRAX": "frax",
    "TUSD": "true-usd",
    "BUSD": "binance-usd",
    "UST": "terrausd",
    "LUSD": "liquity-usd",
}
UNISWAP_V2_FEE = 0.003


DAILY_COLUMNS = ("date", "network", "symbol", "asset", "supply_apr", "borrow_apr", "reserve_factor")
DAILY_FORMAT = "aave_v3_daily_rates"


def is_daily_aave(header: Sequence[str]) -> bool:
    """The daily 13-chain file's header (its own columns, not the contract's ``hour_utc``)."""
    return "hour_utc" not in header and all(c in header for c in DAILY_COLUMNS)


def load_history(
    path: Path | str, *, assumed_supplied_usd: float = DEFAULT_ASSUMED_SUPPLIED_USD
) -> tuple[LendingHistory, dict[str, Any] | None]:
    """A lending history from either format, told apart by the header: the contract, or the daily
    13-chain file, converted in memory (:func:`daily_aave_rows`) and gated row by row as the
    contract. The gap rule is left to the caller, after its window and reserves
    (:meth:`LendingHistory.gated`). Returns the history and, for a converted file, what was
    converted and the assumption used (None for the contract)."""
    path = Path(path)
    if not is_daily_aave(read_header(path)):
        hint = f" (nor the daily Aave file's {', '.join(DAILY_COLUMNS)})"
        return lending_from_rows(str(path), read_rows(path, LENDING_COLUMNS, hint)), None
    rows, info = daily_aave_rows(path, assumed_supplied_usd)
    return lending_from_rows(str(path), rows), info


def daily_aave_rows(
    src: Path, assumed_supplied_usd: float = DEFAULT_ASSUMED_SUPPLIED_USD
) -> tuple[list[tuple[int, dict[str, str]]], dict[str, Any]]:
    """The daily file's rows in the contract's columns (``(line, row)``, the source's lines) and
    what the conversion did.

    A reserve is its token address on its network (what Aave keys a reserve by), so a relabel keeps
    one series: arbitrum's bridged USDC is ``USDC`` until 2025-08-01 and ``USDC.e`` from then, one
    reserve named by its latest symbol. On the day of a relabel the source has the reserve under
    both symbols (two readings a moment apart, equal to ~1e-6): the new label's row is kept. Two
    addresses that still share a name on a network become ``SYMBOL-0xabcd`` (the address' first 6
    characters). Amounts: ``supplied = assumed_supplied_usd``, ``borrowed = U * supplied`` with
    ``U = supply_apr / (borrow_apr * (1 - reserve_factor))`` clamped to [0, 1] (0 where the borrow
    rate is 0), liquidations 0 (the module docstring's TVL assumption)."""
    if not math.isfinite(assumed_supplied_usd) or assumed_supplied_usd <= 0:
        raise HistoryError(str(src), "assumed_supplied_usd", "must be a finite amount > 0")
    raw = list(read_rows(src, DAILY_COLUMNS))
    by_reserve: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
    for line, r in raw:
        by_reserve.setdefault(_reserve_key(r), []).append((line, r))
    names: dict[tuple[str, str], str] = {}
    relabelled: dict[tuple[str, str], list[str]] = {}
    kept: list[tuple[int, dict[str, str]]] = []
    dropped = 0
    for key, group in by_reserve.items():
        first: dict[str, str] = {}
        for _, r in group:
            sym, day = (r["symbol"] or "").strip(), (r["date"] or "").strip()
            first[sym] = min(first.get(sym, day), day)
        # symbols in the order the reserve carried them (a label's first day)
        order = sorted(first, key=lambda s: (first[s], s))
        names[key] = order[-1]
        if len(order) > 1:
            relabelled[key] = order
        rank = {s: k for k, s in enumerate(order)}
        best: dict[str, tuple[int, int, dict[str, str]]] = {}
        for line, r in group:
            day, sym = (r["date"] or "").strip(), (r["symbol"] or "").strip()
            prior = best.get(day)
            if prior is not None and prior[0] == rank[sym]:
                kept.append((line, r))  # the same label twice: the contract's duplicate gate
                continue
            if prior is None or rank[sym] > prior[0]:
                dropped += prior is not None
                best[day] = (rank[sym], line, r)
            else:
                dropped += 1
        kept.extend((line, r) for _, line, r in best.values())
    shared: dict[tuple[str, str], int] = {}
    for (network, _), name in names.items():
        shared[(network, name)] = shared.get((network, name), 0) + 1
    for key, name in names.items():
        if shared[(key[0], name)] > 1:
            names[key] = f"{name}-{key[1][:6]}"
    out: list[tuple[int, dict[str, str]]] = []
    for line, r in sorted(kept, key=lambda x: x[0]):
        where = f"{src}:{line}"
        network, address = _reserve_key(r)
        s, b, rf = (
            number(r[c] or "", where, c) for c in ("supply_apr", "borrow_apr", "reserve_factor")
        )
        u = min(max(s / (b * (1.0 - rf)), 0.0), 1.0) if b > 0 and rf < 1 else 0.0
        day = (r["date"] or "").strip()
        parse_utc(day, where, "date")
        out.append(
            (
                line,
                {
                    "hour_utc": day if "T" in day else f"{day}T00:00:00Z",
                    "network": network,
                    "symbol": names[(network, address)],
                    "supplied_usd": f"{assumed_supplied_usd:.2f}",
                    "borrowed_usd": f"{u * assumed_supplied_usd:.2f}",
                    "liquidations_usd": "0",
                    "supply_apr": r["supply_apr"],
                    "borrow_apr": r["borrow_apr"],
                    "frozen": "true"
                    if _flag(r, "frozen", where) or _flag(r, "paused", where)
                    else "",
                },
            )
        )
    info = {
        "format": DAILY_FORMAT,
        "assumed_supplied_usd": assumed_supplied_usd,
        "borrowed_usd": "U x assumed_supplied_usd, U = supply_apr / (borrow_apr (1 - reserve_factor))",
        "liquidations_usd": 0,
        "reserve_identity": "network and token address; named by the latest symbol",
        "frozen": "a row frozen or paused in the source is not live (no snapshot, no deposit)",
        "relabelled": {
            f"{net}:{names[(net, addr)]}": {"address": addr, "symbols": order}
            for (net, addr), order in sorted(relabelled.items())
        },
        "relabel_day_rows_dropped": dropped,
    }
    return out, info


def _flag(r: Mapping[str, str], name: str, where: str) -> bool:
    """The daily file's ``frozen`` / ``paused`` (``True`` / ``False``; absent or empty: False)."""
    v = (r.get(name) or "").strip().lower()
    if v not in ("true", "false", ""):
        raise HistoryError(where, name, f"not True/False: {r.get(name)!r}")
    return v == "true"


def _reserve_key(r: Mapping[str, str]) -> tuple[str, str]:
    """A daily row's reserve: (network, token address), the symbol where the address is empty."""
    network = (r["network"] or "").strip()
    return network, (r["asset"] or "").strip().lower() or (r["symbol"] or "").strip()


def daily_aave_to_lending(
    src: Path, dst: Path, assumed_supplied_usd: float = DEFAULT_ASSUMED_SUPPLIED_USD
) -> int:
    """Write ``src`` (the daily 13-chain file) as a lending-contract CSV at ``dst``; returns rows.
    The same rows :func:`load_history` converts in memory (:func:`daily_aave_rows`)."""
    if not src.is_file():
        raise HistoryError(str(src), "--daily", "no such file")
    rows, _ = daily_aave_rows(src, assumed_supplied_usd)
    columns = (*LENDING_COLUMNS, FROZEN_COLUMN)
    write_lending(dst, [[r[c] for c in columns] for _, r in rows], columns)
    return len(rows)


@dataclass(frozen=True)
class PriceTable:
    """Daily marks: ``days`` (unix seconds at 00:00 UTC), ``prices[id]`` aligned (NaN outside an
    asset's range)."""

    source: str
    days: NDArray[np.int64]
    prices: Mapping[str, FloatArray]

    def mark(self, coin_id: str, ts: int) -> float | None:
        """The price of the last day <= ``ts``; None outside the table (or before the asset's first)."""
        series = self.prices.get(coin_id)
        i = int(np.searchsorted(self.days, ts, side="right")) - 1
        if series is None or i < 0 or ts >= int(self.days[-1]) + 86_400:
            return None
        value = float(series[i])
        return value if math.isfinite(value) else None


def load_stablecoin_prices(path: Path | str, coins: Sequence[str] | None = None) -> PriceTable:
    """The gates apply to ``coins`` (default: the ids of :data:`COINGECKO_IDS`), the marks a
    backtest uses; other columns are kept as they are (the file has gaps in usdx, musd, ...)."""
    path = Path(path)
    checked = set(COINGECKO_IDS.values() if coins is None else coins)
    if not path.is_file():
        raise HistoryError(str(path), "--prices", "no such file")
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        names = [n for n in (reader.fieldnames or []) if n != "Date"]
        if "Date" not in (reader.fieldnames or []):
            raise HistoryError(str(path), "Date", "missing column")
        days: list[int] = []
        cols: dict[str, list[float]] = {n: [] for n in names}
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            days.append(parse_utc(row["Date"], where, "Date"))
            for n in names:
                cell = (row[n] or "").strip()
                if cell == "":
                    cols[n].append(math.nan)
                    continue
                try:
                    v = float(cell)
                except ValueError:
                    raise HistoryError(where, n, f"not a number: {cell!r}") from None
                if not (math.isfinite(v) and 0 < v <= 10):
                    raise HistoryError(where, n, f"price {v} outside (0, 10]")
                cols[n].append(v)
    order = np.argsort(days, kind="stable")
    d = np.asarray(days, dtype=np.int64)[order]
    if len(d) and np.any(np.diff(d) == 0):
        raise HistoryError(str(path), "Date", "duplicate date")
    prices = {}
    for n, values in cols.items():
        arr = np.asarray(values, dtype=np.float64)[order]
        ok = np.flatnonzero(np.isfinite(arr))
        if n in checked and ok.size and not np.all(np.isfinite(arr[ok[0] : ok[-1] + 1])):
            gap = ok[0] + int(np.flatnonzero(~np.isfinite(arr[ok[0] : ok[-1] + 1]))[0])
            raise HistoryError(
                str(path),
                n,
                f"no price on {np.datetime64(int(d[gap]), 's')} inside its range"
                " (refusing to interpolate a mark)",
            )
        prices[n] = arr
    return PriceTable(str(path), d, prices)


@dataclass(frozen=True)
class UniswapV2History:
    """USDC/WETH snapshots: time (unix s), USDC and WETH reserves, cumulative volumeUSD."""

    times: NDArray[np.int64]
    reserve_usdc: FloatArray
    reserve_weth: FloatArray
    volume_usd_cumulative: FloatArray

    @property
    def price_usd(self) -> FloatArray:
        """WETH in USDC: ``reserve0 / reserve1``."""
        return self.reserve_usdc / self.reserve_weth

    @property
    def tvl_usd(self) -> FloatArray:
        return 2.0 * self.reserve_usdc


def load_uniswap_v2(path: Path | str) -> UniswapV2History:
    path = Path(path)
    if not path.is_file():
        raise HistoryError(str(path), "--uniswap", "no such file")
    ts: list[int] = []
    r0: list[float] = []
    r1: list[float] = []
    vol: list[float] = []
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        for c in ("datetime", "reserve0", "reserve1", "volumeUSD"):
            if c not in (reader.fieldnames or []):
                raise HistoryError(str(path), c, "missing column")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            ts.append(parse_utc(row["datetime"].replace(" ", "T") + "Z", where, "datetime"))
            for name, out in (("reserve0", r0), ("reserve1", r1), ("volumeUSD", vol)):
                try:
                    v = float(row[name])
                except ValueError:
                    raise HistoryError(where, name, f"not a number: {row[name]!r}") from None
                if not math.isfinite(v) or v < 0:
                    raise HistoryError(where, name, f"{v} is not a finite amount >= 0")
                out.append(v)
            if len(vol) > 1 and vol[-1] < vol[-2]:
                raise HistoryError(where, "volumeUSD", "cumulative volume fell (not cumulative?)")
            if len(ts) > 1 and ts[-1] <= ts[-2]:
                raise HistoryError(where, "datetime", "times must increase")
    return UniswapV2History(
        np.asarray(ts, dtype=np.int64), np.asarray(r0), np.asarray(r1), np.asarray(vol)
    )


@dataclass(frozen=True)
class LpReturns:
    fee_return: float  # fees earned / value at entry
    price_return_hold: float  # holding the two tokens
    impermanent_loss: float  # LP value / hold value - 1 (<= 0)
    lp_return: float  # fees plus LP value change, over the period
    fee_apr: float


def lp_period_returns(h: UniswapV2History, start_ts: int, end_ts: int) -> LpReturns:
    """An LP position held from the first snapshot >= ``start_ts`` to the last <= ``end_ts``.

    Fees accrue snapshot by snapshot on the pool's value then: ``0.003 * dV_i / TVL_i``; the LP
    value without fees follows ``sqrt(P_t1/P_t0)`` of the entry value (constant product), holding
    the tokens ``(1 + P_t1/P_t0) / 2``."""
    i0 = int(np.searchsorted(h.times, start_ts, side="left"))
    i1 = int(np.searchsorted(h.times, end_ts, side="right")) - 1
    if i1 <= i0:
        raise HistoryError("uniswap", "--from/--to", "fewer than two snapshots in the window")
    tvl = h.tvl_usd[i0:i1]
    dv = np.diff(h.volume_usd_cumulative[i0 : i1 + 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(tvl > 0, UNISWAP_V2_FEE * dv / tvl, 0.0)
    fee = float(np.prod(1.0 + per) - 1.0)
    r = float(h.price_usd[i1] / h.price_usd[i0])
    hold = (1.0 + r) / 2.0
    lp = math.sqrt(r)
    years = (int(h.times[i1]) - int(h.times[i0])) / (365.0 * 86_400)
    return LpReturns(
        fee_return=fee,
        price_return_hold=hold - 1.0,
        impermanent_loss=lp / hold - 1.0,
        lp_return=lp * (1.0 + fee) - 1.0,
        fee_apr=fee / years if years > 0 else 0.0,
    )
