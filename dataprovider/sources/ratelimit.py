"""The pacing of requests to an upstream source: a token bucket plus a shared back-off.

One ``RateLimiter`` belongs to one source and is shared by every thread that downloads
from it. Each request first calls :meth:`RateLimiter.acquire`, which

* raises at once while the source is backing off: for a while after HTTP 429
  (``UpstreamRateLimitedError``; the wait doubles with each 429 in a row, up to a cap,
  and resets after a success; 429s for requests already under way when a back-off
  began do not count again) and for a short cool-down after the source was
  unreachable or timed out (``UpstreamUnavailableError``), so a dead network does not
  make every request wait out its own timeouts;
* otherwise takes a token from a bucket refilled at ``rate`` per second and holding at
  most ``burst`` tokens, sleeping until one is free.

Both errors carry ``details["retry_after"]``, the seconds until the source is tried again.
The clock and the sleep are injectable, so tests run without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dataprovider.errors import UpstreamError, UpstreamRateLimitedError, UpstreamUnavailableError

__all__ = ["RateLimiter"]

logger = logging.getLogger(__name__)


class RateLimiter:
    """Token bucket and back-off for the requests to one upstream source.

    Parameters
    ----------
    rate : float
        Sustained requests per second (default 2).
    burst : int
        Requests that may go at once after a quiet spell (default 5).
    backoff : float
        Seconds to stop asking after the first HTTP 429 (default 30); each further 429
        in a row doubles it.
    max_backoff : float
        Cap on the 429 back-off (default 900 s, 15 minutes).
    cooldown : float
        Seconds to fail fast after the source was unreachable or timed out (default 15).
    upstream : str
        The source's name, for messages.
    clock : callable, optional
        Monotonic time in seconds (default ``time.monotonic``).
    sleep : callable, optional
        Waits the given seconds (default ``time.sleep``).

    Examples
    --------
    >>> limiter = RateLimiter(rate=2, burst=5)
    >>> limiter.acquire()          # returns at once while tokens are left
    >>> limiter.report_rate_limited()
    30.0
    >>> limiter.acquire()
    Traceback (most recent call last):
    ...
    dataprovider.errors.UpstreamRateLimitedError: UPSTREAM_RATE_LIMITED: ...
    """

    def __init__(
        self,
        rate: float = 2.0,
        burst: int = 5,
        *,
        backoff: float = 30.0,
        max_backoff: float = 900.0,
        cooldown: float = 15.0,
        upstream: str = "Yahoo Finance",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1; got rate={rate}, burst={burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.cooldown = float(cooldown)
        self.upstream = upstream
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._refilled_at = clock()
        self._strikes = 0  # HTTP 429s in a row
        self._blocked_until = float("-inf")
        self._blocked_error: type[UpstreamError] = UpstreamUnavailableError
        self._blocked_reason = ""

    def acquire(self, ticker: str | None = None) -> None:
        """Wait for the next request slot, or raise while the source is backing off.

        Parameters
        ----------
        ticker : str, optional
            Named in the error, when one is raised.

        Raises
        ------
        UpstreamRateLimitedError
            During the back-off after HTTP 429.
        UpstreamUnavailableError
            During the cool-down after the source was unreachable or timed out.
        """
        with self._lock:
            now = self._clock()
            self._raise_if_blocked(now, ticker)
            self._tokens = min(self.burst, self._tokens + (now - self._refilled_at) * self.rate)
            self._refilled_at = now
            self._tokens -= 1  # a negative balance is a place in the queue
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            logger.debug("waiting %.2f s for a %s request slot", wait, self.upstream)
            self._sleep(wait)
            with self._lock:
                self._raise_if_blocked(self._clock(), ticker)

    def retry_after(self) -> float:
        """Seconds until the source is tried again (0 when it is not backing off)."""
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    def report_success(self) -> None:
        """Record a request that got an answer; the next 429 starts the back-off afresh."""
        with self._lock:
            self._strikes = 0

    def report_rate_limited(self) -> float:
        """Record an HTTP 429 and start (or lengthen) the back-off.

        Returns
        -------
        float
            The back-off in seconds: ``backoff * 2**(n-1)`` for the n-th 429 in a row,
            at most ``max_backoff``. A 429 that arrives during a running back-off answers
            a request sent before it began and does not lengthen it; the seconds left are
            returned.
        """
        with self._lock:
            if self._blocked_error is UpstreamRateLimitedError and self._blocked_until > self._clock():
                # No request is sent during a back-off, so this 429 answers one that was
                # already under way when the back-off began: it is the same burst.
                return self._blocked_until - self._clock()
            self._strikes += 1
            delay = min(self.max_backoff, self.backoff * 2 ** (self._strikes - 1))
            self._block(delay, UpstreamRateLimitedError, "it answered HTTP 429 Too Many Requests")
            return delay

    def report_unavailable(self, reason: str) -> float:
        """Record that the source was unreachable or timed out, and start the cool-down.

        A cool-down never shortens a running 429 back-off.

        Parameters
        ----------
        reason : str
            What happened, for the fail-fast messages ("connection refused", ...).

        Returns
        -------
        float
            Seconds until the source is tried again.
        """
        with self._lock:
            self._block(self.cooldown, UpstreamUnavailableError, reason)
            return max(0.0, self._blocked_until - self._clock())

    def _block(self, delay: float, error: type[UpstreamError], reason: str) -> None:
        until = self._clock() + delay
        if until <= self._blocked_until:
            return
        self._blocked_until, self._blocked_error, self._blocked_reason = until, error, reason
        logger.warning("%s: pausing requests for %.0f s because %s", self.upstream, delay, reason)

    def _raise_if_blocked(self, now: float, ticker: str | None) -> None:
        remaining = self._blocked_until - now
        if remaining <= 0:
            return
        if self._blocked_error is UpstreamRateLimitedError:
            message = (
                f"{self.upstream} is rate-limiting this server ({self._blocked_reason}); "
                f"no requests are sent for another {remaining:.0f} s. Retry later, or ask "
                "with local_only=True (the default) to read only the cache."
            )
        else:
            message = (
                f"{self.upstream} could not be reached a moment ago ({self._blocked_reason}); "
                f"no requests are sent for another {remaining:.0f} s. Check the network "
                "connection, or ask with local_only=True (the default) to read only the cache."
            )
        raise self._blocked_error(message, ticker=ticker, details={"retry_after": round(remaining, 3)})
