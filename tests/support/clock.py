"""A fake monotonic clock for tests of code that waits (rate limiters, back-offs)."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that moves only when told to; :meth:`sleep` records the wait and advances it.

    Pass the instance as ``clock`` and its ``sleep`` as ``sleep``.

    Examples
    --------
    >>> clock = FakeClock()
    >>> clock.sleep(1.5)
    >>> clock(), clock.sleeps
    (1001.5, [1.5])
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = float(start)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        """Record a wait of ``seconds`` and move the clock past it."""
        self.sleeps.append(seconds)
        self.time += seconds

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass without anyone waiting."""
        self.time += seconds
