"""Reading users' bar files (CSV, gzip-compressed CSV, Parquet) into canonical frames.

The reader accepts the layouts people download or write themselves: Yahoo's
"Download" CSV, lower-case columns, an unnamed integer index column, banner lines
before the header (CryptoDataDownload), newest-first rows, CRLF line endings,
'2019-10-17 09-AM' hours, M/D/YYYY dates, columns in any order, yfinance
``to_csv`` output with mixed UTC offsets, and wide files holding several
instruments (``BTC:open,...,ETH:open,...``), one of which is picked by its prefix.

Prices follow the cache's convention: a file with an 'Adj Close' column has its
Open, High, Low and Close multiplied by Adj Close / Close. A missing Volume
column reads as 0. Files are only ever parsed as text or by pyarrow; nothing in
them is evaluated or unpickled.

The module is longer than most (about 470 lines): each layout above needs its own
small reading rule, and they all feed one header and timestamp detection, which is
this module's single concern.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import warnings
import zlib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa

from dataprovider.enums import DataResolution
from dataprovider.errors import InvalidRequestError
from dataprovider.frames import PRICE_COLUMNS, normalize_frame
from dataprovider.instruments import guess_timezone, validate_ticker

__all__ = ["MAX_UNCOMPRESSED_BYTES", "read_bars_bytes", "read_bars_file"]

logger = logging.getLogger(__name__)

#: Largest size a gzip-compressed file may expand to.
MAX_UNCOMPRESSED_BYTES = 1 << 30

_EXPECTED = (
    "expected a CSV (optionally gzip-compressed) or Parquet file with a date/time column "
    "(Date, Datetime or Timestamp) and Open, High, Low, Close columns, optionally Adj Close "
    "and Volume, e.g. the header 'Date,Open,High,Low,Close,Adj Close,Volume'"
)
_DATE_EXAMPLES = (
    "2024-01-31, 2024-01-31 09:30:00, 2024-01-31T09:30:00-05:00, 1/31/2024, 1/31/2024 9:30 or 2024-01-31 09-AM"
)
# Tried in order on naive date/time strings; the first that reads every row wins.
_TIME_FORMATS = (
    "ISO8601",
    "%Y-%m-%d %I-%p",  # CryptoDataDownload hourly files
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
)
_OFFSET_RE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}:?\d{2})$"
_FIELDS = {
    "open": "Open",
    "high": "High",
    "low": "Low",
    "close": "Close",
    "adjclose": "Adj Close",
    "volume": "Volume",
}
_TIME_KEYS = ("datetime", "date", "timestamp", "time")
_HEADER_SEARCH_LINES = 20
_DELIMITERS = (",", ";", "\t")


def read_bars_file(
    path: str | os.PathLike[str],
    *,
    ticker: str,
    resolution: DataResolution | str,
    timezone: str | None = None,
    prefix: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read a CSV, gzip-compressed CSV or Parquet bar file into a canonical frame.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its format is told from its content, not its name.
    ticker : str
        The instrument the bars belong to (Yahoo symbol, e.g. 'SPY', 'BTC-USD').
    resolution : DataResolution or str
        The width of one bar in the file ('1d', '1h', ...).
    timezone : str, optional
        IANA timezone that naive timestamps are in and that the frame is returned
        in; defaults to :func:`dataprovider.instruments.guess_timezone` of ``ticker``.
    prefix : str, optional
        For wide files holding several instruments (``BTC:open,...,ETH:open``):
        the column prefix to read. Defaults to the prefix equal to the ticker or
        to its base currency ('ETH' for 'ETH-USD').

    Returns
    -------
    tuple of (pandas.DataFrame, str)
        The canonical frame and the timezone it is in.

    Raises
    ------
    InvalidRequestError
        INVALID_FILE (field 'file') when the file cannot be read as bars; the
        message says what is wrong and what layout is expected. INVALID_TICKER,
        INVALID_RESOLUTION or INVALID_PAYLOAD (field 'timezone') for bad arguments.

    Examples
    --------
    A newest-first file in Yahoo's "Download" layout, with an Adj Close column:

    >>> import pathlib, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "SPY.csv"
    >>> _ = path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\\n"
    ...                     "2024-01-03,196,202,194,200,100,5000\\n"
    ...                     "2024-01-02,188,191,186,190,95,4000\\n")
    >>> frame, tz = read_bars_file(path, ticker="SPY", resolution="1d")
    >>> tz, frame.index.strftime("%Y-%m-%d").tolist()
    ('America/New_York', ['2024-01-02', '2024-01-03'])
    >>> frame["Open"].tolist(), frame["Close"].tolist(), frame["Volume"].tolist()
    ([94.0, 98.0], [95.0, 100.0], [4000, 5000])
    >>> read_bars_file(pathlib.Path(tmp.name) / "QQQ.csv", ticker="QQQ", resolution="1d")
    Traceback (most recent call last):
    ...
    dataprovider.errors.InvalidRequestError: INVALID_FILE: QQQ.csv does not exist (...)
    >>> tmp.cleanup()
    """
    name = os.path.basename(os.fspath(path)) or os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise _invalid(name, f"does not exist ({os.fspath(path)})") from None
    except OSError as exc:
        raise _invalid(name, f"cannot be opened: {exc.strerror or exc}") from None
    return read_bars_bytes(data, ticker=ticker, resolution=resolution, timezone=timezone, prefix=prefix, name=name)


