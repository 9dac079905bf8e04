"""Delta Lake storage layouts for the cache, measured side by side before building one.

Layout A keeps one Delta table per dataset (``<root>/<resolution>/<TICKER>/``); layout B keeps one table
per resolution with a ``ticker`` column (``<root>/<resolution>/``), either partitioned by ticker
("B part") or not ("B flat", rows sorted by ticker then time). Beside them, the current store's
equivalent: one Parquet file per dataset, rewritten whole on every change.

Every figure is the median of repeated measurements taken in turns (A, B part, B flat, Parquet, then
again), because these machines have two noisy shared cores; the table prints the ratios to layout A.

    .venv/bin/python benchmarks/delta_layout.py            # full run, about 4 minutes
    .venv/bin/python benchmarks/delta_layout.py --quick    # seconds: only checks that it works
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import datasets  # noqa: E402
from benchmarks.run import ms, side_by_side  # noqa: E402

#: The timestamp type deltalake 1.6 stores and reads back (nanoseconds are cast to it on write).
TIMESTAMP = pa.timestamp("us", tz="UTC")
DAILY, MINUTE = "1d", "1m"
INDEX = {DAILY: "Date", MINUTE: "Datetime"}
LAYOUTS = ("A", "B part", "B flat")


@dataclass(frozen=True)
class Sizes:
    tickers: int  # daily datasets
    daily_rows: int
    minute_datasets: int
    minute_rows: int
    repeats: int
    log_appends: int  # single-row commits before measuring the cost of opening a table
    concurrent_commits: int  # commits each of two writer processes makes


FULL = Sizes(
    tickers=500,
    daily_rows=2519,
    minute_datasets=3,
    minute_rows=500_000,
    repeats=7,
    log_appends=200,
    concurrent_commits=25,
)
QUICK = Sizes(
    tickers=12, daily_rows=300, minute_datasets=2, minute_rows=20_000, repeats=2, log_appends=5, concurrent_commits=3
)


def daily_name(i: int) -> str:
    return f"T{i:04d}"


def minute_name(i: int) -> str:
    return f"M{i}"


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A canonical frame as the Arrow table the Delta layouts store: the index a UTC column in microseconds."""
    table = pa.Table.from_pandas(frame.tz_convert("UTC"), preserve_index=True).replace_schema_metadata()
    name = frame.index.name
    return table.select([name, *frame.columns]).set_column(0, name, table[name].cast(TIMESTAMP))


def with_ticker(table: pa.Table, ticker: str) -> pa.Table:
    return table.add_column(0, "ticker", pa.array([ticker] * table.num_rows, pa.string()))


