"""pytest fixtures for tests against a real cluster (imported by tests/k8s/conftest.py;
any other test directory can import them the same way).

- `cluster` (session): a `ClusterHandle` — kubeconfig path, a `kubernetes` ApiClient,
  `kubectl(...)`, and `local` (the LocalCluster, or None when KUBESWEEP_TEST_KUBECONFIG
  points the suite at an existing cluster).
- `namespace` (function): a fresh namespace (default ServiceAccount ready), deleted after.
- `start_cluster(tmp_path_factory, nodes)`: the same as a context manager, for a module
  that overrides `cluster` with other nodes (e.g. another working directory).
- `real_node_cluster` (session): a cluster whose one node is real (containerd, kubelet,
  kube-proxy, 2 fake GPUs; tests/cluster/real_node.py) and no process node. A test
  directory whose tests all need it overrides `cluster` with it (tests/node/conftest.py),
  so `namespace` works there too. Torn down at the end of the session, and the session
  errors if anything of it is left on the host.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest

from . import real_node as rn
from .control_plane import ClusterError, ClusterState, LocalCluster, NodeSpec
from .paths import MissingBinaryError, tools_bin_dir

EXTERNAL_KUBECONFIG_ENV = "KUBESWEEP_TEST_KUBECONFIG"
# The nodes of the harness's own cluster: one node with 2 GPUs is enough for every
# scheduling test and keeps pod placement deterministic.
DEFAULT_NODES = [NodeSpec(name="kubesweep-node-0", gpus=2)]
# The real node: 2 fake GPUs like the process node, so the same scheduling tests fit.
REAL_NODE = rn.RealNodeSpec(name="kubesweep-real-0", gpus=2)
# One real node per machine: another pytest session's may hold it for a while.
REAL_NODE_WAIT = 1200.0

T = TypeVar("T")


@dataclass
class ClusterHandle:
    """A running cluster as the tests see it."""

    kubeconfig: Path
    api: kubernetes.client.ApiClient
    kubectl_path: str
    local: LocalCluster | None = None

    @property
    def real_node(self) -> rn.RealNodeSpec | None:
        """The local real node (containerd + kubelet), if this cluster has one."""
        return self.local.real_node if self.local else None

    @property
    def is_local(self) -> bool:
        """True when pods run as processes on this machine (the harness's node agent);
        False on a cluster with the real node (pods run in containers there)."""
        return self.local is not None and self.local.real_node is None

    @property
    def state(self) -> ClusterState | None:
        """PIDs and log paths of the local cluster's components."""
        return self.local.state if self.local else None

    def log_hint(self) -> str:
        """Where to look when a test failed."""
        if self.state is None:
            return f"external cluster ({self.kubeconfig}): no component logs collected"
        return self.state.log_hint()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; raises with its output if it fails
        and `check` is set."""
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        proc = subprocess.run([self.kubectl_path, *args], input=input, capture_output=True,
                              text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}"
                f"{proc.stderr}\n{self.log_hint()}")
        return proc

    def core(self) -> kubernetes.client.CoreV1Api:
        """CoreV1Api on this cluster."""
        return kubernetes.client.CoreV1Api(self.api)

    def batch(self) -> kubernetes.client.BatchV1Api:
        """BatchV1Api on this cluster."""
        return kubernetes.client.BatchV1Api(self.api)


def _kubectl_path() -> str:
    pinned = tools_bin_dir() / "kubectl"
    if os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which("kubectl")
    if found is None:
        raise MissingBinaryError(f"{pinned} is missing: run scripts/install-tools.sh")
    return found


def wait_for(check: Callable[[], T | None], timeout: float, what: str,
             hint: str = "", interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # e.g. not found yet
            last_error = e
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}\n{hint}")


@contextlib.contextmanager
def start_cluster(tmp_path_factory: pytest.TempPathFactory,
                  nodes: list[NodeSpec] | None = None,
                  real_node: rn.RealNodeSpec | None = None) -> Iterator[ClusterHandle]:
    """$KUBESWEEP_TEST_KUBECONFIG's cluster if set, else a local one with `nodes`
    (default DEFAULT_NODES; pass [] for none) and `real_node` started from the binaries
    of scripts/build-control-plane.sh, stopped on exit. For fixture variants, e.g. a
    module whose node runs pods elsewhere."""
    external = os.environ.get(EXTERNAL_KUBECONFIG_ENV)
    missing = None
    try:
        kubectl = _kubectl_path()
    except MissingBinaryError as e:
        missing = str(e)
    if missing:
        pytest.fail(missing, pytrace=False)
    if external:
        api = kubernetes.config.new_client_from_config(config_file=external)
        try:
            yield ClusterHandle(Path(external), api, kubectl)
        finally:
            api.close()
        return
    local = LocalCluster(tmp_path_factory.mktemp("real-node" if real_node else "cluster"),
                         DEFAULT_NODES if nodes is None else nodes, real_node=real_node,
                         real_node_wait=REAL_NODE_WAIT)
    try:
        # A real node pulls images from no registry and builds nothing: allow for a
        # loaded 2-core machine importing large image archives.
        state = local.start(timeout=600.0 if real_node else 180.0)
    except (MissingBinaryError, rn.RealNodeError, ClusterError) as e:
        missing = str(e)
    if missing:
        pytest.fail(missing, pytrace=False)
    api = kubernetes.config.new_client_from_config(config_file=state.kubeconfig)
    try:
        yield ClusterHandle(Path(state.kubeconfig), api, kubectl, local)
    finally:
        api.close()
        local.stop()
    assert not local.teardown_problems, (
        f"the real node's teardown failed: {local.teardown_problems}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """A real cluster for the session: $KUBESWEEP_TEST_KUBECONFIG if set, else a local
    one started from the binaries of scripts/build-control-plane.sh."""
    with start_cluster(tmp_path_factory) as handle:
        yield handle


@pytest.fixture(scope="session")
def real_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """A cluster with one real node (REAL_NODE) and no process node, for the session
    ($KUBESWEEP_TEST_KUBECONFIG's cluster instead, if set)."""
    with start_cluster(tmp_path_factory, nodes=[], real_node=REAL_NODE) as handle:
        yield handle


def _dns_label(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")


@pytest.fixture
def namespace(cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (without waiting) afterwards."""
    name = f"t-{_dns_label(request.node.name, 40)}-{uuid.uuid4().hex[:5]}"
    core = cluster.core()
    core.create_namespace({"metadata": {"name": name}})
    # Pods are rejected until the controller manager created the default ServiceAccount.
    wait_for(lambda: core.read_namespaced_service_account("default", name), 30,
             f"ServiceAccount {name}/default", cluster.log_hint())
    yield name
    core.delete_namespace(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Point failing cluster tests at the component logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "cluster" in getattr(item, "fixturenames", ()):
        handle = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
        if isinstance(handle, ClusterHandle):
            report.sections.append(("cluster logs", handle.log_hint()))
