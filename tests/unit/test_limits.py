"""The pieces behind the server's limits: the event meter, the fair job queue, per-client counts."""

from __future__ import annotations

import threading

import pytest

from dataprovider.errors import ServerBusyError
from server.socket.connections import ClientRegistry
from server.socket.limits import FairQueue, Limits, TokenBucket


class ManualExecutor:
    """An executor that only collects tasks; the test runs them when it wants."""

    def __init__(self) -> None:
        self.tasks: list = []

    def submit(self, fn, *args):
        self.tasks.append(lambda: fn(*args))

    def run_all(self) -> None:
        while self.tasks:
            self.tasks.pop(0)()


def test_bucket_allows_a_burst_then_meters_at_its_rate(clock):
    bucket = TokenBucket(rate=4, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == 0.25  # one token comes in a quarter of a second
    clock.advance(0.125)
    assert bucket.take() == 0.125  # a refused event spends nothing
    clock.advance(0.125)
    assert bucket.take() == 0.0
    assert bucket.take() == 0.25


def test_bucket_never_holds_more_than_its_burst(clock):
    bucket = TokenBucket(rate=100, burst=2, clock=clock)
    clock.advance(3600)  # an idle hour does not bank 360000 events
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


def test_fair_queue_takes_turns_between_clients():
    executor = ManualExecutor()
    jobs = FairQueue(executor, max_queued=100)
    ran = []
    for i in range(4):
        jobs.submit("a", lambda i=i: ran.append(f"a{i}"))
    jobs.submit("b", lambda: ran.append("b0"))
    jobs.submit("c", lambda: ran.append("c0"))
    jobs.submit("b", lambda: ran.append("b1"))
    assert jobs.waiting == 7 and len(executor.tasks) == 7
    executor.run_all()
    # One job of each client in turn, each client in the order of its own jobs.
    assert ran == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert jobs.waiting == 0


def test_fair_queue_refuses_beyond_its_bound():
    executor = ManualExecutor()
    jobs = FairQueue(executor, max_queued=2)
    ran = []
    jobs.submit("a", lambda: ran.append(1))
    jobs.submit("b", lambda: ran.append(2))
    with pytest.raises(ServerBusyError) as refused:
        jobs.submit("c", lambda: ran.append(3))
    assert refused.value.code == "BUSY"
    assert refused.value.details == {"queued": 2, "max": 2}
    assert "retry" in refused.value.message
    executor.tasks.pop(0)()  # a worker takes one: room for one more
    jobs.submit("c", lambda: ran.append(3))
    executor.run_all()
    assert sorted(ran) == [1, 2, 3]


def test_in_flight_limit_counts_until_the_end_of_each_request():
    clients = ClientRegistry(Limits(max_in_flight=2))
    clients.add("s1")
    clients.add("s2")
    clients.begin("s1")
    clients.begin("s1")
    with pytest.raises(ServerBusyError) as refused:
        clients.begin("s1")
    assert refused.value.details == {"in_flight": 2, "max": 2}
    assert "wait for their replies" in refused.value.message
    clients.begin("s2")  # another connection has its own count
    clients.end("s1")
    clients.begin("s1")
    assert clients.in_flight("s1") == 2 and clients.in_flight("s2") == 1


def test_event_meter_is_per_client_and_says_when_to_retry():
    clients = ClientRegistry(Limits(events_per_second=0.01, event_burst=2))
    clients.add("s1")
    clients.add("s2")
    clients.take_event("s1")
    clients.take_event("s1")
    with pytest.raises(ServerBusyError) as refused:
        clients.take_event("s1")
    details = refused.value.details
    assert details["events_per_second"] == 0.01 and details["burst"] == 2
    assert 99 < details["retry_after"] <= 100
    clients.take_event("s2")


def test_a_departed_client_is_not_limited_and_its_requests_are_cancelled():
    clients = ClientRegistry(Limits(max_in_flight=1, events_per_second=0.01, event_burst=1))
    clients.add("s1")
    cancelled = clients.accept("s1", "r1")
    clients.forget("s1")
    assert cancelled.is_set()
    clients.take_event("s1")  # its last events may still be on their way: nothing to meter
    clients.begin("s1")
    clients.end("s1")
    assert clients.in_flight("s1") == 0
    assert clients.wait_for_reader("s1") is False
    assert clients.accept("s1", "r2").is_set()
    assert isinstance(clients.send_lock("s1"), type(threading.Lock()))
