"""Delta Lake tables of bars at the file level: data files written with checksums, commits, the log.

The store (:mod:`dataprovider.engine.store`) decides what a change of a dataset
is; this module carries it out on one table directory. Data files are written by
pyarrow with page checksums (so a damaged page is detected when read) and
statistics, then named in one Delta commit with deltalake, which adds them and
removes the files they replace, atomically. Each file holds a sorted run of bars
and the files of one version hold disjoint time ranges, so a version reads back
in order by concatenating its files by first bar.

Delta Lake stores timestamps in microseconds, in UTC: the time column is stored
as ``timestamp[us, UTC]`` (bar times finer than a microsecond are not kept).
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from dataprovider.enums import DataResolution
from dataprovider.frames import OHLCV_COLUMNS, empty_frame

__all__ = [
    "LOG_DIR",
    "META_KEY",
    "DataFile",
    "canonical_schema",
    "commit",
    "commit_meta",
    "data_files",
    "latest_version",
    "open_table",
    "read_files",
    "runs_to_merge",
    "to_storage",
    "version_at",
    "write_file",
]

#: The key of the dataset's bookkeeping in each commit's info.
META_KEY = "dataprovider"
LOG_DIR = "_delta_log"
#: Rows per Parquet row group inside a data file.
ROW_GROUP_SIZE = 64_000
#: Settings of every table the cache creates. A checkpoint every 10 commits (Delta's default is
#: 100): a commit costs deltalake a replay of the log since the last checkpoint, 15 ms at 100
#: commits against 6 ms at 10, measured on one-bar appends.
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10"}
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
_STORED_TIME = pa.timestamp("us", "UTC")


@dataclass(frozen=True)
class DataFile:
    """One data file of a table version: its path in the table, size, rows and time span (UTC ns)."""

    path: str
    size: int
    rows: int
    first: int
    last: int

    def row(self) -> list:
        """The file as a JSON row (see :func:`commit_meta`)."""
        return [self.path, self.size, self.rows, self.first, self.last]

    @classmethod
    def written(cls, added: AddAction, rows: pa.Table) -> DataFile:
        """The file an action of :func:`write_file` names, holding ``rows``."""
        times = rows.column(rows.num_columns - 1)
        first, last = (times[i].value * 1000 for i in (0, -1))
        return cls(added.path, added.size, rows.num_rows, first, last)


@functools.lru_cache(maxsize=256)
def canonical_schema(resolution: DataResolution, timezone: str) -> pa.Schema:
    """The Arrow schema of a canonical frame of ``resolution`` in ``timezone`` (as :class:`~dataprovider.bars.Bars` holds it)."""
    return pa.Table.from_pandas(empty_frame(resolution, timezone), preserve_index=True).schema


def to_storage(frame: pd.DataFrame) -> pa.Table:
    """A canonical frame as the rows a table stores: OHLCV, then the time column in UTC microseconds."""
    table = pa.Table.from_pandas(frame.loc[:, list(OHLCV_COLUMNS)], preserve_index=True)
    index = table.schema.names[-1]
    times = table.column(index).cast(_STORED_TIME, safe=False)
    return table.set_column(len(OHLCV_COLUMNS), pa.field(index, _STORED_TIME), times).replace_schema_metadata(None)


def write_file(table_dir: Path, rows: pa.Table) -> AddAction:
    """Write ``rows`` (stored form, sorted) as a new data file of ``table_dir``, durably; the action naming it."""
    table_dir.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4()}.parquet"
    with open(table_dir / name, "wb") as handle:
        pq.write_table(rows, handle, row_group_size=ROW_GROUP_SIZE, write_page_checksum=True, compression="snappy")
        handle.flush()
        os.fsync(handle.fileno())
    return AddAction(
        path=name,
        size=os.path.getsize(table_dir / name),
        partition_values={},
        modification_time=int(time.time() * 1000),
        data_change=True,
        stats=json.dumps(_stats(rows)),
    )


def open_table(table_dir: Path, version: int | None = None, handle: DeltaTable | None = None) -> DeltaTable:
    """The table at ``version`` (default: the newest), reusing ``handle`` (an open copy of it) when given.

    Moving an open handle to another version reads only the commits between
    (about a millisecond); opening the table afresh costs several.
    """
    if handle is None:
        return DeltaTable(str(table_dir)) if version is None else DeltaTable(str(table_dir), version=version)
    if version is None or version > handle.version():
        handle.update_incremental()
    if version is not None and handle.version() != version:
        handle.load_as_version(version)
    return handle


def commit(
    table: DeltaTable | None,
    table_dir: Path,
    schema: pa.Schema,
    adds: list[AddAction],
    removes: list[DataFile],
    *,
    replace_all: bool,
    custom: dict,
    data_change: bool = True,
) -> DeltaTable:
    """One commit: ``adds`` in, ``removes`` out (or every file out, with ``replace_all``), ``custom`` in its info.

    ``table`` is the table open at the version the commit follows (None: create
    it); returns it open at the new version.
    """
    properties = CommitProperties(custom_metadata=custom)
    if table is None:
        create_table_with_add_actions(
            str(table_dir),
            Schema.from_arrow(schema),
            adds,
            mode="error",
            configuration=TABLE_CONFIGURATION,
            commit_properties=properties,
        )
        return DeltaTable(str(table_dir))
    now = int(time.time() * 1000)
    gone = [RemoveAction(f.path, data_change, now, f.size, {}) for f in removes]
    if not data_change:
        adds = [AddAction(a.path, a.size, a.partition_values, a.modification_time, False, a.stats) for a in adds]
    table.create_write_transaction(
        [*gone, *adds], "overwrite" if replace_all else "append", schema, commit_properties=properties
    )
    table.update_incremental()
    return table


def data_files(table: DeltaTable) -> list[DataFile]:
    """The data files of the version ``table`` is open at, ordered by first bar."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return []
    index = next(f.name for f in actions.schema if f.name.startswith("min.") and pa.types.is_timestamp(f.type))
    index = index.removeprefix("min.")
    files = [
        DataFile(path, size, rows, _ns(first), _ns(last))
        for path, size, rows, first, last in zip(
            actions.column("path").to_pylist(),
            actions.column("size_bytes").to_pylist(),
            actions.column("num_records").to_pylist(),
            actions.column(f"min.{index}").to_pylist(),
            actions.column(f"max.{index}").to_pylist(),
            strict=True,
        )
    ]
    return sorted(files, key=lambda f: f.first)


