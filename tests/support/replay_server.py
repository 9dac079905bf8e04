"""``python -m server`` with Yahoo Finance replaced by the offline replay, for tests of the server process.

Run as ``python -m tests.support.replay_server [--recording NAME]... [--delay S]
[--request-log FILE] -- SERVER ARGUMENTS...``: the real command line, start-up,
signal handling and shutdown of ``python -m server`` (:func:`server.__main__.main`),
with the network guarded (:func:`tests.support.no_network.no_network`) and every
``YahooSource`` the server makes talking to a :class:`LoggingReplay` of the given
recordings. The server's clock is the real one, so ask for explicit windows inside
the recordings.

:class:`LoggingReplay` is also what processes other than servers use when tests
count the chart requests several processes send (one line per request in a shared file).

Examples
--------
>>> command = [sys.executable, "-m", "tests.support.replay_server", "--recording", NVDA,
...            "--delay", "0.5", "--request-log", str(log), "--", "--port", str(port)]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import dataprovider.sources.yahoo as yahoo
from server.__main__ import main as serve
from tests.support.no_network import no_network
from tests.support.yahoo_replay import YahooReplay

__all__ = ["LoggingReplay", "logged_requests", "main"]


class LoggingReplay(YahooReplay):
    """The Yahoo replay, appending each chart request's URL to ``log`` and answering it ``delay`` seconds later.

    Parameters
    ----------
    *recordings : str or Path
        As for :class:`YahooReplay`.
    log : Path, optional
        A file shared by every process of a test; one line per chart request.
    delay : float
        Seconds each chart request really waits before its answer (a slow Yahoo,
        so a test can act while a download is in progress).
    """

    def __init__(self, *recordings: str | Path, log: Path | None = None, delay: float = 0.0) -> None:
        self.log = log
        self.delay = delay
        super().__init__(*recordings)

    def _chart(self, request, context) -> str:
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as handle:  # one short append: whole lines
                handle.write(request.url + "\n")
        if self.delay:
            time.sleep(self.delay)
        return super()._chart(request, context)


def logged_requests(log: Path) -> list[str]:
    """The chart request URLs in a :class:`LoggingReplay` log (empty if none was made)."""
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def main(argv: list[str]) -> int:
    """Serve like ``python -m server``, on the replay."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.replay_server")
    parser.add_argument("--recording", action="append", default=[], help="a file in tests/data/yahoo-chart")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each chart request waits")
    parser.add_argument("--request-log", type=Path, help="append each chart request's URL to this file")
    parser.add_argument("server_args", nargs="*", help="arguments of python -m server (after --)")
    args = parser.parse_args(argv)
    replay = LoggingReplay(*args.recording, log=args.request_log, delay=args.delay)
    real_source = yahoo.YahooSource

    def replay_source(*_args, cache_dir: str | os.PathLike[str] | None = None, **kwargs) -> yahoo.YahooSource:
        return real_source(replay.session, cache_dir=cache_dir, **kwargs)

    yahoo.YahooSource = replay_source  # what server.app.build_service makes
    with no_network():
        return serve(args.server_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
