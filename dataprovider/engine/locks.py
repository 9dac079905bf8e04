"""One lock per dataset, held within the process and across processes sharing the data directory."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import filelock

__all__ = ["KeyLock"]


class KeyLock:
    """An in-process re-entrant lock joined to a cross-process file lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.RLock()
        self._file_lock = filelock.FileLock(path, thread_local=False)

    @contextlib.contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        """Hold both locks, waiting at most ``timeout`` seconds for each; ``filelock.Timeout`` past that."""
        if not self._thread_lock.acquire(timeout=timeout):
            raise filelock.Timeout(str(self._file_lock.lock_file))
        try:
            with self._file_lock.acquire(timeout=timeout):
                yield
        finally:
            self._thread_lock.release()

    def try_file_lock(self) -> bool:
        """Take and release the file lock if nobody holds it; True if that worked."""
        try:
            with self._file_lock.acquire(timeout=0):
                return True
        except filelock.Timeout:
            return False
