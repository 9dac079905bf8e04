"""A ParquetStore whose disk fails on demand, and which counts the writes that reached the disk.

Set ``store.failure`` to an errno (``errno.ENOSPC``: disk full, ``errno.EIO``: a failing
disk) and every following write fails the way the OS makes it fail: the temporary
file is created and half of the Parquet bytes are written into it, then the next
write raises ``OSError(failure)``. Everything around that is the real store code
(the clean-up of the temporary file, the ``StorageFullError``), which is what the
tests exercise. Set ``failure`` back to None and writes succeed again.

The failure is injected by replacing ``pyarrow.parquet.write_table`` for the length
of one write, so a test must not write through another store at the same time.

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
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq

from dataprovider.engine.store import ParquetStore

__all__ = ["FaultyStore"]

_real_write_table = pq.write_table


class FaultyStore(ParquetStore):
    """A :class:`ParquetStore` with a switch that makes writes fail part-way (see the module docstring).

    Attributes
    ----------
    failure : int or None
        The errno the next writes fail with (None: they succeed).
    writes : int
        Writes that replaced a dataset file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failure: int | None = None
        self.writes = 0
        self._count_guard = threading.Lock()

    def _atomic_write(self, path: Path, table: pa.Table) -> None:
        failure = self.failure
        if failure is None:
            super()._atomic_write(path, table)
            with self._count_guard:
                self.writes += 1
            return

        def write_half_then_fail(table: pa.Table, where: Any, **kwargs: Any) -> None:
            encoded = pa.BufferOutputStream()
            _real_write_table(table, encoded, **kwargs)
            data = encoded.getvalue().to_pybytes()
            where.write(data[: len(data) // 2])
            where.flush()
            raise OSError(failure, os.strerror(failure))

        with mock.patch.object(pq, "write_table", write_half_then_fail):
            super()._atomic_write(path, table)
