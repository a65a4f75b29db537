"""The real node: pods run in containers from the node's images, logs, the `kubernetes`
Service through kube-proxy, fake GPUs from the device plugin, OOM kills, and the guard
that keeps pod traffic on this machine."""

from __future__ import annotations

import errno
import socket
import urllib.request
from typing import Any

import pytest

from tests.cluster import real_node as rn
from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.cluster.oci_archive import PROBE_IMAGE

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]

# Generous: a loaded 2-core machine shared with other test sessions.
POD_TIMEOUT = 180


def _pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": list(containers), **spec}}


def _probe(name: str, *args: str, **extra: Any) -> dict[str, Any]:
    """A container running the probe tool (kubesweep.local/probe, imported at start:
    IfNotPresent means no pull)."""
    return {"name": name, "image": PROBE_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["/probe", *args], **extra}


def _create(cluster: ClusterHandle, namespace: str, pod: dict[str, Any]) -> None:
    cluster.core().create_namespaced_pod(namespace, pod)


def _wait_phase(cluster: ClusterHandle, namespace: str, name: str,
                phases: tuple[str, ...] = ("Succeeded",)) -> Any:
    core = cluster.core()

    def done() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in phases:
            return pod
        if pod.status.phase == "Failed" and "Failed" not in phases:
            raise AssertionError(f"pod {name} failed: {pod.status}")
        return None

    return wait_for(done, POD_TIMEOUT, f"pod {namespace}/{name} in {phases}",
                    cluster.log_hint(), interval=0.5)


def _logs(cluster: ClusterHandle, namespace: str, pod: str, container: str = "") -> str:
    args = ["logs", "-n", namespace, pod] + (["-c", container] if container else [])
    return cluster.kubectl(*args).stdout


def test_pod_runs_in_a_container_and_kubectl_logs_shows_its_output(
        cluster: ClusterHandle, namespace: str) -> None:
    _create(cluster, namespace, _pod(
        "hello", _probe("main", "env", "HOSTNAME", "KUBESWEEP_CLUSTER_RUN_ID")))
    pod = _wait_phase(cluster, namespace, "hello")
    status = pod.status.container_statuses[0]
    assert status.container_id.startswith("containerd://")
    assert status.image_id, "the kubelet reports the image it ran"
    assert pod.status.pod_ip.startswith(rn.POD_CIDR.rsplit(".", 2)[0] + ".")
    assert pod.status.host_ip == rn.NODE_IP
    out = _logs(cluster, namespace, "hello")
    # Its own hostname, and none of the harness's environment: a container, not a process.
    assert "HOSTNAME=hello\n" in out
    assert "KUBESWEEP_CLUSTER_RUN_ID=\n" in out


def test_pod_reaches_the_api_server_through_the_kubernetes_service(
        cluster: ClusterHandle, namespace: str) -> None:
    endpoints = cluster.core().read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for s in endpoints.subsets for a in s.addresses] == [rn.HOST_IP]
    _create(cluster, namespace, _pod("whoami", _probe("main", "whoami")))
    _wait_phase(cluster, namespace, "whoami")
    out = _logs(cluster, namespace, "whoami")
    # KUBERNETES_SERVICE_HOST is the ClusterIP: only kube-proxy's DNAT gets it there.
    assert out.strip() == f"via 10.0.0.1:443 user system:serviceaccount:{namespace}:default"


def test_host_reaches_a_pod_through_its_service_cluster_ip(
        cluster: ClusterHandle, namespace: str) -> None:
    # As Prometheus on the host scrapes the operator through its Service.
    pod = _pod("web", _probe("main", "serve", "8080", ports=[{"containerPort": 8080}]))
    pod["metadata"]["labels"] = {"app": "web"}
    pod["spec"]["restartPolicy"] = "Always"
    _create(cluster, namespace, pod)
    svc = cluster.core().create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    _wait_phase(cluster, namespace, "web", ("Running",))

    def get() -> str:
        with urllib.request.urlopen(f"http://{svc.spec.cluster_ip}:80/", timeout=5) as resp:
            return str(resp.read().decode())

    # Until kube-proxy has the endpoint the guard rejects the Service IP: retry.
    assert wait_for(get, 60, "the Service from the host", cluster.log_hint()) == "probe web\n"


