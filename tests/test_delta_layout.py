"""The Delta Lake layout benchmark runs (in its quick mode, whose figures mean nothing): CI keeps it working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_delta_layout_benchmark_runs_in_quick_mode():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "delta_layout.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "B part/A" in result.stdout and "B flat/A" in result.stdout
    cases = [line.split("  ")[0] for line in result.stdout.splitlines() if line[:2] in {f"{n} " for n in "123456"}]
    for goal in "123456":
        assert any(case.startswith(goal) for case in cases), (goal, result.stdout)
    assert "timestamp[us, tz=UTC] read back" in result.stdout
