"""End to end on the real node, as a user does it: the images scripts/build-images.sh
built (imported into the node's containerd, so nothing is pulled), `helm install` of the
chart with its default values, `kubectl apply -f examples/...` unchanged.

The operator pod runs the image under the chart's securityContext (uid 65532, read-only
root, no USER variable) and reaches the API server through the `kubernetes` Service via
kube-proxy; trials run the trial image. Prometheus scrapes the operator pod through
its metrics Service's ClusterIP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chart import CHART, helm
from tests.chart.prometheus import Prometheus
from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.cluster.paths import REPO_ROOT
from tests.images.rootfs import require_images

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]

EXAMPLE = REPO_ROOT / "examples" / "digits-mlp.yaml"
#: every example Sweep, applied unchanged (bayes, random, grid)
EXAMPLES = (EXAMPLE, REPO_ROOT / "examples" / "digits-mlp-random.yaml",
            REPO_ROOT / "examples" / "digits-mlp-grid.yaml")
TRIAL_IMAGE = "ghcr.io/kubesweep/trial-sklearn:0.1.0"
# A loaded 2-core machine shared with other sessions: generous, never asserted as a speed.
SWEEP_TIMEOUT = 900.0


@dataclass
class Release:
    """The installed chart."""

    name: str
    namespace: str

    @property
    def fullname(self) -> str:
        """The chart's object name prefix."""
        return f"{self.name}-kubesweep"


def _operator_log(cluster: ClusterHandle, release: Release) -> str:
    out = []
    for extra in (["--previous"], []):
        proc = cluster.kubectl("logs", "-n", release.namespace,
                               f"deployment/{release.fullname}", "--tail=60", *extra,
                               check=False)
        out.append(f"--- operator log {' '.join(extra)} ---\n{proc.stdout}{proc.stderr}")
    return "\n".join(out) + "\n" + cluster.log_hint()


@pytest.fixture(scope="module")
def release(cluster: ClusterHandle) -> Iterator[Release]:
    """The chart installed with its default values (cluster-wide, the built image)."""
    require_images("operator", "trial-sklearn")
    suffix = uuid.uuid4().hex[:5]
    rel = Release(f"ks-{suffix}", f"ks-system-{suffix}")
    cluster.kubectl("create", "namespace", rel.namespace)
    # the operator pod must pass the strictest Pod Security Standard
    cluster.kubectl("label", "namespace", rel.namespace,
                    "pod-security.kubernetes.io/enforce=restricted")
    helm("install", rel.name, str(CHART), "--namespace", rel.namespace,
         kubeconfig=cluster.kubeconfig)
    try:
        proc = cluster.kubectl("rollout", "status", "-n", rel.namespace,
                               f"deployment/{rel.fullname}", "--timeout=300s", check=False,
                               timeout=320)
        assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n{_operator_log(cluster, rel)}"
        yield rel
    finally:
        helm("uninstall", rel.name, "--namespace", rel.namespace, "--wait",
             kubeconfig=cluster.kubeconfig, check=False)
        # a cluster-wide operator must be gone before another module's sweeps appear
        wait_for(lambda: not cluster.core().list_namespaced_pod(rel.namespace).items, 120,
                 f"the operator pod in {rel.namespace} to stop")
        cluster.kubectl("delete", "namespace", rel.namespace, "--wait=false", check=False)


def _operator_pod(cluster: ClusterHandle, release: Release) -> Any:
    (pod,) = cluster.core().list_namespaced_pod(
        release.namespace, label_selector=f"app.kubernetes.io/instance={release.name}").items
    return pod


def _metrics_targets(cluster: ClusterHandle, release: Release) -> list[str]:
    """host:port of every ready endpoint of the chart's metrics Service (what
    Prometheus' endpoints discovery finds)."""
    discovery = json.loads(cluster.kubectl(
        "get", "endpointslices", "-n", release.namespace, "-l",
        f"kubernetes.io/service-name={release.fullname}-metrics", "-o", "json").stdout)
    targets = []
    for eps in discovery["items"]:
        port = next(p["port"] for p in eps.get("ports") or [] if p.get("name") == "metrics")
        for endpoint in eps.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                targets += [f"{address}:{port}" for address in endpoint["addresses"]]
    return targets


def _sweep_status(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "sweep", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out).get("status") or {}


def _wait_phase(cluster: ClusterHandle, release: Release, namespace: str, name: str,
                phases: tuple[str, ...] = ("Succeeded", "Failed"),
                timeout: float = SWEEP_TIMEOUT) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = _sweep_status(cluster, namespace, name)
        return status if status.get("phase") in phases else None

    try:
        return wait_for(check, timeout, f"Sweep {namespace}/{name} in {phases}", interval=2)
    except AssertionError as e:
        status = json.dumps(_sweep_status(cluster, namespace, name), indent=1)[:3000]
        raise AssertionError(f"{e}\nstatus: {status}\n{_operator_log(cluster, release)}") \
            from None


