"""The test cluster is real Kubernetes: Jobs, scheduling, GPUs, deletion, logs and
termination messages go through the real API server, controller manager and scheduler.

Runs against $KUBESWEEP_TEST_KUBECONFIG too; checks of host processes only run on the
harness's own node agent.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
import uuid
from typing import Any

import kubernetes
import pytest
import yaml

from tests.cluster.fixtures import ClusterHandle, wait_for

pytestmark = pytest.mark.k8s

# The example trial image (scripts/build-images.sh): it has `python` and kubesweep, the
# real node has it imported (nothing is pulled) and the node agent ignores images.
IMAGE = "ghcr.io/kubesweep/trial-sklearn:0.1.0"


def python_container(script: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    """A container running a Python script (works on the agent and on real nodes)."""
    return {"name": name, "image": IMAGE, "command": ["python", "-u", "-c",
                                                       textwrap.dedent(script)], **extra}


def job_manifest(name: str, container: dict[str, Any], *, backoff_limit: int = 0,
                 **pod_spec: Any) -> dict[str, Any]:
    """A Job running one container with restartPolicy Never."""
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": backoff_limit, "template": {"spec": {
                "restartPolicy": "Never", "containers": [container], **pod_spec}}}}


def pod_manifest(name: str, container: dict[str, Any], **pod_spec: Any) -> dict[str, Any]:
    """A bare Pod running one container with restartPolicy Never."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [container], **pod_spec}}


def apply(cluster: ClusterHandle, namespace: str, manifest: dict[str, Any]) -> None:
    """`kubectl apply` a manifest, as a user would."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def job_condition(cluster: ClusterHandle, namespace: str, name: str) -> str | None:
    """The Job's terminal condition type (Complete/Failed), if it has one."""
    job = cluster.batch().read_namespaced_job(name, namespace)
    for c in (job.status.conditions or []) if job.status else []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


def job_pods(cluster: ClusterHandle, namespace: str, job: str) -> list[Any]:
    """Pods the job controller created for `job`."""
    return list(cluster.core().list_namespaced_pod(
        namespace, label_selector=f"job-name={job}").items)


def running_pod(cluster: ClusterHandle, namespace: str, name: str, timeout: float = 60) -> Any:
    """Wait until pod `name` is Running and return it."""
    def check() -> Any:
        pod = cluster.core().read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == "Running" else None
    return wait_for(check, timeout, f"pod {namespace}/{name} Running", cluster.log_hint())


