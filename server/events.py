"""Socket.IO event handlers, registered under the protocol's event names, calling the shared answers."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import SocketIO

from dataprovider import __version__, protocol
from dataprovider.errors import DataProviderError, InvalidRequestError
from dataprovider.service import DataService

from .answers import answer_batch, answer_data, internal_error
from .clients import ClientRegistry

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


def register_events(socketio: SocketIO, service: DataService) -> None:
    """Attach every protocol event handler to ``socketio``."""

    clients = ClientRegistry()

    def reply(event: str, payload: dict[str, Any], sid: str) -> None:
        with clients.send_lock(sid):  # keeps a message's packets together
            socketio.emit(event, payload, to=sid)

    @socketio.on("disconnect")
    def on_disconnect(reason: Any = None) -> None:
        clients.forget(request.sid)

    @socketio.on(protocol.CANCEL)
    def on_cancel(payload: Any = None) -> None:
        request_id = payload.get("request_id") if isinstance(payload, dict) else None
        if clients.cancel(request.sid, request_id):
            logger.info("request %s cancelled by its client", request_id)

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        reply(
            protocol.CONNECTION_RESPONSE,
            {
                "status": "connected",
                "server_version": __version__,
                "protocol_version": protocol.PROTOCOL_VERSION,
                "cached_instruments": service.store.count_datasets(),
            },
            request.sid,
        )

    def guarded(error_event: str, args: tuple[Any, ...], work) -> None:
        """Run ``work(payload, sid, request_id)``; answer any failure on ``error_event``."""
        sid = request.sid
        request_id = protocol.request_id_of(args[0]) if args else None
        try:
            work(_single_payload(args), sid, request_id)
        except DataProviderError as exc:
            reply(error_event, protocol.error_reply(request_id, exc), sid)
        except Exception as exc:  # a bug: still answer, never leave the client waiting
            reply(error_event, protocol.error_reply(request_id, internal_error(request_id, exc)), sid)

    def get_data(payload: object, sid: str, request_id: str | None) -> None:
        data_request, result = answer_data(service, payload, on_status=lambda p: reply(protocol.DATA_STATUS, p, sid))
        reply(
            protocol.DATA_RESPONSE,
            protocol.data_reply(data_request.request_id, result.summary(), result.bars, data_request.format),
            sid,
        )

    def get_batch_data(payload: object, sid: str, request_id: str | None) -> None:
        with clients.running(sid, request_id) as cancelled:
            response = answer_batch(service, payload, lambda p: reply(protocol.BATCH_PROGRESS, p, sid), cancelled)
        reply(protocol.BATCH_RESPONSE, response, sid)

    socketio.on_event(protocol.GET_DATA, lambda *args: guarded(protocol.DATA_ERROR, args, get_data))
    socketio.on_event(protocol.GET_BATCH_DATA, lambda *args: guarded(protocol.BATCH_ERROR, args, get_batch_data))

    @socketio.on("*")
    def on_unknown_event(event: str, *args: Any) -> None:
        request_id = protocol.request_id_of(args[0]) if args else None
        error = InvalidRequestError(
            f"unknown event {str(event)[:64]!r}: the server handles {protocol.GET_DATA!r} and "
            f"{protocol.GET_BATCH_DATA!r}",
            code="UNKNOWN_EVENT",
            details={"event": str(event)[:64]},
        )
        reply(protocol.DATA_ERROR, protocol.error_reply(request_id, error), request.sid)
