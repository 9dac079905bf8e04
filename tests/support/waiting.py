"""Waiting for something another thread or process does, without a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition`` every 10 ms until it is true.

    Raises
    ------
    AssertionError
        If it is still false after ``timeout`` seconds.

    Examples
    --------
    >>> wait_until(lambda: True)
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what} in vain")
        time.sleep(0.01)
