"""Every tutorial in notebooks/ runs top to bottom in a real kernel against a real server on the sample data.

The notebooks are executed with nbclient in a kernel of this venv's Python (see
:mod:`tests.support.jupyter`), which reaches the test server through
``DATAPROVIDER_URL``. Any cell error fails the test. The final state of every
batch progress widget is read back from ``nb.metadata['widgets']`` and checked
against the summary line its cell printed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests.support.jupyter import KERNEL_NAME, jupyter_environment

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# A batch's summary line (notebook.progress.BatchSummary), e.g. "5 tickers, 1 failed (NOPE: not cached), 0.18 s".
SUMMARY = re.compile(r"^(?P<total>\d+) tickers?(?:, \d+ failed \((?P<failures>.*)\))?, \d+(?:\.\d+)? s$", re.MULTILINE)

# A Python warning as the kernel prints it: "...: DeprecationWarning: ...".
PYTHON_WARNING = re.compile(r"\b\w+Warning: ")

# The failures each notebook's batches are written to show: (tickers in the batch, what its summary names).
EXPECTED_FAILURES = {"02_batch_requests": [(5, "NOPE: not cached")]}

# The server each notebook needs, as Settings keywords: 05 subscribes to live bars, replayed from the cache
# at the speed the notebook's own ensure_server(arguments=['--replay', '5']) would start one with.
SERVER_SETTINGS = {"05_live": {"replay": 5}}

# What 05_live prints: (a line's pattern, how many lines match it).
LIVE_LINES = [
    (r"^\d{4}-\d{2}-\d{2} (forming|final) +seq \d+: open [\d.]+ high", 5),  # the first five updates
    (r"^\d{4}-\d{2}-\d{2} cached seq None: close", 3),  # history=3
    (r"^\d{4}-\d{2}-\d{2} live +seq \d+: close", 3),  # then three live final bars
    (r"^60 candles, \d{4}-\d{2}-\d{2} -> \d{4}-\d{2}-\d{2}, last close", 1),
    (r"^subscription closed: True$", 2),
]


@pytest.fixture
def kernel_environment(tmp_path, live_server, monkeypatch) -> Callable[..., Path]:
    """``start(**settings)``: an offline server on the sample data, and the environment a kernel started now
    inherits; returns the kernel's cwd. ``settings`` are server Settings (``replay=5``)."""

    def start(**settings) -> Path:
        server = live_server(**settings)
        for name, value in jupyter_environment(tmp_path / "jupyter", server.url).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        workdir = tmp_path / "work"
        workdir.mkdir()
        return workdir

    return start


def run_notebook(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Execute a copy of the notebook at ``path`` in ``workdir``; raise on the first cell error."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name=KERNEL_NAME,
        store_widget_state=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return nb


def stream_text(cell: nbformat.NotebookNode, name: str) -> str:
    return "".join(output.text for output in cell.get("outputs", []) if output.get("name") == name)


def shown_widgets(nb: nbformat.NotebookNode) -> list[tuple[dict, nbformat.NotebookNode]]:
    """``(saved model, cell)`` for every widget the notebook showed as a cell output."""
    models = nb.metadata["widgets"][WIDGET_STATE]["state"] if "widgets" in nb.metadata else {}
    return [
        (models[output.data[WIDGET_VIEW]["model_id"]], cell)
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if WIDGET_VIEW in output.get("data", {})
    ]


def progress_bars(nb: nbformat.NotebookNode) -> list[tuple[dict, dict, str]]:
    """``(bar state, status HTML state, the cell's stdout)`` for every batch progress widget the notebook showed."""
    models = nb.metadata["widgets"][WIDGET_STATE]["state"] if "widgets" in nb.metadata else {}
    found = []
    for box, cell in shown_widgets(nb):
        if box["model_name"] != "HBoxModel":
            continue
        children = [models[ref.removeprefix("IPY_MODEL_")] for ref in box["state"]["children"]]
        bars = [child["state"] for child in children if child["model_name"] == "IntProgressModel"]
        texts = [child["state"] for child in children if child["model_name"] == "HTMLModel"]
        assert len(bars) == len(texts) == 1, f"unexpected widget layout: {[c['model_name'] for c in children]}"
        found.append((bars[0], texts[0], stream_text(cell, "stdout")))
    return found


def figure_widgets(nb: nbformat.NotebookNode) -> list[list[dict]]:
    """The traces of every plotly FigureWidget the notebook showed, as its saved widget state holds them."""
    return [model["state"]["_widget_data"] for model, _ in shown_widgets(nb) if "_widget_data" in model["state"]]


def assert_live_bars_shown(nb: nbformat.NotebookNode) -> None:
    """05_live printed replayed updates and cached-then-live bars, and showed a live chart of 60 daily candles."""
    stdout = "\n".join(stream_text(cell, "stdout") for cell in nb.cells)
    for pattern, count in LIVE_LINES:
        assert len(re.findall(pattern, stdout, re.MULTILINE)) == count, f"{pattern!r} in:\n{stdout}"
    (chart,) = figure_widgets(nb)
    assert [(trace["type"], trace["name"]) for trace in chart] == [("candlestick", "BTC-USD"), ("bar", "Volume")]
    days = pd.DatetimeIndex(chart[0]["x"])  # date strings: what the browser draws
    assert len(days) == 60 and (days.to_series().diff().dropna() == pd.Timedelta(days=1)).all()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_and_every_batch_ends_with_its_summary(path, kernel_environment):
    nb = run_notebook(path, kernel_environment(**SERVER_SETTINGS.get(path.stem, {})))

    for cell in nb.cells:
        stderr = stream_text(cell, "stderr")
        assert not PYTHON_WARNING.search(stderr) and "Traceback" not in stderr, f"cell {cell.id} stderr:\n{stderr}"

    failures = []
    for bar, text, stdout in progress_bars(nb):
        (summary,) = SUMMARY.finditer(stdout)
        total = int(summary["total"])
        assert bar["value"] == bar["max"] == total, f"bar ended at {bar['value']}/{bar['max']}: {summary[0]}"
        assert bar["bar_style"] == ("danger" if summary["failures"] else "success"), summary[0]
        assert text["value"].startswith(html.escape(summary[0])), text["value"]
        if summary["failures"]:
            failures.append((total, summary["failures"]))
    assert failures == EXPECTED_FAILURES.get(path.stem, [])
    if path.stem == "05_live":
        assert_live_bars_shown(nb)


def test_the_tutorials_are_there():
    assert [path.name for path in NOTEBOOKS] == [
        "01_quick_start.ipynb",
        "02_batch_requests.ipynb",
        "03_charts.ipynb",
        "04_persistent_and_async.ipynb",
        "05_live.ipynb",
    ]
