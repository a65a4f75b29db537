"""Fault tests on a cluster of their own: they crash the API server and etcd, which must
not disturb the other tests' session cluster."""

from collections.abc import Iterator

import pytest

from tests.cluster.fixtures import (  # noqa: F401 (pytest finds fixtures by name)
    ClusterHandle,
    namespace,
    pytest_runtest_makereport,
    start_cluster,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """A fresh control plane for this module (crashing it is the point)."""
    with start_cluster(tmp_path_factory) as handle:
        yield handle
