"""Socket.IO event handlers, registered under the protocol's event names, calling the shared answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from flask_socketio import SocketIO
from socketio import exceptions as socketio_exceptions

from dataprovider import __version__, protocol
from dataprovider.engine.service import BarsResult, DataService
from dataprovider.errors import DataProviderError, InvalidRequestError
from server.answers import answer_batch, internal_error, status_reporter
from server.auth import socket_token, token_matches, unauthorized
from server.socket.connections import ClientRegistry
from server.socket.limits import FairQueue, Limits, Outbox, count_unsent
from server.socket.streams import FeedFactory, LiveHub

__all__ = ["register_events"]

logger = logging.getLogger(__name__)


def _single_payload(args: tuple[Any, ...]) -> object:
    """The one payload an event must carry; extra positional arguments are an error."""
    if len(args) != 1:
        raise InvalidRequestError(
            f"send exactly one payload object with the event; got {len(args)} arguments",
            code="INVALID_PAYLOAD",
        )
    return args[0]


def register_events(
    socketio: SocketIO,
    service: DataService,
    workers: Executor,
    make_feed: FeedFactory,
    token: str | None = None,
    limits: Limits | None = None,
) -> LiveHub:
    """Attach every protocol event handler to ``socketio``; returns the hub of live subscriptions.

    The handlers are registered on the underlying python-socketio server, which
    calls them with the client's ``sid``: they need no Flask request context,
    and building one per event would only add latency. The server runs each
    client's events in order on that client's own thread (``async_handlers``
    off): a request answered from memory is answered right there, and anything
    that may wait (a download, a batch) goes to ``workers``, so it never holds
    up the client's other requests. With a ``token``, a connection that does not
    present it is refused with an UNAUTHORIZED reason.

    ``limits`` (defaults: :class:`~server.socket.limits.Limits`) bound what one client
    may ask: a request beyond them is answered BUSY at once, never dropped; a
    client that does not read its replies is made to wait, then disconnected.

    ``make_feed(ticker, resolution)`` gives the live feed of a key for
    ``subscribe`` (see :mod:`server.socket.streams`).
    """
    server = socketio.server
    clients = ClientRegistry(limits)
    jobs = FairQueue(workers, clients.limits.max_queued)
    count_unsent(server.eio)

    def reply(event: str, payload: dict[str, Any], sid: str) -> None:
        with clients.send_lock(sid):  # keeps a message's packets together
            server.emit(event, payload, to=sid)

    def on_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        presented = socket_token(auth)
        if not token_matches(token, presented):
            error = unauthorized("socket", presented is not None)
            # The client sees {"message": ..., "data": <the error payload>} in its connect_error.
            raise socketio_exceptions.ConnectionRefusedError(error.message, error.to_payload())
        clients.add(sid, Outbox.of(server, sid, environ))
        reply(protocol.CONNECTION_RESPONSE, protocol.connection_reply(__version__, service.store.count_datasets()), sid)

    def push(event: str, sid: str, payload: dict[str, Any]) -> None:
        """A live message; a bar for a client that is not reading is skipped (its client sees the seq gap)."""
        if event == protocol.BAR_UPDATE and clients.behind(sid):
            return
        reply(event, payload, sid)

    live = LiveHub(
        make_feed,
        push,
        lambda sid, room: server.enter_room(sid, room),
        lambda sid, room: server.leave_room(sid, room),
    )

    def on_disconnect(sid: str, reason: Any = None) -> None:
        live.disconnected(sid)
        clients.forget(sid)

    def on_cancel(sid: str, payload: Any = None) -> None:
        request_id = payload.get("request_id") if isinstance(payload, dict) else None
        if clients.cancel(sid, request_id):
            logger.info("request %s cancelled by its client", request_id)

    def guarded(error_event: str, sid: str, request_id: str | None, work: Callable[[], None]) -> None:
        """Run ``work()``; answer any failure on ``error_event``."""
        try:
            work()
        except DataProviderError as exc:
            reply(error_event, protocol.error_reply(request_id, exc), sid)
        except Exception as exc:  # a bug: still answer, never leave the client waiting
            reply(error_event, protocol.error_reply(request_id, internal_error(request_id, exc)), sid)

    def send_data(sid: str, request: protocol.DataRequest, result: BarsResult) -> None:
        payload = protocol.data_reply(request.request_id, protocol.result_summary(result), result.bars, request.format)
        reply(protocol.DATA_RESPONSE, payload, sid)

    def submit(sid: str, request_id: str | None, error_event: str, job: Callable[[], None]) -> None:
        """Queue ``job`` for a worker; the request stays in flight until it has been answered.

        Raises
        ------
        ServerBusyError
            If too many requests already wait for a worker.
        """

        def run() -> None:
            try:
                guarded(error_event, sid, request_id, job)
            finally:
                clients.end(sid)

        jobs.submit(sid, run)

    def get_data(sid: str, request_id: str | None, payload: object) -> bool:
        request = protocol.parse_data_request(payload)
        status = status_reporter(request.request_id, lambda p: reply(protocol.DATA_STATUS, p, sid))
        result = service.cached_answer(request.query, status)
        if result is not None:  # answered from memory, right here
            send_data(sid, request, result)
            return False
        # It needs the network: a worker waits for it, and this client's other requests go on.
        submit(
            sid,
            request_id,
            protocol.DATA_ERROR,
            lambda: send_data(sid, request, service.get_bars(request.query, status)),
        )
        return True

    def get_batch_data(sid: str, request_id: str | None, payload: object) -> bool:
        cancelled = clients.accept(sid, request_id)  # cancellable from now on, even while queued

        def run() -> None:
            try:
                response = answer_batch(service, payload, lambda p: reply(protocol.BATCH_PROGRESS, p, sid), cancelled)
            finally:
                clients.done(sid, request_id)
            reply(protocol.BATCH_RESPONSE, response, sid)

        try:
            submit(sid, request_id, protocol.BATCH_ERROR, run)
        except BaseException:
            clients.done(sid, request_id)
            raise
        return True

    def subscribe(sid: str, request_id: str | None, payload: object) -> bool:
        live.subscribe(sid, protocol.parse_subscribe_request(payload))
        return False

    def unsubscribe(sid: str, request_id: str | None, payload: object) -> bool:
        live.unsubscribe(sid, protocol.parse_unsubscribe_request(payload))
        return False

    def event(error_event: str, handler: Callable[[str, str | None, object], bool]):
        """A handler taking (sid, *args) that applies the limits, checks the arguments and answers any failure.

        A request sent without a ``request_id`` gets one here, so every reply
        to it, errors included, carries the same id. ``handler`` returns True
        when it handed the request to a worker (which ends its time in flight).
        """

        def on_event(sid: str, *args: Any) -> None:
            if len(args) == 1 and isinstance(args[0], dict) and "request_id" not in args[0]:
                args = ({**args[0], "request_id": protocol.new_request_id()},)
            request_id = protocol.request_id_of(args[0]) if args else None
            if clients.wait_for_reader(sid):
                guarded(error_event, sid, request_id, lambda: answer(sid, request_id, args))

        def answer(sid: str, request_id: str | None, args: tuple[Any, ...]) -> None:
            clients.take_event(sid)
            payload = _single_payload(args)
            clients.begin(sid)
            queued = False
            try:
                queued = handler(sid, request_id, payload)
            finally:
                if not queued:
                    clients.end(sid)

        return on_event

    def on_unknown_event(event: str, sid: str, *args: Any) -> None:
        def refuse() -> None:
            clients.take_event(sid)  # metered like any other event: past the rate, BUSY
            raise InvalidRequestError(
                f"unknown event {str(event)[:64]!r}: the server handles {protocol.GET_DATA!r}, "
                f"{protocol.GET_BATCH_DATA!r}, {protocol.CANCEL!r}, {protocol.SUBSCRIBE!r} and "
                f"{protocol.UNSUBSCRIBE!r}",
                code="UNKNOWN_EVENT",
                details={"event": str(event)[:64]},
            )

        if clients.wait_for_reader(sid):
            guarded(protocol.DATA_ERROR, sid, protocol.request_id_of(args[0]) if args else None, refuse)

    server.on("connect", on_connect)
    server.on("disconnect", on_disconnect)
    server.on(protocol.CANCEL, on_cancel)
    server.on(protocol.GET_DATA, event(protocol.DATA_ERROR, get_data))
    server.on(protocol.GET_BATCH_DATA, event(protocol.BATCH_ERROR, get_batch_data))
    server.on(protocol.SUBSCRIBE, event(protocol.SUBSCRIPTION_ERROR, subscribe))
    server.on(protocol.UNSUBSCRIBE, event(protocol.SUBSCRIPTION_ERROR, unsubscribe))
    server.on("*", on_unknown_event)
    return live
