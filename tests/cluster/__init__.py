"""A real Kubernetes control plane (etcd, kube-apiserver, controller manager, scheduler)
plus process-running node agents, for tests. See tests/cluster/README.md."""

from .control_plane import ClusterError, ClusterState, LocalCluster, NodeSpec, stop_state
from .paths import MissingBinaryError, bin_dir, kubernetes_version, tools_bin_dir

__all__ = [
    "ClusterError",
    "ClusterState",
    "LocalCluster",
    "MissingBinaryError",
    "NodeSpec",
    "bin_dir",
    "kubernetes_version",
    "stop_state",
    "tools_bin_dir",
]
