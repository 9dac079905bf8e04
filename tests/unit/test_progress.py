"""Progress reporters: mode resolution, the summary line, the text bar, the widget, and a real kernel."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dataprovider import protocol
from dataprovider.client.batches import ProgressOrderer
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.errors import (
    ConnectionFailedError,
    DataProviderError,
    InvalidRequestError,
    NotCachedError,
    SymbolNotFoundError,
)
from dataprovider.notebook.progress import (
    ENV_VAR,
    BatchSummary,
    Reporter,
    TextReporter,
    WidgetReporter,
    make_reporter,
    resolve_mode,
)
from server.answers import answer_batch
from tests.support.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]

NOT_CACHED = NotCachedError("XYZ 1d is not in the cache", ticker="XYZ")


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def no_ipywidgets(monkeypatch):
    """ipywidgets cannot be imported (as if not installed)."""
    monkeypatch.setitem(sys.modules, "ipywidgets", None)


def feed(
    reporter: Reporter, clock: FakeClock, outcomes: list[tuple[str, int | DataProviderError]], total: int | None = None
) -> None:
    """Report ``(ticker, rows or error)`` outcomes as the client does: server payloads through ProgressOrderer.

    Half a second passes before each ticker finishes; ``total`` defaults to the number of outcomes.
    """
    orderer = ProgressOrderer(reporter.update)
    for index, (ticker, outcome) in enumerate(outcomes, 1):
        clock.advance(0.5)
        entry = outcome if isinstance(outcome, DataProviderError) else {"rows": outcome}
        orderer.add(
            protocol.progress_reply("r", [protocol.progress_item(ticker, index, total or len(outcomes), entry)])
        )


# --------------------------------------------------------------- resolve_mode
@pytest.mark.parametrize(
    ("progress", "mode"),
    [("text", "text"), ("TEXT", "text"), ("off", "off"), (False, "off"), (None, "off")],
)
def test_explicit_modes_need_no_detection(progress, mode):
    assert resolve_mode(progress, in_kernel=True) == mode
    assert resolve_mode(progress, in_kernel=False, stream=io.StringIO()) == mode


def test_auto_is_a_widget_in_a_kernel_else_text_on_a_terminal_else_off():
    assert resolve_mode("auto", in_kernel=True) == "widget"
    assert resolve_mode("auto", in_kernel=False, stream=Terminal()) == "text"
    assert resolve_mode("auto", in_kernel=False, stream=io.StringIO()) == "off"
    assert resolve_mode(in_kernel=False, stream=io.StringIO()) == "off"  # 'auto' is the default


def test_true_is_a_widget_in_a_kernel_else_text():
    assert resolve_mode(True, in_kernel=True) == "widget"
    assert resolve_mode(True, in_kernel=False, stream=io.StringIO()) == "text"


def test_widget_is_honoured_outside_a_kernel():
    assert resolve_mode("widget", in_kernel=False) == "widget"


@pytest.mark.usefixtures("no_ipywidgets")
def test_without_ipywidgets_widgets_become_text(caplog):
    with caplog.at_level(logging.DEBUG, logger="dataprovider.notebook.progress"):
        assert resolve_mode("widget", in_kernel=False) == "text"
    assert "ipywidgets cannot be imported" in caplog.text
    assert resolve_mode(True, in_kernel=True) == "text"
    # In a kernel the text bar still shows in the cell, though its stderr is no terminal.
    assert resolve_mode("auto", in_kernel=True, stream=io.StringIO()) == "text"


def test_environment_replaces_auto_only(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "text")
    assert resolve_mode("auto", in_kernel=True) == "text"
    monkeypatch.setenv(ENV_VAR, "off")
    assert resolve_mode("auto", in_kernel=True) == "off"
    assert resolve_mode("text", in_kernel=True) == "text"
    assert resolve_mode(True, in_kernel=True) == "widget"
    monkeypatch.setenv(ENV_VAR, "True")
    assert resolve_mode("auto", in_kernel=False, stream=io.StringIO()) == "text"
    monkeypatch.setenv(ENV_VAR, "  ")
    assert resolve_mode("auto", in_kernel=False, stream=io.StringIO()) == "off"


@pytest.mark.parametrize("progress", ["bar", 1, "yes"])
def test_unknown_values_are_refused(progress, monkeypatch):
    with pytest.raises(ValueError, match="progress must be"):
        resolve_mode(progress)
    monkeypatch.setenv(ENV_VAR, str(progress))
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_mode("auto")


def test_a_kernel_is_detected_from_the_running_ipython_shell(monkeypatch):
    ipython = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # ZMQInteractiveShell has one
    assert resolve_mode("auto", stream=io.StringIO()) == "widget"
    ipython.get_ipython = lambda: types.SimpleNamespace()  # a terminal IPython shell has none
    assert resolve_mode("auto", stream=io.StringIO()) == "off"
    ipython.get_ipython = lambda: None  # IPython imported, no shell running
    assert resolve_mode("auto", stream=io.StringIO()) == "off"


def test_detection_does_not_import_ipython(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert resolve_mode("auto", stream=io.StringIO()) == "off"
    assert "IPython" not in sys.modules


# ------------------------------------------------------------ summary line
def test_summary_line():
    assert str(BatchSummary(4, {"XYZ": ("NOT_CACHED", NOT_CACHED.message)}, 412, 0.123)) == (
        "4 tickers, 1 failed (XYZ: not cached), 0.12 s"
    )
    assert str(BatchSummary(4, {}, 412, 0.123)) == "4 tickers, 0.12 s"
    assert str(BatchSummary(1, {}, 92, 3.14)) == "1 ticker, 3.1 s"
    assert str(BatchSummary(0, {}, 0, 0.0)) == "0 tickers, 0.00 s"


def test_summary_names_three_failures_then_counts_the_rest():
    errors = [
        InvalidRequestError("'$$' is not a ticker", code="INVALID_TICKER"),
        NOT_CACHED,
        SymbolNotFoundError("Yahoo has no symbol QQQQ"),
        NOT_CACHED,
        NOT_CACHED,
    ]
    failed = {ticker: (error.code, error.message) for ticker, error in zip("ABCDE", errors, strict=True)}
    assert str(BatchSummary(5, dict(list(failed.items())[:3]), 0, 0.5)) == (
        "5 tickers, 3 failed (A: invalid ticker, B: not cached, C: symbol not found), 0.50 s"
    )
    assert str(BatchSummary(9, failed, 0, 12.25)) == (
        "9 tickers, 5 failed (A: invalid ticker, B: not cached, C: symbol not found, +2 more), 12.2 s"
    )


# ------------------------------------------------------------ reporters
def test_text_bar_is_rewritten_in_place_and_ends_with_the_summary():
    clock, stream = FakeClock(), io.StringIO()
    reporter = make_reporter("text", 3, stream=stream, clock=clock)
    assert isinstance(reporter, TextReporter)
    feed(reporter, clock, [("SPY", 2519), ("XYZ", NOT_CACHED), ("AAPL", 3379)])
    summary = reporter.finish()
    assert stream.getvalue() == (
        "\r[--------------------] 0/3  0 rows  0.00 s"
        "\r[######--------------] 1/3  SPY  2,519 rows  0.50 s"
        "\r[#############-------] 2/3  XYZ  2,519 rows  1.0 s  1 failed"
        "\r[####################] 3/3  AAPL  5,898 rows  1.5 s  1 failed"
        "\n3 tickers, 1 failed (XYZ: not cached), 1.5 s\n"
    )
    assert summary == BatchSummary(3, {"XYZ": ("NOT_CACHED", NOT_CACHED.message)}, 5898, 1.5)


def test_redraws_are_spaced_but_the_first_failure_and_the_end_always_show():
    clock, stream = FakeClock(), io.StringIO()
    reporter = make_reporter("text", 100, stream=stream, clock=clock)
    for index in range(1, 101):  # 100 tickers finishing at the same instant
        status = "error" if index == 40 else "ok"
        error = {"code": "NOT_CACHED", "message": "m"} if index == 40 else None
        reporter.update(
            {"ticker": f"T{index}", "index": index, "total": 100, "status": status, "rows": 1, "error": error}
        )
    drawn = [line.split("]")[1].split()[0] for line in stream.getvalue().split("\r")[2:]]
    assert drawn == ["1/100", "40/100", "100/100"]
    assert reporter.done == 100 and reporter.rows == 99  # every update counted, shown or not


def test_text_bar_blanks_what_a_shorter_line_leaves():
    clock, stream = FakeClock(), io.StringIO()
    reporter = make_reporter("text", 2, title="1d", stream=stream, clock=clock)
    feed(reporter, clock, [("BTC-USD", 1781), ("SPY", 0)])
    first, second = stream.getvalue().split("\r")[2:]
    assert first == "1d [##########----------] 1/2  BTC-USD  1,781 rows  0.50 s"
    assert second == "1d [####################] 2/2  SPY  1,781 rows  1.0 s".ljust(len(first))


def test_off_reporter_logs_the_summary_and_prints_nothing(capsys, caplog):
    clock = FakeClock()
    reporter = make_reporter("off", 2, clock=clock)
    with caplog.at_level(logging.INFO, logger="dataprovider.notebook.progress"):
        feed(reporter, clock, [("SPY", 2519), ("XYZ", NOT_CACHED)])
        reporter.finish()
    assert type(reporter) is Reporter
    assert capsys.readouterr() == ("", "")
    assert caplog.messages == ["2 tickers, 1 failed (XYZ: not cached), 1.0 s"]


def test_a_request_that_fails_as_a_whole_counts_the_rest_unfinished():
    clock = FakeClock()
    reporter = make_reporter("off", 4, clock=clock)
    feed(reporter, clock, [("SPY", 2519)], total=4)
    summary = reporter.finish(ConnectionFailedError("the connection was lost"))
    assert str(summary) == "4 tickers, 3 unfinished (connection failed), 0.50 s"
    assert str(make_reporter("off", 2, clock=clock).finish(KeyboardInterrupt())) == (
        "2 tickers, 2 unfinished (KeyboardInterrupt), 0.00 s"
    )


def test_widget_turns_red_at_the_first_failure_and_ends_full(capsys):
    clock = FakeClock()
    reporter = make_reporter("widget", 3, title="1d bars", clock=clock)
    assert isinstance(reporter, WidgetReporter)
    assert (reporter.bar.value, reporter.bar.max, reporter.bar.bar_style) == (0, 3, "")
    assert reporter.bar.description == "1d bars"
    orderer = ProgressOrderer(reporter.update)
    styles = []
    for index, (ticker, outcome) in enumerate([("SPY", {"rows": 2519}), ("XYZ", NOT_CACHED)], 1):
        orderer.add(protocol.progress_reply("r", [protocol.progress_item(ticker, index, 3, outcome)]))
        styles.append((reporter.bar.value, reporter.bar.bar_style))
    assert styles == [(1, ""), (2, "danger")]
    text = reporter.text.value
    assert "<b>2/3</b>" in text and "XYZ" in text and "2,519 rows" in text
    assert "1 failed: " in text and "XYZ: not cached" in text and 'title="XYZ 1d is not in the cache"' in text
    orderer.add(protocol.progress_reply("r", [protocol.progress_item("AAPL", 3, 3, {"rows": 3379})]))
    summary = reporter.finish()
    assert (reporter.bar.value, reporter.bar.max, reporter.bar.bar_style) == (3, 3, "danger")
    assert reporter.text.value.startswith("3 tickers, 1 failed (XYZ: not cached), 0.00 s<br>")
    assert capsys.readouterr().out.endswith(f"\n{summary}\n")  # after the widget's repr: no kernel here


def test_widget_turns_green_when_all_succeed():
    clock = FakeClock()
    reporter = make_reporter("widget", 2, clock=clock)
    feed(reporter, clock, [("SPY", 2519), ("AAPL", 3379)])
    assert (reporter.bar.value, reporter.bar.bar_style) == (2, "")
    reporter.finish()
    assert (reporter.bar.value, reporter.bar.max, reporter.bar.bar_style) == (2, 2, "success")
    assert reporter.text.value == "2 tickers, 1.0 s"


def test_widget_ends_full_and_red_when_the_request_fails():
    reporter = make_reporter("widget", 3, clock=FakeClock())
    reporter.finish(ConnectionFailedError("the connection was lost"))
    assert (reporter.bar.value, reporter.bar.max, reporter.bar.bar_style) == (3, 3, "danger")


@pytest.mark.usefixtures("no_ipywidgets")
def test_widget_falls_back_to_text_without_ipywidgets():
    clock, stream = FakeClock(), io.StringIO()
    reporter = make_reporter("widget", 1, stream=stream, clock=clock)
    assert isinstance(reporter, TextReporter)
    feed(reporter, clock, [("SPY", 2519)])
    reporter.finish()
    assert stream.getvalue().endswith("1/1  SPY  2,519 rows  0.50 s\n1 ticker, 0.50 s\n")


def test_reporter_follows_a_real_batch_answered_from_the_sample_cache(tmp_path, sample_cache):
    """SPY (2519 rows) and AAPL (3379) are cached 1d sample datasets; XYZ is not cached."""
    shutil.copytree(sample_cache, tmp_path / "data")
    service = DataService(DeltaStore(tmp_path / "data"))
    clock = FakeClock()
    reporter = make_reporter("off", 3, clock=clock)
    orderer = ProgressOrderer(reporter.update)
    try:
        payload = {"request_id": "r", "tickers": ["SPY", "AAPL", "XYZ"], "period": "max", "local_only": True}
        reply = answer_batch(service, payload, orderer.add)
    finally:
        service.close()
    summary = reporter.finish()
    assert summary.rows == 2519 + 3379 == sum(result["rows"] for result in reply["results"].values())
    assert summary.failed == {"XYZ": ("NOT_CACHED", reply["errors"]["XYZ"]["message"])}
    assert str(summary) == "3 tickers, 1 failed (XYZ: not cached), 0.00 s"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="resolve_mode"):
        make_reporter("auto", 1)


# ------------------------------------------------------------ a real kernel
KERNEL_CELL = """\
import sys
from dataprovider import protocol
from dataprovider.errors import NotCachedError
from dataprovider.notebook.progress import make_reporter, resolve_mode

