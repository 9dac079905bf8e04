"""Converting a cache of the previous layout, one Parquet file per dataset, to Delta tables.

The previous layout kept each dataset in ``<root>/<resolution>/<TICKER>.parquet``:
a canonical frame, with its :class:`~dataprovider.engine.datasets.DatasetMeta` as
JSON under the schema-metadata key ``dataprovider``. :func:`migrate` converts them
dataset by dataset, each under the dataset's write lock (the lock files of both
layouts are the same, so a writer of either version is kept out):

1. the file is read whole, page checksums verified; a file that cannot be read,
   or does not hold a canonical frame, is moved to ``<root>/.quarantine/<resolution>/``;
2. the bars go into the dataset's table in one commit, unless the table already
   holds every bar of the file with equal values (a run killed after its commit,
   or bars another writer added since): then the table is kept as it is. A table
   holding some of the bars gets the file's other bars merged in, keeping its own
   where both have a bar at one time (the table's are the newer);
3. the table is read back from disk and compared with what it must hold;
4. only then is the file moved to ``<root>/.migrated/<resolution>/``, with the table's
   log and the rename fsynced.

A run killed at any point leaves every dataset either still in its old file, to be
converted by the next run, or converted and moved aside: nothing is lost, and the
next run picks up where the killed one stopped. Temporary files the previous
version's writers left behind (``.<TICKER>.parquet.<random>.tmp``) are deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataprovider.bars import Bars
from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.store import DeltaStore
from dataprovider.engine.tables import LOG_DIR
from dataprovider.enums import DataResolution
from dataprovider.errors import CacheCorruptError, ServerBusyError, StorageFullError
from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.instruments import validate_ticker

__all__ = ["MigratedDataset", "MigrationReport", "migrate", "needs_migration"]

logger = logging.getLogger(__name__)

MIGRATED_DIR = ".migrated"
QUARANTINE_DIR = ".quarantine"
_OLD_SUFFIX = ".parquet"
_OLD_META_KEY = b"dataprovider"
_TEMP_SUFFIX = ".tmp"
_CANONICAL_DTYPES = [np.dtype("float64")] * 4 + [np.dtype("int64")]


class _Unreadable(Exception):
    """An old file that cannot be converted; the message says why."""


@dataclass(frozen=True)
class MigratedDataset:
    """One dataset :func:`migrate` dealt with: its bars in the old file, and what happened (``note``)."""

    ticker: str
    resolution: DataResolution
    rows: int
    note: str = ""

    def line(self, outcome: str) -> str:
        """One line saying what happened to it."""
        text = f"{self.ticker} {self.resolution.value}: {outcome}, {self.rows} bars"
        return f"{text} ({self.note})" if self.note else text


@dataclass
class MigrationReport:
    """What :func:`migrate` did.

    Attributes
    ----------
    converted : list of MigratedDataset
        Written to (or merged into) their tables, verified, and the old file moved to ``.migrated/``.
    already_done : list of MigratedDataset
        Their tables already held every bar of the old file; the file was moved to ``.migrated/``.
    quarantined : list of MigratedDataset
        Old files that could not be read, moved to ``.quarantine/`` (``rows`` is 0).
    failed : list of MigratedDataset
        Left in place because the store refused the write (disk full, locked): the next run tries again.
    temp_files_removed : int
        Temporary files of the previous version deleted.
    seconds : float
        How long the run took.
    """

    converted: list[MigratedDataset] = field(default_factory=list)
    already_done: list[MigratedDataset] = field(default_factory=list)
    quarantined: list[MigratedDataset] = field(default_factory=list)
    failed: list[MigratedDataset] = field(default_factory=list)
    temp_files_removed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """The one line that ends the run, e.g. '13 datasets: 13 converted, 0 already done, ..., 1.2 s'."""
        total = len(self.converted) + len(self.already_done) + len(self.quarantined) + len(self.failed)
        return (
            f"{total} datasets: {len(self.converted)} converted, {len(self.already_done)} already done, "
            f"{len(self.quarantined)} quarantined, {len(self.failed)} failed, "
            f"{self.temp_files_removed} temporary files removed, {self.seconds:.1f} s"
        )


def needs_migration(root: str | os.PathLike[str]) -> bool:
    """Whether the data directory ``root`` holds a dataset file of the previous layout (no file is opened).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     before = needs_migration(tmp)
    ...     os.mkdir(os.path.join(tmp, "1d"))
    ...     open(os.path.join(tmp, "1d", "SPY.parquet"), "wb").close()
    ...     before, needs_migration(tmp)
    (False, True)
    """
    return any(True for _ in _old_files(Path(root)))


def migrate(store: DeltaStore, echo: Callable[[str], None] | None = None) -> MigrationReport:
    """Convert every dataset file of the previous layout in ``store.root`` to a table; see the module's docstring.

    Parameters
    ----------
    store : DeltaStore
        The store over the data directory to convert.
    echo : callable, optional
        Receives one line per dataset as it is done; by default the lines are logged.

    Returns
    -------
    MigrationReport
        What was converted, found done already, quarantined or left in place.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="America/New_York", name="Date")
    >>> frame = pd.DataFrame({"Open": [1.0, 2, 3], "High": [2.0, 3, 4], "Low": [0.5, 1, 2],
    ...                       "Close": [1.5, 2.5, 3.5], "Volume": [10, 20, 30]}, index=idx)
    >>> table = pa.Table.from_pandas(frame, preserve_index=True)
    >>> meta = DatasetMeta("America/New_York", "import").to_json(idx[0], idx[-1])
    >>> os.mkdir(os.path.join(tmp.name, "1d"))
    >>> pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"dataprovider": meta}),
    ...                os.path.join(tmp.name, "1d", "SPY.parquet"))
    >>> store = DeltaStore(tmp.name)
    >>> report = migrate(store, echo=print)
    SPY 1d: converted, 3 bars
    >>> store.read("SPY", "1d")["Close"].tolist(), needs_migration(tmp.name)
    ([1.5, 2.5, 3.5], False)
    >>> migrate(store).summary()
    '0 datasets: 0 converted, 0 already done, 0 quarantined, 0 failed, 0 temporary files removed, ... s'
    >>> tmp.cleanup()
    """
    started = time.monotonic()
    report = MigrationReport()
    for resolution, path in list(_old_files(store.root, temporary=True)):
        if path.name.startswith("."):
            report.temp_files_removed += _remove_temp_file(store, resolution, path)
            continue
        outcome, dataset = _migrate_file(store, resolution, path)
        if outcome is not None:
            getattr(report, outcome).append(dataset)
            line = dataset.line(outcome.replace("_", " "))
            if echo is not None:
                echo(line)
            else:
                logger.log(logging.INFO if outcome in ("converted", "already_done") else logging.WARNING, "%s", line)
    report.seconds = time.monotonic() - started
    return report


def _old_files(root: Path, temporary: bool = False) -> Iterator[tuple[DataResolution, Path]]:
    """The previous layout's dataset files (and, ``temporary``, its temporary files) under ``root``."""
    for resolution in DataResolution:
        folder = root / resolution.value
        if not folder.is_dir():
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            old = entry.name.endswith(_OLD_SUFFIX) and not entry.name.startswith(".")
            stray = temporary and entry.name.startswith(".") and f"{_OLD_SUFFIX}." in entry.name
            stray = stray and entry.name.endswith(_TEMP_SUFFIX)
            if (old or stray) and entry.is_file(follow_symlinks=False):
                yield resolution, Path(entry.path)


