"""The cache on disk: one Delta Lake table per (ticker, resolution), appends, atomic replacements, locks.

Layout under the data directory::

    <root>/<resolution>/<TICKER>/              one Delta table per dataset (Parquet files + _delta_log/)
    <root>/.locks/<resolution>/<TICKER>.lock   cross-process lock files
    <root>/.quarantine/                        damaged tables set aside, never served

Every change is one Delta commit: an append adds a file with the new bars only,
a replacement of a time range (a revision, a re-download) removes and adds files
in one commit, and readers always see a whole commit. A commit carries the
dataset's bookkeeping (:class:`~dataprovider.engine.datasets.DatasetMeta`, with
the row count and first and last bar) as JSON in its commit info, so the facts
about a dataset are read from one small log file, with no data file opened.
Older versions stay readable until vacuumed (``retention``): nothing a commit
replaced is gone at once.

Writers of one dataset are serialised by an in-process lock plus a file lock that
holds across processes sharing the data directory (Delta's put-if-absent commits
guard the log as well). Readers take no lock. When a table holds more than
``max_files`` data files, the writer compacts them and vacuums files that left the
table longer than ``retention`` ago, under the same lock.

Recently read datasets stay in memory as Arrow tables (:mod:`dataprovider.engine.memory_cache`),
keyed by the table version, so another process's commit is noticed by the next
version's log file appearing. An append by this process extends the bars in
memory rather than reading the table again.

Delta Lake stores timestamps in microseconds, in UTC; the store reads them back
in the dataset's exchange timezone (bar times finer than a microsecond are not kept).

The module is longer than most: reads, commits, locking, upkeep and quarantine all
follow from one table layout and are kept beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from dataprovider.bars import Bars
from dataprovider.engine.datasets import DatasetInfo, DatasetMeta
from dataprovider.engine.locks import KeyLock
from dataprovider.engine.memory_cache import MemoryCache
from dataprovider.engine.tables import (
    LOG_DIR,
    META_KEY,
    DataFile,
    canonical_schema,
    commit,
    commit_meta,
    data_files,
    latest_version,
    open_table,
    read_files,
    runs_to_merge,
    to_storage,
    version_at,
    write_file,
)
from dataprovider.enums import DataResolution
from dataprovider.errors import CacheCorruptError, ServerBusyError, StorageFullError
from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.instruments import validate_ticker

__all__ = ["DeltaStore"]

logger = logging.getLogger(__name__)

#: Default memory budget of the in-memory cache of datasets.
DEFAULT_MEMORY_CACHE_BYTES = 512 * 2**20
#: Small data files (fewer than CHUNK_ROWS rows) a table may hold before a write merges them.
DEFAULT_MAX_FILES = 64
#: Rows a merged data file holds at most; files this full are never rewritten by a merge.
CHUNK_ROWS = 262_144
#: How long replaced data stays readable (``as_of``) before a vacuum may delete it.
DEFAULT_RETENTION = pd.Timedelta(days=30)
#: How many (ticker, resolution) spellings have their table remembered (see DeltaStore._located).
_MAX_LOCATED = 100_000
#: How many tables stay open for writers between commits.
_MAX_OPEN_TABLES = 1_000


class DeltaStore:
    """The on-disk cache of bars.

    Parameters
    ----------
    root : path-like
        The data directory; created if missing.
    lock_timeout : float
        Seconds to wait for another writer of the same dataset before giving up
        with ``ServerBusyError``.
    memory_cache_bytes : int
        Memory budget for datasets kept in memory (0: read every time).
    cache : MemoryCache, optional
        The in-memory cache to use instead of one of ``memory_cache_bytes``.
    max_files : int
        Data files a table may hold before a write compacts it.
    retention : pandas.Timedelta
        How long data a commit replaced stays on disk (readable as of an earlier
        time) before a compaction's vacuum deletes it.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = DeltaStore(tmp.name)
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="America/New_York", name="Date")
    >>> frame = pd.DataFrame({"Open": [1.0, 2, 3, 4], "High": [2.0, 3, 4, 5], "Low": [0.5, 1, 2, 3],
    ...                       "Close": [1.5, 2.5, 3.5, 4.5], "Volume": [10, 20, 30, 40]}, index=idx)
    >>> meta = DatasetMeta("America/New_York", "import")
    >>> info = store.write("SPY", DataResolution.DAY_01, frame, meta)
    >>> info.rows, info.path.relative_to(store.root).as_posix()
    (4, '1d/SPY')
    >>> newer = pd.DataFrame({"Open": [5.0], "High": [6.0], "Low": [4.0], "Close": [5.5], "Volume": [50]},
    ...                      index=pd.DatetimeIndex(["2024-01-05"], tz="America/New_York", name="Date"))
    >>> store.append("SPY", DataResolution.DAY_01, newer, meta).rows
    5
    >>> recent = store.read("SPY", DataResolution.DAY_01, start=pd.Timestamp("2024-01-04", tz="America/New_York"))
    >>> recent["Close"].tolist()
    [4.5, 5.5]
    >>> store.info("QQQ", DataResolution.DAY_01) is None
    True
    >>> store.close()
    True
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        lock_timeout: float = 60.0,
        memory_cache_bytes: int = DEFAULT_MEMORY_CACHE_BYTES,
        cache: MemoryCache | None = None,
        max_files: int = DEFAULT_MAX_FILES,
        retention: pd.Timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_timeout = lock_timeout
        self.memory = cache if cache is not None else MemoryCache(memory_cache_bytes)
        self.max_files = max_files
        self.retention = pd.Timedelta(retention)
        self._locks: dict[tuple[str, DataResolution], KeyLock] = {}
        self._locks_guard = threading.Lock()
        self._handles: dict[Path, DeltaTable] = {}  # tables open for writers, used under their dataset's lock
        self._located_tables: dict[tuple[str, str], tuple[Path, tuple[str, str], DataResolution]] = {}
        self._writes_changed = threading.Condition()
        self._writes_under_way = 0
        self._closed = False

    # ----------------------------------------------------------------- paths
    def path_for(self, ticker: str, resolution: DataResolution) -> Path:
        """The table directory of one dataset; the ticker is validated so it cannot leave the data directory."""
        ticker = validate_ticker(ticker)
        resolution = DataResolution.parse(resolution)
        name = table_name(ticker)
        if os.sep in name or (os.altsep and os.altsep in name) or name.startswith("."):
            raise CacheCorruptError(f"refusing a path outside the data directory: {name}")  # defence in depth
        return self.root / resolution.value / name

    def _located(self, ticker: str, resolution: DataResolution) -> tuple[Path, tuple[str, str], DataResolution]:
        """A dataset's table, its key in the memory cache and its resolution, validated once per spelling.

        Every read asks for these; :meth:`path_for` validates and builds the path
        the first time, and the answer is remembered (it depends on the arguments
        alone), so a read of a dataset in memory costs no validation or path work.
        """
        asked = (ticker, resolution)
        found = self._located_tables.get(asked) if isinstance(ticker, str) and isinstance(resolution, str) else None
        if found is None:
            path = self.path_for(ticker, resolution)
            found = (path, (path.name, path.parent.name), DataResolution.parse(resolution))
            if len(self._located_tables) >= _MAX_LOCATED:
                self._located_tables.clear()
            self._located_tables[asked] = found
        return found

    def _key_lock(self, ticker: str, resolution: DataResolution) -> KeyLock:
        key = (ticker, resolution)
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = KeyLock(self.root / ".locks" / resolution.value / f"{ticker}.lock")
                self._locks[key] = lock
            return lock

    @contextlib.contextmanager
    def lock(self, ticker: str, resolution: DataResolution) -> Iterator[None]:
        """Hold the write lock of one dataset (re-entrant in a thread, exclusive across processes).

        Whoever holds it sees the dataset's newest version: another process may
        have committed while this one waited, so the log is looked at afresh.

        Raises
        ------
        ServerBusyError
            If another writer holds it for longer than ``lock_timeout``.
        """
        ticker, resolution = validate_ticker(ticker), DataResolution.parse(resolution)
        try:
            with self._key_lock(ticker, resolution).hold(self.lock_timeout):
                path = self.path_for(ticker, resolution)
                key = (path.name, path.parent.name)
                self.memory.remember_look(key, latest_version(path, self.memory.last_seen(key)))
                yield
        except filelock.Timeout:
            raise ServerBusyError(
                f"{ticker} {resolution.value} is being written by another request; try again shortly",
                ticker=ticker,
            ) from None

    def _version(self, key: tuple[str, str], path: Path) -> int | None:
        """The table's newest version (None: no table), from a recent look when there is one."""
        return self.memory.signature(key, lambda: latest_version(path, self.memory.last_seen(key)))

    # ----------------------------------------------------------------- reads
    def info(self, ticker: str, resolution: DataResolution) -> DatasetInfo | None:
        """The facts about a dataset, from its newest commit's info alone, or None if it is not cached.

        Raises
        ------
        CacheCorruptError
            If the table's log is unreadable; the table is moved to the quarantine first.
        """
        path, key, resolution = self._located(ticker, resolution)
        version = self._version(key, path)
        if version is None:
            return None
        cached = self.memory.info(key, version)
        if cached is not None:
            return cached
        try:
            doc = commit_meta(path, version)
        except FileNotFoundError:
            self.memory.forget(key)  # removed since the look: ask the disk again
            return None if latest_version(path) is None else self.info(ticker, resolution)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise self._quarantine(path, exc) from exc
        meta, first, last = DatasetMeta.from_json(doc)
        tz = meta.timezone
        info = DatasetInfo(
            ticker=ticker_of(path.name),  # the validated ticker the path was built from
            resolution=resolution,
            path=path,
            rows=int(doc["rows"]),
            first=None if first is None else first.tz_convert(tz),
            last=None if last is None else last.tz_convert(tz),
            meta=meta,
            version=version,
            files=None if "files" not in doc else tuple(DataFile(*row) for row in doc["files"]),
        )
        self.memory.keep_info(key, version, info)
        return info

    def info_if_readable(self, ticker: str, resolution: DataResolution) -> DatasetInfo | None:
        """:meth:`info`, with a damaged table (set aside by now) counted as not cached."""
        try:
            return self.info(ticker, resolution)
        except CacheCorruptError:
            return None

    def bars_of(self, info: DatasetInfo, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Bars:
        """:meth:`bars` of a dataset ``info`` says exists.

        Raises
        ------
        CacheCorruptError
            If its table was set aside or removed since ``info`` was read: ask again.
        """
        bars = self.bars(info.ticker, info.resolution, start, end)
        if bars is None:
            raise CacheCorruptError(f"{info.ticker} {info.resolution.value} vanished while being read; ask again")
        return bars

    def bars(
        self,
        ticker: str,
        resolution: DataResolution,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> Bars | None:
        """The cached bars with ``start <= time < end`` (None: unbounded), or None if not cached.

        Served from memory when the dataset is there; otherwise the newest
        version's data files are read whole (page checksums verified where the
        files carry them) and kept in memory if they fit its budget.

        Raises
        ------
        CacheCorruptError
            If a data file or the log is damaged or the bars are not sorted and
            unique; the table is moved to the quarantine first and never served.
        """
        path, key, resolution = self._located(ticker, resolution)
        version = self._version(key, path)
        if version is None:
            return None
        cached = self.memory.bars(key, version)
        if cached is not None:
            return cached.between(start, end)
        info = self.info(ticker, resolution)
        if info is None:
            return None
        bars = self._read_version(info, version)
        if self.memory.fits(bars.table.nbytes):
            self.memory.keep_bars(key, version, bars)
        return bars.between(start, end)

    def bars_as_of(self, info: DatasetInfo, when: pd.Timestamp) -> Bars | None:
        """The bars as the table held them at ``when`` (None: the table did not exist yet).

        Raises
        ------
        CacheCorruptError
            If ``when`` is older than what the table's retained history can show.
        """
        version = version_at(info.path, pd.Timestamp(when))
        if version is None:
            return None
        return self._read_version(info, version)

    def _read_version(self, info: DatasetInfo, version: int) -> Bars:
        """Every bar of one version of a table, in the dataset's timezone."""
        schema = canonical_schema(info.resolution, info.meta.timezone)
        try:
            whole = read_files(info.path, self._files(info, version), schema)
        except (OSError, DeltaError, pa.ArrowException, ValueError, KeyError) as exc:
            raise self._quarantine(info.path, exc) from exc
        bars = Bars.from_table(whole)
        if len(bars) > 1 and not (np.diff(bars.times) > 0).all():
            # Files another tool rewrote may hold rows in any order; a repeated time is damage.
            bars = Bars.from_table(whole.sort_by(info.resolution.index_name))
            if not (np.diff(bars.times) > 0).all():
                raise self._quarantine(info.path, ValueError("two bars at one time"))
        return bars

    def read(
        self,
        ticker: str,
        resolution: DataResolution,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame | None:
        """:meth:`bars` as a canonical DataFrame (None if not cached)."""
        bars = self.bars(ticker, resolution, start, end)
        return None if bars is None else bars.to_frame()

    def _table_dirs(self) -> Iterator[tuple[DataResolution, Path]]:
        for resolution in DataResolution:
            folder = self.root / resolution.value
            if folder.is_dir():
                for entry in os.scandir(folder):
                    if entry.is_dir() and not entry.name.startswith(".") and os.path.isdir(Path(entry) / LOG_DIR):
                        yield resolution, Path(entry)

    def count_datasets(self) -> int:
        """How many dataset tables the cache holds (no data file is opened)."""
        return sum(1 for _ in self._table_dirs())

    def list_datasets(self) -> list[DatasetInfo]:
        """Every cached dataset, sorted by ticker then resolution; damaged tables are skipped."""
        infos = []
        for resolution, path in self._table_dirs():
            try:
                info = self.info(ticker_of(path.name), resolution)
            except (CacheCorruptError, ValueError):
                continue
            if info is not None:
                infos.append(info)
        return sorted(infos, key=lambda i: (i.ticker, list(DataResolution).index(i.resolution)))

    # ---------------------------------------------------------------- writes
    def write(self, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta) -> DatasetInfo:
        """Replace a dataset with ``frame`` (a canonical frame) and ``meta``, in one commit.

        The replaced bars stay readable as of an earlier time until vacuumed.

        Raises
        ------
        StorageFullError
            If the disk is full or failing; the previous version is left untouched.
        ServerBusyError
            If the dataset's lock cannot be taken in time, or the store is closed.
        """
        return self._commit(ticker, resolution, frame, meta, replace_from=None, whole=True, older=False)

    def append(self, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta) -> DatasetInfo:
        """Add ``frame``'s bars, all newer than the dataset's last one, with ``meta``: one commit of the new rows.

        An empty ``frame`` commits ``meta`` alone.

        Raises
        ------
        ValueError
            If a bar of ``frame`` is not newer than the last cached bar.
        StorageFullError, ServerBusyError
            As :meth:`write`.
        """
        return self._commit(ticker, resolution, frame, meta, replace_from=None, whole=False, older=False)

    def prepend(self, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta) -> DatasetInfo:
        """Add ``frame``'s bars, all older than the dataset's first one (history further back), with ``meta``.

        Raises
        ------
        ValueError
            If a bar of ``frame`` is not older than the first cached bar.
        StorageFullError, ServerBusyError
            As :meth:`write`.
        """
        return self._commit(ticker, resolution, frame, meta, replace_from=None, whole=False, older=True)

    def replace_from(
        self, ticker: str, resolution: DataResolution, start: pd.Timestamp, frame: pd.DataFrame, meta: DatasetMeta
    ) -> DatasetInfo:
        """Replace the bars at and after ``start`` with ``frame`` (whose bars all start there or later): one commit.

        Raises
        ------
        ValueError
            If a bar of ``frame`` is older than ``start``.
        StorageFullError, ServerBusyError
            As :meth:`write`.
        """
        return self._commit(ticker, resolution, frame, meta, replace_from=pd.Timestamp(start), whole=False, older=False)

    def _commit(
        self,
        ticker: str,
        resolution: DataResolution,
        frame: pd.DataFrame,
        meta: DatasetMeta,
        *,
        replace_from: pd.Timestamp | None,
        whole: bool,
        older: bool,
    ) -> DatasetInfo:
        ticker, resolution = validate_ticker(ticker), DataResolution.parse(resolution)
        path = self.path_for(ticker, resolution)
        key = (path.name, path.parent.name)
        frame = frame.loc[:, list(OHLCV_COLUMNS)]
        with self.lock(ticker, resolution), self._write_slot(ticker):
            before = self.info_if_readable(ticker, resolution)
            if before is None or whole:
                removes, rows, kept = [], to_storage(frame), []
            elif replace_from is None:
                removes, rows, kept = [], self._added(before, frame, older), [before.first, before.last]
            else:
                removes, rows, kept = self._replaced(before, frame, replace_from)
            kept_rows = 0 if before is None or whole else before.rows - sum(f.rows for f in removes)
            kept_files = [] if before is None or whole else [f for f in self._files(before) if f not in removes]
            first, last = _span(kept, rows)
            doc = {**json.loads(meta.to_json(first, last)), "rows": kept_rows + rows.num_rows}
            self._write_commit(path, rows, kept_files, removes, replace_all=before is None or whole, doc=doc)
            version = self._handles[path].version()
            self._remember_commit(key, None if whole else before, version, frame, replace_from, older)
            info = self.info(ticker, resolution)
            self._upkeep(path, info)
        logger.debug("committed %s %s v%s: %d rows", ticker, resolution.value, version, rows.num_rows)
        return info

    @staticmethod
    def _added(before: DatasetInfo, frame: pd.DataFrame, older: bool) -> pa.Table:
        """The rows an append (or, ``older``, a prepend) adds, checked to lie past the cached bars."""
        if len(frame) and before.rows and older and frame.index[-1] >= before.first:
            raise ValueError(f"prepended bars must be older than {before.first}; got {frame.index[-1]}")
        if len(frame) and before.rows and not older and frame.index[0] <= before.last:
            raise ValueError(f"appended bars must be newer than {before.last}; got {frame.index[0]}")
        return to_storage(frame)

    def _replaced(
        self, before: DatasetInfo, frame: pd.DataFrame, start: pd.Timestamp
    ) -> tuple[list[DataFile], pa.Table, list[pd.Timestamp]]:
        """What a replacement from ``start`` does: the files it removes, the rows it writes (theirs before
        ``start``, then ``frame``) and the first and last bar of the files it leaves alone."""
        if len(frame) and frame.index[0] < start:
            raise ValueError(f"replacing bars from {start}, got an older one at {frame.index[0]}")
        start_ns = pd.Timestamp(start).as_unit("ns").value
        try:
            files = self._files(before)
            removes = [f for f in files if f.last >= start_ns]
            untouched = [pd.Timestamp(t, tz="UTC") for f in files if f.last < start_ns for t in (f.first, f.last)]
            touched = read_files(before.path, removes, canonical_schema(before.resolution, before.meta.timezone))
        except (OSError, DeltaError, pa.ArrowException, ValueError, KeyError) as exc:
            raise self._quarantine(before.path, exc) from exc
        kept = Bars.from_table(touched).between(None, start).to_frame()
        return removes, to_storage(pd.concat([kept, frame]) if len(kept) else frame), untouched

    def _write_commit(
        self, path: Path, rows: pa.Table, kept: list[DataFile], removes: list[DataFile], *, replace_all: bool, doc: dict
    ) -> None:
        """Write ``rows`` as a data file and commit it with ``removes`` out, in one Delta commit.

        ``doc`` (the bookkeeping) gets the new version's file list: ``kept`` and the new file.

        Raises
        ------
        StorageFullError
            If the disk refuses the data file or the commit; the table keeps its previous version.
        """
        table = self._writer_table(path, latest_version(path, self.memory.last_seen((path.name, path.parent.name))))
        try:
            adds = [self._write_data_file(path, rows)] if rows.num_rows else []
            doc["files"] = [f.row() for f in kept] + [DataFile.written(a, rows).row() for a in adds]
            custom = {META_KEY: json.dumps(doc)}
            self._handles[path] = commit(table, path, rows.schema, adds, removes, replace_all=replace_all, custom=custom)
        except (OSError, DeltaError) as exc:
            if isinstance(exc, DeltaError) and not _is_io_error(exc):
                raise
            raise StorageFullError(
                f"could not write {path.parent.name}/{path.name} ({_short(exc)}); the previous data is kept. "
                "Free disk space or check the data directory's disk.",
                details={"path": str(path)},
            ) from exc

    def _files(self, info: DatasetInfo, version: int | None = None) -> list[DataFile]:
        """The data files of a version (default: ``info``'s), from its commit's list or else from the table."""
        if version is None or version == info.version:
            if info.files is not None:
                return list(info.files)
            version = info.version
        return data_files(open_table(info.path, version))

    def _writer_table(self, path: Path, version: int | None) -> DeltaTable | None:
        """The table open at ``version`` for a writer holding its lock (None: no table yet), kept open between commits."""
        if version is None:
            self._handles.pop(path, None)
            return None
        table = open_table(path, version, self._handles.get(path))
        if len(self._handles) >= _MAX_OPEN_TABLES:
            self._handles.clear()
        self._handles[path] = table
        return table

    @staticmethod
    def _write_data_file(path: Path, rows: pa.Table):
        """Write one data file of the table at ``path`` (not yet part of any version)."""
        return write_file(path, rows)

    def _remember_commit(
        self,
        key: tuple[str, str],
        before: DatasetInfo | None,
        version: int | None,
        frame: pd.DataFrame,
        replace_from: pd.Timestamp | None,
        older: bool,
    ) -> None:
        """Keep the memory cache in step with a commit just made: extend cached bars rather than read again."""
        cached = None if before is None or before.version is None else self.memory.bars(key, before.version)
        self.memory.forget(key)
        if version is None:
            return
        self.memory.remember_look(key, version)
        if cached is None:
            return
        head = cached if replace_from is None else cached.between(None, replace_from)
        if len(frame):
            head = Bars.from_frame(frame).extended(head) if older else head.extended(Bars.from_frame(frame))
        if self.memory.fits(head.table.nbytes):
            self.memory.keep_bars(key, version, head)

    def _upkeep(self, path: Path, info: DatasetInfo) -> None:
        """Merge runs of small data files once there are more than ``max_files``, then vacuum old files.

        The merge is a commit of its own that changes no bar (``dataChange`` false)
        and carries the same bookkeeping; vacuuming deletes files that left the
        table more than ``retention`` ago, and files no commit names (a write cut short).
        """
        files = self._files(info)
        if sum(f.rows < CHUNK_ROWS for f in files) <= self.max_files:
            return
        table = self._handles[path]
        schema = canonical_schema(info.resolution, info.meta.timezone)
        doc = commit_meta(path, info.version)
        for run in runs_to_merge(files, CHUNK_ROWS):
            merged = to_storage(Bars.from_table(read_files(path, run, schema)).to_frame())
            added = write_file(path, merged)
            files = sorted([f for f in files if f not in run] + [DataFile.written(added, merged)], key=lambda f: f.first)
            custom = {META_KEY: json.dumps({**doc, "files": [f.row() for f in files]})}
            table = commit(table, path, merged.schema, [added], run, replace_all=False, custom=custom, data_change=False)
        table.vacuum(retention_hours=int(self.retention / pd.Timedelta(hours=1)), dry_run=False, enforce_retention_duration=False)
        table.create_checkpoint()
        self._handles[path] = table
        key = (path.name, path.parent.name)
        cached = self.memory.bars(key, info.version)
        version = latest_version(path, table.version())  # vacuums commit too
        self.memory.forget(key)
        self.memory.remember_look(key, version)
        if cached is not None:  # the same bars, in fewer files
            self.memory.keep_bars(key, version, cached)
        logger.info("merged the small files of %s/%s", path.parent.name, path.name)

    @contextlib.contextmanager
    def _write_slot(self, ticker: str) -> Iterator[None]:
        """Count a write under way (see :meth:`close`); refused once the store is closed."""
        with self._writes_changed:
            if self._closed:
                raise ServerBusyError("the server is shutting down; ask again once it is back", ticker=ticker)
            self._writes_under_way += 1
        try:
            yield
        finally:
            with self._writes_changed:
                self._writes_under_way -= 1
                self._writes_changed.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Refuse further writes and wait for those under way, so the process can end with every commit whole.

        Returns
        -------
        bool
            True once no write is under way; False if ``timeout`` seconds passed first.
        """
        with self._writes_changed:
            self._closed = True
            return self._writes_changed.wait_for(lambda: self._writes_under_way == 0, timeout)

    # ------------------------------------------------------------ upkeep
    def _quarantine(self, path: Path, reason: BaseException) -> CacheCorruptError:
        """Move a damaged table aside and return the error to raise."""
        folder = self.root / ".quarantine" / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        stamp = pd.Timestamp.now("UTC").strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.name}.{stamp}"
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, target)
        self.memory.forget((path.name, path.parent.name))
        logger.error("cache table %s is damaged (%s); moved to %s", path, reason, target)
        ticker = ticker_of(path.name)
        return CacheCorruptError(
            f"the cached {path.parent.name} data for {ticker} was damaged and has been set aside; "
            "ask again with local_only=False to download it afresh",
            ticker=ticker,
            details={"quarantined_as": str(target)},
        )


def table_name(ticker: str) -> str:
    """The directory name of a validated ticker's tables: an index's leading '^' becomes '_'.

    Delta Lake's paths are URLs, where '^' is not allowed; no ticker holds '_',
    so the name maps back to one ticker (:func:`ticker_of`).
    """
    return "_" + ticker[1:] if ticker.startswith("^") else ticker


def ticker_of(name: str) -> str:
    """The ticker whose tables are in the directory ``name`` (the inverse of :func:`table_name`)."""
    return "^" + name[1:] if name.startswith("_") else name


def _span(kept: list[pd.Timestamp | None], rows: pa.Table) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last bar (UTC) after a commit writing ``rows`` beside bars spanning ``kept``."""
    times = [t.tz_convert("UTC") for t in kept if t is not None]
    if rows.num_rows:
        column = rows.column(rows.num_columns - 1)
        times += [pd.Timestamp(column[0].value, unit="us", tz="UTC"), pd.Timestamp(column[-1].value, unit="us", tz="UTC")]
    return (min(times), max(times)) if times else (None, None)


def _is_io_error(exc: DeltaError) -> bool:
    """Whether a Delta error reports the operating system refusing a write (disk full, failing, read-only)."""
    text = str(exc)
    return "Os {" in text or "os error" in text or "No space" in text or "Generic LocalFileSystem" in text


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."

