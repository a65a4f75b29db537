"""kopf wiring: Sweep and Job watch events put sweep keys on the work queue.

No kopf daemons or timers: those need a finalizer on every Sweep, and a Sweep deleted
while the operator is down would then hang until it returns. Instead kopf only watches
(`on.event` needs no finalizer, annotation or patch), and a few worker threads run
`reconcile` for the queued keys; a pass asks to be re-queued when it needs a look
without an event (start timeouts, early termination).
"""

from __future__ import annotations

import cProfile
import logging
import os
import pstats
import threading
import time
from typing import Any

import kopf

from kubesweep.k8s import metrics
from kubesweep.k8s.api import Api, ApiError
from kubesweep.k8s.crd import PLURAL, VERSION
from kubesweep.k8s.names import SWEEP_LABEL
from kubesweep.k8s.reconcile import reconcile
from kubesweep.k8s.workqueue import WorkQueue
from kubesweep.settings import Settings
from kubesweep.spec import API_GROUP, KIND

log = logging.getLogger("kubesweep.operator")

#: Seconds a Job event waits before its sweep's pass: bursts of Job updates (a batch
#: finishing together) collapse into one pass.
JOB_EVENT_DELAY = 0.3
#: Seconds before a pass whose status write met a newer version is decided again.
CONFLICT_DELAY = 0.2
#: Backoff after a failed pass: first retry, and the cap.
ERROR_BACKOFF = (1.0, 60.0)
#: Environment variable naming a file: every pass is profiled (cProfile, one profiler per
#: worker thread) and the merged statistics are written there when the operator stops.
#: For benchmarks (benchmarks/scale_kwok.py); it slows passes down.
PROFILE_ENV = "KUBESWEEP_PROFILE"


class Operator:
    """The queue, the workers and what they share."""

    def __init__(self, api: Api, settings: Settings, workers: int = 4) -> None:
        self.api = api
        self.settings = settings
        self.queue = WorkQueue()
        self.workers = workers
        self.failures: dict[tuple[str, str], int] = {}
        self._threads: list[threading.Thread] = []
        #: cleared while another replica leads: workers hold their next key until set
        self.active = threading.Event()
        self.active.set()
        self._stopped = threading.Event()
        self.profile_path = os.environ.get(PROFILE_ENV) or None
        self._profilers: list[cProfile.Profile] = []

    def start(self) -> None:
        """Start the worker threads."""
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"reconcile-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking new work (running passes finish on their own)."""
        self._stopped.set()
        self.queue.close()
        ran = [p for p in self._profilers if p.getstats()]
        if self.profile_path and ran:
            pstats.Stats(*ran).dump_stats(self.profile_path)  # type: ignore[arg-type]
            log.info("profile of %d worker threads written to %s", len(ran),
                     self.profile_path)

    def pause(self) -> None:
        """Run no new pass (this replica is a standby); passes under way finish."""
        self.active.clear()

    def resume(self) -> None:
        """Run passes again (this replica leads)."""
        self.active.set()

    def _work(self) -> None:
        profiler = cProfile.Profile() if self.profile_path else None
        if profiler is not None:
            self._profilers.append(profiler)
        while True:
            key = self.queue.get()
            if key is None:
                return
            while not self.active.wait(0.5):
                if self._stopped.is_set():
                    return
            namespace, name = key  # type: ignore[misc]
            started = time.perf_counter()
            try:
                if profiler is not None:
                    result = profiler.runcall(reconcile, self.api, self.settings, namespace,
                                              name)
                else:
                    result = reconcile(self.api, self.settings, namespace, name)
            except ApiError as exc:
                if exc.status != 409:
                    self._failed(key, exc)
                else:
                    # the Sweep changed since this pass read it (another writer, an edit):
                    # nothing was overwritten; decide again from a fresh read
                    log.debug("sweep %s/%s changed during its pass; again", namespace, name)
                    metrics.STATUS_CONFLICTS.labels(namespace, name).inc()
                    self.queue.add(key, CONFLICT_DELAY)
            except Exception as exc:  # noqa: BLE001 - one bad sweep must not stop the others
                self._failed(key, exc)
            else:
                self.failures.pop(key, None)  # type: ignore[arg-type]
                if result.requeue_after is not None:
                    self.queue.add(key, result.requeue_after)
            finally:
                metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)
                self.queue.done(key)


    def _failed(self, key: tuple[str, str], exc: Exception) -> None:
        """Count a failed pass and retry it with exponential backoff."""
        namespace, name = key
        metrics.RECONCILE_ERRORS.labels(namespace, name).inc()
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        delay = min(ERROR_BACKOFF[0] * 2 ** (count - 1), ERROR_BACKOFF[1])
        log.warning("reconcile of sweep %s/%s failed (retry in %.0fs): %s",
                    namespace, name, delay, exc, exc_info=count == 1)
        self.queue.add(key, delay)


