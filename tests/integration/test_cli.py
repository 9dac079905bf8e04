"""The server process as users start it: `python -m server`, its flags, signals and the import command."""

from __future__ import annotations

import doctest
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from dataprovider import DataProviderLocal
from dataprovider.engine.store import DeltaStore
from dataprovider.notebook.launcher import free_port, start_server
from dataprovider.sources.sample import sample_entries
from server import __main__ as cli
from server.__main__ import parse_args, settings_from
from server.app import build_service

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "data" / "sample-sources"


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``python -m server`` on a free port over ``tmp_path/data``; its console output goes to ``tmp_path/out``."""
    port = free_port()
    files = ["--data-dir", str(tmp_path / "data"), "--log-file", str(tmp_path / "server.log")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return start_server(port, *files, *args, log=tmp_path / "out", cwd=tmp_path, env=env), f"http://127.0.0.1:{port}"


def test_serves_sample_data_without_a_terminal_and_stops_on_sigterm(tmp_path):
    process, url = start(tmp_path, "--offline")
    try:
        provider = DataProviderLocal(url, timeout=10)
        df = provider.get_data_socket("SPY", "1d", "1y", local_only=True)
        assert df is not None and len(df) > 200
        assert len(provider.get_instruments_local()) == len(sample_entries())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    output = (tmp_path / "out").read_text()
    assert process.returncode == 0, output
    assert "serving http://127.0.0.1" in output and "shutting down" in output
    assert "serving http://127.0.0.1" in (tmp_path / "server.log").read_text()
    info = DeltaStore(tmp_path / "data").info("SPY", "1d")  # the sample data was seeded into the data dir
    assert info.path == tmp_path / "data" / "1d" / "SPY" and (info.path / "_delta_log").is_dir()
    assert info.rows >= len(df) and info.meta.source == "sample"


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
                "--log-file",
                "",
                "--offline",
                "--no-samples",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_import_a_yahoo_csv_then_serve_it(tmp_path):
    data_dir = tmp_path / "data"
    csv = tmp_path / "intc.csv"
    shutil.copy(RAW / "INTC_1d_1995-01-03_2004-04-08.csv", csv)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "import",
            str(csv),
            "--ticker",
            "intc",
            "--resolution",
            "1d",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 2335 bars of INTC 1d (America/New_York)" in result.stdout
    frame = DeltaStore(data_dir).read("INTC", "1d")
    assert len(frame) == 2335 and frame.index[0] == pd.Timestamp("1995-01-03", tz="America/New_York")
    assert DeltaTable(str(data_dir / "1d" / "INTC")).to_pyarrow_table().num_rows == 2335  # as any Delta reader sees it


def test_import_of_an_unreadable_file_says_why(tmp_path):
    bad = tmp_path / "notes.csv"
    bad.write_text("hello,world\n1,2\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "import",
            str(bad),
            "--ticker",
            "SPY",
            "--resolution",
            "1d",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "column" in result.stderr.lower()
    assert DeltaStore(tmp_path / "data").info("SPY", "1d") is None and not (tmp_path / "data" / "1d" / "SPY").exists()


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_console_script(argv):
    script = Path(sys.executable).parent / "dataprovider-server"
    result = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and ("dataprovider" in result.stdout)


def help_of(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server", *argv], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_lists_the_serve_options_and_the_commands():
    text = help_of("--help")
    options, _, commands = text.partition("\ncommands:\n")
    for flag in ("--port", "--host", "--token", "--data-dir", "--source", "--offline", "--replay", "--max-in-flight"):
        assert f"  {flag} " in options, flag
    listed = re.findall(r"^    (\S+)", commands, flags=re.MULTILINE)  # wrapped help lines are indented further
    assert listed == ["serve", "import", "migrate"]


@pytest.mark.parametrize(("command", "flag"), [("serve", "--token"), ("import", "--ticker"), ("migrate", "--data-dir")])
def test_each_command_has_its_own_help(command, flag):
    text = help_of(command, "--help")
    assert text.startswith(f"usage: python -m server {command} ") and f"  {flag} " in text


def test_the_command_lines_examples_run():
    assert doctest.testmod(cli, optionflags=doctest.ELLIPSIS).failed == 0


def test_refresh_intervals_are_flags_that_reach_the_service(tmp_path):
    args = ["--offline", "--no-samples", "--data-dir", str(tmp_path), "--min-refresh-intraday", "5"]
    service = build_service(settings_from(parse_args([*args, "--min-refresh-daily", "0.5"])))
    try:
        assert service.policy.min_interval_intraday == pd.Timedelta(seconds=5)
        assert service.policy.min_interval_daily == pd.Timedelta(milliseconds=500)
    finally:
        service.close()
    defaults = settings_from(parse_args([])).refresh
    assert (defaults.min_interval_intraday, defaults.min_interval_daily) == (
        pd.Timedelta(minutes=1),
        pd.Timedelta(minutes=5),
    )


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_refresh_interval_must_be_a_positive_number(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--min-refresh-daily", value])
    assert exit_info.value.code == 2 and "--min-refresh-daily" in capsys.readouterr().err
