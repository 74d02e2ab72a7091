"""History loaders with data-quality gates that refuse to invent missing data.

The **contract** is the hourly lending format of ``shared/data/aave_v3_ethereum_hourly.csv.gz``:
one row per (time, reserve) with the columns

=================  ===========================================================================
hour_utc           ISO 8601 UTC time of the snapshot (``2023-01-27T09:00:00Z``)
network, symbol    the reserve's chain and token symbol
supplied_usd       total supplied, USD (without us)
borrowed_usd       total borrowed, USD
liquidations_usd   USD liquidated during the period
supply_apr         variable supply APR, decimal (empty only while the reserve holds nothing)
borrow_apr         variable borrow APR, decimal (same rule)
=================  ===========================================================================

Any source written in these columns (CSV, optionally gzipped, UTF-8 with or without a byte-order
mark, LF or CRLF, any column order, extra columns ignored, blank lines skipped) runs with no code
change; the step (hourly, daily, ...) is read from the data (the commonest difference of two times).
The gates (:class:`HistoryError` names the file, row and field): every required column present;
times parse as UTC and sit on the step's grid; numbers finite; amounts >= 0;
two symbols of a network differing only in case (one venue) refused;
``borrowed_usd <= supplied_usd`` to 0.1 % (the source's two amounts are read a moment apart, so a
fully drawn reserve shows up to 1.00018 in the Aave file; the market clamps utilization at 1); APRs
in [0, 10]; an empty APR only where ``supplied_usd == 0`` (a reserve not yet live, which gets no
snapshot); no duplicate (time, network, symbol); every time of the grid has a row of some reserve.
An optional column ``frozen`` (true/false, 1/0, empty: false) marks a row the source reports frozen
or paused (Aave takes no new supply then): that row is not live, as a filled one below.

**Gaps** (a reserve with no row at a time between two of its rows): refused by default (the error
names the reserve, the first missing time, and how to go on). ``fill_gaps=N`` carries the reserve's
last row across at most ``N`` consecutive missing periods (amounts and rates; liquidations 0) and
marks those rows *filled* (:attr:`LendingHistory.filled`); a longer gap is still refused. A filled row
is not live: it gets no snapshot and takes no deposit (the daemon's lost feed: the optimizer keeps
the last snapshot, frozen), while the market accrues a position held there at the carried state's
rate (the reserve kept paying on chain; the last observed rate is the estimate, and the count of
such periods is reported, :meth:`LendingHistory.gaps_filled`).

**Ends** (a reserve whose rows stop before the history's last time: a delisting, a relabel, a feed
that stopped): accepted, and reported (:meth:`LendingHistory.ended`). After its last row the
reserve is not live (no snapshot, no deposit) and pays nothing (no rate is invented); a position
still held there keeps its value and can be withdrawn in full (an Aave reserve that is frozen or
dropped from a feed still pays out). That is what the daemon meets when a venue's feed stops.

The other inputs have their loaders in :mod:`backtest.sources`: ``load_history`` (either format by
its header; the daily 13 chains, no amounts, converted into the contract with a stated TVL
assumption), ``load_uniswap_v2`` and ``load_stablecoin_prices`` (marks).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from backtest.csvread import HistoryError as HistoryError
from backtest.csvread import iso as iso
from backtest.csvread import number, read_rows
from backtest.csvread import open_text as open_text
from backtest.csvread import parse_utc as parse_utc
from backtest.csvread import read_header as read_header

FloatArray = NDArray[np.float64]

LENDING_COLUMNS = (
    "hour_utc",
    "network",
    "symbol",
    "supplied_usd",
    "borrowed_usd",
    "liquidations_usd",
    "supply_apr",
    "borrow_apr",
)
# optional: the source marks the reserve frozen or paused (no new supply): not live, as a filled row
FROZEN_COLUMN = "frozen"
_FLAGS = {"": 0.0, "false": 0.0, "0": 0.0, "true": 1.0, "1": 1.0}
UTILIZATION_SLACK = 1e-3
MAX_APR = 10.0  # Aave's MAX_BORROW_RATE (1000 %): anything above is a broken feed, not a rate


# a token's other forms on a chain: bridged (USDC.e, DAI.e, USDbC), the LayerZero OFT (USDT0), or
# the address suffix the daily converter gives two reserves under one symbol (USDC-0xaf88)
_VARIANT = re.compile(r"^(?P<base>[A-Z]+?)(?:\.E|0|-0X[0-9A-F]+)$")
_ALIASES = {"USDBC": "USDC"}


def base_symbol(symbol: str) -> str:
    """The token a symbol is a form of, upper case: ``USDC.e`` -> ``USDC``, ``USDT0`` -> ``USDT``,
    ``USDbC`` -> ``USDC``, ``USDC-0xaf88`` -> ``USDC``; any other symbol is its own (``sUSDe``,
    ``GHO``, ``USDe``)."""
    s = symbol.strip().upper()
    m = _VARIANT.match(s)
    s = m.group("base") if m else s
    return _ALIASES.get(s, s)


@dataclass(frozen=True, slots=True)
class Reserve:
    network: str
    symbol: str

    @property
    def key(self) -> str:
        return f"{self.network}:{self.symbol}"


@dataclass(frozen=True)
class LendingHistory:
    """The contract's rows as a dense [time, reserve] grid; NaN where a reserve has no data yet.

    ``times`` are unix seconds at a regular ``step_seconds``. A reserve is *live* at a time when it
    has a row there with ``supplied_usd > 0`` (then both APRs are finite, by the gates).
    """

    source: str
    times: NDArray[np.int64]
    step_seconds: int
    reserves: tuple[Reserve, ...]
    supplied_usd: FloatArray
    borrowed_usd: FloatArray
    liquidations_usd: FloatArray
    supply_apr: FloatArray
    borrow_apr: FloatArray
    # [time, reserve]: the row was carried over a gap (``fill_gaps``), not observed; None: none was
    filled: NDArray[np.bool_] | None = None
    # [time, reserve]: the source marks the reserve frozen or paused (``frozen``); None: never
    frozen: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.times)

    def live(self, i: int) -> NDArray[np.bool_]:
        """Reserves with an observed row at ``i`` holding something, not frozen (a filled or a
        frozen row is not live: no snapshot, no deposit; a position there still accrues)."""
        live = np.isfinite(self.supply_apr[i]) & (self.supplied_usd[i] > 0)
        if self.filled is not None:
            live &= ~self.filled[i]
        return live if self.frozen is None else live & ~self.frozen[i]

    def frozen_rows(self) -> dict[str, dict[str, int | str]]:
        """Per reserve with frozen rows: how many, and the first."""
        if self.frozen is None:
            return {}
        return {
            self.reserves[j].key: {
                "rows": int(self.frozen[:, j].sum()),
                "first": iso(int(self.times[np.flatnonzero(self.frozen[:, j])[0]])),
            }
            for j in np.flatnonzero(self.frozen.any(axis=0)).tolist()
        }

    def _runs(self) -> dict[int, list[tuple[int, int]]]:
        """Per reserve column with filled rows: its runs as ``(first row, length)``."""
        out: dict[int, list[tuple[int, int]]] = {}
        if self.filled is None:
            return out
        for j in np.flatnonzero(self.filled.any(axis=0)).tolist():
            edges = np.diff(np.concatenate(([0], self.filled[:, j].astype(np.int8), [0])))
            starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            out[j] = list(zip(starts.tolist(), (stops - starts).tolist(), strict=True))
        return out

    def gaps_filled(self) -> dict[str, dict[str, int | str]]:
        """Per reserve with a filled row: ``periods`` filled, the ``longest_run`` of consecutive
        ones and the ``first`` filled time."""
        return {
            self.reserves[j].key: {
                "periods": sum(n for _, n in runs),
                "longest_run": max(n for _, n in runs),
                "first": iso(int(self.times[runs[0][0]])),
            }
            for j, runs in self._runs().items()
        }

    def gated(self, fill_gaps: int = 0) -> LendingHistory:
        """The gap rule: every gap at most ``fill_gaps`` periods long (its rows stay carried), or
        the earliest longer one is refused, naming the reserve, the first missing time, how many
        reserves have such a gap and the longest (what ``--fill-gaps`` would need); and every time
        has a row of some reserve (else the history itself stops there)."""
        too_long = sorted(
            (int(self.times[i]), self.reserves[j].key, n)
            for j, runs in self._runs().items()
            for i, n in runs
            if n > fill_gaps
        )
        if too_long:
            start, key, n = too_long[0]
            longest = max(g[2] for g in too_long)
            others = len({g[1] for g in too_long}) - 1
            step = self.step_seconds
            span = iso(start) if n == 1 else f"{iso(start)} .. {iso(start + (n - 1) * step)}"
            limit = f", more than --fill-gaps {fill_gaps}" if fill_gaps else ""
            raise HistoryError(
                self.source,
                "hour_utc",
                f"{key} has no row for {span} ({n} missing period(s) of {step} s{limit}; {others}"
                f" other reserve(s) have such gaps, the longest {longest} period(s)). A missing"
                f" period is not invented: --fill-gaps {longest} carries each reserve's last row"
                " across at most that many consecutive missing periods (counted in summary.json),"
                " or replay around the gap with --from/--to or --assets",
            )
        empty = np.flatnonzero(~np.isfinite(self.supplied_usd).any(axis=1))
        if empty.size:
            raise HistoryError(
                self.source,
                "hour_utc",
                f"no reserve has a row for {iso(int(self.times[empty[0]]))} ({empty.size} such"
                f" times of the {self.step_seconds} s grid): replay --from/--to one side of it",
            )
        return self

    def ended(self) -> dict[str, str]:
        """Reserves whose rows stop before the last time: key -> the time of their last row."""
        has_row = np.isfinite(self.supplied_usd)
        out = {}
        for j, r in enumerate(self.reserves):
            rows = np.flatnonzero(has_row[:, j])
            if rows.size and rows[-1] < len(self.times) - 1:
                out[r.key] = iso(int(self.times[rows[-1]]))
        return out

    def index_at(self, ts: int) -> int:
        """Index of the last time <= ``ts`` (-1 before the first)."""
        return int(np.searchsorted(self.times, ts, side="right")) - 1

    def window(self, start_ts: int | None, end_ts: int | None) -> LendingHistory:
        """The rows with ``start_ts <= t <= end_ts`` (either bound open when None)."""
        lo = 0 if start_ts is None else int(np.searchsorted(self.times, start_ts, side="left"))
        hi = (
            len(self.times)
            if end_ts is None
            else int(np.searchsorted(self.times, end_ts, side="right"))
        )
        if hi - lo < 2:
            raise HistoryError(
                self.source,
                "--from/--to",
                f"the window [{iso(start_ts or self.times[0])}, {iso(end_ts or self.times[-1])}]"
                f" holds {max(hi - lo, 0)} of the history's times (need at least 2)",
            )
        sl = slice(lo, hi)
        return replace(
            self,
            times=self.times[sl],
            supplied_usd=self.supplied_usd[sl],
            borrowed_usd=self.borrowed_usd[sl],
            liquidations_usd=self.liquidations_usd[sl],
            supply_apr=self.supply_apr[sl],
            borrow_apr=self.borrow_apr[sl],
            filled=None if self.filled is None else self.filled[sl],
            frozen=None if self.frozen is None else self.frozen[sl],
        )

    def select(self, symbols: Sequence[str] | None) -> LendingHistory:
        """Only the reserves whose symbol is one of ``symbols`` or a variant of one (all when None):
        see :func:`base_symbol`, so ``USDC`` takes ``USDC.e``, ``USDbC`` and ``USDC-0xaf88`` too."""
        if not symbols:
            return self
        wanted = {s.upper() for s in symbols}
        keep = [
            j
            for j, r in enumerate(self.reserves)
            if r.symbol.upper() in wanted or base_symbol(r.symbol) in wanted
        ]
        if not keep:
            raise HistoryError(
                self.source,
                "--assets",
                f"none of {sorted(wanted)} in {[r.key for r in self.reserves]}",
            )
        return replace(
            self,
            reserves=tuple(self.reserves[j] for j in keep),
            supplied_usd=self.supplied_usd[:, keep],
            borrowed_usd=self.borrowed_usd[:, keep],
            liquidations_usd=self.liquidations_usd[:, keep],
            supply_apr=self.supply_apr[:, keep],
            borrow_apr=self.borrow_apr[:, keep],
            filled=None if self.filled is None else self.filled[:, keep],
            frozen=None if self.frozen is None else self.frozen[:, keep],
        )

    def cut(self, until_ts: int) -> LendingHistory:
        """Everything up to and including ``until_ts`` (the look-ahead check replays this)."""
        return self.window(None, until_ts)


def load_lending(path: Path | str, *, fill_gaps: int = 0) -> LendingHistory:
    """Read a history in the contract's columns, applying every gate in the module docstring
    (the gap rule with ``fill_gaps`` over the whole file: see :meth:`LendingHistory.gated`)."""
    path = Path(path)
    return lending_from_rows(str(path), read_rows(path, LENDING_COLUMNS)).gated(fill_gaps)


def lending_from_rows(source: str, rows: Iterable[tuple[int, dict[str, str]]]) -> LendingHistory:
    """The contract's rows (``(line, row)``, ``line`` for the errors) as a grid, every row's gate
    applied and every gap carried and marked *filled*; the gap rule is :meth:`LendingHistory.gated`,
    applied after the window and the reserves are chosen (a gap outside them does not matter)."""
    cells: dict[tuple[int, Reserve], tuple[float, ...]] = {}
    first_row: dict[Reserve, int] = {}
    row_of: dict[tuple[int, Reserve], int] = {}
    for line, row in rows:
        where = f"{source}:{line}"
        t, reserve, values = _parse_row(row, where)
        key = (t, reserve)
        if key in cells:
            raise HistoryError(
                where,
                "hour_utc",
                f"duplicate row for {reserve.key} at {iso(t)} (first at line {row_of[key]})",
            )
        cells[key] = values
        row_of[key] = line
        first_row.setdefault(reserve, line)
    if not cells:
        raise HistoryError(source, "(body)", "no rows")
    observed = np.array(sorted({t for t, _ in cells}), dtype=np.int64)
    if len(observed) < 2:
        raise HistoryError(source, "hour_utc", "a single time: nothing to replay")
    diffs, counts = np.unique(np.diff(observed), return_counts=True)
    step = int(diffs[np.argmax(counts)])  # the commonest: a stray time is off its grid
    reserves = tuple(sorted(first_row, key=lambda r: (r.network, r.symbol)))
    _one_spelling(source, reserves, first_row)
    seen: dict[Reserve, list[int]] = {r: [] for r in reserves}
    for t, r in cells:
        seen[r].append(t)
    t0 = int(observed[0])
    runs = _gaps(source, seen, row_of, t0, step)
    n_times = (int(observed[-1]) - t0) // step + 1
    if n_times > 10 * len(observed):
        raise HistoryError(
            source,
            "hour_utc",
            f"the step {step} s (the commonest difference of two times) makes a grid of"
            f" {n_times} times for {len(observed)} observed: a stray time?",
        )
    times = t0 + step * np.arange(n_times, dtype=np.int64)
    grid = np.full((6, len(times), len(reserves)), np.nan)
    col = {r: j for j, r in enumerate(reserves)}
    for (t, r), values in cells.items():
        grid[:, (t - t0) // step, col[r]] = values
    filled = None
    if runs:  # carry each reserve's last row across its gaps; LendingHistory.gated judges them
        filled = np.zeros((len(times), len(reserves)), dtype=np.bool_)
        for r, gaps in runs.items():
            j = col[r]
            for start, n in gaps:
                i = (start - t0) // step
                filled[i : i + n, j] = True
                grid[:, i : i + n, j] = grid[:, i - 1 : i, j]
                grid[2, i : i + n, j] = 0.0  # liquidations of an unobserved period: none known
    return LendingHistory(
        source=source,
        times=times,
        step_seconds=step,
        reserves=reserves,
        supplied_usd=grid[0],
        borrowed_usd=grid[1],
        liquidations_usd=grid[2],
        supply_apr=grid[3],
        borrow_apr=grid[4],
        filled=filled,
        frozen=(grid[5] == 1.0) if np.any(grid[5] == 1.0) else None,
    )


def _one_spelling(source: str, reserves: Sequence[Reserve], first_row: dict[Reserve, int]) -> None:
    """Two symbols on one network that differ only in case (``USDC``, ``usdc``) are refused: a
    venue's id is its symbol in lower case (``aave-v3-ethereum-usdc``), so they would be one venue
    with two positions' worth of books and one in the market."""
    seen: dict[tuple[str, str], Reserve] = {}
    for r in sorted(reserves, key=lambda r: first_row[r]):
        other = seen.setdefault((r.network, r.symbol.lower()), r)
        if other is not r:
            raise HistoryError(
                f"{source}:{first_row[r]}",
                "symbol",
                f"{r.symbol!r} on {r.network} differs from {other.symbol!r} (line"
                f" {first_row[other]}) only in case: symbols are case-insensitive (one venue),"
                " so spell a reserve's symbol one way",
            )


