"""The client: :class:`DataProviderLocal` and its transports.

* :mod:`~dataprovider.client.provider`: ``DataProviderLocal``, the public API;
* :mod:`~dataprovider.client.connection`: the shared Socket.IO connection;
* :mod:`~dataprovider.client.rest`: the same calls over HTTP;
* :mod:`~dataprovider.client.batches`: replies back into frames, callbacks and batch progress;
* :mod:`~dataprovider.client.subscriptions`: live bars, in order, resumed after reconnects.

The client imports the protocol and the shared vocabulary, never the engine or the server.
"""

from __future__ import annotations

from dataprovider.client.provider import DataProviderLocal
from dataprovider.client.subscriptions import LiveBar, Subscription

__all__ = ["DataProviderLocal", "LiveBar", "Subscription"]
