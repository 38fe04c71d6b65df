"""An uploaded OHLCV file, checked bar by bar and turned into the CSV the sandbox reads.

A file is daily bars with a header: a date column ("date", else the first
column), open, high, low, close, volume, and optionally adj_close (column
names in any case; "Adj Close" is adj_close). Each problem names the line of
the CSV file (the header is line 1) or the row of the Parquet file, and the
column; the first ``MAX_PROBLEMS`` are reported.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re

import numpy as np
import pandas as pd

NAME_RE = re.compile(r"^[A-Z0-9_.\-]{1,32}$")
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # the file as sent
MAX_BARS = 40_000  # over a century of daily bars
MAX_GAP_DAYS = 7  # more calendar days between two bars than any market closure: missing data
MAX_PROBLEMS = 10
PRICES = ("open", "high", "low", "close")
PARQUET_MAGIC = b"PAR1"


class DatasetRejected(ValueError):
    """The file cannot be stored; ``problems`` are (field, description) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems[:MAX_PROBLEMS]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0][0]}: {problems[0][1]}{more}")


@dataclasses.dataclass(frozen=True)
class Checked:
    csv: bytes  # date, open, high, low, close[, adj_close], volume; one line per bar
    sha256: str
    bars: int
    first_date: str
    last_date: str
    has_adj_close: bool


def dataset_name(raw: str) -> tuple[str, str | None]:
    """(the name upper-cased without a leading "@", a problem or None)."""
    name = raw.strip().removeprefix("@").upper()
    if not NAME_RE.match(name):
        return name, "a name of 1 to 32 letters, digits, '_', '-' or '.'"
    return name, None


def check(content: bytes, parquet: bool | None = None) -> Checked:
    """The canonical CSV of an uploaded file; raises DatasetRejected."""
    if not content.strip():
        raise DatasetRejected([("file", "the file is empty")])
    parquet = content.startswith(PARQUET_MAGIC) if parquet is None else parquet
    where = "row" if parquet else "line"
    first = 1 if parquet else 2  # the first bar's row (Parquet) or line (CSV, after its header)
    try:
        frame = pd.read_parquet(io.BytesIO(content)) if parquet else pd.read_csv(io.BytesIO(content), dtype=str)
    except Exception as exc:  # noqa: BLE001 - any parser error is the file's problem
        kind = "Parquet" if parquet else "CSV"
        raise DatasetRejected([("file", f"not a readable {kind} file: {str(exc).splitlines()[0][:200]}")]) from None
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    if frame.index.name and frame.index.name.lower() in ("date", "datetime"):  # a Parquet file written with its index
        frame = frame.reset_index().rename(columns=str.lower)
    missing = [c for c in (*PRICES, "volume") if c not in frame.columns]
    if missing:
        raise DatasetRejected([("file.columns", f"missing {', '.join(missing)}; the header has {', '.join(frame.columns)}")])
    if frame.empty:
        raise DatasetRejected([("file", "no bars after the header")])
    if len(frame) > MAX_BARS:
        raise DatasetRejected([("file", f"{len(frame)} bars; at most {MAX_BARS}")])

    problems: list[tuple[str, str]] = []

    def bad(mask, column: str, words) -> None:
        for i in np.flatnonzero(np.asarray(mask))[:MAX_PROBLEMS]:
            problems.append((f"{where} {i + first}.{column}", words(i)))

    date_col = next((c for c in ("date", "datetime", "time") if c in frame.columns), frame.columns[0])
    raw_dates = frame[date_col].astype(str)
    dates = pd.to_datetime(raw_dates, errors="coerce", format="mixed")
    bad(dates.isna(), date_col, lambda i: f"{raw_dates.iloc[i]!r} is not a date")
    if dates.notna().all() and dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    intraday = dates.notna() & (dates != dates.dt.normalize())
    bad(intraday, date_col, lambda i: f"{raw_dates.iloc[i]} has a time of day: daily bars only")

    columns = [*PRICES, *(["adj_close"] if "adj_close" in frame.columns else []), "volume"]
    values = {}
    for column in columns:
        number = pd.to_numeric(frame[column], errors="coerce").astype(float)
        values[column] = number
        bad(~np.isfinite(number), column, lambda i, c=column: f"{frame[c].iloc[i]!r} is not a number")
        if column == "volume":
            bad(number < 0, column, lambda i: f"volume {number.iloc[i]:g} is negative")
        else:
            bad(number <= 0, column, lambda i, c=column, n=number: f"{c} {n.iloc[i]:g} is not a positive price")
    high, low = values["high"], values["low"]
    bad(high < low, "high", lambda i: f"high {high.iloc[i]:g} is below low {low.iloc[i]:g}")
    for column in ("open", "close"):
        v = values[column]
        outside = (v > high * (1 + 1e-9)) | (v < low * (1 - 1e-9))
        bad(outside & (high >= low), column,
            lambda i, c=column, v=v: f"{c} {v.iloc[i]:g} is outside the bar's range {low.iloc[i]:g}..{high.iloc[i]:g}")
    if not problems:
        step = dates.diff().dt.days
        bad(step <= 0, date_col, lambda i: f"{dates.iloc[i].date()} is not after the bar before it "
                                           f"({dates.iloc[i - 1].date()}): dates must be sorted and unique")
        bad(step > MAX_GAP_DAYS, date_col, lambda i: f"{int(step.iloc[i])} days after the bar before it "
                                                     f"({dates.iloc[i - 1].date()}): a gap longer than any market "
                                                     f"closure ({MAX_GAP_DAYS} days)")
    if problems:
        raise DatasetRejected(sorted(problems, key=lambda p: int(p[0].split()[1].split(".")[0])))  # by line

    out = pd.DataFrame({c: values[c] for c in columns})
    out.insert(0, "date", dates.dt.strftime("%Y-%m-%d"))
    csv = out.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()
    return Checked(csv=csv, sha256=hashlib.sha256(csv).hexdigest(), bars=len(out), first_date=out["date"].iloc[0],
                   last_date=out["date"].iloc[-1], has_adj_close="adj_close" in columns)