def _parse_row(row: dict[str, str], where: str) -> tuple[int, Reserve, tuple[float, ...]]:
    """One row's gates: (time, reserve, (supplied, borrowed, liquidated, supply APR, borrow APR,
    frozen 1/0)); ``frozen`` is an optional column (true/false, 1/0, empty: false)."""
    t = parse_utc(row["hour_utc"] or "", where, "hour_utc")
    network, symbol = (row["network"] or "").strip(), (row["symbol"] or "").strip()
    if not network:
        raise HistoryError(where, "network", "empty")
    if not symbol:
        raise HistoryError(where, "symbol", "empty")
    supplied = number(row["supplied_usd"] or "", where, "supplied_usd")
    borrowed = number(row["borrowed_usd"] or "", where, "borrowed_usd")
    liquidated = number(row["liquidations_usd"] or "", where, "liquidations_usd")
    for name, value in (
        ("supplied_usd", supplied),
        ("borrowed_usd", borrowed),
        ("liquidations_usd", liquidated),
    ):
        if value < 0:
            raise HistoryError(where, name, f"negative amount {value}")
    if borrowed > supplied * (1 + UTILIZATION_SLACK) + 1e-6:
        raise HistoryError(
            where,
            "borrowed_usd",
            f"{borrowed} exceeds supplied_usd {supplied} (utilization > 1)",
        )
    aprs = []
    for name in ("supply_apr", "borrow_apr"):
        value = number(row[name] or "", where, name, empty_ok=True)
        if math.isnan(value) and supplied > 0:
            raise HistoryError(
                where, name, "empty while supplied_usd > 0 (refusing to invent a rate)"
            )
        if not math.isnan(value) and not 0.0 <= value <= MAX_APR:
            raise HistoryError(where, name, f"{value} outside [0, {MAX_APR}]")
        aprs.append(value)
    flag = (row.get(FROZEN_COLUMN) or "").strip().lower()
    if flag not in _FLAGS:
        raise HistoryError(where, FROZEN_COLUMN, f"not true/false/1/0: {flag!r}")
    values = (supplied, borrowed, liquidated, aprs[0], aprs[1], _FLAGS[flag])
    return t, Reserve(network, symbol), values


