"""A DeltaStore whose disk fails on demand, and which counts the commits that reached the disk.

Set ``store.failure`` to an errno (``errno.ENOSPC``: disk full, ``errno.EIO``: a failing
disk) and every following commit fails the way the OS makes it fail: half of a data
file is written into the table's directory, then the write raises ``OSError(failure)``
before any commit names the file. Everything around that is the real store code (the
``StorageFullError``, the previous version left as it was), which is what the tests
exercise. Set ``failure`` back to None and commits succeed again.

Examples
--------
>>> import errno, tempfile
>>> from dataprovider.engine.datasets import DatasetMeta
>>> from dataprovider.enums import DataResolution
>>> from dataprovider.sources.sample import load_sample, sample_entries
>>> spy = next(e for e in sample_entries() if e.ticker == "SPY" and e.resolution is DataResolution.DAY_01)
>>> frame = load_sample(spy).tail(5)
>>> store = FaultyStore(tempfile.mkdtemp())
>>> store.failure = errno.ENOSPC
>>> store.write("SPY", DataResolution.DAY_01, frame, DatasetMeta("America/New_York", "test"))
Traceback (most recent call last):
dataprovider.errors.StorageFullError: STORAGE_FULL: ...
>>> store.failure = None
>>> store.write("SPY", DataResolution.DAY_01, frame, DatasetMeta("America/New_York", "test")).rows
5
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataprovider.engine.store import DeltaStore

__all__ = ["FaultyStore"]


class FaultyStore(DeltaStore):
    """A :class:`DeltaStore` with a switch that makes commits fail part-way (see the module docstring).

    Attributes
    ----------
    failure : int or None
        The errno the next commits fail with (None: they succeed).
    writes : int
        Commits that changed a dataset.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failure: int | None = None
        self.writes = 0
        self._count_guard = threading.Lock()

    def _write_data_file(self, path: Path, rows: pa.Table) -> Any:
        failure = self.failure
        if failure is None:
            added = super()._write_data_file(path, rows)
            with self._count_guard:
                self.writes += 1
            return added
        encoded = pa.BufferOutputStream()
        pq.write_table(rows, encoded)
        data = encoded.getvalue().to_pybytes()
        path.mkdir(parents=True, exist_ok=True)
        (path / f"part-{uuid.uuid4()}.parquet").write_bytes(data[: len(data) // 2])
        raise OSError(failure, os.strerror(failure))
