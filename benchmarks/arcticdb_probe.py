"""ArcticDB (LMDB) baseline, run in its own environment (ArcticDB needs pandas < 3).

``python arcticdb_probe.py FILES_DIR LMDB_DIR REPEATS``: loads the daily Parquet
files of the batch's tickers (FILES_DIR/1d/T*.parquet, the same bars as the cache's
datasets, written by run.py) into an LMDB library, then
times ``read_batch`` of all of them and prints JSON ``{"read_batch": [seconds, ...], "symbols": n}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import arcticdb
import pandas as pd


def main(files_dir: str, lmdb_dir: str, repeats: int) -> None:
    """Load, time, print."""
    library = arcticdb.Arctic(f"lmdb://{lmdb_dir}").get_library("bench", create_if_missing=True)
    files = sorted(Path(files_dir, "1d").glob("T*.parquet"))
    symbols = [f.stem for f in files]
    library.write_batch([arcticdb.WritePayload(s, pd.read_parquet(f)) for s, f in zip(symbols, files, strict=True)])
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        frames = [item.data for item in library.read_batch(symbols)]
        timings.append(time.perf_counter() - started)
    assert len(frames) == len(symbols) and all(len(f) for f in frames)
    print(json.dumps({"read_batch": timings, "symbols": len(symbols)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
