"""`kubesweep operator`: start the metrics server, the reconcile workers and kopf."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from kubesweep.k8s import metrics
from kubesweep.k8s.probes import Probes
from kubesweep.settings import Settings

log = logging.getLogger("kubesweep.operator")


def run_operator(settings: Settings, *, namespaces: Sequence[str] = (),
                 all_namespaces: bool = False, verbose: bool = False) -> int:
    """Run the operator until SIGTERM/SIGINT; returns the exit code."""
    import kopf
    from kubernetes import client

    from kubesweep.k8s import handlers
    from kubesweep.k8s.api import Api, load_config

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "kopf.activities", "kubernetes.client.rest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not namespaces and not all_namespaces:
        namespaces = [os.environ.get("KUBESWEEP_NAMESPACE") or _own_namespace() or "default"]
    api_client = load_config()
    probes = Probes(lambda: client.VersionApi(api_client).get_code(_request_timeout=5)
                    is not None)
    operator = handlers.Operator(Api(api_client), settings, workers=settings.workers)
    handlers.install(operator)
    # /metrics first: once /healthz answers, every endpoint does
    metrics.serve(settings.metrics_port, settings.metrics_address)
    probes.serve(settings.liveness_address, settings.liveness_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    elector = None
    if settings.leader_elect:
        from kubesweep.k8s.leader import LeaderElector

        namespace = settings.lease_namespace or _own_namespace() or "default"
        elector = LeaderElector(api_client, namespace, settings.lease_name)
        log.info("leader election on Lease %s/%s as %s", namespace, settings.lease_name,
                 elector.identity)
        operator.pause()
        threading.Thread(target=_lead, name="leader-election", daemon=True,
                         args=(elector, operator, stop)).start()
    operator.start()
    log.info("watching %s; metrics on %s:%d, probes on %s:%d (/healthz, /readyz)",
             "all namespaces" if all_namespaces else "namespaces " + ", ".join(namespaces),
             settings.metrics_address, settings.metrics_port, settings.liveness_address,
             settings.liveness_port)
    delay = 1.0
    try:
        # kopf runs in a thread so that its exit (e.g. the API server was unreachable when
        # it listed the resources) does not end the process: wait for the API server and
        # start it again, backing off, until SIGTERM/SIGINT
        while probes.wait_for_api(stop):
            started = time.monotonic()
            thread = threading.Thread(target=_run_kopf, name="kopf", daemon=True, args=(
                kopf, all_namespaces, namespaces, stop, probes.watching))
            thread.start()
            while thread.is_alive() and not stop.is_set():
                thread.join(0.5)
            probes.watching.clear()
            if stop.is_set():
                thread.join(30)
                break
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            log.warning("the watches stopped; restarting them in %.0fs", delay)
            stop.wait(delay)
    finally:
        operator.stop()
        if elector is not None:
            elector.release()  # a standby takes over at its next try, not after expiry
    return 0


def _lead(elector: Any, operator: Any, stop: threading.Event) -> None:
    """Reconcile only while this replica holds the Lease. kopf watches either way, so a
    standby's queue is full when it takes over; an API server outage longer than the renew
    deadline makes the leader stand by (not exit) and compete again once it is back."""
    while not stop.is_set():
        metrics.LEADER.set(0)
        operator.pause()
        if not elector.acquire(stop):
            return
        metrics.LEADER.set(1)
        operator.resume()
        lost = threading.Event()
        elector.hold(stop, lost.set)
        while not stop.is_set() and not lost.wait(1.0):
            pass


def _run_kopf(kopf: Any, all_namespaces: bool, namespaces: Sequence[str],
              stop: threading.Event, ready: threading.Event) -> None:
    try:
        kopf.run(
            standalone=True,  # one replica, no peering objects to read or write
            # kopf's default identity calls getpass.getuser(), which raises KeyError in a
            # container whose uid has no passwd entry and no USER variable (the chart
            # runs uid 65532): never let the user database decide whether we start.
            identity=operator_identity(),  # type: ignore[arg-type]  # kopf's NewType(str)
            clusterwide=all_namespaces,
            namespaces=() if all_namespaces else list(namespaces),
            stop_flag=stop,
            ready_flag=ready,
        )
    except Exception as exc:  # noqa: BLE001 - the caller restarts it
        log.warning("kopf stopped: %s", exc)


def operator_identity() -> str:
    """This operator's identity for kopf: kopf's POD_ID variable if set, else
    `kubesweep@<hostname>` (in a pod the hostname is the pod's name). Needs no passwd
    entry for the running uid, unlike kopf's default."""
    return os.environ.get("POD_ID") or f"kubesweep@{socket.gethostname()}"


def _own_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None
