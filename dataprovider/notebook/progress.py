"""Progress of a batch request: a Jupyter widget, a text bar, or nothing.

The client picks a mode with :func:`resolve_mode`, creates a reporter with
:func:`make_reporter`, calls :meth:`Reporter.update` once per finished ticker
and :meth:`Reporter.finish` once at the end, all from the thread that made the
request. Socket threads never touch a reporter: since ipykernel 7, output and
widget updates sent from other threads no longer reach the right cell
(ipywidgets issue #4001). Nothing here starts threads or timers; the display
changes only when a ticker finishes.

Every batch ends with one summary line, such as
``4 tickers, 1 failed (XYZ: not cached), 0.12 s``, so that saved notebooks and
logs keep the outcome (a saved notebook shows a widget in its first state, or
not at all):

* ``'widget'`` prints it below the widget and shows it in the widget;
* ``'text'`` writes it to the stream after the bar;
* ``'off'`` logs it at INFO on the ``dataprovider.notebook.progress`` logger and prints nothing.

ipywidgets is optional: it is imported only when a widget is wanted, and
progress falls back to the text bar when it cannot be imported.

The module is longer than most (about 440 lines) because the three reporters share
one interface, one summary line and one mode choice; split apart, each would
repeat them.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "ENV_VAR",
    "MODES",
    "BatchSummary",
    "Reporter",
    "TextReporter",
    "WidgetReporter",
    "make_reporter",
    "resolve_mode",
]

logger = logging.getLogger(__name__)

#: Environment variable that replaces ``progress='auto'`` (same values as the argument).
ENV_VAR = "DATAPROVIDER_PROGRESS"

#: What :func:`resolve_mode` returns.
MODES = ("widget", "text", "off")

# Accepted spellings of the ``progress`` argument (and of ENV_VAR), lower-cased.
# 'best' is True: a widget where one can be shown, else text.
_CHOICES = {
    "auto": "auto",
    "true": "best",
    "widget": "widget",
    "text": "text",
    "off": "off",
    "false": "off",
    "none": "off",
}

#: Least time between two redraws of a progress display.
REDRAW_SECONDS = 0.1

# How many failed tickers the summary line names before "+N more".
_LISTED_FAILURES = 3


def _reason(code: str) -> str:
    """A short human form of an error code: 'NOT_CACHED' -> 'not cached'; other names stay as given."""
    return code.lower().replace("_", " ") if code.isupper() else code


def _seconds(seconds: float) -> str:
    """'0.12 s' under a second, '3.1 s' above."""
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"


def _plural(count: int, noun: str) -> str:
    """'1 ticker', '2,611 rows'."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


@dataclass(frozen=True)
class BatchSummary:
    """The outcome of one batch; ``str(summary)`` is its one summary line.

    Parameters
    ----------
    total : int
        Tickers in the batch.
    failed : dict
        ``{ticker: (code, message)}`` of the tickers that failed.
    rows : int
        Rows received for the tickers that succeeded.
    elapsed : float
        Seconds from the start of the batch to its end.
    unfinished : int
        Tickers never reported, because the request as a whole failed.
    error : tuple of (str, str), optional
        ``(code, message)`` of the error that ended the request early.

    Examples
    --------
    >>> str(BatchSummary(4, {"XYZ": ("NOT_CACHED", "XYZ 1d is not cached")}, 412, 0.123))
    '4 tickers, 1 failed (XYZ: not cached), 0.12 s'
    >>> str(BatchSummary(1, {}, 92, 3.14))
    '1 ticker, 3.1 s'
    >>> str(BatchSummary(4, {}, 92, 0.5, unfinished=3, error=("CONNECTION_FAILED", "lost")))
    '4 tickers, 3 unfinished (connection failed), 0.50 s'
    """

    total: int
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)
    rows: int = 0
    elapsed: float = 0.0
    unfinished: int = 0
    error: tuple[str, str] | None = None

    def __str__(self) -> str:
        parts = [_plural(self.total, "ticker")]
        if self.failed:
            named = [f"{ticker}: {_reason(code)}" for ticker, (code, _) in self.failed.items()]
            if len(named) > _LISTED_FAILURES:
                named[_LISTED_FAILURES:] = [f"+{len(named) - _LISTED_FAILURES} more"]
            parts.append(f"{len(self.failed)} failed ({', '.join(named)})")
        if self.unfinished or self.error:
            reason = f" ({_reason(self.error[0])})" if self.error else ""
            parts.append(f"{self.unfinished} unfinished{reason}")
        parts.append(_seconds(self.elapsed))
        return ", ".join(parts)