def read_files(table_dir: Path, files: list[DataFile], schema: pa.Schema) -> pa.Table:
    """The rows of ``files`` in order, as ``schema`` (the canonical one); page checksums verified."""
    parts = [pq.ParquetFile(table_dir / f.path, page_checksum_verification=True).read() for f in files]
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).select(schema.names).cast(schema)


def runs_to_merge(files: list[DataFile], chunk_rows: int) -> list[list[DataFile]]:
    """Runs of neighbouring files that together hold fewer than ``chunk_rows`` rows (two files or more each).

    Merging each run into one file keeps the files' time ranges disjoint and
    never rewrites a file already holding a full chunk.

    Examples
    --------
    >>> files = [DataFile(str(i), 0, rows, i, i) for i, rows in enumerate([100, 5, 5, 100, 5])]
    >>> [[f.path for f in run] for run in runs_to_merge(files, 50)]
    [['1', '2']]
    """
    runs, run, total = [], [], 0
    for file in [*files, None]:
        if file is not None and file.rows < chunk_rows and total + file.rows <= chunk_rows:
            run.append(file)
            total += file.rows
            continue
        if len(run) > 1:
            runs.append(run)
        run, total = ([file], file.rows) if file is not None and file.rows < chunk_rows else ([], 0)
    return runs


def latest_version(table_dir: Path, known: int | None = None) -> int | None:
    """The newest committed version of the table at ``table_dir`` (None: no table).

    From ``known`` (a version seen before) the next commit files are probed one
    by one, which costs one ``stat`` when nothing changed; otherwise the log is listed.
    """
    log = table_dir / LOG_DIR
    if known is not None and (log / f"{known:020d}.json").exists():
        version = known
        while (log / f"{version + 1:020d}.json").exists():
            version += 1
        return version
    try:
        names = os.listdir(log)
    except FileNotFoundError:
        return None
    return max((int(m.group(1)) for m in map(_COMMIT_FILE.match, names) if m), default=None)


def commit_meta(table_dir: Path, version: int) -> dict:
    """The dataset's bookkeeping from the newest commit at or before ``version`` that carries it.

    Every commit the store makes carries it, with the list of the version's data
    files (``"files"``, rows of :meth:`DataFile.row`); older commits are looked at
    only after a commit made by another tool, and the list is then left out if that
    tool added or removed files.

    Raises
    ------
    FileNotFoundError
        If the commit file of ``version`` is gone.
    KeyError
        If no retained commit carries it.
    """
    log = table_dir / LOG_DIR
    files_changed = False
    for candidate in range(version, -1, -1):
        try:
            text = (log / f"{candidate:020d}.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            if candidate == version:
                raise
            break  # older commits were cleaned up
        info = _commit_info(text)
        if META_KEY in info:
            doc = json.loads(info[META_KEY])
            if files_changed:  # another tool added or removed files since: its list is out of date
                doc.pop("files", None)
            return doc
        files_changed = files_changed or '{"add"' in text or '{"remove"' in text
    raise KeyError(f"no dataprovider commit in {table_dir}")


def version_at(table_dir: Path, when: pd.Timestamp) -> int | None:
    """The newest version committed at or before ``when`` (None: none was, or its commit is no longer kept)."""
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    millis = when.value // 1_000_000
    best = None
    for name in sorted(os.listdir(table_dir / LOG_DIR)):
        match = _COMMIT_FILE.match(name)
        if match is None:
            continue
        stamp = _commit_info((table_dir / LOG_DIR / name).read_text(encoding="utf-8")).get("timestamp")
        if stamp is not None and stamp <= millis:
            best = int(match.group(1))
    return best


def _commit_info(text: str) -> dict:
    for line in text.splitlines():
        if '"commitInfo"' in line:
            return json.loads(line)["commitInfo"]
    return {}


def _stats(rows: pa.Table) -> dict:
    """Delta file statistics: row count, and per column the minimum, maximum and null count."""
    mins, maxs, nulls = {}, {}, {}
    for name in rows.column_names:
        column = rows.column(name)
        nulls[name] = column.null_count
        if len(column):
            low, high = pc.min_max(column).values()
            mins[name], maxs[name] = _stat_value(low), _stat_value(high)
    return {"numRecords": rows.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def _stat_value(scalar: pa.Scalar):
    if pa.types.is_timestamp(scalar.type):
        return pd.Timestamp(scalar.value, unit="us", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return scalar.as_py()


def _ns(value) -> int:
    """A file statistic's time as UTC nanoseconds (deltalake gives it naive, in UTC, or tz-aware)."""
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).as_unit("ns").value