#: Set by `install` before kopf starts; the handlers below only enqueue.
OPERATOR: Operator | None = None


def install(operator: Operator) -> None:
    """Make the kopf handlers feed `operator`'s queue."""
    global OPERATOR
    OPERATOR = operator


@kopf.on.startup()
def _configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    if OPERATOR is None:
        # started as `kopf run -m kubesweep.k8s.handlers` rather than `kubesweep operator`:
        # default settings, the metrics port from $KUBESWEEP_METRICS_PORT if set
        from kubesweep.k8s.api import load_config

        defaults = Settings()
        operator = Operator(Api(load_config()), defaults)
        install(operator)
        metrics.serve(int(os.environ.get("KUBESWEEP_METRICS_PORT", defaults.metrics_port)),
                      defaults.metrics_address)
        operator.start()
    # kopf posts k8s events for its own handler errors; ours are posted by reconcile
    settings.posting.level = logging.WARNING
    # no cluster-wide watches of CRDs and namespaces: a namespace-scoped install needs no
    # cluster-scoped RBAC. The Sweep CRD must exist when the operator starts.
    settings.scanning.disabled = True
    # only trial Jobs reach the operator (server-side filter): a cluster's other Jobs
    # cost neither bandwidth nor memory
    settings.watching.label_selectors["batch", "v1", "jobs"] = SWEEP_LABEL
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.error_backoffs = [1, 2, 5, 10]


@kopf.on.event(API_GROUP, VERSION, PLURAL)
async def _sweep_event(event: dict[str, Any], body: Any, namespace: str, name: str,
                       **_: Any) -> None:
    if OPERATOR is None:
        return
    key = (namespace, name)
    if event.get("type") == "DELETED":
        OPERATOR.queue.forget(key)
        OPERATOR.api.own_writes.pop(key, None)
        metrics.forget_sweep(namespace, name, (body.get("spec") or {}).get("metric", {})
                             .get("name"))
        return
    status = body.get("status") or {}
    # our own status writes come back as MODIFIED events with an unchanged generation:
    # they need no pass (the one that wrote them has already decided). A status edited
    # by anyone else does (it may be corrupt, or hide a trial).
    if event.get("type") == "MODIFIED" and \
            status.get("observedGeneration") == body["metadata"].get("generation") and \
            OPERATOR.api.wrote(namespace, name, body["metadata"].get("resourceVersion")):
        return
    OPERATOR.queue.add(key)


@kopf.on.event("batch", "v1", "jobs", labels={SWEEP_LABEL: kopf.PRESENT})
async def _job_event(event: dict[str, Any], body: Any, namespace: str, **_: Any) -> None:
    if OPERATOR is None:
        return
    # a Job the operator pruned itself was recorded before it was deleted: its deletion
    # needs no pass (measured: ~0.5 extra passes per trial without this check)
    if event.get("type") == "DELETED" and \
            OPERATOR.api.was_pruned(namespace, body["metadata"].get("name", "")):
        return
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(API_GROUP + "/"):
            OPERATOR.queue.add((namespace, ref["name"]), JOB_EVENT_DELAY)