def quoted(instant: pd.Timestamp) -> str:
    return "'" + instant.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def window_of(table: pa.Table, column: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A window of about a month inside the dataset: from its middle row, 30 days or a quarter of it."""
    times = table[column]
    start = pd.Timestamp(times[table.num_rows // 2].as_py())
    return start, min(start + pd.Timedelta(days=30), pd.Timestamp(times[table.num_rows * 3 // 4].as_py()))


class Layout:
    """One layout's tables under ``root``: where a dataset is, and how it is read, appended and replaced."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, root
        self.per_dataset = name == "A"
        self.partitioned = name == "B part"

    def table_path(self, resolution: str, ticker: str) -> str:
        return str(self.root / resolution / ticker) if self.per_dataset else str(self.root / resolution)

    def rows(self, table: pa.Table, ticker: str) -> pa.Table:
        return table if self.per_dataset else with_ticker(table, ticker)

    def ticker_filter(self, ticker: str) -> pc.Expression | None:
        return None if self.per_dataset else pc.field("ticker") == ticker

    def write_all(self, resolution: str, tables: dict[str, pa.Table]) -> None:
        if self.per_dataset:
            for ticker, table in tables.items():
                write_deltalake(self.table_path(resolution, ticker), table)
            return
        whole = pa.concat_tables([with_ticker(table, ticker) for ticker, table in tables.items()])
        write_deltalake(self.table_path(resolution, ""), whole, partition_by=["ticker"] if self.partitioned else None)

    def read(self, resolution: str, ticker: str, window: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pa.Table:
        """One dataset (or a window of it) from a freshly opened table: the log replayed, then the files read."""
        where = self.ticker_filter(ticker)
        if window is not None:
            column = pc.field(INDEX[resolution])
            inside = (column >= pa.scalar(window[0], TIMESTAMP)) & (column < pa.scalar(window[1], TIMESTAMP))
            where = inside if where is None else where & inside
        return DeltaTable(self.table_path(resolution, ticker)).to_pyarrow_table(filters=where)

    def read_all(self, resolution: str, tickers: list[str]) -> list[pa.Table] | pa.Table:
        if self.per_dataset:
            return [self.read(resolution, ticker) for ticker in tickers]
        return DeltaTable(self.table_path(resolution, "")).to_pyarrow_table()

    def append(self, resolution: str, ticker: str, table: pa.Table) -> None:
        write_deltalake(self.table_path(resolution, ticker), self.rows(table, ticker), mode="append")

    def replace(self, resolution: str, ticker: str, table: pa.Table, window: tuple[pd.Timestamp, pd.Timestamp]) -> None:
        """Replace ``window`` of one dataset with ``table`` in one commit (a predicate overwrite)."""
        column = INDEX[resolution]
        predicate = f"{column} >= {quoted(window[0])} AND {column} < {quoted(window[1])}"
        if not self.per_dataset:
            predicate = f"ticker = '{ticker}' AND {predicate}"
        write_deltalake(
            self.table_path(resolution, ticker), self.rows(table, ticker), mode="overwrite", predicate=predicate
        )


class ParquetFiles:
    """The current store's equivalent: one Parquet file per dataset, replaced whole (fsync, rename)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, resolution: str, ticker: str) -> Path:
        return self.root / resolution / f"{ticker}.parquet"

    def write(self, resolution: str, ticker: str, table: pa.Table) -> None:
        path = self.path(resolution, ticker)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        with open(temp, "wb") as handle:
            pq.write_table(table, handle, row_group_size=64_000, write_page_checksum=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)

    def read(self, resolution: str, ticker: str, window: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pa.Table:
        path = self.path(resolution, ticker)
        if window is None:
            return pq.ParquetFile(path).read()
        column = pc.field(INDEX[resolution])
        return pq.read_table(
            path, filters=(column >= pa.scalar(window[0], TIMESTAMP)) & (column < pa.scalar(window[1], TIMESTAMP))
        )


class NextBar:
    """New one-row bars after a dataset's last, one step apart, for repeated appends."""

    def __init__(self, table: pa.Table, column: str, step: pd.Timedelta):
        self.column, self.step = column, step
        self.last = pd.Timestamp(table[column][-1].as_py())
        self.template = table.slice(table.num_rows - 1)

    def __call__(self) -> pa.Table:
        self.last += self.step
        return self.template.set_column(0, self.column, pa.array([self.last], TIMESTAMP))


# ----------------------------------------------------------------- measurements
Row = tuple[str, dict[str, float], str]  # (case, milliseconds by layout or "Parquet", note)


def timed(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each case, taken in turns of one call each."""
    times = side_by_side(list(cases.values()), repeats, warmup=1, block=1)
    return {name: ms(taken) for name, taken in zip(cases, times, strict=True)}


def read_rows(layouts: dict[str, Layout], parquet: ParquetFiles, data: dict, sizes: Sizes) -> list[Row]:
    rows = []
    for label, resolution, ticker in (("small", DAILY, daily_name(1)), ("large", MINUTE, minute_name(0))):
        expected = data[resolution][ticker].num_rows
        for layout in layouts.values():
            assert layout.read(resolution, ticker).num_rows == expected, layout.name
        cases = {name: partial(lay.read, resolution, ticker) for name, lay in layouts.items()}
        cases["Parquet"] = partial(parquet.read, resolution, ticker)
        rows.append((f"3 read one {label} dataset whole, cold ({expected:,} rows)", timed(cases, sizes.repeats), ""))
        window = window_of(data[resolution][ticker], INDEX[resolution])
        cases = {name: partial(lay.read, resolution, ticker, window) for name, lay in layouts.items()}
        cases["Parquet"] = partial(parquet.read, resolution, ticker, window)
        got = parquet.read(resolution, ticker, window).num_rows
        rows.append((f"3 read a month of the {label} dataset, cold ({got:,} rows)", timed(cases, sizes.repeats), ""))
    tickers = [daily_name(i) for i in range(sizes.tickers)]
    cases = {name: partial(lay.read_all, DAILY, tickers) for name, lay in layouts.items()}
    cases["Parquet"] = lambda: [parquet.read(DAILY, ticker) for ticker in tickers]
    rows.append(
        (f"4 read {sizes.tickers} daily datasets", timed(cases, max(2, sizes.repeats // 2)), "B: one table read")
    )
    return rows


def write_rows(layouts: dict[str, Layout], parquet: ParquetFiles, data: dict, sizes: Sizes) -> list[Row]:
    rows = []
    for label, resolution, ticker in (("small", DAILY, daily_name(1)), ("large", MINUTE, minute_name(0))):
        rows += dataset_writes(layouts, parquet, label, resolution, ticker, data[resolution][ticker], sizes)
    return rows


def dataset_writes(
    layouts: dict[str, Layout], parquet: ParquetFiles, label: str, resolution: str, ticker: str, table, sizes: Sizes
) -> list[Row]:
    """One bar appended, then a month replaced in one commit, in every layout; Parquet rewrites the file."""
    column = INDEX[resolution]
    step = pd.Timedelta(days=1) if resolution == DAILY else pd.Timedelta(minutes=1)
    bars = {name: NextBar(table, column, step) for name in [*layouts, "Parquet"]}
    cases = {name: (lambda lay=lay: lay.append(resolution, ticker, bars[lay.name]())) for name, lay in layouts.items()}
    cases["Parquet"] = lambda: parquet.write(resolution, ticker, pa.concat_tables([table, bars["Parquet"]()]))
    rows = [
        (
            f"1 append one bar, {label} dataset ({table.num_rows:,} rows)",
            timed(cases, sizes.repeats),
            "Parquet: rewrite",
        )
    ]
    window = window_of(table, column)
    times = table[column]
    inside = pc.and_(
        pc.greater_equal(times, pa.scalar(window[0], TIMESTAMP)), pc.less(times, pa.scalar(window[1], TIMESTAMP))
    )
    revised = table.filter(inside)
    close = revised.schema.get_field_index("Close")
    revised = revised.set_column(close, "Close", pc.multiply(revised["Close"], 1.01))
    cases = {name: partial(lay.replace, resolution, ticker, revised, window) for name, lay in layouts.items()}
    cases["Parquet"] = partial(parquet.write, resolution, ticker, table)
    case = f"2 replace a month ({revised.num_rows:,} rows) of the {label} dataset"
    rows.append((case, timed(cases, sizes.repeats), "one commit; Parquet: rewrite"))
    for layout in layouts.values():
        commit = DeltaTable(layout.table_path(resolution, ticker)).history(1)[0]
        assert commit["operation"] == "WRITE" and commit["operationParameters"]["mode"] == "Overwrite", commit
        assert layout.read(resolution, ticker, window).num_rows == revised.num_rows, layout.name
    return rows


def log_rows(layouts: dict[str, Layout], data: dict, sizes: Sizes) -> list[Row]:
    """Opening and reading a table as its log grows, then after compaction, a checkpoint and a vacuum."""
    resolution, ticker = MINUTE, minute_name(sizes.minute_datasets - 1)
    table, column = data[resolution][ticker], INDEX[resolution]
    stages: dict[str, dict[str, float]] = {}
    notes: dict[str, list[str]] = {}
    upkeep: dict[str, dict[str, float]] = {}
    swept: list[str] = []

    def measure(stage: str) -> None:
        cases = {name: partial(lay.read, resolution, ticker) for name, lay in layouts.items()}
        stages[f"5 read the large dataset {stage}"] = timed(cases, sizes.repeats)
        cases = {name: partial(DeltaTable, lay.table_path(resolution, ticker)) for name, lay in layouts.items()}
        stages[f"5 open its table {stage}"] = timed(cases, sizes.repeats)

    measure("fresh")
    bars = {name: NextBar(table, column, pd.Timedelta(minutes=1)) for name in layouts}
    for _ in range(sizes.log_appends):
        for name, layout in layouts.items():
            layout.append(resolution, ticker, bars[name]())
    for name, layout in layouts.items():
        log = Path(layout.table_path(resolution, ticker)) / "_delta_log"
        checkpoints = len(list(log.glob("*.checkpoint.parquet")))
        notes[name] = [f"{len(DeltaTable(str(log.parent)).file_uris())} files, {checkpoints} checkpoints"]
    measure(f"after {sizes.log_appends} one-row appends")
    for name, layout in layouts.items():
        dt = DeltaTable(layout.table_path(resolution, ticker))
        started = time.perf_counter()
        dt.optimize.compact()
        upkeep.setdefault("5 compact (optimize.compact)", {})[name] = (time.perf_counter() - started) * 1e3
    measure("after compact")
    for name, layout in layouts.items():
        dt = DeltaTable(layout.table_path(resolution, ticker))
        started = time.perf_counter()
        dt.create_checkpoint()
        upkeep.setdefault("5 create_checkpoint", {})[name] = (time.perf_counter() - started) * 1e3
    measure("after compact and checkpoint")
    for name, layout in layouts.items():
        dt = DeltaTable(layout.table_path(resolution, ticker))
        kept = len(dt.vacuum())  # default: a dry run honouring the 7-day retention
        started = time.perf_counter()
        removed = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        upkeep.setdefault("5 vacuum(retention_hours=0)", {})[name] = (time.perf_counter() - started) * 1e3
        swept.append(f"{name}: {kept} files past 7 days, {len(removed)} removed at 0 h")
        assert layout.read(resolution, ticker).num_rows == table.num_rows + sizes.log_appends, name
    rows = [(case, figures, "") for case, figures in stages.items()]
    rows += [(case, figures, "one call") for case, figures in upkeep.items()]
    rows[-1] = (rows[-1][0], rows[-1][1], "; ".join(swept))
    rows[2] = (rows[2][0], rows[2][1], "; ".join(f"{name}: {', '.join(text)}" for name, text in notes.items()))
    return rows


def day_of_refreshes(layouts: dict[str, Layout], data: dict, sizes: Sizes) -> list[Row]:
    """One new bar for every daily ticker (a day's refresh), then a cold read of one of them."""
    tickers = [daily_name(i) for i in range(sizes.tickers)]
    appended: dict[str, float] = {}
    for name, layout in layouts.items():
        started = time.perf_counter()
        for ticker in tickers:
            layout.append(DAILY, ticker, NextBar(data[DAILY][ticker], "Date", pd.Timedelta(days=3650))())
        appended[name] = (time.perf_counter() - started) * 1e3
    cases = {name: partial(lay.read, DAILY, daily_name(0)) for name, lay in layouts.items()}
    return [
        (f"5 one bar to each of {sizes.tickers} daily datasets", appended, "sequential, one call each"),
        (
            "5 then read one daily dataset, cold",
            timed(cases, sizes.repeats),
            "B: its log grew by every ticker's commit",
        ),
    ]


def _writer(jobs, results) -> None:
    """A writer process: for each job, commits to one table from a given instant, counting failed commits.

    A job is (path, rows, commits, start_at, predicate): appends of ``rows``, or, with a predicate, overwrites
    of what it matches. Failed commits are reported and not retried.
    """
    for path, rows, commits, start_at, predicate in iter(jobs.get, None):
        while time.time() < start_at:
            time.sleep(0.0005)
        errors = []
        started = time.perf_counter()
        for _ in range(commits):
            try:
                if predicate:
                    write_deltalake(path, rows, mode="overwrite", predicate=predicate)
                else:
                    write_deltalake(path, rows, mode="append")
            except Exception as exc:  # counted and reported: the point of the measurement
                errors.append(type(exc).__name__ + ": " + str(exc).splitlines()[0][:100])
        results.put((errors, time.perf_counter() - started))


def concurrency_rows(layouts: dict[str, Layout], data: dict, sizes: Sizes) -> list[Row]:
    """Two processes writing to two different daily datasets at once: one appends, the other appends or replaces."""
    context = multiprocessing.get_context("spawn")  # not fork: deltalake runs threads of its own
    results = context.Queue()
    queues = [context.Queue(), context.Queue()]
    workers = [context.Process(target=_writer, args=(jobs, results)) for jobs in queues]
    for worker in workers:
        worker.start()
    rows = []
    try:
        for other in ("append", "replace"):
            figures, notes = {}, []
            for name, layout in layouts.items():
                figures[name], note = concurrent_commits(layout, data, sizes, other == "replace", queues, results)
                notes.append(f"{name}: {note}")
            case = f"6 two processes, {sizes.concurrent_commits} commits each: append + {other}"
            rows.append((case, figures, "; ".join(notes)))
    finally:
        for jobs in queues:
            jobs.put(None)
        for worker in workers:
            worker.join(timeout=30)
    return rows


def concurrent_commits(layout: Layout, data: dict, sizes: Sizes, replacing: bool, queues, results) -> tuple[float, str]:
    """Milliseconds until both writers finished, and what happened: commit retries and failures."""
    paths = {}
    start_at = time.time() + 0.3
    for jobs, ticker, replaces in zip(queues, (daily_name(2), daily_name(3)), (False, replacing), strict=True):
        table = data[DAILY][ticker]
        path = layout.table_path(DAILY, ticker)
        paths.setdefault(path, DeltaTable(path).version())
        if replaces:
            last = pd.Timestamp(table["Date"][-1].as_py())
            predicate = f"Date = {quoted(last)}" + ("" if layout.per_dataset else f" AND ticker = '{ticker}'")
            job = (
                path,
                layout.rows(table.slice(table.num_rows - 1), ticker),
                sizes.concurrent_commits,
                start_at,
                predicate,
            )
        else:
            bar = NextBar(table, "Date", pd.Timedelta(days=7300))()
            job = (path, layout.rows(bar, ticker), sizes.concurrent_commits, start_at, None)
        jobs.put(job)
    outcomes = [results.get(timeout=300) for _ in queues]
    retries = 0
    for path, before in paths.items():
        table = DeltaTable(path)
        retries += sum(
            c.get("operationMetrics", {}).get("num_retries", 0) for c in table.history(table.version() - before)
        )
    errors = sorted({error for errors, _ in outcomes for error in errors})
    failed = sum(len(errors) for errors, _ in outcomes)
    note = f"{retries} retries, {failed} failed" + (f" ({'; '.join(errors)})" if errors else "")
    return max(seconds for _, seconds in outcomes) * 1e3, note


# ----------------------------------------------------------------- the run
def build(root: Path, sizes: Sizes) -> tuple[dict[str, Layout], ParquetFiles, dict[str, dict[str, pa.Table]]]:
    data = {
        DAILY: {daily_name(i): to_arrow(datasets.daily(sizes.daily_rows, seed=i)) for i in range(sizes.tickers)},
        MINUTE: {
            minute_name(i): to_arrow(datasets.minutes_24x7(sizes.minute_rows, seed=i))
            for i in range(sizes.minute_datasets)
        },
    }
    layouts = {name: Layout(name, root / name.replace(" ", "_")) for name in LAYOUTS}
    parquet = ParquetFiles(root / "parquet")
    for resolution, tables in data.items():
        for layout in layouts.values():
            layout.write_all(resolution, tables)
        for ticker, table in tables.items():
            parquet.write(resolution, ticker, table)
    return layouts, parquet, data


def timestamp_round_trip(root: Path) -> str:
    """What deltalake keeps of a nanosecond, New York timestamp column: its unit and zone on the way back."""
    instants = pd.DatetimeIndex(["2024-03-08 09:30:00.000000001"], tz="America/New_York")
    path = str(root / "timestamps")
    write_deltalake(path, pa.table({"Date": pa.array(instants)}))
    back = DeltaTable(path).to_pyarrow_table()["Date"]
    kept = pd.Timestamp(back[0].as_py()) == instants[0]
    return (
        f"timestamp[ns, America/New_York] written, {back.type} read back, value {'kept' if kept else 'truncated to us'}"
    )


def print_table(rows: list[Row]) -> None:
    names = [*LAYOUTS, "Parquet"]
    header = (
        f"{'case':<62}"
        + "".join(f"{name:>10}" for name in names)
        + f"{'B part/A':>10}{'B flat/A':>10}{'A/Parquet':>10}"
    )
    print(header + "  note")
    for case, figures, note in rows:
        cells = "".join(f"{figures[name]:>10.2f}" if name in figures else f"{'':>10}" for name in names)
        ratios = "".join(
            f"{figures[top] / figures[bottom]:>10.2f}" if top in figures and bottom in figures else f"{'':>10}"
            for top, bottom in (("B part", "A"), ("B flat", "A"), ("A", "Parquet"))
        )
        print(f"{case:<62}{cells}{ratios}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats: checks that it works")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="delta-layout-") as temp:
        root = Path(temp)
        print(timestamp_round_trip(root))
        layouts, parquet, data = build(root, sizes)
        print(f"built in {time.perf_counter() - started:.1f} s: {sizes}")
        rows = read_rows(layouts, parquet, data, sizes)
        rows += write_rows(layouts, parquet, data, sizes)
        rows += log_rows(layouts, data, sizes)
        rows += day_of_refreshes(layouts, data, sizes)
        rows += concurrency_rows(layouts, data, sizes)
    print("milliseconds, medians (p50); ratios of medians")
    print_table(rows)
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
