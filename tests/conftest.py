"""Session-wide test setup."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

import pytest

# Subprocesses the tests start (`kubesweep run`, the operator, pods on the test node)
# must run this checkout's package, not whichever clone `pip install -e .` saw last.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1] / "operator")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p
)

#: Fixtures that need what only the full `scripts/test.sh` builds (the control plane, the
#: real node, the images): a test using one must be marked `k8s`, or the quick loop
#: (`-m "not k8s"`, which builds none of it) would fail on a fresh machine.
FULL_BUILD_FIXTURES = {"cluster", "real_node_cluster", "operator_image", "trial_image"}


def unmarked_full_build_tests(items: list[pytest.Item]) -> list[str]:
    """The tests that use a FULL_BUILD_FIXTURES fixture but are not marked k8s."""
    return [item.nodeid for item in items
            if FULL_BUILD_FIXTURES & set(getattr(item, "fixturenames", ()))
            and item.get_closest_marker("k8s") is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a run with tests that need the full build but would run in the quick loop."""
    unmarked = unmarked_full_build_tests(items)
    if unmarked:
        raise pytest.UsageError(
            "these tests need the control plane or the images but are not marked k8s "
            "(`-m \"not k8s\"` would run them without building either): "
            + ", ".join(unmarked))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A CI timeout or `kill` sends SIGTERM, which by default ends pytest at once and skips
# every fixture's teardown: the real node (network namespace, mounts, iptables chains)
# and the control planes would stay behind. As an interrupt, pytest tears them down.
signal.signal(signal.SIGTERM, _interrupt)

# Defined here, once: a fixture imported into two conftests is two fixtures, and a second
# session-scoped real node would wait for the first (one real node per machine) until it
# timed out. tests/node and tests/chaos both use this one.
from tests.cluster.fixtures import real_node_cluster  # noqa: E402, F401