def _migrate_file(store: DeltaStore, resolution: DataResolution, path: Path) -> tuple[str | None, MigratedDataset]:
    """Convert one old file under its dataset's lock; the report's list it belongs in (None: gone meanwhile)."""
    stem = path.name.removesuffix(_OLD_SUFFIX)
    try:
        ticker = validate_ticker(stem)
    except ValueError as exc:
        return _quarantine(store.root, resolution, path, stem, f"not a ticker: {_text(exc)}")
    try:
        with store.lock(ticker, resolution):
            try:
                frame, meta = _read_old(path, resolution)
            except FileNotFoundError:
                return None, MigratedDataset(ticker, resolution, 0)  # another process converted it
            except _Unreadable as exc:
                return _quarantine(store.root, resolution, path, ticker, str(exc))
            try:
                outcome, note = _convert(store, ticker, resolution, frame, meta)
                _move_aside(path, store.root / MIGRATED_DIR / resolution.value)
            except (StorageFullError, ServerBusyError, CacheCorruptError, OSError) as exc:
                return "failed", MigratedDataset(ticker, resolution, len(frame), f"left in place: {_text(exc)}")
            return outcome, MigratedDataset(ticker, resolution, len(frame), note)
    except ServerBusyError as exc:
        return "failed", MigratedDataset(ticker, resolution, 0, f"left in place: {_text(exc)}")


def _read_old(path: Path, resolution: DataResolution) -> tuple[pd.DataFrame, DatasetMeta]:
    """The canonical frame and bookkeeping of an old file, read whole with its page checksums verified.

    Raises
    ------
    _Unreadable
        If the file is damaged, lacks its bookkeeping or holds no canonical frame.
    """
    try:
        with open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            table = parquet.read()
        doc = json.loads(table.schema.metadata[_OLD_META_KEY])
        meta, first, last = DatasetMeta.from_json(doc)
        frame = Bars.from_table(table).to_frame().tz_convert(meta.timezone)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError, StopIteration) as exc:
        raise _Unreadable(f"unreadable: {_text(exc)}") from exc
    if list(frame.columns) != list(OHLCV_COLUMNS) or list(frame.dtypes) != _CANONICAL_DTYPES:
        raise _Unreadable(f"not a canonical frame: columns {list(frame.columns)}, dtypes {list(frame.dtypes)}")
    if frame.index.name != resolution.index_name or not frame.index.is_monotonic_increasing:
        raise _Unreadable(f"not a canonical frame: index {frame.index.name!r} must be sorted and named "
                          f"{resolution.index_name!r}")  # fmt: skip
    if not frame.index.is_unique:
        raise _Unreadable("not a canonical frame: two bars at one time")
    if (frame.index.asi8 % 1000).any():
        raise _Unreadable("bar times finer than a microsecond, which a table cannot keep")
    span = (frame.index[0], frame.index[-1]) if len(frame) else (None, None)
    if span != (first, last):
        raise _Unreadable(f"its bookkeeping says bars {first} to {last}, it holds {span[0]} to {span[1]}")
    return frame, meta


