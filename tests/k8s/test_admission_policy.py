"""The chart's confused-deputy guard, on a real API server with real identities.

The operator creates trial Jobs with its own rights, so the chart's
ValidatingAdmissionPolicy admits a Sweep (create, or a spec change) only from a user who
may create batch Jobs in the namespace. Three ServiceAccount-token users, bound by RBAC
the way a cluster admin would bind people:

- `sweeper`: only the chart's `<release>-kubesweep-edit` ClusterRole (Sweep rights alone)
- `trainer`: the built-in `edit` ClusterRole (Jobs too; Sweep rights by aggregation)
- `viewer`: the built-in `view` ClusterRole (read Sweeps by aggregation)
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chart import CHART, helm
from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    apply,
    crd_fixture,
    sweep_manifest,
)

pytestmark = pytest.mark.k8s

#: Not `kubesweep`: a chart install elsewhere in the suite owns those cluster-scoped names.
RELEASE = "authz"
REFUSAL = "may not create batch Jobs in namespace"


@pytest.fixture
def guard(cluster: ClusterHandle) -> Iterator[str]:
    """The chart's admission policy, its binding and the user ClusterRoles, installed as
    the chart renders them; removed afterwards."""
    rendered = helm("template", RELEASE, str(CHART),
                    "--show-only", "templates/admission-policy.yaml",
                    "--show-only", "templates/user-roles.yaml").stdout
    cluster.kubectl("apply", "-f", "-", input=rendered)
    try:
        yield rendered
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=rendered,
                        check=False)


def _user(cluster: ClusterHandle, namespace: str, name: str, cluster_role: str,
          tmp_path: Path) -> Path:
    """A ServiceAccount bound to `cluster_role` in `namespace`; its kubeconfig."""
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": {"name": name}})
    apply(cluster, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    token = cluster.kubectl("create", "token", name, "-n", namespace,
                            "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [server],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": server["name"], "user": name,
                                                "namespace": namespace}}],
        "current-context": name}))
    return path


def _as(cluster: ClusterHandle, kubeconfig: Path, *args: str,
        manifest: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cluster.kubectl_path, "--kubeconfig", str(kubeconfig), *args],
        input=yaml.safe_dump(manifest) if manifest else None,
        capture_output=True, text=True, timeout=60)


def _wait(check: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)


def test_only_users_who_may_create_jobs_may_create_or_change_sweeps(
        cluster: ClusterHandle, namespace: str, crd: Path, guard: str, tmp_path: Path):
    sweeper = _user(cluster, namespace, "sweeper", f"{RELEASE}-kubesweep-edit", tmp_path)
    trainer = _user(cluster, namespace, "trainer", "edit", tmp_path)
    viewer = _user(cluster, namespace, "viewer", "view", tmp_path)
    manifest = sweep_manifest("s", "print('loss=1')")

    # the controller manager aggregates the chart's roles into the built-in ones
    _wait(lambda: _as(cluster, trainer, "auth", "can-i", "create",
                      "sweeps.kubesweep.io").stdout.strip() == "yes",
          "kubesweep-edit to be aggregated into edit")
    _wait(lambda: _as(cluster, viewer, "auth", "can-i", "list",
                      "sweeps.kubesweep.io").stdout.strip() == "yes",
          "kubesweep-view to be aggregated into view")
    assert _as(cluster, sweeper, "auth", "can-i", "create", "sweeps.kubesweep.io"
               ).stdout.strip() == "yes"
    assert _as(cluster, sweeper, "auth", "can-i", "create", "jobs.batch"
               ).stdout.strip() == "no"

    # the API server compiles a new policy asynchronously: wait until a dry run is refused
    _wait(lambda: REFUSAL in _as(cluster, sweeper, "apply", "--dry-run=server", "-f", "-",
                                 manifest=manifest).stderr,
          "the admission policy to be in force")

    # Sweep rights alone: refused at `kubectl apply`, with a message that says why
    refused = _as(cluster, sweeper, "apply", "-f", "-", manifest=manifest)
    assert refused.returncode != 0
    assert (f'user "system:serviceaccount:{namespace}:sweeper" may not create batch Jobs '
            f'in namespace "{namespace}"') in refused.stderr, refused.stderr
    assert "kubectl auth can-i create jobs.batch" in refused.stderr
    assert cluster.kubectl("get", "sweeps", "-n", namespace, "-o", "name").stdout == ""

    # may create Jobs: admitted
    created = _as(cluster, trainer, "apply", "-f", "-", manifest=manifest)
    assert created.returncode == 0, created.stderr

    # changing the spec needs the same right; labels do not
    spec_edit = _as(cluster, sweeper, "patch", "sweep", "s", "--type=merge",
                    "-p", json.dumps({"spec": {"maxTrials": 9}}))
    assert spec_edit.returncode != 0 and REFUSAL in spec_edit.stderr, spec_edit.stderr
    label_edit = _as(cluster, sweeper, "label", "sweep", "s", "team=ml")
    assert label_edit.returncode == 0, label_edit.stderr
    assert _as(cluster, trainer, "patch", "sweep", "s", "--type=merge",
               "-p", json.dumps({"spec": {"maxTrials": 9}})).returncode == 0

    # view: read, never write
    assert _as(cluster, viewer, "get", "sweep", "s").returncode == 0
    denied = _as(cluster, viewer, "delete", "sweep", "s")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    # the status subresource is not matched: the operator's writes never depend on it
    apply(cluster, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "status-writer"},
        "rules": [{"apiGroups": ["kubesweep.io"], "resources": ["sweeps/status"],
                   "verbs": ["patch"]}]})
    writer = _user(cluster, namespace, "writer", "view", tmp_path)
    apply(cluster, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "writer-status"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "status-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": namespace}]})
    _wait(lambda: _as(cluster, writer, "auth", "can-i", "patch", "sweeps.kubesweep.io",
                      "--subresource=status").stdout.strip() == "yes", "the status-writer binding")
    status = _as(cluster, writer, "patch", "sweep", "s", "--subresource=status",
                 "--type=merge", "-p", json.dumps({"status": {"phase": "Pending"}}))
    assert status.returncode == 0, status.stderr