def _records(cluster: ClusterHandle, namespace: str, name: str) -> list[dict[str, Any]]:
    from kubesweep.k8s.history import decode

    sweep = json.loads(cluster.kubectl("get", "sweep", name, "-n", namespace, "-o",
                                       "json").stdout)
    return decode(sweep["status"].get("history"), lambda i: f"{name}-{i}")


def _trial_sweep(name: str, command: str, **spec: Any) -> str:
    """A Sweep whose trials run `python -c COMMAND` in the trial image."""
    container: dict[str, Any] = {"name": "trial", "image": TRIAL_IMAGE,
                                 "command": ["python", "-c", command]}
    container.update(spec.pop("container", {}))
    body = {"method": "random", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
            "maxTrials": 1, "parallelism": 1,
            "trialTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
                "containers": [container]}}}}, **spec}
    return yaml.safe_dump({"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
                           "metadata": {"name": name}, "spec": body})


def test_operator_pod_runs_the_image_as_the_chart_says_and_is_scraped(
        cluster: ClusterHandle, release: Release, tmp_path: Path):
    pod = _operator_pod(cluster, release)
    (status,) = pod.status.container_statuses
    assert status.ready and status.restart_count == 0, _operator_log(cluster, release)
    assert status.image.endswith("ghcr.io/kubesweep/operator:0.1.0"), status.image
    (container,) = pod.spec.containers
    assert container.security_context.read_only_root_filesystem is True
    assert pod.spec.security_context.run_as_non_root is True
    assert not pod.spec.host_network
    # kopf's identity came from the pod, not from the user database
    log = _operator_log(cluster, release)
    assert "getpwuid" not in log and "Traceback" not in log, log

    # the metrics Service selects exactly the operator pod ...
    targets = _metrics_targets(cluster, release)
    assert targets == [f"{pod.status.pod_ip}:8080"], targets
    # ... and Prometheus scrapes through it: its ClusterIP, rewritten by kube-proxy
    service = cluster.core().read_namespaced_service(f"{release.fullname}-metrics",
                                                     release.namespace)
    port = next(p.port for p in service.spec.ports if p.name == "metrics")
    prometheus = Prometheus(tmp_path / "prometheus", [f"{service.spec.cluster_ip}:{port}"])
    prometheus.workdir.mkdir()
    prometheus.start()
    try:
        wait_for(lambda: prometheus.target_health() == ["up"], 60,
                 "Prometheus scraping the operator pod", prometheus.log_path.read_text())
        # the operator process's own series (kubesweep's appear with the first sweep)
        wait_for(lambda: prometheus.query('python_info{job="kubesweep-operator"}'), 30,
                 "the operator's series in Prometheus")
    finally:
        prometheus.stop()


def test_examples_run_to_success_and_delete_cleans_up(
        cluster: ClusterHandle, release: Release, namespace: str):
    """`kubectl apply -f examples/...` unchanged, the bayes, random and grid examples at
    once: trials run the trial image, metrics come from their logs and termination
    messages, `kubectl get sw` shows them, `kubectl delete sw` removes every Job."""
    cluster.kubectl("apply", "-n", namespace,
                    *[arg for path in EXAMPLES for arg in ("-f", str(path))])
    docs = {(doc := yaml.safe_load(path.read_text()))["metadata"]["name"]: doc
            for path in EXAMPLES}
    for name, doc in docs.items():
        status = _wait_phase(cluster, release, namespace, name)
        assert status["phase"] == "Succeeded", (name, status.get("conditions"))
        # grid: the grid's size (4 x 4), the others their maxTrials
        budget = doc["spec"].get("maxTrials", 16)
        records = _records(cluster, namespace, name)
        assert len(records) == budget == status["trials"]["succeeded"], \
            (name, status["trials"])
        assert sorted(r["index"] for r in records) == list(range(budget))
        assert all(set(r["params"]) == {"epochs", "learning_rate"} for r in records)
        assert all(0 < r["value"] <= 1 for r in records)
        best = max(records, key=lambda r: r["value"])
        assert status["bestValue"] == best["value"]
        assert status["bestTrial"]["params"] == best["params"]
        assert status["progress"] == f"{budget}/{budget}"
    grid = _records(cluster, namespace, "digits-mlp-grid")
    assert len({(r["params"]["epochs"], r["params"]["learning_rate"]) for r in grid}) == 16
    table = cluster.kubectl("get", "sw", "-n", namespace).stdout
    assert "METHOD" in table and "digits-mlp-grid" in table and "16/16" in table, table
    # kubectl wait works on the standard condition
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Succeeded", "--timeout=5s",
                    *[f"sweep/{name}" for name in docs])

    # the trial's output through kubectl logs: one JSON line per epoch
    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    best = _sweep_status(cluster, namespace, name)["bestTrial"]
    logs = cluster.kubectl("logs", "-n", namespace, f"job/{name}-{best['index']}").stdout
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert len(lines) == best["params"]["epochs"], logs
    assert lines[-1]["val_acc"] == best["value"]
    # kubesweep.report (installed in the trial image) also wrote the termination message
    (pod,) = cluster.core().list_namespaced_pod(
        namespace, label_selector=f"job-name={name}-{best['index']}").items
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert json.loads(terminated.message)["val_acc"] == best["value"]

    for name in docs:
        cluster.kubectl("delete", "sw", name, "-n", namespace, "--wait=true",
                        "--timeout=120s")
    wait_for(lambda: not cluster.batch().list_namespaced_job(
        namespace, label_selector="kubesweep.io/sweep").items, 120,
        "the sweeps' Jobs deleted with them", _operator_log(cluster, release))


