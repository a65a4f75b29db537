"""Session-wide test setup."""

from __future__ import annotations

import os
from pathlib import Path

# Subprocesses the tests start (`kubesweep run`, the operator, pods on the test node)
# must run this checkout's package, not whichever clone `pip install -e .` saw last.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1] / "operator")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p
)
