"""`kubesweep operator`: start the metrics server, the reconcile workers and kopf."""

from __future__ import annotations

import logging
import os
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
            clusterwide=all_namespaces,
            namespaces=() if all_namespaces else list(namespaces),
            liveness_endpoint=f"http://{settings.liveness_address}:{settings.liveness_port}"
                              "/healthz",
        )
    finally:
        operator.stop()
    return 0


def _own_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None
