"""The client's peak memory while it receives and decodes one frame, measured in a fresh process.

``python memory_probe.py URL TICKER`` prints JSON ``{"peak_mb", "frame_mb"}``:
the rise of the process's peak resident memory during the call, and the size of
the returned frame.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataprovider import DataProviderLocal  # noqa: E402


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def main(url: str, ticker: str) -> None:
    """Measure and print."""
    provider = DataProviderLocal(url, timeout=120)
    provider.connect()
    provider.get_data_socket("SPY", local_only=True, auto_disconnect=False)  # imports and buffers warmed up
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = status_mb("VmRSS")
    frame = provider.get_data_socket(ticker, "1m", "max", local_only=True, auto_disconnect=False)
    peak = status_mb("VmHWM") - before
    frame_mb = (frame.memory_usage(index=True, deep=True).sum()) / 2**20
    print(json.dumps({"peak_mb": peak, "frame_mb": frame_mb}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
