"""The benchmark suite runs (in its quick mode, whose figures mean nothing): CI keeps it working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_suite_runs_in_quick_mode(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    goals = {row["goal"] for row in report["rows"]}
    assert goals == {
        "1 small request",
        "2 one-shot call",
        "3 large frame",
        "4 batch",
        "5 slicing",
        "6 memory",
        "7 live",
        "8 append",
        "9 cold read",
        "9 cold batch",
    }
    assert report["quick"] is True
    assert all(row["value"] > 0 for row in report["rows"])
    assert "large frame" in result.stdout and "ratio" in result.stdout
