"""A bounded in-memory cache of recently read datasets, kept in step with their tables.

Entries are keyed by dataset and tagged with the table version they hold, so a
new version is never shadowed by an old copy: a commit made by this process
replaces its entry at once, and one made by another process sharing the data
directory is noticed within ``recheck_seconds`` (the table's log is not looked at
on every use: in a busy server each system call can wait for the GIL). Bars are
evicted least recently used first once their total size passes the budget;
dataset facts are small and kept for a bounded number of datasets.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from dataprovider.bars import Bars

__all__ = ["MemoryCache"]

V = TypeVar("V")
#: What identifies one version of a dataset (the store's table version; None: no table).
Version = Any


class _Lru(Generic[V]):
    """An LRU map of key -> (signature, value, size), bounded by total size."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[Any, tuple[Version, V, int]] = OrderedDict()

    def get(self, key: Any, signature: Version) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Any, signature: Version, value: V, size: int) -> None:
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
        than a quarter of the budget is never cached (it is read whole on each use instead).
    max_infos : int
        How many datasets' facts to keep.
    recheck_seconds : float
        How long a look at a table's version stays good before its log is looked at again.
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
        self._looks: dict[Any, tuple[Version, float]] = {}
        self._guard = threading.Lock()

    def signature(self, key: Any, look: Callable[[], Version]) -> Version:
        """The dataset's current version: from a look taken less than ``recheck_seconds`` ago, else ``look()``."""
        now = self._clock()
        with self._guard:
            seen = self._looks.get(key)
        if seen is not None and now - seen[1] < self.recheck_seconds:
            return seen[0]
        version = look()
        self.remember_look(key, version)
        return version

    def last_seen(self, key: Any) -> Version:
        """The version the last look at ``key`` found (None: never looked, or no table)."""
        with self._guard:
            seen = self._looks.get(key)
        return None if seen is None else seen[0]

    def remember_look(self, key: Any, signature: Version) -> None:
        """Remember that ``key`` was just seen at version ``signature``."""
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

    def bars(self, key: Any, signature: Version) -> Bars | None:
        """The cached bars of ``key`` if they are of this version."""
        with self._guard:
            return self._bars.get(key, signature)

    def keep_bars(self, key: Any, signature: Version, bars: Bars) -> None:
        """Remember ``bars`` as the content of this version."""
        with self._guard:
            self._bars.put(key, signature, bars, bars.table.nbytes)

    def info(self, key: Any, signature: Version) -> Any | None:
        """The cached facts of ``key`` if they are of this version."""
        with self._guard:
            return self._infos.get(key, signature)

    def keep_info(self, key: Any, signature: Version, info: Any) -> None:
        """Remember the facts of this version."""
        with self._guard:
            self._infos.put(key, signature, info, 1)

    def forget(self, key: Any) -> None:
        """Drop everything about ``key`` (its table changed or was removed)."""
        with self._guard:
            self._bars.drop(key)
            self._infos.drop(key)
            self._looks.pop(key, None)
