"""Leader election on a `coordination.k8s.io` Lease, so several operator replicas can run
and exactly one reconciles.

The same protocol as client-go's leaderelection (what controller-runtime operators use):
the leader renews the Lease every `retry_period`; a candidate takes the Lease over only
after it has seen the same record unchanged for `lease_duration` (measured on its own
monotonic clock, so clock skew between nodes does not matter); every write carries the
resourceVersion it read, so of two candidates racing for an expired Lease only one wins.
A leader that cannot renew for `renew_deadline` (< `lease_duration`) gives up before any
candidate could take over: two replicas never both believe they lead. On a clean shutdown
the leader releases the Lease and a standby takes over at its next try.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger("kubesweep.leader")

#: Lease name the replicas of one operator install share.
DEFAULT_LEASE_NAME = "kubesweep-operator"


@dataclass(frozen=True)
class Timing:
    """client-go's defaults: a standby takes over at most ~lease_duration + retry_period
    after the leader died; the leader steps down after renew_deadline without renewal."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < "
                             "lease_duration")


def default_identity() -> str:
    """This replica's name in the Lease: the pod name plus a random suffix (a restarted
    container is a new candidate, never mistaken for the old leader)."""
    host = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LeaderElector:
    """Acquire, hold and release one Lease.

    `acquire(stop)` blocks until this replica leads (True) or `stop` is set (False);
    `hold(stop, on_lost)` then renews in a thread and calls `on_lost` if renewal fails for
    longer than the renew deadline; `release()` hands the Lease over on shutdown.
    """

    def __init__(self, api_client: client.ApiClient, namespace: str,
                 name: str = DEFAULT_LEASE_NAME, identity: str | None = None,
                 timing: Timing = Timing(),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.timing = timing
        self._monotonic = monotonic
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self.leading = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one attempt ----------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this replica holds the Lease afterwards."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace,
                                                   _request_timeout=self.timing.retry_period * 2)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("reading Lease %s/%s failed: %s %s", self.namespace, self.name,
                            exc.status, exc.reason)
                return False
            return self._create()
        except Exception as exc:  # noqa: BLE001 - connection errors: try again later
            log.warning("reading Lease %s/%s failed: %s", self.namespace, self.name, exc)
            return False
        spec = lease.spec or client.V1LeaseSpec()
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        now = self._monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder = spec.holder_identity
        duration = spec.lease_duration_seconds or self.timing.lease_duration
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # someone else leads, and was seen alive within the lease duration
        stamp = _now()
        if holder != self.identity:
            spec.acquire_time = stamp
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.holder_identity = self.identity
        spec.renew_time = stamp
        spec.lease_duration_seconds = int(self.timing.lease_duration)
        lease.spec = spec
        try:
            # carries the resourceVersion read above: a concurrent writer makes this a 409
            self.api.replace_namespaced_lease(self.name, self.namespace, lease,
                                              _request_timeout=self.timing.retry_period * 2)
        except ApiException as exc:
            if exc.status != 409:
                log.warning("updating Lease %s/%s failed: %s %s", self.namespace, self.name,
                            exc.status, exc.reason)
            return False
        except Exception as exc:  # noqa: BLE001
            log.warning("updating Lease %s/%s failed: %s", self.namespace, self.name, exc)
            return False
        if holder != self.identity:
            log.info("became the leader (Lease %s/%s, previous holder %s)", self.namespace,
                     self.name, holder or "none")
        return True

    def _create(self) -> bool:
        stamp = _now()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(holder_identity=self.identity, acquire_time=stamp,
                                    renew_time=stamp, lease_transitions=0,
                                    lease_duration_seconds=int(self.timing.lease_duration)))
        try:
            self.api.create_namespaced_lease(self.namespace, body,
                                             _request_timeout=self.timing.retry_period * 2)
        except ApiException as exc:
            if exc.status != 409:
                log.warning("creating Lease %s/%s failed: %s %s", self.namespace, self.name,
                            exc.status, exc.reason)
            return False
        except Exception as exc:  # noqa: BLE001
            log.warning("creating Lease %s/%s failed: %s", self.namespace, self.name, exc)
            return False
        log.info("became the leader (created Lease %s/%s)", self.namespace, self.name)
        return True

    # -- the loops ------------------------------------------------------------------------

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this replica leads (True), or until `stop` is set (False)."""
        logged = False
        while not stop.is_set():
            if self.try_acquire_or_renew():
                self._last_renew = self._monotonic()
                self.leading.set()
                return True
            if not logged:
                log.info("standing by: Lease %s/%s is held by %s", self.namespace, self.name,
                         (self._observed or ("another replica",))[0])
                logged = True
            stop.wait(self.timing.retry_period)
        return False

    def hold(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renew in a background thread until `stop`; call `on_lost` (once) when renewal
        has failed for longer than the renew deadline."""

        def renew() -> None:
            while not stop.wait(self.timing.retry_period):
                if self.try_acquire_or_renew():
                    self._last_renew = self._monotonic()
                    continue
                if self._monotonic() - self._last_renew > self.timing.renew_deadline:
                    self.leading.clear()
                    log.error("lost the Lease %s/%s (no renewal for %.0fs): stepping down",
                              self.namespace, self.name, self.timing.renew_deadline)
                    on_lost()
                    return

        self._thread = threading.Thread(target=renew, name="leader-renew", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the Lease up (clean shutdown) so a standby need not wait for it to expire."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace,
                                                   _request_timeout=5)
            if (lease.spec and lease.spec.holder_identity) != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = _now()
            self.api.replace_namespaced_lease(self.name, self.namespace, lease,
                                              _request_timeout=5)
            log.info("released the Lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # noqa: BLE001 - it expires by itself anyway
            log.warning("could not release the Lease %s/%s: %s", self.namespace, self.name,
                        exc)