def test_metric_only_in_the_termination_message_counts(
        cluster: ClusterHandle, release: Release, namespace: str):
    """A trial that prints nothing and only writes the termination message succeeds."""
    command = ("import json, os\n"
               "with open('/dev/termination-log', 'w') as f:\n"
               "    json.dump({'loss': 0.125}, f)\n")
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=_trial_sweep("quiet", command))
    status = _wait_phase(cluster, release, namespace, "quiet", timeout=300)
    assert status["phase"] == "Succeeded", _records(cluster, namespace, "quiet")
    (record,) = _records(cluster, namespace, "quiet")
    assert record["value"] == 0.125


def test_trial_over_its_memory_limit_fails_as_oom_killed(
        cluster: ClusterHandle, release: Release, namespace: str):
    command = "b = bytearray(1 << 30); print('loss=1')"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_trial_sweep(
        "hungry", command, container={"resources": {"limits": {"memory": "64Mi"}}}))
    status = _wait_phase(cluster, release, namespace, "hungry", timeout=300)
    assert status["phase"] == "Failed", status
    (record,) = _records(cluster, namespace, "hungry")
    assert record["state"] == "failed", record
    # containerd files the OOM under the container (reason OOMKilled) or, when the pod's
    # cgroup hits the same limit first, under the pod sandbox (reason Error, code 137);
    # both seen on this node: either way the reason must say it ran out of memory
    assert ("OOMKilled" in record["reason"]
            or "code 137" in record["reason"] and "out of memory" in record["reason"]), record


def test_drained_trial_is_retried(cluster: ClusterHandle, release: Release, namespace: str):
    """`kubectl drain` of the node evicts the running trial's pod (through the Eviction
    API, as for a node upgrade); once the node is back (`uncordon`) the trial runs again
    in the same Job and succeeds without using another trial of the budget."""
    command = "import time; time.sleep(20); print('loss=0.5')"
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=_trial_sweep("evict", command, trialRetries=2))
    core = cluster.core()

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(namespace,
                                        label_selector="kubesweep.io/sweep=evict").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    first = wait_for(running_pod, 180, "the trial's pod running",
                     _operator_log(cluster, release))
    node = first.spec.node_name
    try:
        # only the trial's pods: the operator's own pod runs on this one node too
        drain = cluster.kubectl("drain", node, "--pod-selector=kubesweep.io/sweep=evict",
                                "--ignore-daemonsets", "--delete-emptydir-data",
                                "--timeout=120s", check=False, timeout=150)
        assert drain.returncode == 0, f"{drain.stdout}{drain.stderr}"
        assert f"pod/{first.metadata.name} evicted" in drain.stdout, drain.stdout
        # cordoned: the retried trial's pod waits for the node
        assert cluster.core().read_node(node).spec.unschedulable
    finally:
        cluster.kubectl("uncordon", node)
    status = _wait_phase(cluster, release, namespace, "evict", timeout=300)
    assert status["phase"] == "Succeeded", (status.get("conditions"),
                                            _records(cluster, namespace, "evict"))
    assert status["trials"]["created"] == 1, status["trials"]
    (record,) = _records(cluster, namespace, "evict")
    assert record["state"] == "succeeded" and record["value"] == 0.5, record
    # a second pod did the work: the evicted one never finished
    (job,) = cluster.batch().list_namespaced_job(
        namespace, label_selector="kubesweep.io/sweep=evict").items
    assert job.status.succeeded == 1 and not job.status.failed, job.status
    pods = core.list_namespaced_pod(namespace, label_selector="kubesweep.io/sweep=evict")
    succeeded = [p.metadata.name for p in pods.items if p.status.phase == "Succeeded"]
    assert succeeded and first.metadata.name not in succeeded, succeeded


def test_a_100_mb_trial_log_under_the_charts_memory_limit(
        cluster: ClusterHandle, release: Release, namespace: str):
    """Issue 13.6 on the real node: the operator pod runs under the chart's 512Mi limit
    while it reads a trial that printed 100 MB; it is not OOM-killed (no restart) and
    records the metric printed after the flood."""
    flood = ("import sys\n"
             "line = 'x' * 1023 + '\\n'\n"
             "for _ in range(100 * 1024):\n"
             "    sys.stdout.write(line)\n"
             "print('loss=0.125')\n")
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=_trial_sweep("flood", flood))
    status = _wait_phase(cluster, release, namespace, "flood")
    assert status["phase"] == "Succeeded", status
    (record,) = _records(cluster, namespace, "flood")
    assert record["state"] == "succeeded" and record["value"] == 0.125
    pod = _operator_pod(cluster, release)
    (container,) = pod.status.container_statuses
    assert container.restart_count == 0, _operator_log(cluster, release)
    assert pod.spec.containers[0].resources.limits["memory"] == "512Mi"
