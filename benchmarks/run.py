"""dataprovider's benchmark suite: the project measured side by side with its baselines, in one run.

    python benchmarks/run.py [--quick] [--json results.json] [--arcticdb-python PATH]

Starts the dataprovider server (``python -m server``, its own process, as users
run it) and a bare Flask-SocketIO echo server on free loopback ports, over a
temporary cache of generated data and the bundled sample's SPY daily bars (and,
for the ``pd.read_parquet`` baselines, one Parquet file of the same bars for each
dataset read directly, written the way the cache writes its data files), then
measures each goal of the performance work and prints a table of medians and
ratios (and writes them as JSON):

1. small request: the request users make, ``get_data_socket('SPY', '1d', '1y',
   local_only=True)`` on an open connection (252 rows out of the bundled sample's
   2,519), p50/p99, against the bare Socket.IO round trip (echo), the same request
   over REST, and ``pd.read_parquet`` of a file of the dataset's bars;
2. one-shot call: connect + request + disconnect (``get_data_socket``'s default);
3. large frame: 525,600 one-minute rows against ``pd.read_parquet`` of a file of
   the same bars in this process (the frames must be equal);
4. batch: 500 tickers x 252 daily rows with progress reporting, against ArcticDB
   ``read_batch`` of the same data (when an ArcticDB interpreter is given: it
   needs pandas < 3, so it runs in its own environment), 500 ``pd.read_parquet``
   calls, and REST;
5. slicing: one month out of ten years of minute bars, against a file of that
   month alone;
6. memory: the client's peak memory while decoding the large frame (in a fresh
   process), and the server's memory while 50 clients make requests at once;
7. live fan-out: 20 clients subscribed to one key of a second server replaying the
   cache (``--replay``): the updates every subscriber received out of those sent,
   and how far apart in time the subscribers received each one.

``--quick`` runs every measurement on small data with few repetitions, only to
check that the suite works (CI does this); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import datasets, storage  # noqa: E402
from dataprovider import DataProviderLocal  # noqa: E402
from dataprovider.enums import DataResolution  # noqa: E402
from dataprovider.notebook.launcher import free_port, start_process, start_server, stop  # noqa: E402


@dataclass
class Row:
    """One line of the results table (times in milliseconds, sizes in MB)."""

    goal: str
    measure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    ok: bool | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline_value else self.value / self.baseline_value


@dataclass(frozen=True)
class Sizes:
    """Data shapes and repetitions (full, or --quick)."""

    small_repeats: int = 1000
    one_shot_repeats: int = 50
    large_rows: int = 525_600
    large_repeats: int = 9
    batch_tickers: int = 500
    batch_repeats: int = 7
    slice_years: int = 10
    slice_repeats: int = 9
    load_clients: int = 50
    load_requests: int = 20
    live_subscribers: int = 20
    live_seconds: float = 10.0


QUICK = Sizes(
    small_repeats=30,
    one_shot_repeats=5,
    large_rows=20_000,
    large_repeats=3,
    batch_tickers=20,
    batch_repeats=3,
    slice_years=1,
    slice_repeats=3,
    load_clients=5,
    load_requests=3,
    live_subscribers=3,
    live_seconds=2.0,
)
#: Hourly bars a second the replaying server plays; each is sent forming 12 times (its minutes
#: in groups of 5), then final.
LIVE_SPEED = 10
LIVE_UPDATES_PER_BAR = 13
#: The small request: one year of the bundled sample's SPY daily bars (2,519 rows, 2007-12-31 .. 2017-12-29).
SMALL = ("SPY", "1d", "1y")
SMALL_ROWS = 252


# ----------------------------------------------------------------- helpers
def samples(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def side_by_side(fns: list[Callable[[], object]], repeats: int, warmup: int = 1, block: int = 50) -> list[list[float]]:
    """:func:`samples` of several calls, one list per call, taken in turns of ``block`` calls each.

    Taking turns, every call sees the machine in the same state over the run (these machines drift);
    turns of several calls keep one call's leftover work (its peer's threads finishing) from landing
    on the next call's timing.
    """
    for fn in fns:
        samples(fn, 0, warmup)
    times: list[list[float]] = [[] for _ in fns]
    for turn in range(0, repeats, block):
        for fn, taken in zip(fns, times, strict=True):
            taken += samples(fn, min(block, repeats - turn), warmup=1)
    return times


def ms(times: list[float], q: float = 50) -> float:
    return float(np.percentile(times, q)) * 1e3


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (or its peak, ``VmHWM``) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------ measurements
def small_requests(url: str, echo_url: str, files: Path, sizes: Sizes) -> list[Row]:
    provider = DataProviderLocal(url)
    provider.connect()
    ask = lambda: provider.get_data_socket(*SMALL, local_only=True, auto_disconnect=False)  # noqa: E731
    assert len(ask()) == SMALL_ROWS
    echo = socketio.Client()
    echo.connect(echo_url, transports=["websocket"])
    payload = {"request_id": "x", "ticker": "SPY", "resolution": "1d", "period": "1y"}
    ours, floor = side_by_side([ask, lambda: echo.call("echo", payload)], sizes.small_repeats, warmup=20)
    echo.disconnect()
    provider.disconnect()
    rest = samples(lambda: DataProviderLocal(url).get_data(*SMALL, local_only=True), 100, warmup=5)
    path = files / "1d" / "SPY.parquet"
    parquet = samples(lambda: pd.read_parquet(path), 100, warmup=5)
    p50, p99 = ms(ours), ms(ours, 99)
    return [
        Row(
            "1 small request",
            "SPY 1y p50, open connection",
            p50,
            "ms",
            "echo p50",
            ms(floor),
            "<= 2 ms and <= 2x echo",
            p50 <= 2 and p50 <= 2 * ms(floor),
        ),
        Row(
            "1 small request", "SPY 1y p99, open connection", p99, "ms", "echo p99", ms(floor, 99), "<= 5 ms", p99 <= 5
        ),
        Row("1 small request", "SPY 1y p50, open connection", p50, "ms", "REST p50", ms(rest)),
        Row("1 small request", "SPY 1y p50, open connection", p50, "ms", "read_parquet (2,519) p50", ms(parquet)),
    ]


def one_shot(url: str, sizes: Sizes) -> list[Row]:
    ask = lambda: DataProviderLocal(url).get_data_socket(*SMALL, local_only=True)  # noqa: E731
    times = samples(ask, sizes.one_shot_repeats, warmup=2)
    return [
        Row("2 one-shot call", "connect+request+disconnect p50", ms(times), "ms", target="<= 20 ms", ok=ms(times) <= 20)
    ]


def large_frame(url: str, files: Path, sizes: Sizes) -> list[Row]:
    provider = DataProviderLocal(url, timeout=120)
    provider.connect()
    path = files / "1m" / "LARGE.parquet"
    ours, theirs = [], []
    for _ in range(sizes.large_repeats):  # interleaved, so both see the same machine state
        started = time.perf_counter()
        frame = provider.get_data_socket("LARGE", "1m", "max", local_only=True, auto_disconnect=False)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        direct = pd.read_parquet(path)
        theirs.append(time.perf_counter() - started)
    provider.disconnect()
    equal = frame.equals(direct) and frame.index.name == direct.index.name and len(frame) == sizes.large_rows
    return [
        Row(
            "3 large frame",
            f"{sizes.large_rows:,} rows p50",
            ms(ours),
            "ms",
            "read_parquet p50",
            ms(theirs),
            "ratio <= 1.0, equal frame",
            equal and ms(ours) <= ms(theirs),
        )
    ]


def batch(url: str, files: Path, sizes: Sizes, arcticdb_python: str | None) -> list[Row]:
    tickers = [f"T{i:04d}" for i in range(sizes.batch_tickers)]
    provider = DataProviderLocal(url, timeout=120)
    provider.connect()
    seen = []

    def ask():
        with contextlib.redirect_stderr(io.StringIO()):  # the text progress bar
            frames = provider.get_batch_data_socket(
                tickers,
                "1d",
                "max",
                local_only=True,
                auto_disconnect=False,
                progress="text",
                progress_callback=seen.append,
            )
        assert len(frames) == len(tickers)

    ours = samples(ask, sizes.batch_repeats)
    provider.disconnect()
    assert len(seen) == len(tickers) * (sizes.batch_repeats + 1)
    paths = [files / "1d" / f"{t}.parquet" for t in tickers]
    parquet = samples(lambda: [pd.read_parquet(f) for f in paths], sizes.batch_repeats)
    rest_client = DataProviderLocal(url)
    rest = samples(lambda: [rest_client.get_data(t, "1d", "max", local_only=True) for t in tickers], 1, warmup=0)
    rows = [
        Row("4 batch", f"{len(tickers)} x 252 rows p50", ms(ours), "ms", target="<= 250 ms", ok=ms(ours) <= 250),
        Row("4 batch", f"{len(tickers)} x 252 rows p50", ms(ours), "ms", f"{len(tickers)} read_parquet", ms(parquet)),
        Row("4 batch", f"{len(tickers)} x 252 rows p50", ms(ours), "ms", f"{len(tickers)} REST GETs", ms(rest)),
    ]
    if arcticdb_python:
        with tempfile.TemporaryDirectory() as lmdb:
            probe = subprocess.run(
                [
                    arcticdb_python,
                    str(ROOT / "benchmarks" / "arcticdb_probe.py"),
                    str(files),
                    lmdb,
                    str(sizes.batch_repeats),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        arctic = json.loads(probe.stdout.strip().splitlines()[-1])["read_batch"]
        rows.append(
            Row(
                "4 batch",
                f"{len(tickers)} x 252 rows p50",
                ms(ours),
                "ms",
                "ArcticDB read_batch",
                ms(arctic),
                "faster than ArcticDB",
                ms(ours) < ms(arctic),
            )
        )
    return rows


def slicing(url: str, sizes: Sizes) -> list[Row]:
    provider = DataProviderLocal(url, timeout=120)
    provider.connect()
    month = dict(time_start="2024-06-01", time_end="2024-06-30", local_only=True, auto_disconnect=False)
    ours = samples(lambda: provider.get_data_socket("DECADE", "1m", "max", **month), sizes.slice_repeats)
    alone = samples(lambda: provider.get_data_socket("MONTH", "1m", "max", **month), sizes.slice_repeats)
    provider.disconnect()
    return [
        Row(
            "5 slicing",
            f"1 month of {sizes.slice_years}y of minutes p50",
            ms(ours),
            "ms",
            "1-month file p50",
            ms(alone),
            "ratio about 1",
            ms(ours) <= 2 * ms(alone),
        )
    ]


def memory(url: str, server_pid: int, sizes: Sizes) -> list[Row]:
    probe = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory_probe.py"), url, "LARGE"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    client = json.loads(probe.stdout)
    before = rss_mb(server_pid)
    errors: list[BaseException] = []

    def user(n: int) -> None:
        try:
            with DataProviderLocal(url, timeout=120) as provider:
                for i in range(sizes.load_requests):
                    if i % 2:
                        provider.get_batch_data_socket(
                            [f"T{j:04d}" for j in range(10)], local_only=True, progress=False
                        )
                    else:
                        provider.get_data_socket(*SMALL, local_only=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(sizes.load_clients)]
    peak = [before]

    def sample() -> None:
        while any(t.is_alive() for t in threads):
            peak.append(rss_mb(server_pid))
            time.sleep(0.01)

    for t in threads:
        t.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    for t in threads:
        t.join()
    sampler.join()
    if errors:
        raise errors[0]
    ratio = client["peak_mb"] / client["frame_mb"]
    return [
        Row("6 memory", "client peak while decoding / frame size", ratio, "x", target="<= 2x", ok=ratio <= 2),
        Row(
            "6 memory",
            f"server RSS, {sizes.load_clients} clients at once",
            max(peak),
            "MB",
            "server RSS before",
            before,
        ),
    ]


def live_fanout(url: str, sizes: Sizes) -> list[Row]:
    """Subscribers of one replayed key: did every one get every update, and how far apart in time."""
    received: dict[int, list[float]] = defaultdict(list)
    guard = threading.Lock()

    def on_bar(bar) -> None:
        stamp = time.perf_counter()
        with guard:
            received[bar.seq].append(stamp)

    providers = [DataProviderLocal(url, timeout=60) for _ in range(sizes.live_subscribers)]
    subscriptions = [provider.subscribe("LIVE", "1h", on_bar) for provider in providers]
    with guard:
        first_for_all = max(received, default=0) + 1  # updates sent once every subscriber had joined
    started = time.perf_counter()
    time.sleep(sizes.live_seconds)
    # Updates first received a second before the subscribers start leaving: every one should have them all.
    cutoff = time.perf_counter() - 1.0
    for provider in providers:
        provider.disconnect()
    sent = [seq for seq, times in received.items() if seq >= first_for_all and min(times) < cutoff]
    complete = [received[seq] for seq in sent if len(received[seq]) == len(subscriptions)]
    spread = [max(times) - min(times) for times in complete]
    share = len(complete) / max(1, len(sent))
    rate = len(sent) / (cutoff - started)
    return [
        Row(
            "7 live",
            f"updates all {len(subscriptions)} subscribers got / sent",
            share,
            "x",
            target="1.0 (nothing lost)",
            ok=share == 1.0,
        ),
        Row(
            "7 live",
            "updates a second each subscriber got",
            rate,
            "/s",
            f"replay pace ({LIVE_SPEED} bars/s x {LIVE_UPDATES_PER_BAR})",
            LIVE_SPEED * LIVE_UPDATES_PER_BAR,
        ),
        Row("7 live", f"spread between subscribers p50 ({len(sent)} updates)", ms(spread), "ms"),
        Row("7 live", "spread between subscribers p99", ms(spread, 99), "ms"),
    ]


# ------------------------------------------------------------------ report
def build_data(root: Path, files: Path, sizes: Sizes) -> None:
    """The cache under ``root``; under ``files``, ``<resolution>/<TICKER>.parquet`` of each dataset read directly."""
    d1, m1 = DataResolution.DAY_01, DataResolution.MINUTE_01

    def cached_and_as_file(ticker: str, resolution: DataResolution, frame: pd.DataFrame) -> None:
        datasets.write(root, ticker, resolution, frame)
        datasets.write_file(files / resolution.value / f"{ticker}.parquet", frame)

    cached_and_as_file("SPY", d1, datasets.sample("SPY", d1))
    for i in range(sizes.batch_tickers):
        cached_and_as_file(f"T{i:04d}", d1, datasets.daily(252, seed=i))
    cached_and_as_file("LARGE", m1, datasets.minutes_24x7(sizes.large_rows))
    decade = datasets.equity_minutes(sizes.slice_years)
    datasets.write(root, "DECADE", m1, decade)
    datasets.write(root, "MONTH", m1, decade.loc["2024-06-01":"2024-06-30"])
    datasets.write(root, "LIVE", m1, datasets.minutes_24x7(600 * 60))


def print_table(rows: list[Row]) -> None:
    header = f"{'goal':<16} {'measure':<42} {'value':>10}  {'baseline':<22} {'baseline':>10} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    for r in rows:
        base = "" if r.baseline_value is None else f"{r.baseline_value:10.2f}"
        ratio = "" if r.ratio is None else f"{r.ratio:7.2f}"
        verdict = {True: "ok", False: "MISSED", None: ""}[r.ok]
        print(
            f"{r.goal:<16} {r.measure:<42} {r.value:8.2f}{r.unit:>2}  {r.baseline:<22} {base:>10} {ratio:>7}  "
            f"{r.target} {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, few repetitions: only checks it runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--arcticdb-python",
        default=os.environ.get("ARCTICDB_PYTHON"),
        help="a Python with arcticdb installed, for the ArcticDB baseline",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    work = Path(tempfile.mkdtemp(prefix="dataprovider-bench-"))
    processes = []
    try:
        data_dir, files = work / "data", work / "files"
        build_data(data_dir, files, sizes)
        port, echo_port = free_port(), free_port()
        url, echo_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{echo_port}"
        arguments = [
            "--data-dir",
            str(data_dir),
            "--offline",
            "--no-samples",
            "--log-file",
            "",
            "--log-level",
            "WARNING",
        ]
        server = start_server(port, *arguments, log=work / "server.log", cwd=ROOT)
        processes.append(server)
        replay_port = free_port()
        replaying = ["--replay", str(LIVE_SPEED), *arguments]
        processes.append(start_server(replay_port, *replaying, log=work / "replay.log", cwd=ROOT))
        echo = [sys.executable, str(ROOT / "benchmarks" / "echo_server.py"), str(echo_port)]
        processes.append(
            start_process(echo, echo_url + "/socket.io/?EIO=4&transport=polling", work / "echo.log", cwd=ROOT)
        )
        rows = [
            *small_requests(url, echo_url, files, sizes),
            *one_shot(url, sizes),
            *large_frame(url, files, sizes),
            *batch(url, files, sizes, args.arcticdb_python),
            *slicing(url, sizes),
            *memory(url, server.pid, sizes),
            *live_fanout(f"http://127.0.0.1:{replay_port}", sizes),
            *(Row(**row) for row in storage.measure(args.quick)),
        ]
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    if args.json:
        report = {"quick": args.quick, "sizes": asdict(sizes), "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