def _convert(
    store: DeltaStore, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta
) -> tuple[str, str]:
    """Put ``frame``'s bars into the dataset's table (the caller holds its lock) and verify; (outcome, note).

    Raises
    ------
    CacheCorruptError
        If the table does not read back as it must (the old file then stays in place).
    """
    try:
        info = store.info_if_readable(ticker, resolution)
        held = None if info is None else _reader(store).read(ticker, resolution)
    except CacheCorruptError:
        held = None  # a damaged table, set aside by the store: the file's bars replace it
    if held is None:
        store.write(ticker, resolution, frame, meta)
        _verify(store, ticker, resolution, frame, meta)
        return "converted", ""
    frame = frame.tz_convert(held.index.tz)
    at = held.index.get_indexer(frame.index)
    lacking = at < 0
    same = _same_rows(held.iloc[at[~lacking]], frame[~lacking])
    if not lacking.any() and same.all():
        _verify(store, ticker, resolution, held, info.meta)
        extra = len(held) - len(frame)
        return "already_done", f"the table holds {extra} more bars" if extra else ""
    merged = pd.concat([held, frame[lacking]]).sort_index(kind="stable")
    store.write(ticker, resolution, merged, info.meta)
    _verify(store, ticker, resolution, merged, info.meta)
    note = f"merged into a table of {len(held)} bars: {int(lacking.sum())} added"
    differing = int((~same).sum())
    return "converted", f"{note}, {differing} kept as the table had them" if differing else note


def _same_rows(left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
    """Row by row, whether two frames of the same length hold equal values (NaN equals NaN)."""
    same = np.ones(len(left), dtype=bool)
    for column in OHLCV_COLUMNS:
        a, b = left[column].to_numpy(), right[column].to_numpy()
        equal = a == b
        if a.dtype.kind == "f":
            equal |= np.isnan(a) & np.isnan(b)
        same &= equal
    return same


def _verify(store: DeltaStore, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta) -> None:
    """Check the table reads back from disk as ``frame`` with ``meta``, and make its newest commit durable."""
    checker = _reader(store)
    info = checker.info(ticker, resolution)
    held = checker.read(ticker, resolution)
    same = held is not None and held.index.dtype == frame.index.dtype and held.index.name == frame.index.name
    if not (same and held.equals(frame) and info.meta == meta):
        raise CacheCorruptError(f"{ticker} {resolution.value} did not read back as written", ticker=ticker)
    log = info.path / LOG_DIR
    _fsync(log / f"{info.version:020d}.json")
    _fsync(log)
    _fsync(info.path)


def _reader(store: DeltaStore) -> DeltaStore:
    """A store over ``store``'s directory that has read nothing yet: what it reads comes from the files."""
    return DeltaStore(store.root, memory_cache_bytes=0)


def _quarantine(
    root: Path, resolution: DataResolution, path: Path, ticker: str, reason: str
) -> tuple[str, MigratedDataset]:
    """Move an old file that cannot be converted to the quarantine."""
    with contextlib.suppress(FileNotFoundError):
        target = _move_aside(path, root / QUARANTINE_DIR / resolution.value)
        reason = f"{reason}; moved to {target}"
    return "quarantined", MigratedDataset(ticker, resolution, 0, reason)


def _move_aside(path: Path, folder: Path) -> Path:
    """Rename ``path`` into ``folder`` (a name taken already gets a time stamp), durably; the new path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{pd.Timestamp.now('UTC').strftime('%Y%m%dT%H%M%S%f')}{path.suffix}"
    os.replace(path, target)
    _fsync(folder)
    _fsync(path.parent)
    return target


def _remove_temp_file(store: DeltaStore, resolution: DataResolution, path: Path) -> int:
    """Delete a temporary file of the previous version, under its dataset's lock (1: deleted)."""
    try:
        ticker = validate_ticker(path.name[1:].split(f"{_OLD_SUFFIX}.", 1)[0])
    except ValueError:
        ticker = None  # no writer could have made it
    try:
        with store.lock(ticker, resolution) if ticker else contextlib.nullcontext():
            path.unlink()
    except (FileNotFoundError, ServerBusyError):
        return 0
    return 1


def _text(exc: BaseException) -> str:
    """An error's message on one line."""
    return " ".join(str(getattr(exc, "message", exc)).split()) or type(exc).__name__


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
