"""Tests on the real node (containerd + kubelet + kube-proxy; tests/cluster/real_node.py).

Every test here runs against `real_node_cluster`; overriding `cluster` with it makes the
`namespace` fixture create its namespaces there.
"""

from __future__ import annotations

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
