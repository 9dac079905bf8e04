"""Load: 50 clients at once against one server process, every reply checked against a direct read of the cache.

The server runs as users run it (``python -m server --offline``, its own
process) on a loopback port, over a copy of the bundled sample data. Each client
is a thread with its own :class:`DataProviderLocal` and persistent connection,
asking in a loop, for ``$DATAPROVIDER_LOAD_SECONDS`` (default 60), a seeded mix
of single requests (every cached ticker and resolution, resolutions derived from
finer ones, periods, limits, date windows) and batches. Threads, not processes:
on the two cores a CI runner has, the server takes one and more client
processes would only share the other (at about 150 MB each); the latencies
therefore include the clients' own time to decode and check frames.

Every reply must equal what :class:`DataService` reads from the same cache files
in this process (the reference), no request may fail or lose its reply, and no
reply may come twice (the client logs a reply nobody awaits). The figures, p50 and
p99 latency per kind of request and the server's peak memory (``VmHWM``), are
printed (also without ``-s``) and written to ``test-artifacts/load.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataprovider import DataProviderLocal, protocol
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.errors import DataProviderError
from dataprovider.notebook.launcher import free_port, start_server, stop
from dataprovider.protocol.query import BarsQuery
from dataprovider.sources.sample import sample_entries
from tests.support.frames import assert_same_frame

pytestmark = pytest.mark.load

REPO = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("DATAPROVIDER_LOAD_SECONDS", "60"))
CLIENTS = 50
#: Requests one client makes at most (the run is bounded by time first).
MAX_REQUESTS = 100_000
#: Resolutions the cache lacks, derived from a finer cached one (keyed by the cached one); a fifth of the
#: requests ask for one of them (resampling costs the server more than a read).
DERIVED = {"1m": ["5m", "30m", "1h"], "1d": ["1wk", "1mo"]}
PERIODS = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
LIMITS = [None, None, 1, 10, 100, 1000, 5000]


@dataclass(frozen=True)
class Ask:
    """One request of the mix, and what its reply must hold."""

    kind: str  # "single" or "batch"
    payload: dict
    expected: dict[str, pd.DataFrame]  # ticker -> frame


def _window(rng: random.Random, first: pd.Timestamp, last: pd.Timestamp) -> dict:
    """A period, and sometimes date bounds inside the dataset's span."""
    fields: dict = {"period": rng.choice(PERIODS), "limit": rng.choice(LIMITS)}
    if rng.random() < 0.25:
        start = first + (last - first) * rng.random()
        fields["time_start"] = start.strftime("%Y-%m-%d")
        if rng.random() < 0.5:
            fields["time_end"] = (start + (last - start) * rng.random()).strftime("%Y-%m-%d")
    return fields


def build_mix(service: DataService, seed: int = 20240101) -> list[Ask]:
    """A seeded mix of single requests and batches, each with its expected frames (read by ``service``).

    Only requests the cache answers are kept (a resampled window with no bars is
    NO_DATA, for instance): the run expects no errors.
    """
    rng = random.Random(seed)
    entries = sample_entries()
    cached = [(e, e.resolution.value) for e in entries]
    derived = [(e, res) for e in entries for res in DERIVED.get(e.resolution.value, [])]
    daily = sorted({e.ticker for e in entries if e.resolution.value == "1d"})
    first = min(e.first for e in entries if e.resolution.value == "1d")
    last = max(e.last for e in entries if e.resolution.value == "1d")
    mix: list[Ask] = []

    def add(kind: str, payload: dict, queries: dict[str, BarsQuery]) -> None:
        try:
            expected = {ticker: service.get_bars(query).bars.to_frame() for ticker, query in queries.items()}
        except DataProviderError:
            return
        mix.append(Ask(kind, payload, expected))

    while len(mix) < 240:
        entry, resolution = rng.choice(derived if rng.random() < 0.2 else cached)
        payload = {"ticker": entry.ticker, "resolution": resolution, **_window(rng, entry.first, entry.last)}
        add("single", payload, {entry.ticker: protocol.parse_data_request({**payload, "local_only": True}).query})
    while len(mix) < 320:
        tickers = rng.sample(daily, rng.randint(2, 8))
        resolution = "1wk" if rng.random() < 0.2 else "1d"
        payload = {"tickers": tickers, "resolution": resolution, **_window(rng, first, last)}
        query = protocol.parse_batch_request({**payload, "local_only": True}).query
        add("batch", payload, {ticker: query.for_ticker(ticker) for ticker in tickers})
    return mix


