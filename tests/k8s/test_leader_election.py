"""Leader election (kubesweep.k8s.leader) on a real API server's Lease: one leader at a
time, a standby takes over when the leader dies without a word or steps down cleanly,
and of candidates racing for an expired Lease exactly one wins."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from kubesweep.k8s.leader import LeaderElector, Timing
from tests.cluster.fixtures import ClusterHandle

pytestmark = pytest.mark.k8s

#: Short periods so the test runs in seconds; the ratios are client-go's.
FAST = Timing(lease_duration=3.0, renew_deadline=2.0, retry_period=0.3)


@pytest.fixture
def stops() -> Iterator[list[threading.Event]]:
    events: list[threading.Event] = []
    yield events
    for event in events:
        event.set()


def _elector(cluster: ClusterHandle, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(cluster.api, namespace, name="kubesweep-test", identity=identity,
                         timing=FAST)


def _holder(cluster: ClusterHandle, namespace: str) -> str | None:
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("kubesweep-test",
                                                                         namespace)
    return lease.spec.holder_identity


def _run(elector: LeaderElector, stop: threading.Event, lost: list[str]) -> threading.Thread:
    """A candidate as the operator runs one: acquire, then hold until stopped."""

    def main() -> None:
        if elector.acquire(stop):
            elector.hold(stop, lambda: lost.append(elector.identity))

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread


def test_one_leader_and_a_standby_takes_over_when_it_dies(
        cluster: ClusterHandle, namespace: str, stops: list[threading.Event]):
    a, b = _elector(cluster, namespace, "a"), _elector(cluster, namespace, "b")
    stop_a, stop_b = threading.Event(), threading.Event()
    stops += [stop_a, stop_b]
    lost: list[str] = []
    _run(a, stop_a, lost)
    assert a.leading.wait(10)
    _run(b, stop_b, lost)
    # b stands by for several lease durations while a renews
    deadline = time.monotonic() + 4 * FAST.lease_duration
    while time.monotonic() < deadline:
        assert not b.leading.is_set(), "two leaders at once"
        time.sleep(0.1)
    assert _holder(cluster, namespace) == "a" and not lost

    # a dies without releasing (SIGKILL): its renewals just stop
    stop_a.set()
    died = time.monotonic()
    assert b.leading.wait(10 * FAST.lease_duration), "the standby never took over"
    took = time.monotonic() - died
    print(f"standby took over {took:.1f}s after the leader stopped renewing "
          f"(lease duration {FAST.lease_duration:g}s)")
    # not before the lease could have expired as b observed it
    assert took >= FAST.lease_duration - FAST.retry_period - 0.5
    assert _holder(cluster, namespace) == "b"


def test_a_clean_shutdown_hands_over_at_once(cluster: ClusterHandle, namespace: str,
                                            stops: list[threading.Event]):
    slow = Timing(lease_duration=60.0, renew_deadline=40.0, retry_period=0.3)
    a = LeaderElector(cluster.api, namespace, name="kubesweep-test", identity="a", timing=slow)
    b = LeaderElector(cluster.api, namespace, name="kubesweep-test", identity="b", timing=slow)
    stop_a, stop_b = threading.Event(), threading.Event()
    stops += [stop_a, stop_b]
    _run(a, stop_a, [])
    assert a.leading.wait(10)
    _run(b, stop_b, [])
    time.sleep(1)
    assert not b.leading.is_set()
    stop_a.set()
    a.release()
    # far sooner than the 60 s lease duration
    assert b.leading.wait(20), "the standby did not take the released Lease"
    assert _holder(cluster, namespace) == "b"


def test_a_leader_that_cannot_renew_steps_down_before_anyone_takes_over(
        cluster: ClusterHandle, namespace: str, stops: list[threading.Event]):
    a = _elector(cluster, namespace, "a")
    stop_a = threading.Event()
    stops.append(stop_a)
    lost: list[str] = []
    _run(a, stop_a, lost)
    assert a.leading.wait(10)
    # someone else (a newer operator, a hand edit) owns the Lease now: a's renewals fail
    api = client.CoordinationV1Api(cluster.api)
    lease = api.read_namespaced_lease("kubesweep-test", namespace)
    lease.spec.holder_identity = "intruder"
    api.replace_namespaced_lease("kubesweep-test", namespace, lease)
    deadline = time.monotonic() + 10 * FAST.lease_duration
    while not lost and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lost == ["a"] and not a.leading.is_set()


def test_of_candidates_racing_for_an_expired_lease_exactly_one_wins(
        cluster: ClusterHandle, namespace: str):
    first = _elector(cluster, namespace, "old")
    assert first.try_acquire_or_renew()
    candidates = [_elector(cluster, namespace, f"c{i}") for i in range(6)]
    for c in candidates:  # each observes the record once...
        assert not c.try_acquire_or_renew()
    time.sleep(FAST.lease_duration + 0.5)  # ...which then stays unchanged past its duration
    barrier = threading.Barrier(len(candidates))
    won: list[str] = []

    def race(c: LeaderElector) -> None:
        barrier.wait()
        if c.try_acquire_or_renew():
            won.append(c.identity)

    threads = [threading.Thread(target=race, args=(c,)) for c in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1, f"winners: {won}"
    assert _holder(cluster, namespace) == won[0]
