"""Live bars against a real server: replayed and polled feeds, shared streams, reconnects, bad subscriptions."""

from __future__ import annotations

import asyncio
import queue
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from dataprovider import DataProviderLocal, protocol
from dataprovider.client.subscriptions import LiveBar
from dataprovider.engine.refresh import RefreshPolicy
from dataprovider.notebook.launcher import free_port, start_server, stop
from tests.conftest import Now
from tests.integration.test_socket_events import RawClient
from tests.support.waiting import wait_until
from tests.support.yahoo_replay import YahooReplay

ROOT = Path(__file__).resolve().parents[2]
NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
#: Bars a second in replay tests: fast, yet slow enough for a reconnect to fall inside the replay.
SPEED = 40


class Collector:
    """A subscription callback that keeps every bar and lets a test wait for some."""

    def __init__(self) -> None:
        self.bars: list[LiveBar] = []
        self.errors: list = []
        self._changed = threading.Condition()

    def __call__(self, bar: LiveBar) -> None:
        with self._changed:
            self.bars.append(bar)
            self._changed.notify_all()

    def error(self, error) -> None:
        with self._changed:
            self.errors.append(error)
            self._changed.notify_all()

    @property
    def finals(self) -> list[LiveBar]:
        return [bar for bar in self.bars if bar.is_final]

    def wait_for(self, condition, timeout: float = 20.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: condition(self), timeout), f"gave up waiting; got {self.bars[-3:]}"


def finals_at_least(count: int):
    return lambda collector: len(collector.finals) >= count


def assert_in_order_without_duplicates(bars: list[LiveBar], one_stream: bool = True) -> None:
    """Finals once each, in time order, nothing after its final; ``seq`` increasing within ``one_stream``."""
    finals = [bar.time for bar in bars if bar.is_final]
    assert finals == sorted(set(finals)), "final bars repeated or out of order"
    numbered = [bar.seq for bar in bars if bar.seq is not None]
    assert not one_stream or numbered == sorted(set(numbered)), "seq repeated or out of order"
    newest_final = None
    for bar in bars:  # no bar comes after it is final
        assert newest_final is None or bar.time > newest_final
        if bar.is_final:
            newest_final = bar.time


def cached_rows(provider, ticker: str, resolution: str, bars: list[LiveBar]) -> pd.DataFrame:
    frame = provider.get_data_socket(ticker, resolution, "max", local_only=True)
    return frame.loc[[bar.time for bar in bars]]


def as_frame(bars: list[LiveBar]) -> pd.DataFrame:
    return pd.DataFrame(
        [bar.ohlcv() for bar in bars],
        index=pd.DatetimeIndex([bar.time for bar in bars]).as_unit("ns"),
        columns=["Open", "High", "Low", "Close", "Volume"],
    )


# ----------------------------------------------------------------------------- replay
def test_a_replay_delivers_forming_then_final_bars_in_order_equal_to_the_cache(live_server):
    server = live_server(replay=SPEED)
    provider = server.client()
    seen = Collector()
    with provider.subscribe("BTC-USD", "1d", seen, error_callback=seen.error):
        seen.wait_for(finals_at_least(8))
    assert not seen.errors
    assert_in_order_without_duplicates(seen.bars)
    assert any(not bar.is_final for bar in seen.bars), "1h bars are cached: each day is first sent forming"
    expected = cached_rows(provider, "BTC-USD", "1d", seen.finals)
    pd.testing.assert_frame_equal(as_frame(seen.finals), expected, check_names=False, check_freq=False)
    # A forming bar is the day so far: inside the final bar's range, same open.
    final_by_time = {bar.time: bar for bar in seen.finals}
    for bar in seen.bars:
        final = final_by_time.get(bar.time)
        if not bar.is_final and final is not None:
            assert bar.open == final.open and final.low <= bar.low and bar.high <= final.high


