"""Client-side pure helpers: request payloads from Python arguments, and replies back into results.

No sockets here; :mod:`dataprovider.client.provider` only moves bytes and calls these.
"""

from __future__ import annotations

import heapq
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from dataprovider.errors import DataProviderError, error_from_payload
from dataprovider.notebook.progress import make_reporter, resolve_mode
from dataprovider.protocol import decode_frame, frames_from_batch_reply

__all__ = ["BatchRun", "ProgressOrderer", "report_error", "result_from_reply"]

logger = logging.getLogger("dataprovider.client")

Callback = Callable[[dict[str, Any]], None] | None


def _summary(reply: dict[str, Any]) -> dict[str, Any]:
    """A reply's facts for callbacks (what is left once the data and the wire bookkeeping are taken out)."""
    return {key: value for key, value in reply.items() if key not in ("data", "request_id", "offset")}


def result_from_reply(reply: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame of a data reply and the callback dict (summary plus 'data': the frame)."""
    frame = decode_frame(reply["data"])
    info = _summary(reply)
    info["data"] = frame
    return frame, info


def report_error(error: DataProviderError, error_callback: Callback, ticker: str | None = None) -> None:
    """Hand an error to ``error_callback``, or warn about it naming ticker and reason.

    The warning goes to the ``dataprovider.client`` logger; where logging is not
    configured at all (a fresh notebook), it is written to stderr instead, so a
    failure never passes silently.
    """
    ticker = error.ticker or ticker
    info = {**error.to_payload(), "ticker": ticker}
    if error_callback is not None:
        error_callback(info)
    elif _logging_configured(logger):
        logger.warning("%s: %s (%s)", ticker or "request", error.message, error.code)
    else:
        print(f"WARNING dataprovider: {ticker or 'request'}: {error.message} ({error.code})", file=sys.stderr)


def _logging_configured(log: logging.Logger) -> bool:
    """Whether a record of ``log`` reaches a real handler (the package's NullHandler does not count)."""
    current: logging.Logger | None = log
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def error_from_reply(reply: dict[str, Any], ticker: str | None = None) -> DataProviderError:
    """The exception for an error reply, with its ticker filled in."""
    error = error_from_payload(reply)
    error.ticker = error.ticker or ticker
    return error


class ProgressOrderer:
    """Releases ``batch_progress`` payloads in index order, whatever order they arrive in.

    Replies of a batch answered by several worker threads can finish in any
    order, and a progress event can lag behind the final reply; this holds early
    ones until the gap before them fills.
    :meth:`finish` fills remaining gaps from the final reply so every ticker is
    reported exactly once.
    """

    def __init__(self, callback: Callback) -> None:
        self._callback = callback
        self._next = 1
        self._held: list[tuple[int, dict[str, Any]]] = []
        self._reported: set[str] = set()

    def add(self, payload: dict[str, Any]) -> None:
        """Accept one ``batch_progress`` payload (one or more finished tickers); release all now in order."""
        for item in payload.get("items") or [payload]:
            heapq.heappush(self._held, (int(item["index"]), item))
        while self._held and self._held[0][0] <= self._next:
            _, ready = heapq.heappop(self._held)
            self._release(ready)

    def finish(self, reply: dict[str, Any], order: Iterable[str]) -> None:
        """Report, in ``order``, every ticker of the final reply not reported yet."""
        for _, held in sorted(self._held, key=lambda item: item[0]):
            self._release(held)
        self._held.clear()
        for ticker in order:
            error = reply["errors"].get(ticker)
            self._release(
                {
                    "ticker": ticker,
                    "total": reply["total"],
                    "status": "error" if error else "ok",
                    "rows": 0 if error else reply["results"].get(ticker, {}).get("rows", 0),
                    "error": error,
                }
            )

    def _release(self, payload: dict[str, Any]) -> None:
        """Report one ticker, numbered by release order so indices always run 1..n."""
        if payload["ticker"] in self._reported:
            return
        self._reported.add(payload["ticker"])
        index, total = self._next, payload["total"]
        self._next += 1
        if self._callback is not None:
            info = {key: value for key, value in payload.items() if key not in ("request_id", "items")}
            self._callback({**info, "index": index, "progress": f"{index}/{total}"})


class BatchRun:
    """The client side of one batch: progress display and callbacks, then the reply turned into frames.

    Create it on the thread that shows progress (it displays a widget at once),
    feed :attr:`orderer` every ``batch_progress`` payload on that thread, and end
    with :meth:`complete` (the final reply) or :meth:`fail` (the request failed).

    Parameters
    ----------
    tickers : list
        The tickers as asked, for the order of results.
    progress : object
        The ``progress`` argument ('auto', True, False, 'widget', 'text', 'off').
    callback, error_callback, progress_callback : callable or None
        The user's callbacks.
    raise_errors : bool
        Raise when every ticker failed, instead of returning an empty dict.
    """

    def __init__(
        self,
        tickers: list[Any],
        progress: object,
        callback: Callback,
        error_callback: Callback,
        progress_callback: Callback,
        raise_errors: bool,
    ) -> None:
        self.tickers = tickers
        self.callback, self.error_callback, self.progress_callback = callback, error_callback, progress_callback
        self.raise_errors = raise_errors
        self.reporter = make_reporter(resolve_mode(progress), len(dict.fromkeys(map(str, tickers))))
        self.orderer = ProgressOrderer(self._on_progress)

    def _on_progress(self, info: dict[str, Any]) -> None:
        self.reporter.update(info)
        if self.progress_callback is not None:
            self.progress_callback(info)

    def fail(self, error: BaseException) -> dict[str, pd.DataFrame]:
        """End after the request as a whole failed: report it, re-raise anything but a provider error."""
        self.reporter.finish(error)
        if not isinstance(error, DataProviderError):
            raise error
        if self.raise_errors:
            raise error
        report_error(error, self.error_callback)
        return {}

    def complete(self, reply: dict[str, Any]) -> dict[str, pd.DataFrame]:
        """The frames of a ``batch_response``; every ticker is reported once, in the order asked."""
        order = [t.upper() if isinstance(t, str) else str(t) for t in self.tickers]
        order = [t for t in dict.fromkeys(order) if t in reply["results"] or t in reply["errors"]]
        order += [t for t in (*reply["errors"], *reply["results"]) if t not in order]
        self.orderer.finish(reply, order)
        decoded = frames_from_batch_reply(reply)
        frames: dict[str, pd.DataFrame] = {}
        errors: list[DataProviderError] = []
        for ticker in order:
            if ticker in reply["results"]:
                frames[ticker] = decoded[ticker]
                if self.callback is not None:
                    self.callback({**_summary(reply["results"][ticker]), "data": decoded[ticker]})
            else:
                error = error_from_reply(reply["errors"][ticker], ticker)
                errors.append(error)
                report_error(error, self.error_callback, ticker)
        self.reporter.finish()
        if errors and not frames and self.raise_errors:
            raise errors[0]
        return frames
