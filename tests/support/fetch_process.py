"""One process asking a DataService on a shared data directory for one dataset, at a signal.

Run as ``python -m tests.support.fetch_process DATA_DIR BARRIER_DIR NAME PEERS NOW TICKER
PERIOD REQUEST_LOG [RECORDING...]``: it builds ``DataService(DeltaStore(DATA_DIR),
YahooSource(<replay of the recordings>))`` with its clock at NOW, then waits at a file
barrier (it creates ``BARRIER_DIR/NAME`` and waits until PEERS files are there), so
every process asks at the same moment, then answers ``get_bars`` for TICKER's daily
bars over PERIOD, with Yahoo answering as it would have at NOW, and prints the
result's summary as JSON. Every chart request it sends is logged to REQUEST_LOG
(see :class:`tests.support.replay_server.LoggingReplay`), so a test can count the
requests of all processes together.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.protocol.query import BarsQuery
from dataprovider.protocol.replies import result_summary
from dataprovider.sources.yahoo import YahooSource
from tests.support.no_network import no_network
from tests.support.replay_server import LoggingReplay

__all__ = ["main", "wait_at_barrier"]


def wait_at_barrier(folder: Path, name: str, peers: int, timeout: float = 30.0) -> None:
    """Arrive at a barrier shared by ``peers`` processes, and return once all have arrived."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < peers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.iterdir()))} of {peers} processes reached {folder}")
        time.sleep(0.001)


def main(argv: list[str]) -> int:
    """Answer one query after the barrier; print its summary."""
    data_dir, barrier, name, peers, now, ticker, period, request_log, *recordings = argv
    replay = LoggingReplay(*recordings, log=Path(request_log))
    clock = pd.Timestamp(now)
    replay.as_of(clock)  # Yahoo as it answered at NOW
    with no_network():
        source = YahooSource(replay.session, cache_dir=Path(data_dir) / ".yfinance", now=lambda: clock)
        service = DataService(DeltaStore(data_dir), source, clock=lambda: clock)
        wait_at_barrier(Path(barrier), name, int(peers))
        result = service.get_bars(BarsQuery(ticker, DataResolution.DAY_01, DataPeriod.parse(period), local_only=False))
    print(json.dumps(result_summary(result)))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    # Skip the interpreter's teardown: once in a few hundred runs under load, a native
    # thread torn down there aborted the process ("terminate called without an active
    # exception") after its answer was printed, failing a test that had passed.
    os._exit(status)
