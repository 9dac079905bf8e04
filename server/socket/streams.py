"""Live subscriptions: one feed per (ticker, resolution), its updates sent to every subscriber.

Each subscribed key has one :class:`_Stream`: a thread that steps the key's feed
(:mod:`dataprovider.engine.feeds`) and sends each update as ``bar_update`` to the key's
Socket.IO room, numbered by ``seq`` (1, 2, ... for the life of the stream). The
first subscriber starts the stream; it stops when the last one unsubscribes or
disconnects, so however many clients watch a key, its source is polled once.

A new subscriber is first sent the stream's latest update (with its ``seq``), so
it has the current bar at once. Sending to a subscriber holds that client's send
lock, like every other reply, so a bar never lands between the packets of a
binary reply; a subscriber with too many unread replies is skipped
(``server/socket/events.py``), and its client fills the ``seq`` gap from the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dataprovider import protocol
from dataprovider.engine.feeds import BarUpdate, Feed
from dataprovider.enums import DataResolution
from dataprovider.errors import DataProviderError, InvalidRequestError, ServerBusyError, SymbolNotFoundError

__all__ = ["LiveHub", "MAX_SUBSCRIPTIONS"]

logger = logging.getLogger(__name__)

#: Subscriptions one connection may hold at once.
MAX_SUBSCRIPTIONS = 100
#: Seconds before a stream whose feed failed tries again (the source's back-off answers fast meanwhile).
_RETRY_SECONDS = 5.0

Send = Callable[[str, str, dict[str, Any]], None]  # (event, sid, payload)
FeedFactory = Callable[[str, DataResolution], Feed]


@dataclass
class _Stream:
    """One key's feed, its thread and its subscribers."""

    subscription_id: str
    ticker: str
    resolution: DataResolution
    subscribers: set[str] = field(default_factory=set)
    seq: int = 0
    latest: dict[str, Any] | None = None  # the last bar_update sent
    failure: str | None = None  # the code of the last failure reported, until the feed works again
    stop: threading.Event = field(default_factory=threading.Event)