def test_two_gpu_pods_get_different_devices_and_a_third_is_unschedulable(
        cluster: ClusterHandle, namespace: str) -> None:
    gpu = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    for name in ("gpu-a", "gpu-b"):
        _create(cluster, namespace, _pod(name, _probe(
            "main", "hold", "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", **gpu)))
    devices = []
    for name in ("gpu-a", "gpu-b"):
        _wait_phase(cluster, namespace, name, ("Running",))
        out = wait_for(lambda n=name: _logs(cluster, namespace, n), 60, f"{name} logs",
                       cluster.log_hint())
        env = dict(line.split("=", 1) for line in out.split())
        assert env["NVIDIA_VISIBLE_DEVICES"] == env["CUDA_VISIBLE_DEVICES"]
        devices.append(env["NVIDIA_VISIBLE_DEVICES"])
    assert sorted(devices) == ["GPU-fake-0", "GPU-fake-1"]

    _create(cluster, namespace, _pod("gpu-c", _probe("main", "hold", **gpu)))
    core = cluster.core()

    def unschedulable() -> Any:
        pod = core.read_namespaced_pod("gpu-c", namespace)
        return [c for c in pod.status.conditions or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"]

    cond = wait_for(unschedulable, 60, "gpu-c Unschedulable", cluster.log_hint())
    assert "nvidia.com/gpu" in cond[0].message
    assert core.read_namespaced_pod("gpu-c", namespace).status.phase == "Pending"


def test_container_over_its_memory_limit_is_oom_killed(
        cluster: ClusterHandle, namespace: str) -> None:
    _create(cluster, namespace, _pod("hog", _probe(
        "main", "alloc", resources={"limits": {"memory": "64Mi"}})))
    pod = _wait_phase(cluster, namespace, "hog", ("Failed",))
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "OOMKilled"
    assert terminated.exit_code == 137


def test_guard_rejects_pod_traffic_that_would_leave_the_machine(
        cluster: ClusterHandle, namespace: str) -> None:
    if cluster.real_node is None:
        pytest.skip("the guard is the harness's own real node's")
    # The guard must be in place before anything is sent; then, whatever happens, the
    # node's only route out is a dead end inside its own network namespace.
    assert rn.guard_rules_ok()
    outside_before = rn.guard_packets(rn.GUARD_RULE_FROM_PODS)
    service_before = rn.guard_packets(rn.GUARD_RULE_SERVICE)
    # TEST-NET-2 (RFC 5737), and a Service IP that no Service has.
    _create(cluster, namespace, _pod(
        "leave", _probe("outside", "connect", "198.51.100.1:80"),
        _probe("service", "connect", "10.0.0.250:80")))
    _wait_phase(cluster, namespace, "leave")
    # "unreachable": an ICMP reject came back at once (a timeout would print "timeout").
    assert _logs(cluster, namespace, "leave", "outside").strip() == "unreachable"
    assert _logs(cluster, namespace, "leave", "service").strip() == "unreachable"
    assert rn.guard_packets(rn.GUARD_RULE_FROM_PODS) > outside_before
    assert rn.guard_packets(rn.GUARD_RULE_SERVICE) > service_before

    # From the host, the Service range is routed to the node, where the same rule
    # rejects an address kube-proxy has not rewritten.
    service_before = rn.guard_packets(rn.GUARD_RULE_SERVICE)
    with pytest.raises(OSError) as err, socket.socket() as sock:
        sock.settimeout(5)
        sock.connect(("10.0.0.250", 80))
    assert err.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED)
    assert rn.guard_packets(rn.GUARD_RULE_SERVICE) > service_before
