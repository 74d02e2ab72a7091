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

Any source written in these columns (CSV, optionally gzipped) runs with no code change; the step
(hourly, daily, ...) is read from the data. The gates (:class:`HistoryError` names the file, row and
field): every required column present; times parse as UTC; numbers finite; amounts >= 0;
``borrowed_usd <= supplied_usd`` to 0.1 % (the source's two amounts are read a moment apart, so a
fully drawn reserve shows up to 1.00018 in the Aave file; the market clamps utilization at 1); APRs in [0, 10]; an empty APR only
where ``supplied_usd == 0`` (a reserve not yet live, which gets no snapshot); no duplicate
(time, network, symbol); every reserve's rows contiguous at the step from its first row to the
history's last time (a missing period is an error, never forward-filled).

The other inputs have their own loaders: :func:`load_daily_aave` (13 chains, no amounts: converted
into the contract with a stated TVL assumption), :func:`load_uniswap_v2` (LP fees from cumulative
volume, impermanent loss on the real price path) and :func:`load_stablecoin_prices` (marks).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

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
UTILIZATION_SLACK = 1e-3
MAX_APR = 10.0  # Aave's MAX_BORROW_RATE (1000 %): anything above is a broken feed, not a rate


class HistoryError(ValueError):
    """A history file that cannot be replayed as it is: names the place, the field and the reason."""

    def __init__(self, where: str, field: str, reason: str):
        super().__init__(f"{where}: field {field}: {reason}")
        self.where, self.field, self.reason = where, field, reason


def open_text(path: Path) -> IO[str]:
    """A text handle on ``path``, gunzipped when it starts with the gzip magic bytes."""
    raw = path.open("rb")
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", newline="")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def parse_utc(text: str, where: str, field: str) -> int:
    """ISO 8601 (``Z`` or an offset, or a bare date) -> unix seconds; a naive time is refused."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HistoryError(where, field, f"not an ISO 8601 time: {text!r}") from None
    if len(text.strip()) == 10:  # a bare date: that day's 00:00 UTC
        t = t.replace(tzinfo=UTC)
    if t.tzinfo is None:
        raise HistoryError(where, field, f"time {text!r} has no UTC offset")
    return int(t.timestamp())


def iso(ts: int | float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    def __len__(self) -> int:
        return len(self.times)

    def live(self, i: int) -> NDArray[np.bool_]:
        return np.isfinite(self.supply_apr[i]) & (self.supplied_usd[i] > 0)

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
        )

    def select(self, symbols: Sequence[str] | None) -> LendingHistory:
        """Only the reserves whose symbol is in ``symbols`` (all when None)."""
        if not symbols:
            return self
        wanted = {s.upper() for s in symbols}
        keep = [j for j, r in enumerate(self.reserves) if r.symbol.upper() in wanted]
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
        )

    def cut(self, until_ts: int) -> LendingHistory:
        """Everything up to and including ``until_ts`` (the look-ahead check replays this)."""
        return self.window(None, until_ts)


def _number(text: str, where: str, field: str, *, empty_ok: bool = False) -> float:
    s = text.strip()
    if s == "":
        if empty_ok:
            return math.nan
        raise HistoryError(where, field, "empty (refusing to invent a value)")
    try:
        value = float(s)
    except ValueError:
        raise HistoryError(where, field, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise HistoryError(where, field, f"not finite: {text!r}")
    return value


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise HistoryError(str(path), "--history", "no such file")
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            names = reader.fieldnames or []
        except (UnicodeDecodeError, OSError, csv.Error) as exc:
            raise HistoryError(str(path), "(header)", f"unreadable: {exc}") from None
        missing = [c for c in LENDING_COLUMNS if c not in names]
        if missing:
            raise HistoryError(str(path), missing[0], f"missing column (have {names})")
        try:
            yield from enumerate(reader, start=2)
        except (UnicodeDecodeError, OSError, csv.Error, EOFError) as exc:
            raise HistoryError(str(path), "(body)", f"unreadable: {exc}") from None


def load_lending(path: Path | str) -> LendingHistory:
    """Read a history in the contract's columns, applying every gate in the module docstring."""
    path = Path(path)
    cells: dict[tuple[int, Reserve], tuple[float, ...]] = {}
    first_row: dict[Reserve, int] = {}
    row_of: dict[tuple[int, Reserve], int] = {}
    for line, row in _rows(path):
        where = f"{path}:{line}"
        t = parse_utc(row["hour_utc"] or "", where, "hour_utc")
        network, symbol = (row["network"] or "").strip(), (row["symbol"] or "").strip()
        if not network:
            raise HistoryError(where, "network", "empty")
        if not symbol:
            raise HistoryError(where, "symbol", "empty")
        supplied = _number(row["supplied_usd"] or "", where, "supplied_usd")
        borrowed = _number(row["borrowed_usd"] or "", where, "borrowed_usd")
        liquidated = _number(row["liquidations_usd"] or "", where, "liquidations_usd")
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
            value = _number(row[name] or "", where, name, empty_ok=True)
            if math.isnan(value) and supplied > 0:
                raise HistoryError(
                    where, name, "empty while supplied_usd > 0 (refusing to invent a rate)"
                )
            if not math.isnan(value) and not 0.0 <= value <= MAX_APR:
                raise HistoryError(where, name, f"{value} outside [0, {MAX_APR}]")
            aprs.append(value)
        reserve = Reserve(network, symbol)
        key = (t, reserve)
        if key in cells:
            raise HistoryError(
                where,
                "hour_utc",
                f"duplicate row for {reserve.key} at {iso(t)} (first at line {row_of[key]})",
            )
        cells[key] = (supplied, borrowed, liquidated, aprs[0], aprs[1])
        row_of[key] = line
        first_row.setdefault(reserve, line)
    if not cells:
        raise HistoryError(str(path), "(body)", "no rows")
    times = np.array(sorted({t for t, _ in cells}), dtype=np.int64)
    if len(times) < 2:
        raise HistoryError(str(path), "hour_utc", "a single time: nothing to replay")
    step = int(np.min(np.diff(times)))
    reserves = tuple(sorted(first_row, key=lambda r: (r.network, r.symbol)))
    grid = np.full((5, len(times), len(reserves)), np.nan)
    col = {r: j for j, r in enumerate(reserves)}
    pos = {int(t): i for i, t in enumerate(times)}
    seen: dict[Reserve, list[int]] = {r: [] for r in reserves}
    for (t, r), values in cells.items():
        grid[:, pos[t], col[r]] = values
        seen[r].append(t)
    for r, ts in seen.items():
        ts.sort()
        expected = np.arange(ts[0], int(times[-1]) + 1, step)
        if len(ts) != len(expected) or np.any(np.asarray(ts) != expected):
            have = set(ts)
            gap = next(int(x) for x in expected if int(x) not in have)
            raise HistoryError(
                f"{path}:{first_row[r]}",
                "hour_utc",
                f"{r.key} has no row for {iso(gap)} (rows must be contiguous every {step} s from"
                " the reserve's first row to the history's end; a missing period is not invented)",
            )
    return LendingHistory(
        source=str(path),
        times=times,
        step_seconds=step,
        reserves=reserves,
        supplied_usd=grid[0],
        borrowed_usd=grid[1],
        liquidations_usd=grid[2],
        supply_apr=grid[3],
        borrow_apr=grid[4],
    )


def write_lending(path: Path, rows: Sequence[Sequence[object]]) -> None:
    """Write rows in the contract's column order (gzipped when ``path`` ends in ``.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LENDING_COLUMNS)
        w.writerows(rows)
