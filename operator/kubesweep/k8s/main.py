"""`kubesweep operator`: start the metrics server, the reconcile workers and kopf."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence

from kubesweep.k8s import metrics
from kubesweep.settings import Settings


def run_operator(settings: Settings, *, namespaces: Sequence[str] = (),
                 all_namespaces: bool = False, verbose: bool = False) -> int:
    """Run the operator until SIGTERM/SIGINT; returns the exit code."""
    import kopf

    from kubesweep.k8s import handlers
    from kubesweep.k8s.api import Api, load_config

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "kopf.activities", "kubernetes.client.rest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not namespaces and not all_namespaces:
        namespaces = [os.environ.get("KUBESWEEP_NAMESPACE") or _own_namespace() or "default"]
    operator = handlers.Operator(Api(load_config()), settings, workers=settings.workers)
    handlers.install(operator)
    metrics.serve(settings.metrics_port, settings.metrics_address)
    operator.start()
    logging.getLogger("kubesweep.operator").info(
        "watching %s; metrics on %s:%d, liveness on %s:%d/healthz",
        "all namespaces" if all_namespaces else "namespaces " + ", ".join(namespaces),
        settings.metrics_address, settings.metrics_port, settings.liveness_address,
        settings.liveness_port)
    try:
        kopf.run(
            standalone=True,  # one replica, no peering objects to read or write
            # kopf's default identity calls getpass.getuser(), which raises KeyError in a
            # container whose uid has no passwd entry and no USER variable (the chart
            # runs uid 65532): never let the user database decide whether we start.
            identity=operator_identity(),  # type: ignore[arg-type]  # kopf's NewType(str)
            clusterwide=all_namespaces,
            namespaces=() if all_namespaces else list(namespaces),
            liveness_endpoint=f"http://{settings.liveness_address}:{settings.liveness_port}"
                              "/healthz",
        )
    finally:
        operator.stop()
    return 0


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