def read_bars_bytes(
    data: bytes,
    *,
    ticker: str,
    resolution: DataResolution | str,
    timezone: str | None = None,
    prefix: str | None = None,
    name: str = "file",
) -> tuple[pd.DataFrame, str]:
    """Read the bytes of a bar file (e.g. an upload) the way :func:`read_bars_file` reads a path.

    ``name`` is used in error messages only.

    Examples
    --------
    >>> csv = b"Date,Open,High,Low,Close,Volume\\n2024-01-02,10,11,9,10.5,100\\n"
    >>> frame, tz = read_bars_bytes(csv, ticker="SPY", resolution="1d")
    >>> tz, frame.index[0].isoformat(), int(frame["Volume"].iloc[0])
    ('America/New_York', '2024-01-02T00:00:00-05:00', 100)
    """
    ticker = validate_ticker(ticker)
    resolution = _parse_resolution(resolution)
    tz = guess_timezone(ticker) if timezone is None else _check_timezone(timezone)
    table = _read_table(data, name)
    table = _select_instrument(table, name=name, ticker=ticker, prefix=prefix)
    frame = _bars_from_table(table, name=name, resolution=resolution, tz=tz)
    logger.info(
        "read %d %s %s bars from %s (%s .. %s, %s)",
        len(frame),
        ticker,
        resolution.value,
        name,
        frame.index[0],
        frame.index[-1],
        tz,
    )
    return frame, tz


def _invalid(name: str, problem: str, *, expected: bool = False) -> InvalidRequestError:
    message = f"{name} {problem}" + (f"; {_EXPECTED}" if expected else "")
    return InvalidRequestError(message, code="INVALID_FILE", field="file", details={"file": name})


def _parse_resolution(resolution: DataResolution | str) -> DataResolution:
    try:
        return DataResolution.parse(resolution)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), code="INVALID_RESOLUTION", field="resolution") from None


def _check_timezone(timezone: str) -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidRequestError(
            f"timezone {timezone!r} is not an IANA timezone name such as 'UTC' or 'America/New_York'",
            code="INVALID_PAYLOAD",
            field="timezone",
        ) from None
    return timezone


# --- bytes -> raw table -------------------------------------------------------------------------


