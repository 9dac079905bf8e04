"""The migration of a previous-layout cache killed with SIGKILL at random points: nothing is lost, and it resumes.

Each trial converts a fresh copy of an old-layout cache of the whole bundled sample
in child processes, killing each at a random moment within a typical run, until
one finishes (at most a few kills). After every kill each dataset's old file is in
exactly one place, in the cache or in ``.migrated/``, unchanged; every table holds
all of its file's bars, and a dataset whose file moved has one. A last run in this
process then finishes whatever is left.
"""

from __future__ import annotations

import multiprocessing
import random
import shutil
import time

import pytest

from dataprovider.engine.migration import migrate, needs_migration
from dataprovider.engine.store import DeltaStore
from dataprovider.sources.sample import sample_entries
from tests.support.frames import assert_same_frame
from tests.support.old_cache import old_file, write_old_cache

SEED = 20240611
TRIALS = 10
KILLS_PER_TRIAL = 6


def run_migration(root: str, ready) -> None:
    """The child: convert ``root``'s cache (``ready`` is set once it starts)."""
    ready.set()
    migrate(DeltaStore(root))


@pytest.fixture(scope="module")
def forkserver():
    """Processes forked from a server that has imported pandas and the store: a start costs milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


@pytest.fixture(scope="module")
def old_cache(tmp_path_factory):
    """An old-layout cache of every bundled dataset, and what each file holds: (root, datasets)."""
    root = tmp_path_factory.mktemp("old-cache")
    return root, write_old_cache(root, [(e.ticker, e.resolution.value) for e in sample_entries()])


def run(forkserver, root, kill_after: float) -> tuple[int, float]:
    """A migration of ``root`` in a child process, killed ``kill_after`` seconds after it starts.

    Returns its exit code and how long it ran.
    """
    ready = forkserver.Event()
    child = forkserver.Process(target=run_migration, args=(str(root), ready))
    child.start()
    assert ready.wait(30)
    started = time.monotonic()
    child.join(kill_after)
    child.kill()  # SIGKILL (nothing, if it has ended)
    child.join()
    return child.exitcode, time.monotonic() - started


def assert_nothing_lost(root, template, datasets) -> int:
    """Every old file in exactly one place, unchanged; a moved one's bars all in its table. How many moved."""
    store = DeltaStore(root, memory_cache_bytes=0)
    moved = 0
    for ticker, resolution, frame, meta in datasets:
        places = [p for p in (old_file(root, ticker, resolution), old_file(root / ".migrated", ticker, resolution))
                  if p.exists()]  # fmt: skip
        assert len(places) == 1, f"{ticker} {resolution.value}: {places}"
        assert places[0].read_bytes() == old_file(template, ticker, resolution).read_bytes()
        info = store.info(ticker, resolution)
        if info is not None:  # a commit is whole: a table holds all of the file or does not exist yet
            assert info.meta == meta and info.rows == len(frame)
            assert_same_frame(store.read(ticker, resolution), frame)
        if places[0].parent.parent.name == ".migrated":
            assert info is not None, f"{ticker} {resolution.value} moved aside before it was converted"
            moved += 1
    assert not (root / ".quarantine").exists()
    return moved


def test_sigkill_at_random_points_loses_nothing_and_a_later_run_finishes(tmp_path, forkserver, old_cache):
    template, datasets = old_cache
    rng = random.Random(SEED)
    timed = tmp_path / "timed"
    shutil.copytree(template, timed)
    exit_code, typical = run(forkserver, timed, kill_after=60)
    assert exit_code == 0
    assert assert_nothing_lost(timed, template, datasets) == len(datasets)

    partly_done = 0
    for trial in range(TRIALS):
        root = tmp_path / f"trial{trial}"
        shutil.copytree(template, root)
        for _ in range(KILLS_PER_TRIAL):
            exit_code, _ = run(forkserver, root, kill_after=rng.uniform(0.0, typical))
            moved = assert_nothing_lost(root, template, datasets)
            partly_done += 0 < moved < len(datasets)
            if exit_code == 0:
                break
            assert exit_code == -9
        report = migrate(DeltaStore(root))
        assert not report.quarantined and not report.failed
        assert assert_nothing_lost(root, template, datasets) == len(datasets)
        assert not needs_migration(root)
    assert partly_done > 0  # some kills did fall in the middle of a run
