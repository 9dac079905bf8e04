"""02_batch_requests.ipynb run in JupyterLab, in headless Chromium: the progress widget and the chart really render.

A real dataprovider server (offline, on the sample data) and a real JupyterLab on
loopback ports; Debian's Chromium, driven by Playwright, opens the notebook, runs
all cells from the Run menu and waits for the kernel to finish. Then the batch
with a failing ticker must show a full, red progress bar with its summary, and
the plotly candlestick must have drawn one candle per bar. A screenshot of the
whole notebook goes to test-artifacts/jupyterlab-batch.png, pass or fail.

Deselect with ``-m "not browser"``. Skipped when /usr/bin/chromium is missing
(Debian/Ubuntu: ``apt-get install chromium``); Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveServer
from tests.support.jupyter import jupyter_environment, merged_environ

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "02_batch_requests.ipynb"
SCREENSHOT = REPO / "test-artifacts" / "jupyterlab-batch.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Lab settings for the run: never ask about, or fetch, Jupyter news (a toast over the notebook otherwise).
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}

# What the notebook shows: the batch with 'NOPE' fails that ticker, and the chart draws AAPL 1d over 1y.
FAILED_BATCH = "5 tickers, 1 failed (NOPE: not cached)"
CHARTED = ("AAPL", "1d", "1y")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]

# True once Run All has finished: the kernel is idle and no cell is queued or running ('[*]:').
RUN_FINISHED = """() => {
    const panel = document.querySelector('.jp-NotebookPanel');
    const status = panel?.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
    return status === 'idle' && prompts.some(p => /^\\[\\d+\\]:$/.test(p)) && !prompts.some(p => p.includes('*'));
}"""

# The code cells' prompts and the text of their stderr and error outputs, to say what went wrong.
CELL_REPORT = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')].map(cell => ({
    prompt: cell.querySelector('.jp-InputPrompt').textContent.trim(),
    errors: [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(output => output.textContent).join('\\n'),
}))"""

# Height of the page that shows every cell without scrolling the notebook (null before the notebook shows).
WHOLE_NOTEBOOK_HEIGHT = """() => {
    const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
    const cells = outer ? outer.querySelectorAll('.jp-Cell') : [];
    if (cells.length === 0) return null;
    const last = cells[cells.length - 1].getBoundingClientRect().bottom;
    const content = last - outer.getBoundingClientRect().top + outer.scrollTop;
    return Math.ceil(window.innerHeight - outer.clientHeight + content + 20);
}"""

# Scrolls the notebook to its top; resolves after two animation frames, when the page has been laid out and painted.
SCROLL_TO_TOP = """() => {
    document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer').scrollTop = 0;
    return new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
}"""


@dataclass
class Lab:
    """A running JupyterLab serving a copy of notebooks/, whose kernels use ``server``."""

    url: str
    token: str
    server: LiveServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_lab(url: str, token: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer at {url} in {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (JupyterLab then shuts its kernels down), then kill."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def lab(tmp_path, live_server) -> Iterator[Lab]:
    """JupyterLab on a free loopback port, over a copy of notebooks/, with a sandboxed kernel and settings."""
    server = live_server()
    root = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp_path / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}",
        # Nothing from the internet: no news feed, no update check, no PyPI extension listing.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    env = merged_environ(jupyter_environment(tmp_path / "jupyter", server.url))
    log = tmp_path / "jupyterlab.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_lab(url, token, process, log)
        yield Lab(url, token, server)
    finally:
        stop(process)


def run_all_cells(page) -> None:
    """Wait for the notebook's kernel, run every cell from the Run menu, and wait until all have run."""
    from playwright.sync_api import expect

    # The toolbar's execution indicator reads 'idle' before a kernel exists; the status bar names the
    # kernel once it has started and the page is connected to it, and Run All needs that.
    kernel_status = page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')
    expect(kernel_status).to_have_text("Python 3 (ipykernel) | Idle", timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(RUN_FINISHED, timeout=180_000)
    unfinished = [cell for cell in page.evaluate(CELL_REPORT) if not cell["prompt"][1:-2].isdigit()]
    assert not unfinished, f"cells did not run: {unfinished}"


def save_whole_notebook(page, path: Path) -> None:
    """Screenshot every cell: grow the page to the notebook's height, scroll to the top, then capture."""
    height = page.evaluate(WHOLE_NOTEBOOK_HEIGHT)
    if height:
        page.set_viewport_size({"width": page.viewport_size["width"], "height": height})
        page.evaluate(SCROLL_TO_TOP)
    page.screenshot(path=path, full_page=True)


def test_batch_notebook_renders_progress_widget_and_candlestick(lab):
    from playwright.sync_api import expect, sync_playwright

    candles = len(lab.server.client().get_data_socket(*CHARTED, local_only=True))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{lab.url}/doc/tree/{NOTEBOOK}?token={lab.token}")
                run_all_cells(page)

                # The failed batch's widget: its status shows the summary, its bar is full and red.
                box = page.locator(".widget-hbox", has=page.get_by_text(FAILED_BATCH))
                expect(box).to_have_count(1)
                box.scroll_into_view_if_needed()
                bar = box.locator(".widget-hprogress .progress-bar")
                expect(bar).to_have_class(re.compile(r"\bprogress-bar-danger\b"))
                filled = bar.evaluate("bar => bar.offsetWidth / bar.parentElement.offsetWidth")
                assert filled == 1, f"the bar is {filled:.0%} full"
                # ... and the summary line is printed under it.
                cell = page.locator(".jp-CodeCell", has=box)
                expect(cell.locator(".jp-RenderedText")).to_contain_text(FAILED_BATCH)

                # plotly.js draws a candlestick trace as a 'boxes' group with one path per candle.
                chart = page.locator(".js-plotly-plot", has=page.locator("g.trace.boxes"))
                expect(chart).to_have_count(1)
                chart.scroll_into_view_if_needed()
                expect(chart.locator("g.trace.boxes path.box")).to_have_count(candles)
            finally:
                save_whole_notebook(page, SCREENSHOT)
        finally:
            browser.close()
