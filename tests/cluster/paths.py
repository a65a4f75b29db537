"""Where the test control plane's binaries, tools and run state live."""

from __future__ import annotations

import os
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
REPO_ROOT = CLUSTER_DIR.parent.parent
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def cache_dir() -> Path:
    """Root of everything cached between runs (same variable as the shell scripts)."""
    return Path(os.environ.get("KUBESWEEP_CACHE", Path.home() / ".cache" / "kubesweep"))


def kubernetes_version() -> str:
    """The pinned Kubernetes release, read from tests/cluster/VERSION (the one source)."""
    return (CLUSTER_DIR / "VERSION").read_text().strip()


def bin_dir() -> Path:
    """Directory scripts/build-control-plane.sh builds the control plane into."""
    return cache_dir() / f"k8s-{kubernetes_version()}" / "bin"


def tools_bin_dir() -> Path:
    """Directory scripts/install-tools.sh installs kubectl and helm into."""
    return cache_dir() / "tools" / "bin"


def default_run_dir() -> Path:
    """State directory of the cluster `python -m tests.cluster up` starts."""
    return cache_dir() / "cluster-run"


class MissingBinaryError(RuntimeError):
    """A control-plane binary or tool has not been built/installed yet."""


def control_plane_binary(name: str) -> Path:
    """Path of one built control-plane binary, or an error that says how to build it."""
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(
            f"{path} is missing: run scripts/build-control-plane.sh "
            f"(builds Kubernetes {kubernetes_version()} from source, ~8 min cold)"
        )
    return path


def kubectl() -> Path:
    """Path of the pinned kubectl, or an error that says how to install it."""
    path = tools_bin_dir() / "kubectl"
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(f"{path} is missing: run scripts/install-tools.sh")
    return path
