"""Session-wide test setup."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

# Subprocesses the tests start (`kubesweep run`, the operator, pods on the test node)
# must run this checkout's package, not whichever clone `pip install -e .` saw last.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1] / "operator")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p
)



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
