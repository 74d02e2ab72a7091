"""Reading the history files: CSV text (gzipped or not, with or without a byte-order mark), times,
numbers, and the error that names the place, the field and the reason (:class:`HistoryError`)."""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


class HistoryError(ValueError):
    """A history file that cannot be replayed as it is: names the place, the field and the reason."""

    def __init__(self, where: str, field: str, reason: str):
        super().__init__(f"{where}: field {field}: {reason}")
        self.where, self.field, self.reason = where, field, reason


def open_text(path: Path) -> IO[str]:
    """A text handle on ``path``, gunzipped when it starts with the gzip magic bytes; UTF-8 with a
    byte-order mark read as without (``utf-8-sig``: Excel saves CSV so)."""
    raw = path.open("rb")
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


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


def number(text: str, where: str, field: str, *, empty_ok: bool = False) -> float:
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


def read_header(path: Path) -> list[str]:
    """The column names of a CSV (gzipped or not), stripped; [] for an empty file."""
    if not path.is_file():
        raise HistoryError(str(path), "--history", "no such file")
    try:
        with open_text(path) as fh:
            return [n.strip() for n in next(csv.reader(fh), [])]
    except (UnicodeDecodeError, OSError, csv.Error, EOFError) as exc:
        raise HistoryError(str(path), "(header)", f"unreadable: {exc}") from None


def read_rows(
    path: Path, columns: Sequence[str], hint: str = ""
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` of a CSV with ``columns`` required (names stripped; a row of empty cells, as
    a spreadsheet leaves at the end, is skipped: it holds no data)."""
    if not path.is_file():
        raise HistoryError(str(path), "--history", "no such file")
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            names = reader.fieldnames or []
        except (UnicodeDecodeError, OSError, csv.Error) as exc:
            raise HistoryError(str(path), "(header)", f"unreadable: {exc}") from None
        reader.fieldnames = names = [n.strip() for n in names]
        missing = [c for c in columns if c not in names]
        if missing:
            raise HistoryError(str(path), missing[0], f"missing column (have {names}){hint}")
        try:
            for line, row in enumerate(reader, start=2):
                if any((v or "").strip() for k, v in row.items() if k is not None):
                    yield line, row
        except (UnicodeDecodeError, OSError, csv.Error, EOFError) as exc:
            raise HistoryError(str(path), "(body)", f"unreadable: {exc}") from None
