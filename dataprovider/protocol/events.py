"""Event names, payload fields, formats and limits: what both sides agree on before any byte moves.

docs/PROTOCOL.md describes the same in prose for clients in other languages.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1

#: Where a server listens unless told otherwise, and so where a client looks first.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

# Client -> server events.
GET_DATA = "get_data"
GET_BATCH_DATA = "get_batch_data"
CANCEL = "cancel"  # {request_id}: drop the rest of a request the client stopped waiting for
SUBSCRIBE = "subscribe"  # {request_id, ticker, resolution}: live bars of one key
UNSUBSCRIBE = "unsubscribe"  # {request_id} or {subscription_id}
# Server -> client events.
CONNECTION_RESPONSE = "connection_response"
DATA_RESPONSE = "data_response"
DATA_ERROR = "data_error"
DATA_STATUS = "data_status"
BATCH_RESPONSE = "batch_response"
BATCH_ERROR = "batch_error"
BATCH_PROGRESS = "batch_progress"
SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
BAR_UPDATE = "bar_update"
SUBSCRIPTION_ERROR = "subscription_error"

#: Largest binary attachment sent (about), below python-socketio's default 1 MB message limit.
CHUNK_BYTES = 900_000
#: Most tickers one batch may ask for.
MAX_BATCH_TICKERS = 1000
#: Largest ``limit`` accepted.
MAX_LIMIT = 10_000_000
#: Longest request_id accepted.
MAX_REQUEST_ID_LENGTH = 128

#: Frame encodings over Socket.IO, and over REST (which adds CSV).
FORMATS = ("json", "arrow")
REST_FORMATS = ("json", "csv", "arrow")
#: Media type of an Arrow IPC stream (REST ``format=arrow``).
ARROW_MIME = "application/vnd.apache.arrow.stream"
#: Years a time bound may name (as written, before any timezone conversion).
EARLIEST_YEAR = 1900
LATEST_YEAR = 2199
#: Largest Socket.IO message or REST request body the server reads (bytes); a longer
#: Socket.IO message closes the connection, a longer REST body is REQUEST_TOO_LARGE.
MAX_MESSAGE_BYTES = 1_000_000
#: Longest unknown field name echoed back as an error's ``field``.
FIELD_NAME_CHARS = 64

QUERY_FIELDS = ("request_id", "resolution", "period", "time_start", "time_end", "limit", "local_only", "format")
DATA_FIELDS = ("ticker", *QUERY_FIELDS)
BATCH_FIELDS = ("tickers", *QUERY_FIELDS)


SUBSCRIBE_FIELDS = ("request_id", "ticker", "resolution")
UNSUBSCRIBE_FIELDS = ("request_id", "subscription_id")

#: Least time between two ``batch_progress`` events of one batch: tickers that
#: finish sooner after the last event wait for the next one (they are listed in
#: its ``items``), so a batch answered from memory sends a handful of events, not
#: one per ticker.
PROGRESS_INTERVAL = 0.05