print(sys.prefix)
mode = resolve_mode()
reporter = make_reporter(mode, 3, title="1d bars", clock=lambda: 0.0)
outcomes = [("SPY", {"rows": 2519}), ("XYZ", NotCachedError("XYZ 1d is not cached")), ("AAPL", {"rows": 3379})]
for index, (ticker, outcome) in enumerate(outcomes, 1):
    reporter.update(protocol.progress_reply("r", [protocol.progress_item(ticker, index, 3, outcome)]))
reporter.finish()
print(mode)
"""


def test_widget_in_a_real_kernel_saves_its_final_state():
    """The notebook's saved widget state and text output show the finished batch."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(KERNEL_CELL)])
    client = NotebookClient(
        nb, kernel_name="python3", timeout=60, store_widget_state=True, resources={"metadata": {"path": str(ROOT)}}
    )
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(client.setup_kernel())
        except Exception as error:  # no kernelspec, or the kernel died or timed out while starting
            pytest.skip(f"no Jupyter kernel 'python3' could start: {type(error).__name__}: {error}")
        client.execute_cell(nb.cells[0], 0)
        client.set_widgets_metadata()

    printed = "".join(output.get("text", "") for output in nb.cells[0].outputs if output.output_type == "stream")
    assert printed == f"{sys.prefix}\n3 tickers, 1 failed (XYZ: not cached), 0.00 s\nwidget\n"
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    (bar,) = [model["state"] for model in states if model["model_name"] == "IntProgressModel"]
    assert (bar["value"], bar["max"], bar["bar_style"], bar["description"]) == (3, 3, "danger", "1d bars")
    (text,) = [model["state"] for model in states if model["model_name"] == "HTMLModel"]
    assert text["value"].startswith("3 tickers, 1 failed (XYZ: not cached), 0.00 s")
