"""The inputs besides the lending contract: daily Aave rates (13 chains), stablecoin marks, Uniswap v2.

* :func:`daily_aave_to_lending` turns ``aave_v3_daily_rates.csv`` (rates, no amounts) into the
  lending contract. **TVL assumption** (the source has no amounts): every reserve is taken to hold
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

import numpy as np
from numpy.typing import NDArray

from backtest.history import HistoryError, open_text, parse_utc, write_lending

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


def daily_aave_to_lending(
    src: Path, dst: Path, assumed_supplied_usd: float = DEFAULT_ASSUMED_SUPPLIED_USD
) -> int:
    """Write ``src`` (the daily 13-chain file) as a lending-contract CSV at ``dst``; returns rows.

    Two reserves under one symbol on a network (USDC and USDC.e both "USDC") become
    ``SYMBOL-0xabcd`` (the first 6 characters of the token address)."""
    if not src.is_file():
        raise HistoryError(str(src), "--daily", "no such file")
    with open_text(src) as fh:
        rows = list(csv.DictReader(fh))
    need = ("date", "network", "symbol", "asset", "supply_apr", "borrow_apr", "reserve_factor")
    if not rows or any(c not in rows[0] for c in need):
        missing = [c for c in need if not rows or c not in rows[0]]
        raise HistoryError(str(src), missing[0] if missing else "(body)", "missing column")
    assets: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        assets.setdefault((r["network"], r["symbol"]), set()).add(r["asset"].lower())
    out = []
    for line, r in enumerate(rows, start=2):
        where = f"{src}:{line}"
        parse_utc(r["date"], where, "date")
        try:
            s, b, rf = float(r["supply_apr"]), float(r["borrow_apr"]), float(r["reserve_factor"])
        except ValueError:
            raise HistoryError(
                where, "supply_apr/borrow_apr/reserve_factor", "not a number"
            ) from None
        if not all(math.isfinite(v) for v in (s, b, rf)):
            raise HistoryError(where, "supply_apr/borrow_apr/reserve_factor", "not finite")
        u = min(max(s / (b * (1.0 - rf)), 0.0), 1.0) if b > 0 and rf < 1 else 0.0
        symbol = r["symbol"]
        if len(assets[(r["network"], symbol)]) > 1:
            symbol = f"{symbol}-{r['asset'].lower()[:6]}"
        out.append(
            (
                f"{r['date']}T00:00:00Z",
                r["network"],
                symbol,
                f"{assumed_supplied_usd:.2f}",
                f"{u * assumed_supplied_usd:.2f}",
                "0",
                r["supply_apr"],
                r["borrow_apr"],
            )
        )
    write_lending(dst, out)
    return len(out)


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
