"""A bounded in-memory cache of recently read datasets, kept in step with their files.

Entries are keyed by dataset and checked against the file's identity (inode,
size, modification time), so a new version is never shadowed by an old copy:
a version written by this process replaces its entry at once, and one written
by another process sharing the data directory is noticed within
``recheck_seconds`` (the file is not looked at on every use: in a busy server
each system call can wait for the GIL). Bars are evicted least recently used first once their total size
passes the budget; dataset facts (footers) are small and kept for a bounded
number of datasets.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dataprovider.bars import Bars

__all__ = ["FileSignature", "MemoryCache"]

V = TypeVar("V")


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of a file."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileSignature:
        """The signature of a ``stat``/``fstat`` result."""
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)


class _Lru(Generic[V]):
    """An LRU map of key -> (signature, value, size), bounded by total size."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[Any, tuple[FileSignature, V, int]] = OrderedDict()

    def get(self, key: Any, signature: FileSignature) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Any, signature: FileSignature, value: V, size: int) -> None:
        self.drop(key)
        self._entries[key] = (signature, value, size)
        self.used += size
        while self.used > self.budget and self._entries:
            _, (_, _, freed) = self._entries.popitem(last=False)
            self.used -= freed

    def drop(self, key: Any) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.used -= entry[2]


class MemoryCache:
    """Recently read bars (bounded by bytes) and dataset facts (bounded by count).

    Parameters
    ----------
    max_bytes : int
        Memory budget for cached bars; 0 disables caching bars. A dataset larger
        than a quarter of the budget is never cached (it is read window by
        window instead).
    max_infos : int
        How many datasets' facts to keep.
    recheck_seconds : float
        How long a look at a file stays good before the file is looked at again.
    clock : callable
        Monotonic seconds (tests inject one).
    """

    def __init__(
        self,
        max_bytes: int,
        max_infos: int = 100_000,
        *,
        recheck_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._bars: _Lru[Bars] = _Lru(max_bytes)
        self._infos: _Lru[Any] = _Lru(max_infos)
        self._looks: dict[Any, tuple[FileSignature, float]] = {}
        self._guard = threading.Lock()

    def signature(self, key: Any, path: str | os.PathLike[str]) -> FileSignature:
        """The file's current signature, from a look taken less than ``recheck_seconds`` ago if any.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        """
        now = self._clock()
        with self._guard:
            look = self._looks.get(key)
        if look is not None and now - look[1] < self.recheck_seconds:
            return look[0]
        signature = FileSignature.of(os.stat(path))
        self.remember_look(key, signature)
        return signature

    def remember_look(self, key: Any, signature: FileSignature) -> None:
        """Remember that the file of ``key`` was just seen with ``signature``."""
        with self._guard:
            if len(self._looks) >= self._infos.budget:
                self._looks.clear()
            self._looks[key] = (signature, self._clock())

    @property
    def used_bytes(self) -> int:
        """Memory held by cached bars."""
        return self._bars.used

    def fits(self, decoded_bytes: int) -> bool:
        """Whether a dataset of ``decoded_bytes`` (in memory) is cached: at most a quarter of the budget."""
        return 0 < 4 * decoded_bytes <= self.max_bytes

    def bars(self, key: Any, signature: FileSignature) -> Bars | None:
        """The cached bars of ``key`` if they are of this file version."""
        with self._guard:
            return self._bars.get(key, signature)

    def keep_bars(self, key: Any, signature: FileSignature, bars: Bars) -> None:
        """Remember ``bars`` as the content of this file version."""
        with self._guard:
            self._bars.put(key, signature, bars, bars.table.nbytes)

    def info(self, key: Any, signature: FileSignature) -> Any | None:
        """The cached facts of ``key`` if they are of this file version."""
        with self._guard:
            return self._infos.get(key, signature)

    def keep_info(self, key: Any, signature: FileSignature, info: Any) -> None:
        """Remember the facts of this file version."""
        with self._guard:
            self._infos.put(key, signature, info, 1)

    def forget(self, key: Any) -> None:
        """Drop everything about ``key`` (its file was replaced or removed)."""
        with self._guard:
            self._bars.drop(key)
            self._infos.drop(key)
            self._looks.pop(key, None)
