"""DataService variants for tests that watch which tickers a server started answering."""

from __future__ import annotations

import time

from dataprovider.engine.service import DataService


class CountingService(DataService):
    """Takes ``delay`` seconds per ticker and records, in ``started``, each ticker it started answering.

    Give each test module its own subclass (with its own ``started`` list and ``delay``), and empty
    ``started`` before starting a server with it.
    """

    started: list[str] = []
    delay = 0.02

    def get_bars(self, query, on_status=None):
        type(self).started.append(query.ticker)
        time.sleep(self.delay)
        return super().get_bars(query, on_status)
