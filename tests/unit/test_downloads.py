"""Refreshes commit what is new: an append of the new bars, a replacement from the first revised one,
and never a loss of bars the source no longer serves.

The source serves real bars (the bundled BTC-USD hourly sample) as Yahoo serves intraday ones: only
those of the last 30 days before "now", and only those that have started by then.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dataprovider.engine.refresh import RefreshPolicy
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import RangeNotAvailableError
from dataprovider.protocol.query import BarsQuery
from dataprovider.sources.base import FetchResult
from dataprovider.sources.sample import load_sample, sample_entries

H1 = DataResolution.HOUR_01
WINDOW = pd.Timedelta(days=30)


class RecentWindowSource:
    """Bars of ``bars`` that started before ``now`` and no more than 30 days before it."""

    name = "window"

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars
        self.now = bars.index[0]

    def fetch(self, ticker, resolution, start, end) -> FetchResult:
        if end is not None and end <= self.now - WINDOW:
            raise RangeNotAvailableError("older than the last 30 days")
        oldest = max(self.now - WINDOW, start) if start is not None else self.now - WINDOW
        served = self.bars[(self.bars.index >= oldest) & (self.bars.index < self.now)]
        if end is not None:
            served = served[served.index < end]
        return FetchResult(served, "UTC", available_from=self.now - WINDOW)


@pytest.fixture
def hourly() -> pd.DataFrame:
    entry = next(e for e in sample_entries() if (e.ticker, e.resolution) == ("BTC-USD", H1))
    return load_sample(entry)


def newest_commit(table) -> dict:
    """The actions of a table's newest commit, by kind: {'add': [...], 'remove': [...]}."""
    log = sorted((table / "_delta_log").glob("*.json"))[-1]
    actions: dict[str, list] = {"add": [], "remove": []}
    for line in log.read_text().splitlines():
        action = json.loads(line)
        for kind in actions:
            if kind in action:
                actions[kind].append(action[kind])
    return actions


def serve(tmp_path, source):
    clock = lambda: source.now  # noqa: E731 - the service's "now" is the source's
    store = DeltaStore(tmp_path)
    policy = RefreshPolicy(min_interval_intraday=pd.Timedelta(0), min_interval_daily=pd.Timedelta(0))
    return store, DataService(store, source, policy=policy, clock=clock)


def ask(service) -> pd.DataFrame:
    return service.get_bars(BarsQuery("BTC-USD", H1, DataPeriod.MONTH_01, local_only=False)).frame


def test_a_new_bar_is_appended_as_one_small_commit(tmp_path, hourly):
    source = RecentWindowSource(hourly)
    source.now = hourly.index[2000]
    store, service = serve(tmp_path, source)
    first = ask(service)
    source.now = hourly.index[2001]  # an hour on: one more bar has started and ended
    ask(service)
    commit = newest_commit(store.path_for("BTC-USD", H1))
    assert commit["remove"] == [] and len(commit["add"]) == 1
    assert json.loads(commit["add"][0]["stats"])["numRecords"] == 1
    cached = store.read("BTC-USD", H1)
    pd.testing.assert_frame_equal(cached, hourly[(hourly.index >= first.index[0]) & (hourly.index <= hourly.index[2000])])


def test_bars_the_source_no_longer_serves_stay_cached(tmp_path, hourly):
    source = RecentWindowSource(hourly)
    source.now = hourly.index[2000]
    store, service = serve(tmp_path, source)
    first = ask(service)
    for step in range(2100, 4000, 100):  # 80 days on, refreshed every few days
        source.now = hourly.index[step]
        ask(service)
    cached = store.read("BTC-USD", H1)
    assert cached.index[0] == first.index[0]  # older than the source's window by now
    pd.testing.assert_frame_equal(cached, hourly[(hourly.index >= first.index[0]) & (hourly.index < source.now)])


def test_a_revised_bar_replaces_the_range_from_it_in_one_commit(tmp_path, hourly):
    source = RecentWindowSource(hourly)
    source.now = hourly.index[2000]
    store, service = serve(tmp_path, source)
    ask(service)
    revised_at = hourly.index[1998]  # inside the refresh's overlap
    source.bars = hourly.copy()
    source.bars.loc[revised_at, "Volume"] += 1  # a correction: prices unchanged, so not an adjustment
    source.now = hourly.index[2001]
    ask(service)
    commit = newest_commit(store.path_for("BTC-USD", H1))
    assert len(commit["add"]) == 1 and len(commit["remove"]) == 1
    cached = store.read("BTC-USD", H1)
    assert cached.loc[revised_at, "Volume"] == hourly.loc[revised_at, "Volume"] + 1
    assert cached.index[-1] == hourly.index[2000] and cached.index.is_unique
