"""Upgrading a previous-layout cache as users do: `python -m server migrate`, or a server started on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from dataprovider import protocol
from dataprovider.enums import DataResolution
from dataprovider.notebook.launcher import free_port, start_server, stop
from tests.support.frames import assert_same_frame
from tests.support.old_cache import DATASETS, old_file, write_old_cache, write_old_file

ROOT = Path(__file__).resolve().parents[2]


def migrate_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", "migrate", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_migrate_prints_a_line_per_dataset_and_a_summary(tmp_path):
    written = write_old_cache(tmp_path)
    result = migrate_command("--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(lines[:-1]) == sorted(f"{t} {r.value}: converted, {len(f)} bars" for t, r, f, _ in written)
    assert lines[-1].startswith(f"{len(DATASETS)} datasets: {len(DATASETS)} converted, 0 already done, 0 quarantined")
    assert all(old_file(tmp_path / ".migrated", t, r).is_file() for t, r, _, _ in written)

    again = migrate_command("--data-dir", str(tmp_path))
    assert again.returncode == 0 and again.stdout.startswith("0 datasets: 0 converted")


def test_migrate_of_a_missing_directory_is_a_clear_error(tmp_path):
    result = migrate_command("--data-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and str(tmp_path / "nowhere") in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_migrate_has_its_own_help():
    result = subprocess.run(
        [sys.executable, "-m", "server", "migrate", "--help"], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m server migrate ")
    assert "  --data-dir " in result.stdout and ".migrated/" in result.stdout


def test_a_server_started_on_an_old_cache_serves_the_converted_bars(tmp_path):
    data_dir = tmp_path / "data"
    [(_, _, frame, meta), _] = write_old_cache(data_dir, [("SPY", "1d"), ("^GSPC", "1m")])
    spy = frame.iloc[-300:]  # fewer bars than the bundled sample, which the server loads where the cache has none
    write_old_file(data_dir, "SPY", DataResolution.DAY_01, spy, meta)
    port = free_port()
    args = ["--offline", "--data-dir", str(data_dir), "--log-file", str(tmp_path / "server.log")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = start_server(port, *args, log=tmp_path / "out", cwd=tmp_path, env=env)
    try:
        response = requests.get(
            f"http://127.0.0.1:{port}/api/data/SPY",
            params={"resolution": "1d", "period": "max", "format": "arrow", "local_only": "true"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert_same_frame(protocol.frame_from_arrow(response.content), spy)
    finally:
        stop(process)
    log = (tmp_path / "server.log").read_text()
    assert "converted the previous cache layout: 2 datasets: 2 converted" in log
    assert "SPY 1d: converted, 300 bars" in log
    assert not old_file(data_dir, "SPY", "1d").exists() and old_file(data_dir / ".migrated", "SPY", "1d").is_file()
