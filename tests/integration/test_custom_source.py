"""Sources as plug-ins: ``python -m server --source ...`` serving bars from a source the tests define.

The source is the worked example, examples/csv_folder_source.py, over a folder holding one CSV
file made from the bundled sample data; the bars are fetched with the real client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dataprovider import DataProviderLocal
from dataprovider.notebook.launcher import free_port, start_server, stop
from dataprovider.sources.sample import load_sample, sample_entries
from server.__main__ import parse_args
from server.source_loading import SourceLoadError, load_source

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "csv_folder_source.py"

# A plug-in package as pip would install it: a module, and a dist-info folder whose entry point names it.
PLUGIN = """
import os

from csv_folder_source import CsvFolderSource


def make_source():
    return CsvFolderSource(os.environ["DATAPROVIDER_CSV_DIR"], name="team-bars")
"""


@pytest.fixture
def acme(tmp_path) -> tuple[Path, pd.DataFrame]:
    """A folder of CSV files holding ``1d/acme.csv``: the last 300 daily bars of the SPY sample, and those bars."""
    spy = next(e for e in sample_entries() if e.ticker == "SPY" and e.resolution == "1d")
    bars = load_sample(spy).tail(300)
    folder = tmp_path / "bars"
    (folder / "1d").mkdir(parents=True)
    bars.to_csv(folder / "1d" / "acme.csv")
    return folder, bars


@pytest.fixture
def serve(tmp_path) -> Iterator:
    """``serve(*arguments, folder=None, path=())``: ``python -m server`` on a free port over a fresh data dir.

    ``folder`` becomes $DATAPROVIDER_CSV_DIR and ``path`` goes before the repository on $PYTHONPATH;
    returns the server's URL. Servers are stopped when the test ends.
    """
    processes: list[subprocess.Popen] = []

    def start(*arguments: str, folder: Path | None = None, path: tuple[Path, ...] = ()) -> str:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (*path, ROOT)))}
        if folder is not None:
            env["DATAPROVIDER_CSV_DIR"] = str(folder)
        files = ["--data-dir", str(tmp_path / f"data{len(processes)}"), "--log-file", "", "--no-samples"]
        log = tmp_path / f"out{len(processes)}"
        processes.append(start_server(port, *files, *arguments, log=log, cwd=tmp_path, env=env))
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        stop(process)


def plugin_folder(tmp_path: Path) -> Path:
    """A folder that, on the import path, holds an installed package registering ``team-bars``."""
    folder = tmp_path / "site"
    info = folder / "team_bars-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-bars\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[dataprovider.sources]\nteam-bars = team_bars:make_source\n")
    (folder / "team_bars.py").write_text(PLUGIN)
    shutil.copy(EXAMPLE, folder / "csv_folder_source.py")
    return folder


def test_a_source_in_a_py_file_serves_its_bars(tmp_path, acme, serve):
    folder, bars = acme
    source_file = tmp_path / "team_source.py"
    shutil.copy(EXAMPLE, source_file)
    url = serve("--source", f"{source_file}:make_source", folder=folder)
    provider = DataProviderLocal(url, timeout=20)
    replies: list[dict] = []

    window = provider.get_data_socket(
        "ACME", "1d", time_start="2017-03-01", time_end="2017-06-30", local_only=False, callback=replies.append
    )
    pd.testing.assert_frame_equal(window, bars.loc["2017-03-01":"2017-06-30"])
    # The history before the window is fetched on its own (the source cuts [start, end)) and joins the cache.
    everything = provider.get_data_socket("ACME", "1d", "max", local_only=False, callback=replies.append)
    pd.testing.assert_frame_equal(everything, bars)
    assert [reply["source"] for reply in replies] == ["csv-folder", "csv-folder"]
    assert provider.health()["upstream"] == "csv-folder"

    errors: list[dict] = []
    assert provider.get_data_socket("NOPE", "1d", "max", local_only=False, error_callback=errors.append) is None
    assert errors[0]["code"] == "SYMBOL_NOT_FOUND"
    assert f"put a file NOPE.csv in {folder / '1d'}" in errors[0]["message"]


def test_an_installed_entry_point_is_a_source_name(tmp_path, acme, serve):
    folder, bars = acme
    url = serve("--source", "team-bars", folder=folder, path=(plugin_folder(tmp_path),))
    replies: list[dict] = []
    provider = DataProviderLocal(url, timeout=20)
    frame = provider.get_data_socket("ACME", "1d", "max", local_only=False, callback=replies.append)
    pd.testing.assert_frame_equal(frame, bars)
    assert replies[0]["source"] == "team-bars"


@pytest.mark.parametrize("arguments", [(), ("--source", "yahoo")])
def test_yahoo_is_the_default_source(serve, arguments):
    url = serve(*arguments)
    assert DataProviderLocal(url).health()["upstream"] == "yahoo"


def test_an_unknown_name_exits_2_listing_the_installed_names(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "--source", "team-bar", "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (plugin_folder(tmp_path), ROOT)))},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m server")
    assert "error: argument --source: no source is named 'team-bar': the names are team-bars, yahoo" in result.stderr


def write(tmp_path: Path, code: str) -> str:
    """A .py file holding ``code``; returns its path."""
    path = tmp_path / "team_source.py"
    path.write_text(code)
    return str(path)


@pytest.mark.parametrize(
    ("code", "factory", "message"),
    [
        ("def make_source():\n    raise RuntimeError('the share is not mounted')\n", "make_source",
         "make_source failed to make the source: RuntimeError: the share is not mounted"),
        ("def make_source():\n    return 42\n", "make_source",
         "returned an object of type int, which is not a source: it has no `name` (a non-empty str) and no `fetch("),
        ("class Half:\n    name = 'half'\n\ndef make_source():\n    return Half()\n", "make_source",
         "returned an object of type Half, which is not a source: it has no `fetch(ticker, resolution, start, end)`"),
        ("def make_source():\n    pass\n", "make",
         "has no attribute 'make'; the functions and classes it defines are make_source"),
        ("SOURCE = 'yahoo'\n", "SOURCE", ":SOURCE is an object of type str, not callable"),
        ("import no_such_package_here\n", "make_source",
         "failed: ModuleNotFoundError: No module named 'no_such_package_here'"),
    ],
)  # fmt: skip
def test_a_py_file_that_gives_no_source_says_why(tmp_path, code, factory, message):
    with pytest.raises(SourceLoadError) as caught:
        load_source(f"{write(tmp_path, code)}:{factory}")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_here:make_source", "no module named 'no_such_module_here' can be imported"),
        ("missing.py:make_source", "file missing.py does not exist"),
        ("collections:", "lacks a module or a factory: give MODULE:FACTORY"),
        ("team-bars", "no source is named 'team-bars': the names are yahoo; or give MODULE:FACTORY"),
    ],
)
def test_a_spec_that_names_nothing_says_why(spec, message):
    with pytest.raises(SourceLoadError) as caught:
        load_source(spec)
    assert message in str(caught.value)


@pytest.mark.parametrize("flag", [["--offline"], ["--replay", "2"]])
def test_a_source_with_offline_or_replay_is_refused(capsys, flag):
    with pytest.raises(SystemExit) as caught:
        parse_args(["--source", "team-bars", *flag])
    assert caught.value.code == 2
    assert "argument --source: not allowed with --offline or --replay" in capsys.readouterr().err
