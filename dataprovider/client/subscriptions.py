"""Live bars on the client: subscriptions that survive reconnects, deliver in order, and fill gaps from the cache.

``provider.subscribe(ticker, resolution, callback)`` sends ``subscribe`` and
returns a :class:`Subscription` once the server acknowledged it. Each
subscription has its own thread that calls ``callback(bar)`` with a
:class:`LiveBar` for every update, in order: a message is only handed over on the
connection's read loop, so a slow callback never holds up other replies.

Delivery rules (docs/PROTOCOL.md, "Live bars"):

* updates are delivered in ``seq`` order, each once: a repeated or older ``seq``
  is dropped, and so is a bar older than the newest final bar delivered;
* after the server's first update (at subscribing, and again after every
  reconnect), and after a jump in ``seq`` (the server skips updates for a client
  that does not read them), the final bars between the last one delivered and
  that update are read from the cache with ``get_data`` and delivered first,
  marked ``seq=None``; with ``history=N`` the first subscribe delivers the N final bars
  before the first update the same way;
* when the connection drops, the subscription reconnects (waiting 0.5 s, then
  doubling up to 5 s) and subscribes again, until it is closed;
* feed failures go to ``error_callback`` (the server keeps trying); when the
  server ends the subscription (an unknown symbol), it is closed too.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dataprovider import protocol
from dataprovider.client.connection import DISCONNECTED, SocketConnection
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import DataProviderError, error_from_payload
from dataprovider.instruments import validate_ticker

__all__ = ["LiveBar", "Subscription", "Subscriptions"]

logger = logging.getLogger("dataprovider.client")

#: Seconds before the first reconnect attempt; doubled after each failure, up to _RECONNECT_MAX.
_RECONNECT_FIRST = 0.5
_RECONNECT_MAX = 5.0
_STOP = object()


@dataclass(frozen=True)
class LiveBar:
    """One live update of a bar.

    Attributes
    ----------
    ticker, resolution :
        The subscription's key.
    time : pandas.Timestamp
        The bar's start, tz-aware (the exchange's UTC offset; UTC for crypto).
    open, high, low, close : float
        The bar so far (final once ``is_final``).
    volume : int or float
        Its volume so far, typed as the cache stores it.
    is_final : bool
        False while the bar is still forming; a bar is delivered final once.
    seq : int or None
        The server's number for the update (increasing); None for final bars read
        from the cache to fill a gap.
    """

    ticker: str
    resolution: DataResolution
    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: int | float
    is_final: bool
    seq: int | None

    @classmethod
    def from_update(cls, payload: dict[str, Any]) -> LiveBar:
        """The bar of a ``bar_update`` payload."""
        bar = payload["bar"]
        return cls(
            ticker=payload["ticker"],
            resolution=DataResolution(payload["resolution"]),
            time=pd.Timestamp(bar["time"]).tz_convert(payload["timezone"]),
            open=bar["open"],
            high=bar["high"],
            low=bar["low"],
            close=bar["close"],
            volume=bar["volume"],
            is_final=bool(payload["is_final"]),
            seq=int(payload["seq"]),
        )

    def ohlcv(self) -> tuple[float, float, float, float, int | float]:
        """(open, high, low, close, volume)."""
        return self.open, self.high, self.low, self.close, self.volume


class Subscription:
    """One live subscription: a handle to close it, usable as a context manager.

    Made by :meth:`DataProviderLocal.subscribe`; see the module docstring for what
    ``callback`` receives and when.
    """

    def __init__(
        self,
        owner: Subscriptions,
        ticker: str,
        resolution: DataResolution,
        callback: Callable[[LiveBar], None],
        error_callback: Callable[[DataProviderError], None] | None,
        history: int,
    ) -> None:
        self.ticker = ticker
        self.resolution = resolution
        self.subscription_id = protocol.subscription_id(ticker, resolution)
        self.closed = False
        self._owner = owner
        self._callback = callback
        self._error_callback = error_callback
        self._history = history
        self._inbox: queue.Queue = queue.Queue()
        self._last_seq: int | None = None
        self._last_final: pd.Timestamp | None = None
        self._last_forming: LiveBar | None = None
        self._fill_pending = True
        self._thread = threading.Thread(target=self._deliver_all, name=f"live {self.subscription_id}", daemon=True)

    def close(self) -> None:
        """Unsubscribe and stop delivering (idempotent; waits for a callback under way)."""
        self._close(unsubscribe=True)

    def _close(self, *, unsubscribe: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self._owner.remove(self, unsubscribe=unsubscribe)
        self._inbox.put(_STOP)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Subscription {self.ticker} {self.resolution.value} ({state})>"

    # --------------------------------------------------- from the read loop
    def _subscribed(self) -> None:
        """The server (re)acknowledged: its numbering starts afresh, and the next bar may follow a gap."""
        self._inbox.put(("subscribed", None))

    def _update(self, payload: dict[str, Any]) -> None:
        self._inbox.put(("bar", payload))

    def _failed(self, error: DataProviderError, ended: bool) -> None:
        self._inbox.put(("ended" if ended else "error", error))

    # ----------------------------------------------------- delivery thread
    def _deliver_all(self) -> None:
        while True:
            item = self._inbox.get()
            if item is _STOP:
                return
            kind, value = item
            try:
                if kind == "subscribed":
                    self._last_seq, self._fill_pending = None, True
                elif kind == "bar":
                    self._deliver_update(LiveBar.from_update(value))
                else:
                    self._report(value)
                    if kind == "ended":  # the server ended the subscription (an unknown symbol)
                        self._close(unsubscribe=False)
            except Exception:  # a failing callback must not end the subscription
                logger.exception("live %s: a callback failed", self.subscription_id)

    def _deliver_update(self, bar: LiveBar) -> None:
        if self._last_seq is not None and bar.seq <= self._last_seq:
            return  # already delivered
        if self._last_seq is not None and bar.seq > self._last_seq + 1:
            self._fill_pending = True  # the server skipped updates while this client was not reading
        self._last_seq = bar.seq
        if self._last_final is not None and bar.time <= self._last_final:
            return  # that bar is final already
        if self._fill_pending:
            self._fill_pending = False
            for cached in self._owner.cached_bars(self, self._last_final, bar.time, self._history):
                self._deliver(cached)
            self._history = 0
        last = self._last_forming
        if not bar.is_final and last is not None and (bar.time, bar.ohlcv()) == (last.time, last.ohlcv()):
            return  # the forming bar has not changed
        self._deliver(bar)

    def _deliver(self, bar: LiveBar) -> None:
        if self.closed:
            return
        if bar.is_final:
            self._last_final, self._last_forming = bar.time, None
        else:
            self._last_forming = bar
        self._callback(bar)

    def _report(self, error: DataProviderError) -> None:
        if self._error_callback is not None:
            self._error_callback(error)
        else:
            logger.warning("live %s: %s", self.subscription_id, error)


#: Reads a window of cached bars, called as ``DataProviderLocal.get_data_socket`` is (the client passes that
#: method): so the subscriptions fill gaps from the cache without knowing the client.
HistoryReader = Callable[..., "pd.DataFrame | None"]


class Subscriptions:
    """A client's live subscriptions on its shared connection, and their reconnection.

    ``read_history`` fills gaps (after a reconnect, a seq jump, or ``history=N``)
    from the cache; see :data:`HistoryReader`.
    """

    def __init__(self, read_history: HistoryReader, connection: SocketConnection) -> None:
        self._read_history = read_history
        self._connection = connection
        self._active: dict[str, list[Subscription]] = {}
        self._guard = threading.Lock()
        self._reconnecting = threading.Event()
        connection.listen(self._on_message)

    def subscribe(
        self,
        ticker: str,
        resolution: DataResolution | str,
        callback: Callable[[LiveBar], None],
        error_callback: Callable[[DataProviderError], None] | None = None,
        history: int = 0,
    ) -> Subscription:
        """Subscribe and return the handle once the server acknowledged (see DataProviderLocal.subscribe)."""
        if not isinstance(history, int) or isinstance(history, bool) or history < 0:
            raise ValueError(f"history must be a whole number of bars >= 0, got {history!r}")
        subscription = Subscription(
            self, validate_ticker(ticker), DataResolution.parse(resolution), callback, error_callback, history
        )
        # Registered before asking: the server sends the latest bar right after its acknowledgement.
        self._connection.retain()
        with self._guard:
            self._active.setdefault(subscription.subscription_id, []).append(subscription)
        subscription._thread.start()
        try:
            self._send_subscribe(subscription.ticker, subscription.resolution)
        except BaseException:
            subscription.close()
            raise
        return subscription

    def remove(self, subscription: Subscription, *, unsubscribe: bool = True) -> None:
        """Forget a closed subscription; the last one of a key unsubscribes it on the server (if ``unsubscribe``)."""
        with self._guard:
            siblings = self._active.get(subscription.subscription_id, [])
            if subscription in siblings:
                siblings.remove(subscription)
            last = not siblings
            if last:
                self._active.pop(subscription.subscription_id, None)
        if unsubscribe and last and self._connection.connected:
            try:
                self._connection.request(
                    protocol.UNSUBSCRIBE,
                    {"subscription_id": subscription.subscription_id},
                    ticker=subscription.ticker,
                    auto_disconnect=False,
                )
            except DataProviderError as exc:  # the server forgets it anyway when the connection ends
                logger.debug("unsubscribe %s: %s", subscription.subscription_id, exc)
        self._connection.release()

    def close_all(self) -> None:
        """Close every subscription."""
        with self._guard:
            everything = [s for group in self._active.values() for s in group]
        for subscription in everything:
            subscription.close()

    def cached_bars(
        self, subscription: Subscription, after: pd.Timestamp | None, before: pd.Timestamp, history: int
    ) -> list[LiveBar]:
        """The cached final bars with ``after < time < before`` (or the last ``history`` before ``before``)."""
        if after is None and history == 0:
            return []
        frame = self._read_history(
            subscription.ticker,
            subscription.resolution,
            DataPeriod.YEAR_MAX,
            time_start=None if after is None else after.isoformat(),
            time_end=before.isoformat(),
            limit=None if after is not None else history + 1,
            local_only=True,
            auto_disconnect=False,
        )
        if frame is None:
            return []
        frame = frame[frame.index < before]
        if after is not None:
            frame = frame[frame.index > after]
        else:
            frame = frame.iloc[-history:]
        return [
            LiveBar(subscription.ticker, subscription.resolution, time, *row, True, None)
            for time, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=True)
        ]

    # -------------------------------------------------------------- internals
    def _send_subscribe(self, ticker: str, resolution: DataResolution) -> dict[str, Any]:
        return self._connection.request(
            protocol.SUBSCRIBE, {"ticker": ticker, "resolution": resolution.value}, ticker=ticker, auto_disconnect=False
        )

    def _matching(self, subscription_id: object) -> list[Subscription]:
        with self._guard:
            return list(self._active.get(subscription_id, [])) if isinstance(subscription_id, str) else []

    def _on_message(self, event: str, payload: Any) -> None:
        """On the read loop: hand each message to its subscriptions; start reconnecting when the connection drops."""
        if event == DISCONNECTED:
            with self._guard:
                wanted = bool(self._active)
            if wanted and not self._reconnecting.is_set():
                self._reconnecting.set()
                threading.Thread(target=self._reconnect, name="live reconnect", daemon=True).start()
            return
        subscription_id = payload.get("subscription_id") if isinstance(payload, dict) else None
        for subscription in self._matching(subscription_id):
            if event == protocol.SUBSCRIBED:
                subscription._subscribed()
            elif event == protocol.BAR_UPDATE:
                subscription._update(payload)
            elif payload.get("request_id") is None:  # a failure of the stream, not of a request
                subscription._failed(error_from_payload(payload), bool(payload.get("ended")))

    def _reconnect(self) -> None:
        """Reconnect and subscribe again to every key, until done or nothing is subscribed any more."""
        wait = _RECONNECT_FIRST
        try:
            while True:
                time.sleep(wait)  # also lets the old connection finish closing
                with self._guard:
                    keys = [(group[0].ticker, group[0].resolution) for group in self._active.values() if group]
                if not keys:
                    return
                try:
                    self._connection.open(hold=False)
                    for ticker, resolution in keys:
                        self._send_subscribe(ticker, resolution)
                except Exception as exc:  # the server is not back yet, or went away again
                    logger.info("live: reconnecting to %s failed (%s); trying again", self._connection.url, exc)
                    wait = min(_RECONNECT_MAX, wait * 2)
                    continue
                logger.info("live: reconnected to %s, %d subscription(s) resumed", self._connection.url, len(keys))
                return
        finally:
            self._reconnecting.clear()