def processes_with(marker: str) -> list[int]:
    """PIDs of host processes whose command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if marker.encode() in cmdline and not zombie:
            found.append(int(entry))
    return found


def gpu_capacity(cluster: ClusterHandle) -> int:
    """The largest nvidia.com/gpu capacity of any node."""
    nodes = cluster.core().list_node().items
    return max((int((n.status.capacity or {}).get("nvidia.com/gpu", 0)) for n in nodes),
               default=0)


def test_job_runs_to_complete_and_logs_are_served(cluster, namespace):
    apply(cluster, namespace, job_manifest("hello", python_container("""
        import os
        print("hello from the trial")
        print("pod", os.environ.get("POD_NAME"))
    """, env=[{"name": "POD_NAME",
               "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])))

    wait_for(lambda: job_condition(cluster, namespace, "hello") == "Complete", 90,
             "Job hello Complete", cluster.log_hint())
    (pod,) = job_pods(cluster, namespace, "hello")
    assert pod.spec.node_name, "the scheduler bound the pod"
    assert pod.status.phase == "Succeeded"
    state = pod.status.container_statuses[0].state.terminated
    assert state.exit_code == 0 and state.reason == "Completed"
    assert state.started_at and state.finished_at

    logs = cluster.kubectl("logs", "-n", namespace, "job/hello").stdout
    assert logs.splitlines() == ["hello from the trial", f"pod {pod.metadata.name}"]


def test_failing_container_fails_job_after_backoff_limit(cluster, namespace):
    apply(cluster, namespace, job_manifest(
        "boom", python_container("import sys; print('crash'); sys.exit(3)"),
        backoff_limit=1))

    wait_for(lambda: job_condition(cluster, namespace, "boom") == "Failed", 120,
             "Job boom Failed", cluster.log_hint())
    job = cluster.batch().read_namespaced_job("boom", namespace)
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert job.status.failed == 2  # the first attempt plus backoffLimit=1 retry
    pods = job_pods(cluster, namespace, "boom")
    assert pods and all(p.status.phase == "Failed" for p in pods)
    codes = {p.status.container_statuses[0].state.terminated.exit_code for p in pods}
    assert codes == {3}


def test_pod_asking_for_too_many_gpus_is_unschedulable(cluster, namespace):
    too_many = gpu_capacity(cluster) + 1
    apply(cluster, namespace, pod_manifest("greedy", python_container(
        "print('never runs')", resources={"limits": {"nvidia.com/gpu": str(too_many)}})))

    def unschedulable() -> Any:
        pod = cluster.core().read_namespaced_pod("greedy", namespace)
        return next((c for c in pod.status.conditions or []
                     if c.type == "PodScheduled" and c.status == "False"
                     and c.reason == "Unschedulable"), None)

    cond = wait_for(unschedulable, 60, "PodScheduled=False/Unschedulable", cluster.log_hint())
    assert "nvidia.com/gpu" in cond.message
    pod = cluster.core().read_namespaced_pod("greedy", namespace)
    assert pod.status.phase == "Pending" and not pod.spec.node_name


def test_gpu_pods_get_distinct_devices(cluster, namespace):
    if gpu_capacity(cluster) < 2:
        pytest.skip("needs a node with 2 nvidia.com/gpu")
    script = """
        import os, time
        print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        time.sleep(300)
    """
    # Pin both to one node so they share its devices.
    node = next(n.metadata.name for n in cluster.core().list_node().items
                if int((n.status.capacity or {}).get("nvidia.com/gpu", 0)) >= 2)
    for name in ("gpu-a", "gpu-b"):
        apply(cluster, namespace, pod_manifest(
            name, python_container(script, resources={"limits": {"nvidia.com/gpu": "1"}}),
            nodeName=node, terminationGracePeriodSeconds=1))
    devices = []
    for name in ("gpu-a", "gpu-b"):
        running_pod(cluster, namespace, name)
        line = wait_for(lambda n=name: cluster.kubectl("logs", "-n", namespace, n).stdout.strip(),
                        30, f"{name} logs", cluster.log_hint())
        devices.append(line.removeprefix("CUDA_VISIBLE_DEVICES="))
    assert all(d not in ("", "<unset>") for d in devices), devices
    assert devices[0] != devices[1], devices


def test_deleting_job_deletes_pod_and_kills_process(cluster, namespace):
    marker = f"kubesweep-test-{uuid.uuid4().hex}"
    container = python_container("import sys, time; time.sleep(600)")
    container["command"].append(marker)  # becomes sys.argv[1]: findable in /proc
    apply(cluster, namespace, job_manifest("sleeper", container,
                                           terminationGracePeriodSeconds=5))
    pod_name = wait_for(lambda: [p.metadata.name for p in job_pods(cluster, namespace,
                                                                   "sleeper")], 60,
                        "sleeper's pod", cluster.log_hint())[0]
    running_pod(cluster, namespace, pod_name)
    if cluster.is_local:
        assert processes_with(marker), "the pod's process runs on this machine"

    cluster.kubectl("delete", "job", "sleeper", "-n", namespace, "--wait=true")

    def pod_gone() -> bool:
        names = [p.metadata.name for p in cluster.core().list_namespaced_pod(namespace).items]
        return pod_name not in names
    wait_for(pod_gone, 60, f"pod {pod_name} deleted", cluster.log_hint())
    if cluster.is_local:
        wait_for(lambda: not processes_with(marker), 10, "the pod's process to exit")


def test_process_ignoring_sigterm_is_killed_after_grace_period(cluster, namespace):
    if not cluster.is_local:
        pytest.skip("inspects host processes")
    marker = f"kubesweep-test-{uuid.uuid4().hex}"
    container = python_container("""
        import signal, time
        signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
        print("started", flush=True)
        time.sleep(600)
    """)
    container["command"].append(marker)
    apply(cluster, namespace, pod_manifest("stubborn", container,
                                           terminationGracePeriodSeconds=2))
    running_pod(cluster, namespace, "stubborn")
    wait_for(lambda: "started" in cluster.kubectl("logs", "-n", namespace, "stubborn").stdout,
             30, "stubborn started")
    (pid,) = processes_with(marker)

    start = time.monotonic()
    cluster.core().delete_namespaced_pod("stubborn", namespace)
    wait_for(lambda: not processes_with(marker), 20, "SIGKILL after the grace period")
    assert time.monotonic() - start >= 1.5, "SIGTERM alone must not have stopped it"
    wait_for(lambda: not [p for p in cluster.core().list_namespaced_pod(namespace).items
                          if p.metadata.name == "stubborn"], 30, "pod stubborn deleted")
    assert pid not in processes_with(marker)


def test_deleting_owner_cascades(cluster, namespace):
    core = cluster.core()
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    manifest = job_manifest("owned", python_container("import time; time.sleep(600)"),
                            terminationGracePeriodSeconds=1)
    manifest["metadata"]["ownerReferences"] = [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner.metadata.uid, "blockOwnerDeletion": True}]
    apply(cluster, namespace, manifest)
    wait_for(lambda: job_pods(cluster, namespace, "owned"), 60, "owned's pod",
             cluster.log_hint())

    core.delete_namespaced_config_map("owner", namespace,
                                      body={"propagationPolicy": "Foreground"})

    def all_gone() -> bool:
        jobs = cluster.batch().list_namespaced_job(namespace).items
        return not jobs and not job_pods(cluster, namespace, "owned")
    wait_for(all_gone, 90, "the garbage collector to delete the Job and its Pod",
             cluster.log_hint())
    wait_for(lambda: not core.list_namespaced_config_map(
        namespace, field_selector="metadata.name=owner").items, 30, "owner deleted")


def test_logs_follow_tail_and_since_through_the_api(cluster, namespace):
    apply(cluster, namespace, pod_manifest("ticker", python_container("""
        import time
        for i in range(8):
            print("tick", i)
            time.sleep(0.25)
    """)))
    running_pod(cluster, namespace, "ticker")
    core = cluster.core()

    # follow streams until the container exits
    resp = core.read_namespaced_pod_log("ticker", namespace, follow=True,
                                        _preload_content=False)
    followed = resp.data.decode() if hasattr(resp, "data") else resp.read().decode()
    assert followed.splitlines() == [f"tick {i}" for i in range(8)]

    tail = core.read_namespaced_pod_log("ticker", namespace, tail_lines=2)
    assert tail.splitlines() == ["tick 6", "tick 7"]

    stamped = core.read_namespaced_pod_log("ticker", namespace, tail_lines=1,
                                           timestamps=True)
    ts, text = stamped.strip().split(" ", 1)
    assert text == "tick 7" and ts.endswith("Z") and "T" in ts

    time.sleep(2.5)
    assert core.read_namespaced_pod_log("ticker", namespace, since_seconds=1) == ""

    kubectl_follow = cluster.kubectl("logs", "-f", "--tail=3", "-n", namespace, "ticker")
    assert kubectl_follow.stdout.splitlines() == ["tick 5", "tick 6", "tick 7"]


def test_termination_message_is_reported(cluster, namespace):
    # Write where the agent says (KUBESWEEP_TERMINATION_MESSAGE_PATH); on a real node the
    # declared terminationMessagePath itself is writable.
    writer = python_container("""
        import json, os
        path = os.environ.get("KUBESWEEP_TERMINATION_MESSAGE_PATH", "/tmp/result")
        with open(path, "w") as f:
            json.dump({"loss": 0.25}, f)
    """, terminationMessagePath="/tmp/result")
    crasher = python_container("""
        import sys
        print("Traceback: something broke")
        sys.exit(1)
    """, name="crasher", terminationMessagePolicy="FallbackToLogsOnError")
    apply(cluster, namespace, pod_manifest("writer", writer))
    apply(cluster, namespace, pod_manifest("crasher", crasher))

    def terminated(name: str) -> Any:
        pod = cluster.core().read_namespaced_pod(name, namespace)
        if pod.status.phase in ("Succeeded", "Failed"):
            return pod.status.container_statuses[0].state.terminated
        return None

    state = wait_for(lambda: terminated("writer"), 60, "writer terminated", cluster.log_hint())
    assert json.loads(state.message) == {"loss": 0.25}
    state = wait_for(lambda: terminated("crasher"), 60, "crasher terminated",
                     cluster.log_hint())
    assert state.exit_code == 1
    assert "Traceback: something broke" in state.message


def test_pod_talks_to_the_api_as_its_service_account(cluster, namespace):
    core = cluster.core()
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac = kubernetes.client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    # Token files where the node put them: the agent's directory, or the real mount.
    script = """
        import os, ssl, urllib.error, urllib.request
        d = os.environ.get("KUBESWEEP_SERVICEACCOUNT_DIR",
                           "/var/run/secrets/kubernetes.io/serviceaccount")
        token, ns = open(d + "/token").read(), open(d + "/namespace").read()
        ctx = ssl.create_default_context(cafile=d + "/ca.crt")
        host = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        for resource in ("configmaps", "secrets"):
            req = urllib.request.Request(
                "https://%s:%s/api/v1/namespaces/%s/%s" % (*host, ns, resource),
                headers={"Authorization": "Bearer " + token})
            try:
                urllib.request.urlopen(req, context=ctx)
                print(resource, 200)
            except urllib.error.HTTPError as e:
                print(resource, e.code)
    """
    apply(cluster, namespace, pod_manifest("whoami", python_container(script),
                                           serviceAccountName="reader"))

    def finished() -> Any:
        pod = core.read_namespaced_pod("whoami", namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, 60, "whoami finished", cluster.log_hint())
    logs = cluster.kubectl("logs", "-n", namespace, "whoami").stdout
    assert pod.status.phase == "Succeeded", logs
    assert logs.splitlines() == ["configmaps 200", "secrets 403"]


def test_evicted_pod_keeps_disruption_target_after_its_final_status(cluster, namespace):
    """The eviction API marks the pod with DisruptionTarget before deleting it; the node's
    later status reports must keep that condition (a Job's podFailurePolicy reads it to
    tell an eviction from a failure), next to the node's own conditions."""
    core = cluster.core()
    manifest = pod_manifest("evictee", python_container("import time; time.sleep(600)"),
                            terminationGracePeriodSeconds=5)
    # Holds the deleted pod, as the Job controller's tracking finalizer does, so its
    # final status can be read.
    finalizer = "kubesweep.io/test-hold"
    manifest["metadata"]["finalizers"] = [finalizer]
    apply(cluster, namespace, manifest)
    running_pod(cluster, namespace, "evictee")
    core.create_namespaced_pod_eviction("evictee", namespace, {
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "evictee", "namespace": namespace}})

    def final() -> Any:
        pod = core.read_namespaced_pod("evictee", namespace)
        return pod if pod.status.phase == "Failed" else None

    try:
        pod = wait_for(final, 60, "evictee Failed", cluster.log_hint())
        conditions = {c.type: c for c in pod.status.conditions or []}
        target = conditions.get("DisruptionTarget")
        assert target is not None, sorted(conditions)
        assert target.status == "True" and target.reason == "EvictionByEvictionAPI"
        assert conditions["Ready"].status == "False"  # the node's own, still reported
        assert pod.status.container_statuses[0].state.terminated is not None
    finally:
        core.patch_namespaced_pod("evictee", namespace,
                                  [{"op": "remove", "path": "/metadata/finalizers"}])