def _choice(value: object, source: str) -> str:
    """The ``_CHOICES`` value for a ``progress`` argument or ENV_VAR value, or ValueError."""
    key = str(value).strip().lower() if value is None or isinstance(value, bool | str) else None
    if key not in _CHOICES:
        raise ValueError(f"{source} must be 'auto', True, False, 'widget', 'text', 'off' or None, not {value!r}")
    return _CHOICES[key]


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel, whose IPython shell has a ``kernel``.

    IPython is looked up, not imported: a kernel has always imported it already.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _widgets_importable() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError as error:
        logger.debug("progress: no widget, ipywidgets cannot be imported (%s); using text", error)
        return False
    return True


def resolve_mode(progress: object = "auto", *, in_kernel: bool | None = None, stream: TextIO | None = None) -> str:
    """The progress mode for a ``progress`` argument: ``'widget'``, ``'text'`` or ``'off'``.

    Parameters
    ----------
    progress : {'auto', True, False, 'widget', 'text', 'off', None}
        ``'auto'`` (replaced by ``$DATAPROVIDER_PROGRESS`` when that is set):
        a widget in a Jupyter kernel, text there if ipywidgets is missing;
        elsewhere text when ``stream`` is a terminal, else off. ``True``: a
        widget in a kernel, else text. ``'widget'``: a widget wherever
        ipywidgets can be imported, else text. ``False``, ``None``, ``'off'``:
        no progress display (the summary line is still logged).
    in_kernel : bool, optional
        Whether this runs in a Jupyter kernel; detected when None.
    stream : file-like, optional
        Where the text bar would go; default ``sys.stderr``.

    Returns
    -------
    str
        One of :data:`MODES`.

    Raises
    ------
    ValueError
        If ``progress`` or ``$DATAPROVIDER_PROGRESS`` is none of the values above.

    Examples
    --------
    >>> resolve_mode("text"), resolve_mode(False), resolve_mode(None)
    ('text', 'off', 'off')
    """
    choice = _choice(progress, "progress")
    if choice == "auto" and os.environ.get(ENV_VAR, "").strip():
        choice = _choice(os.environ[ENV_VAR], f"${ENV_VAR}")
    if choice in ("text", "off"):
        return choice
    if in_kernel is None:
        in_kernel = _in_kernel()
    if (choice == "widget" or in_kernel) and _widgets_importable():
        return "widget"
    stream = stream if stream is not None else sys.stderr
    if choice == "auto" and not in_kernel and not (stream is not None and stream.isatty()):
        return "off"
    return "text"