def test_history_comes_first_from_the_cache(live_server):
    server = live_server(replay=SPEED)
    provider = server.client()
    seen = Collector()
    with provider.subscribe("BTC-USD", "1d", seen, history=5):
        seen.wait_for(finals_at_least(7))
    assert [bar.seq for bar in seen.bars[:5]] == [None] * 5 and all(bar.is_final for bar in seen.bars[:5])
    assert seen.bars[5].seq is not None
    assert_in_order_without_duplicates(seen.bars)
    # History and live join without a gap: consecutive cached days.
    cached = provider.get_data_socket("BTC-USD", "1d", "max", local_only=True).index
    first, last = seen.finals[0].time, seen.finals[-1].time
    assert [bar.time for bar in seen.finals] == list(cached[(cached >= first) & (cached <= last)])


def test_two_subscribers_share_one_stream_which_stops_when_both_leave(live_server):
    server = live_server(replay=SPEED)
    first, second = Collector(), Collector()
    a = server.client().subscribe("BTC-USD", "1d", first)
    b = server.client().subscribe("btc-usd", "1d", second)
    assert server.app.live.streams_started == 1
    assert server.app.live.active() == {"live:BTC-USD:1d": 2}
    second.wait_for(finals_at_least(3))
    first.wait_for(finals_at_least(3))
    shared = {bar.seq for bar in first.bars} & {bar.seq for bar in second.bars}
    assert shared, "both saw the same numbered updates of the one stream"
    a.close()
    assert server.app.live.active() == {"live:BTC-USD:1d": 1}
    b.close()
    assert server.app.live.active() == {}
    wait_until(lambda: not live_threads(), timeout=5, what="the stream's thread to end")


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("live live:")]


def test_a_disconnect_ends_the_clients_subscriptions_and_the_stream(live_server):
    server = live_server(replay=SPEED)
    provider = server.client()
    seen = Collector()
    provider.subscribe("ETH-USD", "1d", seen)
    seen.wait_for(finals_at_least(1))
    provider.disconnect()  # closes its subscriptions, then the connection
    wait_until(lambda: server.app.live.active() == {}, timeout=5, what="the stream to stop")
    count = len(seen.bars)
    time.sleep(3 / SPEED)
    assert len(seen.bars) == count


def test_a_dropped_connection_resubscribes_and_fills_the_gap_from_the_cache(live_server):
    server = live_server(replay=SPEED)
    watcher, resumed = Collector(), Collector()
    server.client().subscribe("BTC-USD", "1d", watcher)  # keeps the stream going meanwhile
    provider = server.client()
    provider.subscribe("BTC-USD", "1d", resumed)
    resumed.wait_for(finals_at_least(3))
    server.app.socketio.server.disconnect(provider._socket._sio.get_sid())  # the server drops the client
    dropped_at = len(resumed.finals)
    resumed.wait_for(lambda c: any(bar.seq is None for bar in c.bars[dropped_at:]) and len(c.finals) > dropped_at + 5)
    assert_in_order_without_duplicates(resumed.bars)
    cached = provider.get_data_socket("BTC-USD", "1d", "max", local_only=True).index
    first, last = resumed.finals[0].time, resumed.finals[-1].time
    assert [bar.time for bar in resumed.finals] == list(cached[(cached >= first) & (cached <= last)]), "a gap"


def test_subscriptions_resume_without_gaps_after_a_server_restart(tmp_path, sample_cache):
    data_dir = tmp_path / "data"
    shutil.copytree(sample_cache, data_dir)
    port = free_port()
    arguments = ("--replay", str(SPEED), "--data-dir", str(data_dir), "--no-samples", "--log-file", "")
    server = start_server(port, *arguments, log=tmp_path / "first.log", cwd=ROOT)
    provider = DataProviderLocal(f"http://127.0.0.1:{port}", timeout=20)
    seen = Collector()
    try:
        provider.subscribe("ETH-USD", "1d", seen)
        seen.wait_for(finals_at_least(3))
        stop(server)  # the replay starts over on the new server: what the client has is not sent twice
        before = len(seen.finals)
        server = start_server(port, *arguments, log=tmp_path / "second.log", cwd=ROOT)
        seen.wait_for(finals_at_least(before + 5))
        assert_in_order_without_duplicates(seen.bars, one_stream=False)  # a new server's stream counts from 1
        cached = provider.get_data_socket("ETH-USD", "1d", "max", local_only=True).index
        first, last = seen.finals[0].time, seen.finals[-1].time
        assert [bar.time for bar in seen.finals] == list(cached[(cached >= first) & (cached <= last)])
    finally:
        provider.disconnect()
        stop(server)