class LiveHub:
    """The server's live subscriptions.

    Parameters
    ----------
    make_feed : callable
        ``make_feed(ticker, resolution)`` -> the :class:`~dataprovider.engine.feeds.Feed` of a key.
    send : callable
        ``send(event, sid, payload)``: one message to one client.
    enter_room, leave_room : callable
        ``(sid, room)``: Socket.IO room membership (the room is the subscription id).
    """

    def __init__(
        self,
        make_feed: FeedFactory,
        send: Send,
        enter_room: Callable[[str, str], None],
        leave_room: Callable[[str, str], None],
    ) -> None:
        self._make_feed = make_feed
        self._send = send
        self._enter_room = enter_room
        self._leave_room = leave_room
        self._streams: dict[str, _Stream] = {}
        self._requests: dict[tuple[str, str], str] = {}  # (sid, subscribe request_id) -> subscription id
        self._guard = threading.RLock()  # streams, subscribers, seq: held while sending to a room
        self.streams_started = 0

    # ------------------------------------------------------------ requests
    def subscribe(self, sid: str, request: protocol.SubscribeRequest) -> None:
        """Add ``sid`` to the key's subscribers (starting its stream), acknowledge, send the latest bar.

        Raises
        ------
        DataProviderError
            BUSY past MAX_SUBSCRIPTIONS; the feed's error (NOT_CACHED, ...) if the
            stream cannot start.
        """
        key = request.subscription_id
        with self._guard:
            if self.count(sid) >= MAX_SUBSCRIPTIONS and sid not in self._subscribers(key):
                raise ServerBusyError(
                    f"this connection already has {MAX_SUBSCRIPTIONS} subscriptions: unsubscribe some first",
                    details={"max": MAX_SUBSCRIPTIONS},
                )
            running = key in self._streams
        # Made outside the lock: a replay reads the cache first, and other streams go on meanwhile.
        feed = None if running else self._make_feed(request.ticker, request.resolution)
        with self._guard:
            stream = self._streams.get(key)
            if stream is None:  # none ran, or the one that ran ended meanwhile
                feed = feed if feed is not None else self._make_feed(request.ticker, request.resolution)
                stream = self._start(request.ticker, request.resolution, key, feed)
            stream.subscribers.add(sid)
            self._requests[(sid, request.request_id)] = key
            self._enter_room(sid, key)
            self._send(
                protocol.SUBSCRIBED,
                sid,
                protocol.subscribed_reply(request.request_id, key, request.ticker, request.resolution, stream.seq),
            )
            if stream.latest is not None:
                self._send(protocol.BAR_UPDATE, sid, stream.latest)

    def unsubscribe(self, sid: str, request: protocol.UnsubscribeRequest) -> None:
        """Remove ``sid`` from a subscription (stopping its stream when it was the last) and acknowledge.

        Raises
        ------
        InvalidRequestError
            INVALID_PAYLOAD when ``sid`` has no such subscription.
        """
        with self._guard:
            key = request.subscription_id or self._requests.get((sid, request.request_id or ""))
            if key is None or sid not in self._subscribers(key):
                raise InvalidRequestError(
                    f"this connection has no subscription {key or request.request_id!r}: "
                    "send the subscription_id its subscribed reply gave",
                    code="INVALID_PAYLOAD",
                    field="subscription_id",
                )
            self._leave(sid, key)
            self._send(protocol.UNSUBSCRIBED, sid, protocol.unsubscribed_reply(request.request_id, key))

    def disconnected(self, sid: str) -> None:
        """Forget every subscription of a client that left."""
        with self._guard:
            for key in [k for k, stream in self._streams.items() if sid in stream.subscribers]:
                self._leave(sid, key)

    def count(self, sid: str) -> int:
        """How many subscriptions ``sid`` holds."""
        with self._guard:
            return sum(sid in stream.subscribers for stream in self._streams.values())

    def active(self) -> dict[str, int]:
        """Running streams: subscription id -> number of subscribers."""
        with self._guard:
            return {key: len(stream.subscribers) for key, stream in self._streams.items()}

    def close(self) -> None:
        """Stop every stream (at shutdown)."""
        with self._guard:
            for stream in self._streams.values():
                stream.stop.set()
            self._streams.clear()

    # ------------------------------------------------------------- streams
    def _subscribers(self, key: str) -> set[str]:
        stream = self._streams.get(key)
        return stream.subscribers if stream is not None else set()

    def _start(self, ticker: str, resolution: DataResolution, key: str, feed: Feed) -> _Stream:
        stream = _Stream(key, ticker, resolution)
        self._streams[key] = stream
        self.streams_started += 1
        threading.Thread(target=self._run, args=(stream, feed), name=f"live {key}", daemon=True).start()
        logger.info("live %s: started (%s)", key, feed.name)
        return stream

    def _leave(self, sid: str, key: str) -> None:
        stream = self._streams[key]
        stream.subscribers.discard(sid)
        for pair in [pair for pair, k in self._requests.items() if pair[0] == sid and k == key]:
            del self._requests[pair]
        self._leave_room(sid, key)
        if not stream.subscribers:
            stream.stop.set()
            del self._streams[key]
            logger.info("live %s: stopped (no subscribers left)", key)

    def _run(self, stream: _Stream, feed: Feed) -> None:
        """The stream's thread: step the feed and send its updates until stopped.

        Waits are counted from when the step was due, not from when its updates were
        sent, so sending to many subscribers does not slow a replay down.
        """
        due = time.monotonic()
        while not stream.stop.is_set():
            try:
                updates, wait = feed.step()
            except SymbolNotFoundError as exc:  # it never will have bars: end the subscriptions
                self._end(stream, exc)
                return
            except DataProviderError as exc:
                self._report(stream, exc)
                updates, wait = [], _RETRY_SECONDS
            except Exception:  # a bug: keep it in the server's log, keep the stream alive
                logger.exception("live %s: the feed failed", stream.subscription_id)
                updates, wait = [], _RETRY_SECONDS
            else:
                stream.failure = None
            for update in updates:
                self._publish(stream, update)
            if wait is None:
                logger.info("live %s: the feed has no more bars", stream.subscription_id)
                return
            due = max(due + wait, time.monotonic() - wait)  # a stream that fell behind does not rush to catch up
            stream.stop.wait(max(0.0, due - time.monotonic()))

    def _publish(self, stream: _Stream, update: BarUpdate) -> None:
        with self._guard:
            if stream.stop.is_set():
                return
            stream.seq += 1
            stream.latest = protocol.bar_update_reply(
                stream.subscription_id,
                stream.ticker,
                stream.resolution,
                update.time,
                update.bar,
                is_final=update.is_final,
                seq=stream.seq,
            )
            for sid in list(stream.subscribers):
                self._send(protocol.BAR_UPDATE, sid, stream.latest)

    def _end(self, stream: _Stream, error: DataProviderError) -> None:
        """End a stream and every subscription to it, telling each subscriber why (``ended: true``)."""
        logger.warning("live %s: ended: %s", stream.subscription_id, error)
        with self._guard:
            payload = protocol.subscription_error_reply(stream.subscription_id, error, ended=True)
            for sid in list(stream.subscribers):
                self._send(protocol.SUBSCRIPTION_ERROR, sid, payload)
                if self._streams.get(stream.subscription_id) is stream:
                    self._leave(sid, stream.subscription_id)

    def _report(self, stream: _Stream, error: DataProviderError) -> None:
        """Tell the subscribers the feed failed (once per kind of failure; the stream goes on trying)."""
        if stream.failure == error.code:
            return
        stream.failure = error.code
        logger.warning("live %s: %s", stream.subscription_id, error)
        with self._guard:
            payload = protocol.subscription_error_reply(stream.subscription_id, error, ended=False)
            for sid in list(stream.subscribers):
                self._send(protocol.SUBSCRIPTION_ERROR, sid, payload)