class ReplyCounter(logging.Handler):
    """Counts replies the client received for requests nobody awaited (a second reply, or a late one)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.unawaited = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("dropping "):
            self.unawaited += 1


def memory_mb(pid: int, field: str) -> float:
    """A process's ``VmRSS`` or ``VmHWM`` in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def run_client(url: str, mix: list[Ask], seed: int, deadline: float, results: dict, failures: list) -> None:
    """Ask the mix in a seeded order until ``deadline``; record latencies and any failure."""
    rng = random.Random(seed)
    latencies: dict[str, list[float]] = defaultdict(list)
    ticker_errors: list[dict] = []
    sent, ask = 0, None
    try:
        with DataProviderLocal(url, timeout=30, raise_errors=True) as provider:
            while time.monotonic() < deadline and sent < MAX_REQUESTS:
                ask = rng.choice(mix)
                sent += 1
                started = time.perf_counter()
                if ask.kind == "single":
                    frame = provider.get_data_socket(**ask.payload, local_only=True, auto_disconnect=False)
                    frames = {ask.payload["ticker"]: frame}
                else:
                    frames = provider.get_batch_data_socket(
                        **ask.payload,
                        local_only=True,
                        auto_disconnect=False,
                        progress=False,
                        error_callback=ticker_errors.append,
                    )
                latencies[ask.kind].append(time.perf_counter() - started)
                assert not ticker_errors, ticker_errors
                assert frames.keys() == ask.expected.keys(), (ask.payload, list(frames))
                for ticker, expected in ask.expected.items():
                    assert_same_frame(frames[ticker], expected)
    except BaseException as exc:  # reported by the test, with the request that failed
        failures.append(f"client {seed}, request {sent} ({ask}): {exc!r}"[:2000])
    results[seed] = (sent, latencies)


def report(figures: dict) -> str:
    """The figures as a small table."""
    lines = [
        f"load: {figures['clients']} clients for {figures['seconds']:.0f} s against one server process (loopback)",
        f"{'kind':<8} {'requests':>9} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for kind, row in figures["latency_ms"].items():
        rate = row["requests"] / figures["seconds"]
        lines.append(f"{kind:<8} {row['requests']:>9} {rate:>7.0f} {row['p50']:>8.1f} {row['p99']:>8.1f}")
    lines.append(
        f"errors {figures['errors']}, lost replies {figures['lost_replies']}, unawaited replies "
        f"{figures['unawaited_replies']}; server memory peak (VmHWM) {figures['server_peak_mb']:.0f} MB, "
        f"{figures['server_start_mb']:.0f} MB at the start"
    )
    return "\n".join(lines)


@pytest.mark.timeout(SECONDS + 120)
def test_fifty_clients_get_every_reply_whole(tmp_path, sample_cache, capsys, record_property):
    data_dir = tmp_path / "data"
    shutil.copytree(sample_cache, data_dir)
    mix = build_mix(DataService(DeltaStore(data_dir)))
    port, log = free_port(), tmp_path / "server.log"
    options = ["--data-dir", str(data_dir), "--offline", "--no-samples", "--log-file", "", "--log-level", "WARNING"]
    server = start_server(port, *options, log=log)
    client_log = logging.getLogger("dataprovider.client")
    counter, level = ReplyCounter(), client_log.level
    client_log.addHandler(counter)
    client_log.setLevel(logging.DEBUG)
    client_log.propagate = False  # its debug lines are for the counter, not for the test's captured log
    results: dict = {}
    failures: list[str] = []
    try:
        start_mb = memory_mb(server.pid, "VmRSS")
        started = time.monotonic()
        deadline = started + SECONDS
        url = f"http://127.0.0.1:{port}"
        threads = [
            threading.Thread(target=run_client, args=(url, mix, seed, deadline, results, failures))
            for seed in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        peak_mb = memory_mb(server.pid, "VmHWM")
    finally:
        client_log.removeHandler(counter)
        client_log.setLevel(level)
        client_log.propagate = True
        stop(server)

    latencies: dict[str, list[float]] = defaultdict(list)
    for _, per_kind in results.values():
        for kind, values in per_kind.items():
            latencies[kind] += values
    sent = sum(count for count, _ in results.values())
    answered = sum(len(values) for values in latencies.values())
    figures = {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": sent,
        "errors": len(failures),
        "lost_replies": sent - answered - len(failures),
        "unawaited_replies": counter.unawaited,
        "latency_ms": {
            kind: {
                "requests": len(values),
                "p50": round(float(np.percentile(values, 50)) * 1e3, 2),
                "p99": round(float(np.percentile(values, 99)) * 1e3, 2),
            }
            for kind, values in sorted(latencies.items(), key=lambda item: item[0] != "single")
        },
        "server_start_mb": round(start_mb, 1),
        "server_peak_mb": round(peak_mb, 1),
    }
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "load.json").write_text(json.dumps(figures, indent=2))
    record_property("load", json.dumps(figures))
    with capsys.disabled():  # shown in every run's output, -s or not
        print("\n" + report(figures))

    assert len(results) == CLIENTS
    assert not failures, failures[:5]
    assert figures["lost_replies"] == 0 and counter.unawaited == 0
    assert set(latencies) == {"single", "batch"} and answered > CLIENTS
    server_log = log.read_text()
    assert " ERROR " not in server_log and "Traceback" not in server_log, server_log[-3000:]
