"""Fault tests on the real node's cluster (containerd, kubelet, kube-proxy): they crash
the API server and etcd and bring them back (`LocalCluster.crash` / `start_again`), so
trials in containers, the kubelet and kube-proxy live through the outages as on a real
cluster. The cluster is the session's `real_node_cluster` (one real node per machine);
every fault test restores what it crashed before it ends, so the tests that use the
cluster afterwards find it whole."""

import pytest

from tests.cluster.fixtures import (  # noqa: F401 (pytest finds fixtures by name)
    ClusterHandle,
    namespace,
    pytest_runtest_makereport,
)


@pytest.fixture(scope="session")
def cluster(real_node_cluster: ClusterHandle) -> ClusterHandle:
    """The real-node cluster, for every fixture here that asks for `cluster`."""
    return real_node_cluster
