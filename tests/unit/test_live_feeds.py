"""The replay feed on the sample cache: forming bars from the finer resolution, finals from the cache, its pace."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from dataprovider.engine.feeds import MAX_FORMING_UPDATES, ReplayFeed
from dataprovider.engine.resample import resample_bars
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import NotCachedError
from dataprovider.protocol.query import BarsQuery

DAY, HOUR, WEEK = DataResolution.DAY_01, DataResolution.HOUR_01, DataResolution.WEEK_01


@pytest.fixture
def service(tmp_path, sample_cache) -> DataService:
    shutil.copytree(sample_cache, tmp_path / "data")
    return DataService(DeltaStore(tmp_path / "data"))


def cached(service: DataService, ticker: str, resolution: DataResolution) -> pd.DataFrame:
    return service.get_bars(BarsQuery(ticker, resolution, DataPeriod.YEAR_MAX, local_only=True)).frame


def play(feed: ReplayFeed) -> list[tuple[object, float | None]]:
    """Every (update, wait) the feed gives until it ends."""
    steps = []
    while True:
        updates, wait = feed.step()
        if wait is None:
            assert updates == []
            return steps
        steps.extend((update, wait) for update in updates)


def test_each_day_is_built_from_its_hours_then_sent_final_as_cached(service):
    feed = ReplayFeed(service, "BTC-USD", DAY, speed=4, bars=3)
    steps = play(feed)
    days, hours = cached(service, "BTC-USD", DAY).iloc[-3:], cached(service, "BTC-USD", HOUR)
    finals = [update for update, _ in steps if update.is_final]
    assert [u.time for u in finals] == list(days.index)
    for update, (time, row) in zip(finals, days.iterrows(), strict=True):
        assert update.bar == {
            "time": time.isoformat(),
            "open": row.Open,
            "high": row.High,
            "low": row.Low,
            "close": row.Close,
            "volume": row.Volume,
        }
    for time in days.index:
        forming = [update for update, _ in steps if update.time == time and not update.is_final]
        assert 1 <= len(forming) <= MAX_FORMING_UPDATES
        day_hours = hours[(hours.index >= time) & (hours.index < time + pd.Timedelta(days=1))]
        whole_day = resample_bars(day_hours, HOUR, DAY).iloc[0]
        assert forming[-1].bar["close"] == whole_day.Close and forming[-1].bar["volume"] == whole_day.Volume
        assert forming[0].bar["open"] == day_hours.Open.iloc[0]
        highs_so_far = [u.bar["high"] for u in forming]
        assert highs_so_far == sorted(highs_so_far), "the high so far never falls"


def test_the_pace_is_speed_bars_a_second(service):
    steps = play(ReplayFeed(service, "ETH-USD", DAY, speed=4, bars=3))
    assert sum(wait for _, wait in steps) == pytest.approx(3 / 4)


def test_without_a_finer_resolution_only_finals_are_sent(service):
    steps = play(ReplayFeed(service, "SPY", DAY, speed=100, bars=4))
    assert [u.is_final for u, _ in steps] == [True] * 4
    assert [u.time for u, _ in steps] == list(cached(service, "SPY", DAY).index[-4:])


def test_a_derived_resolution_replays_what_get_data_derives(service):
    steps = play(ReplayFeed(service, "SPY", WEEK, speed=100, bars=3))
    weeks = cached(service, "SPY", WEEK).iloc[-3:]
    assert [u.time for u, _ in steps if u.is_final] == list(weeks.index)
    assert any(not u.is_final for u, _ in steps), "weeks are built from the cached days"


def test_nothing_cached_is_not_cached(service):
    with pytest.raises(NotCachedError):
        ReplayFeed(service, "MSFT", DAY, speed=1)


@pytest.mark.parametrize("speed", [0, -1])
def test_the_speed_must_be_positive(service, speed):
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(service, "SPY", DAY, speed=speed)


def test_forming_bars_come_from_the_finest_detail_cached_not_a_derived_resolution(service):
    """^GSPC hours are derived from cached minutes; 30m could be derived too but would give 2 forming updates."""
    steps = play(ReplayFeed(service, "^GSPC", DataResolution.HOUR_01, speed=100, bars=4))
    forming = pd.Series([u.time for u, _ in steps if not u.is_final]).value_counts()
    assert forming.max() == MAX_FORMING_UPDATES
