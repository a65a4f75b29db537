"""The Helm chart on the real node (containerd + kubelet + kube-proxy).

`helm install` the chart: the kubelet runs the operator image scripts/build-images.sh
built (imported into the node, nothing pulled) with the pod's projected ServiceAccount
token, so the operator talks to the API server through the `kubernetes` Service as the
chart's ServiceAccount, with exactly the chart's RBAC. Sweeps then run to the end in
the trial image, a real Prometheus scrapes the operator pod, and every dashboard query
and alert expression is run against it.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chart import CHART, alert_rules, helm, panel_queries, substitute
from tests.chart.prometheus import Prometheus, finite_points
from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.images.rootfs import require_images

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]

# Generous: trials are containers on a loaded 2-core machine (never asserted as speed).
SWEEP_TIMEOUT = 600.0


@dataclass
class Release:
    """An installed chart whose operator runs as the chart's ServiceAccount."""

    name: str
    namespace: str
    service_account: str
    pod_ip: str
    notes: str

    @property
    def fullname(self) -> str:
        """The chart's object name prefix (Deployment, roles, Service prefix)."""
        return f"{self.name}-kubesweep"

    @property
    def identity(self) -> str:
        """The operator's user name in the API server's eyes."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def metrics_target(self) -> str:
        """host:port of the operator pod's /metrics (the chart's default port)."""
        return f"{self.pod_ip}:8080"


def _metrics_text(target: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{target}/metrics", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def _operator_log(cluster: ClusterHandle, release: Release) -> str:
    proc = cluster.kubectl("logs", "-n", release.namespace, f"deployment/{release.fullname}",
                           "--tail=200", check=False)
    previous = cluster.kubectl("logs", "-n", release.namespace,
                               f"deployment/{release.fullname}", "--previous", "--tail=30",
                               check=False)
    return (f"--- operator log (previous attempt) ---\n{previous.stdout}{previous.stderr}\n"
            f"--- operator log ---\n{proc.stdout}{proc.stderr}")


@pytest.fixture
def install(cluster: ClusterHandle) -> Iterator[Any]:
    """Install the chart with given values; uninstalled (and its namespace deleted) after."""
    require_images("operator", "trial-sklearn")
    installed: list[Release] = []

    def _install(values: dict[str, Any]) -> Release:
        suffix = uuid.uuid4().hex[:5]
        name, namespace = f"ks-{suffix}", f"ks-system-{suffix}"
        cluster.kubectl("create", "namespace", namespace)
        # the operator pod must pass the strictest Pod Security Standard
        cluster.kubectl("label", "namespace", namespace,
                        "pod-security.kubernetes.io/enforce=restricted")
        args = ["install", name, str(CHART), "--namespace", namespace]
        for key, value in values.items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        notes = helm(*args, kubeconfig=cluster.kubeconfig).stdout
        release = Release(name, namespace, f"{name}-kubesweep", "", notes)
        installed.append(release)
        proc = cluster.kubectl("rollout", "status", "-n", namespace,
                               f"deployment/{release.fullname}", "--timeout=300s",
                               check=False, timeout=320)
        assert proc.returncode == 0, proc.stdout + proc.stderr + _operator_log(cluster, release)
        (pod,) = cluster.core().list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={name}").items
        release.pod_ip = pod.status.pod_ip
        wait_for(lambda: _metrics_text(release.metrics_target), 90,
                 "the operator's /metrics", _operator_log(cluster, release))
        return release

    yield _install
    for release in installed:
        helm("uninstall", release.name, "--namespace", release.namespace, "--wait",
             kubeconfig=cluster.kubeconfig, check=False)
        # a cluster-wide operator must be gone before the next test's sweeps appear
        wait_for(lambda ns=release.namespace: not cluster.core().list_namespaced_pod(
            ns).items, 60, f"the operator pod in {release.namespace} to stop")
        cluster.kubectl("delete", "namespace", release.namespace, "--wait=false",
                        check=False)


def _sweep(name: str, **spec: Any) -> str:
    """A Sweep manifest: the digits MLP trial run as the trial image would run it."""
    body: dict[str, Any] = {
        "method": "random",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {"epochs": {"min": 1, "max": 3},
                       "learning_rate": {"distribution": "log_uniform_values",
                                         "min": 1e-3, "max": 0.1}},
        "maxTrials": 4, "parallelism": 2, "seed": 1,
        "trialTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "train", "image": "ghcr.io/kubesweep/trial-sklearn:0.1.0",
                # the image's WORKDIR holds the script
                "command": ["python", "train_digits_mlp.py"],
                "args": ["--epochs=${params.epochs}",
                         "--learning-rate=${params.learning_rate}"]}]}}}},
    }
    body.update(spec)
    return yaml.safe_dump({"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
                           "metadata": {"name": name}, "spec": body})


def _status(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "sweep", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out).get("status") or {}


def _wait_phase(cluster: ClusterHandle, release: Release, namespace: str, name: str,
                phase: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = _status(cluster, namespace, name)
        return status if status.get("phase") == phase else None

    return wait_for(check, SWEEP_TIMEOUT, f"Sweep {namespace}/{name} phase {phase}",
                    _operator_log(cluster, release) + "\n" + cluster.log_hint(), interval=1)


def _can_i(cluster: ClusterHandle, release: Release, *args: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", *args, f"--as={release.identity}", check=False)
    return proc.stdout.strip() == "yes"


def test_install_cluster_wide_runs_a_sweep_as_the_service_account(
        cluster: ClusterHandle, namespace: str, install: Any):
    release = install({})
    # what helm install created
    assert "rollout status deployment/" + release.fullname in release.notes
    assert "kubectl get sweeps -w" in release.notes
    crd = json.loads(cluster.kubectl("get", "crd", "sweeps.kubesweep.io", "-o",
                                     "json").stdout)
    assert crd["spec"]["group"] == "kubesweep.io"
    cluster.kubectl("get", "clusterrole", release.fullname)
    cluster.kubectl("get", "clusterrolebinding", release.fullname)
    cluster.kubectl("get", "serviceaccount", release.service_account, "-n", release.namespace)
    cluster.kubectl("get", "service", f"{release.fullname}-metrics", "-n", release.namespace)
    cluster.kubectl("get", "configmap", f"{release.fullname}-dashboard", "-n", release.namespace)
    # Pod Security admission is live in the release namespace (a plain pod is refused),
    # so the operator pod running there passed the "restricted" standard
    plain = cluster.kubectl("run", "plain", "-n", release.namespace, "--image=busybox",
                            "--dry-run=server", check=False)
    assert plain.returncode != 0 and "violates PodSecurity" in plain.stderr, plain.stderr
    deploy = json.loads(cluster.kubectl("get", "deployment", release.fullname, "-n",
                                        release.namespace, "-o", "json").stdout)
    assert deploy["spec"]["replicas"] == 1
    # least privilege: what the operator does not need, it cannot do
    assert _can_i(cluster, release, "create", "jobs", "-n", namespace)
    assert _can_i(cluster, release, "watch", "sweeps.kubesweep.io", "-A")
    for denied in (("get", "secrets", "-n", namespace), ("create", "pods", "-n", namespace),
                   ("delete", "sweeps.kubesweep.io", "-n", namespace),
                   ("patch", "sweeps.kubesweep.io", "-n", namespace),
                   ("update", "sweeps.kubesweep.io", "-n", namespace),
                   ("list", "namespaces"),
                   ("create", "sweeps.kubesweep.io", "-n", namespace),
                   ("update", "jobs", "-n", namespace), ("delete", "pods", "-n", namespace),
                   ("create", "customresourcedefinitions"), ("list", "nodes")):
        assert not _can_i(cluster, release, *denied), f"the operator may {denied}"

    # the chart's liveness probe path is kopf's endpoint
    with urllib.request.urlopen(f"http://{release.pod_ip}:8081/healthz",
                                timeout=5) as resp:
        assert resp.status == 200

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_sweep("digits"))
    # a sweep that ends at its target while trials run: they are stopped, Jobs deleted
    target = yaml.safe_load(_sweep("target", maxTrials=10, parallelism=3))
    target["spec"]["metric"] = {"name": "loss", "goal": "minimize", "target": 0.05}
    target["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0].update(
        command=["python", "-c", "import time; i=${trial.index}\n"
                 "if i == 0: print('loss=0.01')\nelse: time.sleep(120)"], args=[])
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(target))
    status = _wait_phase(cluster, release, namespace, "digits", "Succeeded")
    assert status["trials"]["succeeded"] == 4, status
    assert 0 < status["bestValue"] <= 1
    status = _wait_phase(cluster, release, namespace, "target", "Succeeded")
    assert status["trials"]["stopped"] >= 1, status
    wait_for(lambda: [j.metadata.name for j in cluster.batch().list_namespaced_job(
        namespace, label_selector="kubesweep.io/sweep=target").items] == ["target-0"], 60,
        "the stopped trials' Jobs deleted by the operator", _operator_log(cluster, release))
    metrics = _metrics_text(release.metrics_target) or ""
    assert 'kubesweep_api_errors_total{' not in metrics, \
        "API calls failed under the chart's RBAC:\n" + "\n".join(
            line for line in metrics.splitlines() if line.startswith("kubesweep_api_errors"))
    log = _operator_log(cluster, release)
    assert "Forbidden" not in log and " 403" not in log, log


def _drop_job_create(cluster: ClusterHandle, release: Release, namespace: str) -> None:
    """Take `create` on jobs out of the operator's Role in `namespace` (a broken RBAC)."""
    role = json.loads(cluster.kubectl("get", "role", release.fullname, "-n", namespace,
                                      "-o", "json").stdout)
    for rule in role["rules"]:
        if rule["resources"] == ["jobs"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    cluster.kubectl("replace", "-f", "-", input=json.dumps(role))


def test_dashboard_queries_and_alerts_return_data_from_a_real_prometheus(
        cluster: ClusterHandle, install: Any, tmp_path: Path):
    core = cluster.core()
    suffix = uuid.uuid4().hex[:5]
    team, broken = f"ks-team-{suffix}", f"ks-broken-{suffix}"
    for ns in (team, broken):
        core.create_namespace({"metadata": {"name": ns}})
        wait_for(lambda ns=ns: core.read_namespaced_service_account("default", ns), 30,
                 f"ServiceAccount {ns}/default")
    prometheus: Prometheus | None = None
    try:
        release = install({"watchNamespaces": [team, broken]})
        # namespaced mode: Roles in the watched namespaces, nothing cluster-wide
        cluster.kubectl("get", "role", release.fullname, "-n", team)
        assert cluster.kubectl("get", "clusterrole", release.fullname,
                               check=False).returncode != 0
        assert not _can_i(cluster, release, "list", "jobs", "-n", release.namespace)
        assert not _can_i(cluster, release, "list", "sweeps.kubesweep.io", "-A")

        prometheus = Prometheus(tmp_path / "prometheus", [release.metrics_target])
        prometheus.workdir.mkdir()
        prometheus.start()
        started = time.time()
        wait_for(lambda: prometheus.target_health() == ["up"], 30,
                 "Prometheus scraping the operator", prometheus.log_path.read_text())

        # a sweep that succeeds, one whose Jobs the API server rejects (it fails), one
        # waiting for 3 GPUs on a node with 2
        cluster.kubectl("apply", "-n", team, "-f", "-", input=_sweep("digits"))
        bad = yaml.safe_load(_sweep("rejected", maxTrials=2, parallelism=1,
                                    maxFailedTrials=0))
        bad["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["name"] \
            = "Not_A_DNS_Label"
        cluster.kubectl("apply", "-n", team, "-f", "-", input=yaml.safe_dump(bad))
        cluster.kubectl("apply", "-n", team, "-f", "-",
                        input=_sweep("gpu-hungry", maxTrials=1, parallelism=1,
                                     trialResources={"gpu": 3}))
        status = _wait_phase(cluster, release, team, "digits", "Succeeded")
        assert status["trials"]["succeeded"] == 4, status
        _wait_phase(cluster, release, team, "rejected", "Failed")
        wait_for(lambda: prometheus.query(
            "kubesweep_trials_unschedulable > 0"), 90, "an unschedulable trial in metrics",
            _operator_log(cluster, release))
        # the chart's RBAC was enough for all of that, kopf's own calls included
        assert not prometheus.query('kubesweep_api_errors_total{code="403"}'), \
            _operator_log(cluster, release)
        log = _operator_log(cluster, release)
        assert "Forbidden" not in log, log

        # now break the RBAC in one namespace: reconciles there fail with 403
        _drop_job_create(cluster, release, broken)
        cluster.kubectl("apply", "-n", broken, "-f", "-", input=_sweep("forbidden"))
        wait_for(lambda: prometheus.query(
            'sum(kubesweep_reconcile_errors_total{sweep="forbidden"}) >= 5'), 120,
            "repeated reconcile errors of the forbidden sweep", _operator_log(cluster, release))
        # alerts with `for: 0m` fire in the real Prometheus evaluating the chart's rules
        wait_for(lambda: {a["labels"]["alertname"] for a in
                          prometheus.api("alerts")["data"]["alerts"]} >=
                 {"KubesweepSweepFailed", "KubesweepApiForbidden"}, 30,
                 "KubesweepSweepFailed and KubesweepApiForbidden firing",
                 json.dumps(prometheus.api("alerts"), indent=1))
        time.sleep(3)  # a few more scrapes after the last change
        end = time.time()

        problems = []
        for title, expr in panel_queries():
            body = prometheus.query_range(substitute(expr), started, end)
            if body.get("status") != "success":
                problems.append(f"panel {title}: {body.get('error')} in {expr}")
            elif finite_points(body) == 0:
                problems.append(f"panel {title}: no data for {substitute(expr)}")
        for rule in alert_rules():
            body = prometheus.query_range(rule["expr"], started, end)
            if body.get("status") != "success":
                problems.append(f"alert {rule['alert']}: {body.get('error')}")
            elif finite_points(body) == 0:
                problems.append(f"alert {rule['alert']}: no data for {rule['expr']}")
        assert not problems, "\n".join(problems)
    finally:
        if prometheus is not None:
            prometheus.stop()
        for ns in (team, broken):
            core.delete_namespace(ns)
