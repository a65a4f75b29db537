"""The operator's API calls reuse their connections.

A response read with `_preload_content=False` keeps its connection until it is read to
the end and released; the operator's writes whose answer it does not need (Job
create/delete/annotate, events) once left them unread, so each such call opened a new
TLS connection: 11,387 handshakes for 14,520 calls in a 3,000-trial kwok run
(benchmarks/scale_kwok.py, KUBESWEEP_PROFILE). Counted here on the real API server
through urllib3's own counter of the connections a pool opened.
"""

from __future__ import annotations

import pytest

from kubesweep.k8s.api import Api
from tests.cluster.fixtures import ClusterHandle

pytestmark = pytest.mark.k8s

CALLS = 10


def _opened(api: Api) -> int:
    """Connections urllib3 has opened to the API server so far."""
    pools = api.client.rest_client.pool_manager.pools
    return sum(pools[key].num_connections for key in pools.keys())


def test_writes_whose_answer_is_not_read_give_their_connection_back(
        cluster: ClusterHandle, namespace: str):
    api = Api(cluster.api)
    sweep = {"metadata": {"name": "conn", "namespace": namespace, "uid": "u-1"}}
    api.event(sweep, "Normal", "Warmup", "opens the first connection")
    before = _opened(api)
    for i in range(CALLS):
        name = f"conn-{i}"
        # suspended: the Job controller starts no pod for it
        assert api.create_job(namespace, {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"suspend": True, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "x", "command": ["true"]}]}}}})
        assert not api.create_job(namespace, {  # AlreadyExists is success
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"suspend": True, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "x", "command": ["true"]}]}}}})
        api.annotate_job(namespace, name, {"kubesweep.io/note": str(i)})
        api.event(sweep, "Normal", "Test", f"event {i}")
        api.delete_job(namespace, name)
        api.delete_job(namespace, name)  # already gone (404) is fine
    # sequential calls need one connection; the old code opened one per call (60 here)
    assert _opened(api) - before <= 1, _opened(api) - before
    names = {j.metadata.name for j in cluster.batch().list_namespaced_job(namespace).items
             if not j.metadata.deletion_timestamp}
    assert not names & {f"conn-{i}" for i in range(CALLS)}