class Reporter:
    """Counts a batch's finished tickers; shows nothing and logs the summary line (the ``'off'`` mode).

    :class:`TextReporter` and :class:`WidgetReporter` show the same counts.
    Create reporters with :func:`make_reporter`; call them from one thread.

    Attributes
    ----------
    total, done, rows : int
        Tickers in the batch, tickers finished so far, rows received so far.
    current : str or None
        The ticker that finished last.
    failed : dict
        ``{ticker: (code, message)}`` of the tickers that failed so far.
    """

    def __init__(self, total: int, *, title: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.title = title
        self.done = 0
        self.rows = 0
        self.current: str | None = None
        self.failed: dict[str, tuple[str, str]] = {}
        self._clock = clock
        self._started = clock()
        self._shown_at: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the reporter was created."""
        return self._clock() - self._started

    def update(self, progress: dict[str, Any]) -> None:
        """Count one finished ticker and show the new state.

        Parameters
        ----------
        progress : dict
            A progress dict as :class:`~dataprovider.client.batches.ProgressOrderer`
            passes it: ``ticker``, ``index`` (1-based, in order), ``total``,
            ``status`` ('ok' or 'error'), ``rows``, ``error`` (the error
            payload, with ``code`` and ``message``, or None).
        """
        self.done = int(progress["index"])
        self.total = int(progress.get("total", self.total))
        self.current = str(progress["ticker"])
        if progress["status"] == "error":
            error = progress.get("error") or {}
            self.failed[self.current] = (str(error.get("code") or "INTERNAL"), str(error.get("message") or ""))
        else:
            self.rows += int(progress.get("rows") or 0)
        # Redraw at most every REDRAW_SECONDS (a batch answered from memory finishes hundreds of
        # tickers in a blink), but always for the first update, the first failure and the last.
        now = self._clock()
        first_failure = progress["status"] == "error" and len(self.failed) == 1
        if self._shown_at is None or first_failure or self.done >= self.total or now - self._shown_at >= REDRAW_SECONDS:
            self._shown_at = now
            self._show()

    def finish(self, error: BaseException | None = None) -> BatchSummary:
        """End the batch: show its summary line and return the summary. Call it once.

        Parameters
        ----------
        error : Exception, optional
            What ended the request early, if it failed as a whole; tickers not
            reported by then count as unfinished.
        """
        reason = None
        if error is not None:
            reason = (getattr(error, "code", None) or type(error).__name__, getattr(error, "message", str(error)))
        summary = BatchSummary(
            self.total, dict(self.failed), self.rows, self.elapsed, max(self.total - self.done, 0), reason
        )
        self._end(summary)
        return summary

    def _show(self) -> None:
        """Show the counts after an update (nothing in 'off' mode)."""

    def _end(self, summary: BatchSummary) -> None:
        """Show the final state and the summary line."""
        logger.info("%s%s", f"{self.title}: " if self.title else "", summary)


class TextReporter(Reporter):
    """A one-line bar on a text stream, rewritten in place with ``\\r``.

    ``[##########----------] 2/4  SPY  2,611 rows  0.80 s  1 failed``; at the end
    a newline and the summary line.
    """

    width = 20

    def __init__(
        self,
        total: int,
        *,
        title: str | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(total, title=title, clock=clock)
        self.stream = stream if stream is not None else sys.stderr
        self._shown = 0  # length of the line on screen, to blank out what a shorter line leaves
        self._show()

    def line(self) -> str:
        """The bar line for the current counts."""
        filled = self.width * self.done // self.total if self.total else self.width
        parts = [f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total}"]
        if self.current:
            parts.append(self.current)
        parts += [_plural(self.rows, "row"), _seconds(self.elapsed)]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return (f"{self.title} " if self.title else "") + "  ".join(parts)

    def _show(self) -> None:
        line = self.line()
        self._write("\r" + line.ljust(self._shown))
        self._shown = len(line)

    def _end(self, summary: BatchSummary) -> None:
        self._write(f"\n{summary}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class WidgetReporter(Reporter):
    """An ipywidgets progress bar with a status line, displayed on creation and updated in place.

    The bar (``bar``, an ``IntProgress`` from 0 to ``total``) is blue while
    running, red (``bar_style='danger'``) as soon as a ticker fails, green
    (``'success'``) when every ticker succeeded. The status line (``text``, an
    ``HTML``) shows ``i/n``, the last ticker, rows, elapsed time and the
    failures (hover one for its message); at the end it holds the summary
    line, which is also printed below the widget.

    Needs ipywidgets (:func:`make_reporter` gives a :class:`TextReporter` without it).
    """

    def __init__(self, total: int, *, title: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        import ipywidgets
        from IPython.display import display

        super().__init__(total, title=title, clock=clock)
        self.bar = ipywidgets.IntProgress(
            value=0, min=0, max=total, description=title or "Batch", style={"description_width": "initial"}
        )
        self.text = ipywidgets.HTML()
        self.box = ipywidgets.HBox([self.bar, self.text])
        self._show()
        display(self.box)

    def _show(self) -> None:
        self.bar.max = self.total
        self.bar.value = self.done
        self.bar.bar_style = "danger" if self.failed else ""
        counts = [f"<b>{self.done}/{self.total}</b>"]
        if self.current:
            counts.append(html.escape(self.current))
        counts += [_plural(self.rows, "row"), _seconds(self.elapsed)]
        self.text.value = self._with_failures(" · ".join(counts))

    def _end(self, summary: BatchSummary) -> None:
        self.bar.value = self.bar.max
        self.bar.bar_style = "danger" if summary.failed or summary.unfinished or summary.error else "success"
        self.text.value = self._with_failures(html.escape(str(summary)))
        print(summary)

    def _with_failures(self, head: str) -> str:
        """``head``, then a line naming every failed ticker and its reason, the message on hover."""
        if not self.failed:
            return head
        failures = ", ".join(
            f'<span title="{html.escape(message)}">{html.escape(ticker)}: {html.escape(_reason(code))}</span>'
            for ticker, (code, message) in self.failed.items()
        )
        return f"{head}<br>{len(self.failed)} failed: {failures}"


def make_reporter(
    mode: str,
    total: int,
    *,
    title: str | None = None,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Reporter:
    """A progress reporter for a batch of ``total`` tickers.

    Parameters
    ----------
    mode : {'widget', 'text', 'off'}
        From :func:`resolve_mode`. ``'widget'`` gives a text bar when
        ipywidgets cannot be imported.
    total : int
        Tickers in the batch (progress dicts carrying another total replace it).
    title : str, optional
        Shown before the bar (the widget's description, default 'Batch').
    stream : file-like, optional
        Where the text bar goes; default ``sys.stderr``.
    clock : callable, optional
        Monotonic seconds, for the elapsed time.

    Returns
    -------
    Reporter
        Call ``update(progress)`` per finished ticker and ``finish()`` at the
        end, from the thread that made the request.

    Examples
    --------
    >>> import io
    >>> reporter = make_reporter("text", 1, stream=io.StringIO(), clock=lambda: 0.0)
    >>> reporter.update({"ticker": "SPY", "index": 1, "total": 1, "status": "ok", "rows": 92, "error": None})
    >>> print(reporter.finish())
    1 ticker, 0.00 s
    """
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}; resolve_mode() gives one")
    if mode == "widget" and _widgets_importable():
        return WidgetReporter(total, title=title, clock=clock)
    if mode in ("widget", "text"):
        return TextReporter(total, title=title, stream=stream, clock=clock)
    return Reporter(total, title=title, clock=clock)