def _gaps(
    source: str,
    seen: dict[Reserve, list[int]],
    row_of: dict[tuple[int, Reserve], int],
    t0: int,
    step: int,
) -> dict[Reserve, list[tuple[int, int]]]:
    """Per reserve, its gaps as ``(first missing time, missing periods)``; a time off the grid
    ``t0 + k * step`` is refused. Periods after a reserve's last row are its end, not a gap."""
    out: dict[Reserve, list[tuple[int, int]]] = {}
    for r, ts in seen.items():
        arr = np.sort(np.asarray(ts, dtype=np.int64))
        off = np.flatnonzero((arr - t0) % step)
        if off.size:
            t = int(arr[off[0]])
            raise HistoryError(
                f"{source}:{row_of[(t, r)]}",
                "hour_utc",
                f"{r.key} at {iso(t)} is off the history's grid (every {step} s from {iso(t0)})",
            )
        missing = np.diff(arr) // step - 1
        at = np.flatnonzero(missing > 0)
        if at.size:
            out[r] = [(int(arr[k]) + step, int(missing[k])) for k in at.tolist()]
    return out


def write_lending(
    path: Path, rows: Sequence[Sequence[object]], columns: Sequence[str] = LENDING_COLUMNS
) -> None:
    """Write rows in the contract's column order (gzipped when ``path`` ends in ``.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)
