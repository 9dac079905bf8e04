"""The Parquet cache: one file per (ticker, resolution), atomic writes, locks, filtered reads.

Layout under the data directory::

    <root>/<resolution>/<TICKER>.parquet   one canonical frame per dataset
    <root>/.locks/<resolution>/<TICKER>.lock   cross-process lock files
    <root>/.quarantine/                      corrupt files set aside, never served

Each file carries the dataset's bookkeeping (:class:`~dataprovider.engine.datasets.DatasetMeta`) as JSON in the
Parquet schema metadata, so a dataset is always one self-consistent file. Writes go
to a temporary file in the same directory, are fsynced and then renamed over the
old file, so readers see either the old or the new dataset, never a torn one.
Writers of one dataset are serialised by an in-process lock plus a file lock that
also holds across processes sharing the data directory. Readers take no lock.

Recently read datasets stay in memory as Arrow tables (:mod:`dataprovider.engine.memory_cache`,
bounded, least recently used evicted first), checked against the file on every
use; a dataset too large for the budget is read window by window, with the time
filter pushed into the Parquet read.

The module is longer than most (about 470 lines): reads, atomic writes, locking
and quarantine all follow from one file layout and are kept beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataprovider.bars import Bars
from dataprovider.engine.datasets import DatasetInfo, DatasetMeta
from dataprovider.engine.locks import KeyLock
from dataprovider.engine.memory_cache import FileSignature, MemoryCache
from dataprovider.enums import DataResolution
from dataprovider.errors import CacheCorruptError, ServerBusyError, StorageFullError
from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.instruments import validate_ticker

__all__ = ["ParquetStore"]

logger = logging.getLogger(__name__)

_META_KEY = b"dataprovider"
_TEMP_SUFFIX = ".tmp"
#: Rows per Parquet row group: small enough that a time filter skips most of a
#: large file, large enough that whole-file reads stay fast.
ROW_GROUP_SIZE = 64_000
#: Default memory budget of the in-memory cache of datasets.
DEFAULT_MEMORY_CACHE_BYTES = 512 * 2**20
#: How many (ticker, resolution) spellings have their file remembered (see ParquetStore._located).
_MAX_LOCATED = 100_000


class ParquetStore:
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

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = ParquetStore(tmp.name)
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="America/New_York", name="Date")
    >>> frame = pd.DataFrame({"Open": [1.0, 2, 3, 4], "High": [2.0, 3, 4, 5], "Low": [0.5, 1, 2, 3],
    ...                       "Close": [1.5, 2.5, 3.5, 4.5], "Volume": [10, 20, 30, 40]}, index=idx)
    >>> info = store.write("SPY", DataResolution.DAY_01, frame, DatasetMeta("America/New_York", "import"))
    >>> info.rows, info.path.relative_to(store.root).as_posix()
    (4, '1d/SPY.parquet')
    >>> recent = store.read("SPY", DataResolution.DAY_01, start=pd.Timestamp("2024-01-03", tz="America/New_York"))
    >>> recent["Close"].tolist()
    [3.5, 4.5]
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
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_timeout = lock_timeout
        self.memory = cache if cache is not None else MemoryCache(memory_cache_bytes)
        self._locks: dict[tuple[str, DataResolution], KeyLock] = {}
        self._locks_guard = threading.Lock()
        self._located_files: dict[tuple[str, str], tuple[Path, tuple[str, str], DataResolution]] = {}
        self._writes_changed = threading.Condition()
        self._writes_under_way = 0
        self._closed = False

    # ----------------------------------------------------------------- paths
    def path_for(self, ticker: str, resolution: DataResolution) -> Path:
        """The file of one dataset; the ticker is validated so it cannot leave the data directory."""
        ticker = validate_ticker(ticker)
        resolution = DataResolution.parse(resolution)
        name = f"{ticker}.parquet"
        if os.sep in name or (os.altsep and os.altsep in name):  # defence in depth: the allowlist forbids it
            raise CacheCorruptError(f"refusing a path outside the data directory: {name}")
        return self.root / resolution.value / name

    def _located(self, ticker: str, resolution: DataResolution) -> tuple[Path, tuple[str, str], DataResolution]:
        """A dataset's file, its key in the memory cache and its resolution, validated once per spelling.

        Every read asks for these; :meth:`path_for` validates and builds the path
        the first time, and the answer is remembered (it depends on the arguments
        alone), so a read of a dataset in memory costs no validation or path work.
        """
        asked = (ticker, resolution)
        found = self._located_files.get(asked) if isinstance(ticker, str) and isinstance(resolution, str) else None
        if found is None:
            path = self.path_for(ticker, resolution)
            found = (path, (path.stem, path.parent.name), DataResolution.parse(resolution))
            if len(self._located_files) >= _MAX_LOCATED:
                self._located_files.clear()
            self._located_files[asked] = found
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

        Whoever holds it sees the dataset's current file: another process may have
        replaced it while this one waited, so the file is looked at afresh.

        Raises
        ------
        ServerBusyError
            If another writer holds it for longer than ``lock_timeout``.
        """
        ticker, resolution = validate_ticker(ticker), DataResolution.parse(resolution)
        try:
            with self._key_lock(ticker, resolution).hold(self.lock_timeout):
                self._look_again(self.path_for(ticker, resolution))
                yield
        except filelock.Timeout:
            raise ServerBusyError(
                f"{ticker} {resolution.value} is being written by another request; try again shortly",
                ticker=ticker,
            ) from None

    def _look_again(self, path: Path) -> None:
        """Look at a dataset's file afresh (what is cached for it stays valid if the file is unchanged)."""
        key = (path.stem, path.parent.name)
        try:
            self.memory.remember_look(key, FileSignature.of(os.stat(path)))
        except FileNotFoundError:
            self.memory.forget(key)

    # ----------------------------------------------------------------- reads
    def info(self, ticker: str, resolution: DataResolution) -> DatasetInfo | None:
        """Footer-only facts about a dataset, or None if it is not cached.

        Raises
        ------
        CacheCorruptError
            If the file is unreadable; it is moved to the quarantine first.
        """
        path, key, resolution = self._located(ticker, resolution)
        try:
            cached = self.memory.info(key, self.memory.signature(key, path))
            if cached is not None:
                return cached
            with open(path, "rb") as handle:  # read and signed from one handle: one version
                signature = FileSignature.of(os.fstat(handle.fileno()))
                self.memory.remember_look(key, signature)
                parquet_meta = pq.read_metadata(handle)
            doc = json.loads(parquet_meta.metadata[_META_KEY])
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
            raise self._quarantine(path, exc) from exc
        meta, first, last = DatasetMeta.from_json(doc)
        tz = meta.timezone
        info = DatasetInfo(
            ticker=path.stem,  # the validated ticker the path was built from
            resolution=resolution,
            path=path,
            rows=parquet_meta.num_rows,
            first=None if first is None else first.tz_convert(tz),
            last=None if last is None else last.tz_convert(tz),
            meta=meta,
        )
        self.memory.keep_info(key, signature, info)
        return info

    def info_if_readable(self, ticker: str, resolution: DataResolution) -> DatasetInfo | None:
        """:meth:`info`, with a damaged file (set aside by now) counted as not cached."""
        try:
            return self.info(ticker, resolution)
        except CacheCorruptError:
            return None

    def bars_of(self, info: DatasetInfo, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Bars:
        """:meth:`bars` of a dataset ``info`` says exists.

        Raises
        ------
        CacheCorruptError
            If its file was set aside or removed since ``info`` was read: ask again.
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

        Served from memory when the dataset is there; otherwise the file is read
        whole into memory, or, when it is too large for the memory budget, only
        the row groups that can hold the window are read. Page checksums are
        verified on every file read.

        Raises
        ------
        CacheCorruptError
            If the file is torn, fails its checksums or holds an unsorted index;
            it is moved to the quarantine first and never served.
        """
        path, key, resolution = self._located(ticker, resolution)
        try:
            cached = self.memory.bars(key, self.memory.signature(key, path))
            if cached is not None:
                return cached.between(start, end)
            # One open handle for the identity check and the read alike: a writer
            # renaming a new version into place mid-read cannot mix two versions.
            with open(path, "rb") as handle:
                signature = FileSignature.of(os.fstat(handle.fileno()))
                self.memory.remember_look(key, signature)
                source = pa.PythonFile(handle, mode="r")
                parquet = pq.ParquetFile(source, page_checksum_verification=True)
                whole = self.memory.fits(_decoded_size(parquet.metadata))
                table = self._read_table(parquet, source, resolution, None if whole else start, None if whole else end)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise self._quarantine(path, exc) from exc
        bars = Bars.from_table(table)
        if len(bars) > 1 and not (np.diff(bars.times) > 0).all():
            raise self._quarantine(path, ValueError("index not sorted and unique"))
        if not whole:
            return bars
        self.memory.keep_bars(key, signature, bars)
        return bars.between(start, end)

    @staticmethod
    def _read_table(parquet: pq.ParquetFile, source: pa.NativeFile, resolution: DataResolution, start, end) -> pa.Table:
        """The rows with ``start <= time < end`` (None: unbounded) of ``parquet``, the file open on ``source``."""
        if start is None and end is None:
            # Whole, without pyarrow.dataset: twice as fast, and that module's first import would
            # cost a fresh server's first request a few hundred milliseconds.
            return parquet.read()
        column = resolution.index_name
        filters = []
        if start is not None:
            filters.append((column, ">=", pd.Timestamp(start)))
        if end is not None:
            filters.append((column, "<", pd.Timestamp(end)))
        return pq.read_table(source, filters=filters or None, page_checksum_verification=True)

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

    def count_datasets(self) -> int:
        """How many dataset files the cache holds (no file is opened)."""
        return sum(
            1
            for resolution in DataResolution
            if (self.root / resolution.value).is_dir()
            for entry in os.scandir(self.root / resolution.value)
            if entry.name.endswith(".parquet") and not entry.name.startswith(".")
        )

    def list_datasets(self) -> list[DatasetInfo]:
        """Every cached dataset, sorted by ticker then resolution; corrupt files are skipped."""
        infos = []
        for resolution in DataResolution:
            folder = self.root / resolution.value
            if not folder.is_dir():
                continue
            for path in folder.glob("*.parquet"):
                try:
                    info = self.info(path.stem, resolution)
                except (CacheCorruptError, ValueError):
                    continue
                if info is not None:
                    infos.append(info)
        return sorted(infos, key=lambda i: (i.ticker, list(DataResolution).index(i.resolution)))

    # ---------------------------------------------------------------- writes
    def write(self, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta) -> DatasetInfo:
        """Replace a dataset atomically with ``frame`` (a canonical frame) and ``meta``.

        Raises
        ------
        StorageFullError
            If the disk is full or failing; the previous file is left untouched.
        ServerBusyError
            If the dataset's lock cannot be taken in time, or the store is closed.
        """
        ticker, resolution = validate_ticker(ticker), DataResolution.parse(resolution)
        path = self.path_for(ticker, resolution)
        frame = frame.loc[:, list(OHLCV_COLUMNS)]
        first = frame.index[0] if len(frame) else None
        last = frame.index[-1] if len(frame) else None
        table = pa.Table.from_pandas(frame, preserve_index=True)
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[_META_KEY] = meta.to_json(first, last)
        table = table.replace_schema_metadata(schema_meta)
        with self.lock(ticker, resolution), self._write_slot(ticker):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._atomic_write(path, table)
            self.memory.forget((path.stem, path.parent.name))
        logger.debug("wrote %s %s: %d rows", ticker, resolution.value, len(frame))
        return self.info(ticker, resolution)

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
        """Refuse further writes and wait for those under way, so the process can end with every file whole.

        Returns
        -------
        bool
            True once no write is under way; False if ``timeout`` seconds passed first.
        """
        with self._writes_changed:
            self._closed = True
            return self._writes_changed.wait_for(lambda: self._writes_under_way == 0, timeout)

    def _atomic_write(self, path: Path, table: pa.Table) -> None:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                pq.write_table(table, handle, row_group_size=ROW_GROUP_SIZE, write_page_checksum=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
            _fsync_directory(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise StorageFullError(
                f"could not write {path.name} ({exc.strerror or exc}); the previous data is kept. "
                "Free disk space or check the data directory's disk.",
                details={"path": str(path)},
            ) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise

    # ------------------------------------------------------------ upkeep
    def sweep_temp_files(self) -> int:
        """Delete temporary files left by writers that died; returns how many.

        A temporary file is only removed when nobody holds its dataset's lock, so
        a write in progress in another process is never disturbed.
        """
        removed = 0
        for resolution in DataResolution:
            folder = self.root / resolution.value
            if not folder.is_dir():
                continue
            for temp in folder.glob(f".*{_TEMP_SUFFIX}"):
                ticker = temp.name[1:].split(".parquet.", 1)[0]
                try:
                    free = self._key_lock(validate_ticker(ticker), resolution).try_file_lock()
                except ValueError:
                    free = True
                if free:
                    with contextlib.suppress(FileNotFoundError):
                        temp.unlink()
                        removed += 1
        if removed:
            logger.info("removed %d stray temporary file(s) from %s", removed, self.root)
        return removed

    def _quarantine(self, path: Path, reason: BaseException) -> CacheCorruptError:
        """Move a bad file aside and return the error to raise."""
        folder = self.root / ".quarantine" / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        stamp = pd.Timestamp.now("UTC").strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}.parquet"
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, target)
        self.memory.forget((path.stem, path.parent.name))
        logger.error("cache file %s is corrupt (%s); moved to %s", path, reason, target)
        return CacheCorruptError(
            f"the cached {path.parent.name} data for {path.stem} was corrupt and has been set aside; "
            "ask again without local_only to download it afresh",
            ticker=path.stem,
            details={"quarantined_as": str(target)},
        )


def _decoded_size(metadata: pq.FileMetaData) -> int:
    """The uncompressed size of a Parquet file's data, from its footer."""
    return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))


def _fsync_directory(folder: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