def test_stream_is_an_async_iterator_that_unsubscribes_on_exit(live_server):
    server = live_server(replay=SPEED)
    provider = server.client()

    async def first_finals(count: int) -> list[LiveBar]:
        finals = []
        async for bar in provider.stream("SOL-USD", "1d"):
            if bar.is_final:
                finals.append(bar)
                if len(finals) == count:
                    break
        return finals

    finals = asyncio.run(first_finals(4))
    assert [bar.time for bar in finals] == sorted({bar.time for bar in finals})
    assert server.app.live.active() == {}


# ----------------------------------------------------------------------------- polling Yahoo
@pytest.fixture
def yahoo(live_server, make_yahoo_source):
    """A server polling recorded Yahoo answers for NVDA every 0.05 s, at a wall time the test moves.

    The refresh policy's interval is also the poll interval; the wall time only moves when
    the test moves it, so the source is asked again only then.
    """
    replay = YahooReplay(NVDA)
    now = Now(pd.Timestamp("2021-07-01 22:00", tz="UTC"))
    replay.as_of(now.value)
    policy = RefreshPolicy(min_interval_daily=pd.Timedelta(milliseconds=50))
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now, policy=policy)
    server.client().get_data_socket("NVDA", period="3mo", local_only=False)
    return server, replay, now


def move_to(replay: YahooReplay, now: Now, stamp: str) -> None:
    now.value = pd.Timestamp(stamp, tz="UTC")
    replay.as_of(now.value)


def test_polled_final_bars_land_in_the_cache_and_two_subscribers_cost_one_poll(yahoo):
    server, replay, now = yahoo
    first, second = Collector(), Collector()
    a = server.client().subscribe("NVDA", "1d", first)
    b = server.client().subscribe("NVDA", "1d", second)
    first.wait_for(lambda c: any(not bar.is_final for bar in c.bars))
    forming = [bar for bar in first.bars if not bar.is_final][-1]
    assert forming.time == pd.Timestamp("2021-07-01", tz="America/New_York")

    before = len(replay.requests_for("NVDA"))
    move_to(replay, now, "2021-07-07 22:00")  # 07-01, 07-02 and 07-06 have closed since
    first.wait_for(lambda c: pd.Timestamp("2021-07-06", tz="America/New_York") in [b.time for b in c.finals])
    second.wait_for(lambda c: pd.Timestamp("2021-07-06", tz="America/New_York") in [b.time for b in c.finals])
    polls = len(replay.requests_for("NVDA")) - before
    assert polls == 1, "one download for both subscribers, and none while nothing changes"

    for seen in (first, second):
        assert_in_order_without_duplicates(seen.bars)
    new_finals = [bar for bar in first.finals if bar.time >= pd.Timestamp("2021-07-01", tz="America/New_York")]
    assert [bar.time.strftime("%m-%d") for bar in new_finals] == ["07-01", "07-02", "07-06"]
    expected = cached_rows(server.client(), "NVDA", "1d", new_finals)
    pd.testing.assert_frame_equal(as_frame(new_finals), expected, check_names=False, check_freq=False)
    assert server.store.info("NVDA", "1d").last == pd.Timestamp("2021-07-07", tz="America/New_York")

    a.close()
    b.close()
    assert server.app.live.active() == {}
    wait_until(lambda: not live_threads(), timeout=5, what="the stream's thread to end")
    asked = len(replay.requests_for("NVDA"))
    move_to(replay, now, "2021-07-09 22:00")
    time.sleep(0.3)
    assert len(replay.requests_for("NVDA")) == asked, "no poll once nobody subscribes"


def test_an_unknown_symbol_ends_the_subscription_with_the_reason(yahoo):
    server, replay, _ = yahoo
    replay.add_unknown("NOPE")
    seen = Collector()
    subscription = server.client().subscribe("NOPE", "1d", seen, error_callback=seen.error)
    seen.wait_for(lambda c: c.errors)
    assert [error.code for error in seen.errors] == ["SYMBOL_NOT_FOUND"]
    wait_until(lambda: subscription.closed, timeout=5, what="the subscription to close")
    assert server.app.live.active() == {} and seen.bars == []


