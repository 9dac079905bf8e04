"""Socket.IO packets as the server decodes them."""

from __future__ import annotations

import json
from typing import Any

from socketio.packet import Packet

from dataprovider.protocol.requests import read_json_int


class _WireJSON:
    """The JSON codec of incoming Socket.IO packets: the standard library's, with :func:`read_json_int`."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, parse_int=read_json_int, **kwargs)


class WirePacket(Packet):
    """Socket.IO packets as the server decodes them (``socketio.Server(serializer=WirePacket)``).

    python-socketio's own codec drops a whole message holding an integer of
    more than 100 digits (logging an error, answering nothing); this one reads
    it as a float, so the request gets its INVALID_* reply like any other.
    """

    json = _WireJSON