def _read_table(data: bytes, name: str) -> pd.DataFrame:
    """The file's table with its columns as written, told apart by content."""
    if not data.strip():
        raise _invalid(name, "is empty", expected=True)
    if data.startswith(b"\x1f\x8b"):
        data = _gunzip(data, name)
        if not data:
            raise _invalid(name, "is an empty gzip file", expected=True)
    if data.startswith(b"PAR1"):
        return _read_parquet(data, name)
    if data.startswith(b"PK\x03\x04"):
        raise _invalid(name, "is a ZIP archive or an Excel workbook, not a CSV; save it as CSV", expected=True)
    if b"\x00" in data[:65536]:
        raise _invalid(name, "is a binary file, not a CSV text file or a Parquet file", expected=True)
    return _read_csv(data.decode("utf-8-sig", errors="replace"), name)


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read(MAX_UNCOMPRESSED_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise _invalid(name, f"is a damaged gzip file ({exc})") from None
    if len(out) > MAX_UNCOMPRESSED_BYTES:
        raise _invalid(name, f"expands to more than {MAX_UNCOMPRESSED_BYTES} bytes when decompressed")
    return out


def _read_parquet(data: bytes, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise _invalid(name, f"is not a readable Parquet file ({exc})") from None


def _find_header(text: str) -> tuple[int, str] | None:
    """Where the header row starts (banner lines may come first) and its delimiter."""
    offset = 0
    for line in text.splitlines(keepends=True)[:_HEADER_SEARCH_LINES]:
        delimiter = max(_DELIMITERS, key=line.count)
        fields = next(csv.reader([line], delimiter=delimiter), [])
        if any(_field_key(field) == "close" for field in fields):
            return offset, delimiter
        offset += len(line)
    return None


def _read_csv(text: str, name: str) -> pd.DataFrame:
    """Parse CSV text whose header may follow banner lines; every cell is kept as a string."""
    header = _find_header(text)
    if header is None:
        raise _invalid(
            name,
            f"has no header row naming a Close column in its first {_HEADER_SEARCH_LINES} lines",
            expected=True,
        )
    offset, delimiter = header
    try:
        with warnings.catch_warnings():
            # pandas warns, and drops cells, when a row has more fields than the header.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(
                io.StringIO(text[offset:]),
                sep=delimiter,
                dtype=str,
                skipinitialspace=True,
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise _invalid(name, "is not a well-formed CSV: some rows have more fields than the header") from None
    except pd.errors.ParserError as exc:
        raise _invalid(name, f"is not a well-formed CSV ({exc})") from None
    if table.empty:
        raise _invalid(name, "has a header but no data rows", expected=True)
    return table


# --- raw table -> bars --------------------------------------------------------------------------


def _key(label: object) -> str:
    """A column label reduced to lower-case letters and digits ('Adj Close' -> 'adjclose')."""
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def _field_key(label: object) -> str:
    """The key of a label's part after any 'PREFIX:' ('ETH:close' -> 'close')."""
    return _key(str(label).rpartition(":")[2])


def _select_instrument(table: pd.DataFrame, *, name: str, ticker: str, prefix: str | None) -> pd.DataFrame:
    """For a wide file, the columns of one instrument with their prefix removed."""
    groups: dict[str, list[object]] = {}
    for label in table.columns:
        head, sep, _ = str(label).rpartition(":")
        if sep and head and _field_key(label) in _FIELDS:
            groups.setdefault(head, []).append(label)
    if not groups:
        if prefix is not None:
            raise _invalid(
                name,
                f"has no columns such as '{prefix}:open' or '{prefix}:close'; prefix is only for "
                "wide files holding several instruments",
            )
        return table
    prefixes = sorted(groups)
    wanted = (ticker, ticker.partition("-")[0]) if prefix is None else (prefix.upper(),)
    matches = [p for p in prefixes if p.upper() in wanted]
    if len(matches) != 1:
        listing = ", ".join(prefixes)
        problem = (
            f"holds several instruments ({listing}) and none is {ticker!r}; name one with prefix, "
            f"e.g. prefix={prefixes[0]!r}"
            if prefix is None
            else f"has no columns for prefix {prefix!r}; its prefixes are {listing}"
        )
        raise _invalid(name, problem)
    chosen = groups[matches[0]]
    others = [label for labels in groups.values() for label in labels]
    shared = [label for label in table.columns if label not in others]
    picked = table.loc[:, shared + chosen]
    return picked.rename(columns={label: str(label).rpartition(":")[2] for label in chosen})


def _bars_from_table(table: pd.DataFrame, *, name: str, resolution: DataResolution, tz: str) -> pd.DataFrame:
    columns = _price_columns(table, name)
    index = _time_index(table, name, tz)
    _check_spacing(index, name, resolution)
    if not resolution.is_intraday:
        index = index.normalize()
    frame = pd.DataFrame(
        {field: _numbers(table[label], field, name) for field, label in columns.items()},
        index=index,
    )
    if "Adj Close" in frame:
        ratio = frame["Adj Close"] / frame["Close"]
        for col in PRICE_COLUMNS:
            frame[col] = frame[col] * ratio
    if "Volume" not in frame:
        frame["Volume"] = 0
    _log_row_problems(frame, name)
    frame = normalize_frame(frame, resolution, tz)
    if frame.empty:
        raise _invalid(name, "has no rows with a Close price")
    _warn_inconsistent(frame, name)
    return frame


def _price_columns(table: pd.DataFrame, name: str) -> dict[str, object]:
    """Canonical field name -> the table's label, for the first column of each field."""
    found: dict[str, object] = {}
    for label in table.columns:
        field = _FIELDS.get(_key(label))
        if field is not None and field not in found:
            found[field] = label
    missing = [col for col in PRICE_COLUMNS if col not in found]
    if missing:
        shown = ", ".join(repr(str(label)) for label in table.columns[:12])
        raise _invalid(name, f"has no {'/'.join(missing)} column (its columns are {shown})", expected=True)
    return found


def _time_index(table: pd.DataFrame, name: str, tz: str) -> pd.DatetimeIndex:
    """The bar times in ``tz``: naive times are taken to be in ``tz``, aware ones converted."""
    index = _parse_times(_time_values(table, name), name)
    if index.tz is not None:
        return index.tz_convert(tz)
    try:
        return index.tz_localize(tz)
    except ValueError as exc:
        raise _invalid(
            name,
            f"has a time that does not exist or is ambiguous in {tz} ({exc}); write times with a "
            "UTC offset or read the file with timezone='UTC'",
        ) from None


def _time_values(table: pd.DataFrame, name: str) -> pd.Series | pd.Index:
    if isinstance(table.index, pd.DatetimeIndex):
        return table.index
    if _key(table.index.name) in _TIME_KEYS:
        return table.index.to_series(index=pd.RangeIndex(len(table)))
    keys = [_key(label) for label in table.columns]
    for wanted in _TIME_KEYS:
        if wanted in keys:
            return table.iloc[:, keys.index(wanted)]
    if keys and (keys[0] == "" or keys[0].startswith("unnamed")):
        return table.iloc[:, 0]
    raise _invalid(name, "has no date/time column (name it Date or Datetime)", expected=True)


def _parse_times(values: pd.Series | pd.Index, name: str) -> pd.DatetimeIndex:
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.DatetimeIndex(values)
    values = pd.Series(values)
    missing = values.isna().to_numpy()
    if missing.any():
        raise _invalid(name, f"has no date/time in data row {missing.argmax() + 1}")
    if pd.api.types.is_numeric_dtype(values):
        raise _invalid(name, f"has numbers in its date/time column; dates must look like {_DATE_EXAMPLES}")
    if not pd.api.types.is_string_dtype(values):
        try:
            return pd.DatetimeIndex(pd.to_datetime(values))
        except (TypeError, ValueError) as exc:
            raise _invalid(name, f"has a date/time column that cannot be read as dates ({exc})") from None
    text = values.str.strip()
    aware = text.str.contains(_OFFSET_RE, regex=True).to_numpy()
    if aware.any() and not aware.all():
        raise _invalid(name, "mixes times with a UTC offset and times without one")
    formats = ("ISO8601",) if aware.all() else _TIME_FORMATS
    for fmt in formats:
        try:
            return pd.DatetimeIndex(pd.to_datetime(text, format=fmt, utc=bool(aware.all())))
        except ValueError:
            continue
    # Report the first row the format that reads the most rows cannot read.
    best = max(
        (pd.to_datetime(text, format=fmt, errors="coerce", utc=bool(aware.all())) for fmt in formats),
        key=lambda parsed: int(parsed.notna().sum()),
    )
    row = int(best.isna().to_numpy().argmax())
    raise _invalid(
        name,
        f"has a date/time that cannot be read: {text.iloc[row]!r} in data row {row + 1}; "
        f"dates must look like {_DATE_EXAMPLES}",
    )


def _check_spacing(index: pd.DatetimeIndex, name: str, resolution: DataResolution) -> None:
    """Refuse files whose rows are clearly closer together than the stated resolution."""
    steps = index.sort_values().to_series().diff().dropna()
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        return
    typical = steps.median()
    if typical < resolution.nominal_duration / 2:
        raise _invalid(
            name,
            f"has rows typically {typical} apart, finer than the resolution {resolution.value!r}; "
            "give the file's own resolution",
        )


def _numbers(column: pd.Series, field: str, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = (values.isna() & column.notna()).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise _invalid(
            name,
            f"has a {field} value that is not a number: {column.iloc[row]!r} in data row {row + 1} "
            "(write plain numbers such as 1234.5, without thousands separators or currency signs)",
        )
    return values.to_numpy(dtype="float64")


def _log_row_problems(frame: pd.DataFrame, name: str) -> None:
    no_close = int(frame["Close"].isna().sum())
    if no_close:
        logger.info("%s: skipped %d rows without a Close (or Adj Close) price", name, no_close)
    duplicated = int(frame.index.duplicated().sum())
    if duplicated:
        logger.warning("%s: %d rows repeat an earlier time; kept the last of each", name, duplicated)


def _warn_inconsistent(frame: pd.DataFrame, name: str) -> None:
    """Log rows whose High < Low or whose Open/Close lie outside [Low, High]; they are kept."""
    low, high = frame["Low"], frame["High"]
    bad = (high < low) | ~frame["Open"].between(low, high) | ~frame["Close"].between(low, high)
    bad &= frame[list(PRICE_COLUMNS)].notna().all(axis=1)
    if bad.any():
        times = ", ".join(str(t) for t in frame.index[bad.to_numpy()][:5])
        logger.warning(
            "%s: %d rows have High < Low or Open/Close outside [Low, High] (kept as they are): %s%s",
            name,
            int(bad.sum()),
            times,
            ", ..." if bad.sum() > 5 else "",
        )