def test_an_offline_server_without_replay_says_how_to_get_live_bars(live_server):
    provider = live_server().client(raise_errors=True)
    with pytest.raises(Exception) as info:
        provider.subscribe("SPY", "1d", print)
    assert info.value.code == "UPSTREAM_UNAVAILABLE" and "--replay" in info.value.message


# ----------------------------------------------------------------------------- bad input
BAD = [
    {"ticker": "../etc/passwd"},
    {"ticker": "SPY", "resolution": "1D"},
    {"ticker": ""},
    {"ticker": "SPY", "colour": "red"},
    {"resolution": "1d"},
    {"ticker": 5},
]


@pytest.fixture
def raw(live_server):
    client = RawClient(live_server(replay=SPEED).url)
    yield client
    client.close()


def next_reply(raw: RawClient) -> tuple[str, dict]:
    while True:
        name, payload = raw.events.get(timeout=10)
        if name != protocol.CONNECTION_RESPONSE:
            return name, payload


@pytest.mark.parametrize("fields", BAD)
def test_bad_subscribe_payloads_get_the_codes_get_data_gets(raw, fields):
    raw.sio.emit(protocol.GET_DATA, {"request_id": "d", **fields})
    data_event, data_error = next_reply(raw)
    raw.sio.emit(protocol.SUBSCRIBE, {"request_id": "s", **fields})
    event, error = next_reply(raw)
    assert (data_event, event) == (protocol.DATA_ERROR, protocol.SUBSCRIPTION_ERROR)
    assert (error["request_id"], error["code"], error["field"]) == ("s", data_error["code"], data_error["field"])


@pytest.mark.parametrize("payload", [None, "SPY", ["SPY"], 5])
def test_subscribe_payloads_that_are_not_objects(raw, payload):
    raw.sio.emit(protocol.SUBSCRIBE, payload)
    event, error = next_reply(raw)
    assert (event, error["code"]) == (protocol.SUBSCRIPTION_ERROR, "INVALID_PAYLOAD")


def test_unsubscribing_what_was_never_subscribed_is_an_error(raw):
    raw.sio.emit(protocol.UNSUBSCRIBE, {"request_id": "u", "subscription_id": "live:SPY:1d"})
    event, error = next_reply(raw)
    assert (event, error["request_id"], error["code"]) == (protocol.SUBSCRIPTION_ERROR, "u", "INVALID_PAYLOAD")


def test_subscribe_then_unsubscribe_over_the_wire(raw):
    raw.sio.emit(protocol.SUBSCRIBE, {"request_id": "s1", "ticker": "SPY", "resolution": "1d"})
    event, ack = next_reply(raw)
    assert event == protocol.SUBSCRIBED
    assert ack == {"request_id": "s1", "subscription_id": "live:SPY:1d", "ticker": "SPY", "resolution": "1d", "seq": 0}
    updates = []
    while len(updates) < 3:
        event, payload = next_reply(raw)
        assert event == protocol.BAR_UPDATE
        updates.append(payload)
    assert [u["seq"] for u in updates] == [1, 2, 3]
    assert set(updates[0]) == {"subscription_id", "ticker", "resolution", "timezone", "bar", "is_final", "seq"}
    assert updates[0]["timezone"] == "America/New_York"
    assert set(updates[0]["bar"]) == {"time", "open", "high", "low", "close", "volume"}
    raw.sio.emit(protocol.UNSUBSCRIBE, {"request_id": "u1", "subscription_id": "live:SPY:1d"})
    while True:  # updates already on their way may come first
        event, payload = next_reply(raw)
        if event != protocol.BAR_UPDATE:
            break
    assert (event, payload) == (protocol.UNSUBSCRIBED, {"request_id": "u1", "subscription_id": "live:SPY:1d"})
    with pytest.raises(queue.Empty):
        raw.events.get(timeout=3 / SPEED)
