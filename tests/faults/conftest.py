"""Server processes for the fault tests: ``python -m server`` on the Yahoo replay (tests/support/replay_server.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataprovider.notebook.launcher import free_port, start_process, stop

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A ``python -m server`` process on the replay, and where it keeps things."""

    process: subprocess.Popen
    port: int
    data_dir: Path
    request_log: Path
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server_process(tmp_path, sample_cache) -> Iterator[Callable[..., ServerProcess]]:
    """``start(recordings=(), delay=0.0, port=None, data_dir=None)``: a server process, stopped after the test.

    A new data dir starts as a copy of the bundled sample data; ``delay`` makes each
    chart request wait that long for real; the chart requests are logged to
    ``request_log``. Pass ``port`` and ``data_dir`` of a stopped server to restart it.
    """
    started: list[ServerProcess] = []

    def start(
        recordings: tuple[str, ...] = (), *, delay: float = 0.0, port: int | None = None, data_dir: Path | None = None
    ) -> ServerProcess:
        n = len(started)
        if data_dir is None:
            data_dir = tmp_path / f"data{n}"
            shutil.copytree(sample_cache, data_dir)
        port = port or free_port()
        replay_args = [arg for name in recordings for arg in ("--recording", name)]
        log = tmp_path / f"requests{n}"
        command = [
            sys.executable,
            "-m",
            "tests.support.replay_server",
            *replay_args,
            "--delay",
            str(delay),
            "--request-log",
            str(log),
            "--",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-file",
            "",
            "--no-samples",
        ]
        output = tmp_path / f"server{n}.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = start_process(command, f"http://127.0.0.1:{port}/api/health", output, cwd=ROOT, env=env)
        started.append(ServerProcess(process, port, data_dir, log, output))
        return started[-1]

    yield start
    for server in started:
        stop(server.process)
