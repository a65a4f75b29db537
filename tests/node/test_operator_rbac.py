"""The RBAC rules in docs/rbac.md are enough: the operator runs as a ServiceAccount bound
to exactly those rules (the cluster enforces RBAC for real) and a sweep with a failing
trial, an event of every kind and a metric read from logs runs to the end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    REPO,
    OperatorProcess,
    apply,
    crd_fixture,
    sweep_manifest,
    trial_records,
    wait_events,
    wait_phase,
)

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]


def documented_rules() -> list[dict]:
    text = (REPO / "docs" / "rbac.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block, "docs/rbac.md has no ```yaml block of rules"
    return yaml.safe_load(block.group(1))["rules"]


def test_documented_rules_are_enough(cluster: ClusterHandle, namespace: str, crd: Path,
                                     tmp_path: Path):
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kubesweep"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "kubesweep"}, "rules": documented_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "kubesweep"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "kubesweep"},
         "subjects": [{"kind": "ServiceAccount", "name": "kubesweep",
                       "namespace": namespace}]},
    ]
    for manifest in manifests:
        apply(cluster, namespace, manifest)
    token = cluster.kubectl("create", "token", "kubesweep", "-n", namespace,
                            "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server_cluster = admin["clusters"][0]
    kubeconfig = tmp_path / "operator-kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [server_cluster],
        "users": [{"name": "kubesweep", "user": {"token": token}}],
        "contexts": [{"name": "kubesweep", "context": {
            "cluster": server_cluster["name"], "user": "kubesweep", "namespace": namespace}}],
        "current-context": "kubesweep",
    }))
    # sanity: the identity really is restricted
    denied = subprocess.run(
        [cluster.kubectl_path, "--kubeconfig", str(kubeconfig), "get", "secrets"],
        capture_output=True, text=True)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    op = OperatorProcess(cluster, namespace, tmp_path, ["--trial-start-timeout", "60"])
    op.cluster = _with_kubeconfig(cluster, kubeconfig)
    op.start()
    try:
        command = "import sys; x=${params.x}; print(f'loss={x}'); sys.exit(1 if x > 0.6 else 0)"
        apply(cluster, namespace, sweep_manifest("rbac", command, maxTrials=5, parallelism=2))
        sweep = wait_phase(cluster, op, namespace, "rbac", timeout=120)
        assert sweep["status"]["phase"] == "Succeeded"
        assert len(trial_records(sweep)) == 5
        wait_events(cluster, op, namespace, "rbac", {"TrialCreated"})
        metrics = op.metrics()
        errors = [line for line in metrics.splitlines()
                  if line.startswith("kubesweep_api_errors_total{") and
                  not line.endswith(" 0.0")]
        assert not errors, errors
        log = op.log_path.read_text()
        assert "403" not in log and "Forbidden" not in log, op.hint()
        assert "Not enough permissions" not in log, op.hint()
    finally:
        op.stop()


def _with_kubeconfig(cluster: ClusterHandle, kubeconfig: Path) -> ClusterHandle:
    """A copy of the handle whose kubeconfig is the operator's restricted one."""
    return ClusterHandle(kubeconfig, cluster.api, cluster.kubectl_path, cluster.local)
