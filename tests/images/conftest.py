"""Fixtures for tests against a real Kubernetes API (see tests/cluster/README.md)."""

from tests.cluster.fixtures import (  # noqa: F401 (pytest finds fixtures by name)
    cluster,
    namespace,
    pytest_runtest_makereport,
)
