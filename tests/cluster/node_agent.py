"""A node that runs pods as local processes: registers a Node, keeps its Lease fresh,
runs the pods the scheduler binds to it, and serves their logs to the API server.

    python -m tests.cluster.node_agent --kubeconfig K --name node-0 --gpus 2 ...

Started by the harness (tests/cluster/control_plane.py); see tests/cluster/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .container_env import base_env, service_env
from .container_logs import ContainerLog
from .kube_rest import MERGE_PATCH, STRATEGIC_MERGE_PATCH, ApiError, KubeRest
from .log_server import LogServer
from .paths import REPO_ROOT, kubernetes_version
from .pod_runner import GPU_RESOURCE, NODE_IP, DeviceAllocator, NodeContext, PodRunner, now
from .processes import RUN_ID_ENV

log = logging.getLogger("node-agent")

LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10
NODE_STATUS_SECONDS = 60
WATCH_SECONDS = 290


def _micro_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    """One node: registration, heartbeat, the pod watch, and the log server."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.name: str = args.name
        self.rest = KubeRest(args.kubeconfig)
        self.pods: dict[str, PodRunner] = {}  # by uid
        self.by_name: dict[tuple[str, str], PodRunner] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.log_server = LogServer(args.port, args.cert, args.key, self._log_lookup)
        host = self.rest.host.split("://", 1)[1]
        api_host, _, api_port = host.rpartition(":")
        run_id = os.environ.get(RUN_ID_ENV)
        env = base_env({RUN_ID_ENV: run_id} if run_id else {})
        env.update(service_env(api_host, int(api_port or 443)))
        self.ctx = NodeContext(
            rest=self.rest,
            node_name=self.name,
            pods_dir=Path(args.state_dir) / "pods",
            workdir=Path(args.workdir),
            base_env=env,
            devices=DeviceAllocator(args.gpus),
            lookup=self._lookup_data,
        )

    # --- node object -------------------------------------------------------------

    def _conditions(self) -> list[dict[str, Any]]:
        t = now()
        ok = {"lastHeartbeatTime": t, "lastTransitionTime": t}
        return [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubesweep node agent is posting ready status", **ok},
            *({"type": c, "status": "False", "reason": f"KubeletHas{r}", "message": "", **ok}
              for c, r in (("MemoryPressure", "SufficientMemory"),
                           ("DiskPressure", "NoDiskPressure"),
                           ("PIDPressure", "SufficientPID"))),
        ]

    def _status(self) -> dict[str, Any]:
        a = self.args
        capacity = {"cpu": a.cpu, "memory": a.memory, "pods": str(a.pods),
                    "ephemeral-storage": "100Gi"}
        if a.gpus:
            capacity[GPU_RESOURCE] = str(a.gpus)
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": self._conditions(),
            "addresses": [{"type": "InternalIP", "address": NODE_IP},
                          {"type": "Hostname", "address": self.name}],
            # The API server proxies pods/log to https://<InternalIP>:<this port>.
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_server.port}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "kubesweep test node (pods are host processes)",
                "containerRuntimeVersion": "kubesweep-node-agent://0.1",
                "kubeletVersion": kubernetes_version(),
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register(self) -> None:
        """Create the Node (or take over an existing one) with capacity and address."""
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "kubesweep.io/test-node": "true"}
        for item in self.args.label or []:
            k, _, v = item.partition("=")
            labels[k] = v
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": labels}, "spec": {},
                "status": self._status()}
        try:
            self.rest.request("POST", "/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
            self.rest.request("PATCH", f"/api/v1/nodes/{self.name}",
                              {"metadata": {"labels": labels}}, content_type=MERGE_PATCH)
        # Status on create is not guaranteed to be kept: always write it explicitly.
        self.rest.request("PATCH", f"/api/v1/nodes/{self.name}/status",
                          {"status": self._status()}, content_type=MERGE_PATCH)
        self._untaint()

    def _untaint(self) -> None:
        """Drop the not-ready taint the API server puts on every new Node. The node
        lifecycle controller would lift it once Ready, but the harness disables that
        controller so a busy agent's pods are never evicted."""
        node = self.rest.get(f"/api/v1/nodes/{self.name}")
        taints = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if not t["key"].startswith("node.kubernetes.io/not-ready")
                and t["key"] != "node.kubernetes.io/unreachable"]
        if kept != taints:
            self.rest.request("PATCH", f"/api/v1/nodes/{self.name}",
                              {"spec": {"taints": kept or None}}, content_type=MERGE_PATCH)

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now()}
        try:
            self.rest.request("PATCH", path, {"spec": spec}, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status != 404:
                raise
            node = self.rest.get(f"/api/v1/nodes/{self.name}")
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "ownerReferences": [{
                         "apiVersion": "v1", "kind": "Node", "name": self.name,
                         "uid": node["metadata"]["uid"]}]},
                     "spec": spec}
            self.rest.request(
                "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)

    def heartbeat_forever(self) -> None:
        """Renew the Lease every 10s and re-post Ready every minute, like a kubelet."""
        last_status = time.monotonic()
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self._renew_lease()
                if time.monotonic() - last_status >= NODE_STATUS_SECONDS:
                    self.rest.request("PATCH", f"/api/v1/nodes/{self.name}/status",
                                      {"status": {"conditions": self._conditions()}},
                                      content_type=STRATEGIC_MERGE_PATCH)
                    last_status = time.monotonic()
            except Exception as e:
                log.warning("heartbeat: %s", e)

    # --- pods ----------------------------------------------------------------------

    def _lookup_data(self, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        try:
            obj = self.rest.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return obj.get("data") or {}

    def _log_lookup(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        with self._lock:
            runner = self.by_name.get((namespace, pod))
        return runner.container_log(container) if runner else None

    def reconcile(self, pod: dict[str, Any]) -> None:
        """React to the current state of a pod bound to this node."""
        meta = pod["metadata"]
        with self._lock:
            runner = self.pods.get(meta["uid"])
            if runner is None:
                if meta.get("deletionTimestamp"):
                    # Never ran here (or the agent restarted): nothing to stop.
                    PodRunner(self.ctx, pod).confirm_deletion()
                    return
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    return
                runner = PodRunner(self.ctx, pod)
                self.pods[runner.uid] = runner
                self.by_name[(runner.namespace, runner.name)] = runner
                runner.start()
                return
        runner.pod = pod
        if meta.get("deletionTimestamp"):
            runner.request_deletion(meta.get("deletionGracePeriodSeconds"))

    def forget(self, uid: str) -> None:
        """The pod is gone from the API: stop whatever still runs of it."""
        with self._lock:
            runner = self.pods.pop(uid, None)
            if runner and self.by_name.get((runner.namespace, runner.name)) is runner:
                del self.by_name[(runner.namespace, runner.name)]
        if runner and not runner.done.is_set():
            runner.kill()

    def _relist(self) -> str:
        pods = self.rest.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.name}")
        seen = set()
        for pod in pods["items"]:
            seen.add(pod["metadata"]["uid"])
            self.reconcile(pod)
        with self._lock:
            gone = [uid for uid in self.pods if uid not in seen]
        for uid in gone:
            self.forget(uid)
        return str(pods["metadata"]["resourceVersion"])

    def watch_forever(self) -> None:
        """List, then watch pods bound to this node; relist on expiry (410) or errors."""
        rv: str | None = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                for event in self.rest.watch(
                        "/api/v1/pods", timeout_seconds=WATCH_SECONDS, resourceVersion=rv,
                        fieldSelector=f"spec.nodeName={self.name}"):
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        log.info("watch error %s: relisting", obj.get("code"))
                        rv = None
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.forget(obj["metadata"]["uid"])
                    else:
                        self.reconcile(obj)
            except ApiError as e:
                log.info("watch: %s; relisting", e)
                rv = None
                time.sleep(0.5)
            except Exception as e:  # connection reset, API server restart, ...
                if self.stopping.is_set():
                    return
                log.warning("watch: %r; relisting", e)
                rv = None
                time.sleep(1)

    def shutdown(self) -> None:
        """Stop every pod process (SIGTERM, then SIGKILL) and the log server."""
        self.stopping.set()
        with self._lock:
            runners = list(self.pods.values())
        for r in runners:
            r.kill()
        deadline = time.monotonic() + 5
        for r in runners:
            r.done.wait(max(0.0, deadline - time.monotonic()))
        self.log_server.stop()

    def run(self) -> None:
        """Register, then serve until SIGTERM/SIGINT."""
        self.log_server.start()
        self.register()
        self._renew_lease()
        threading.Thread(target=self.heartbeat_forever, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.watch_forever, name="pod-watch", daemon=True).start()
        log.info("node %s ready (logs on port %d)", self.name, self.log_server.port)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        log.info("shutting down")
        self.shutdown()



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the node agent."""
    p = argparse.ArgumentParser(prog="python -m tests.cluster.node_agent", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--name", required=True, help="Node name")
    p.add_argument("--cpu", default="32", help="cpu capacity (default 32)")
    p.add_argument("--memory", default="64Gi", help="memory capacity (default 64Gi)")
    p.add_argument("--pods", type=int, default=110, help="max pods (default 110)")
    p.add_argument("--gpus", type=int, default=0, help=f"{GPU_RESOURCE} capacity")
    p.add_argument("--label", action="append", help="extra node label k=v (repeatable)")
    p.add_argument("--port", type=int, default=0, help="log server port (default: free)")
    p.add_argument("--cert", type=Path, required=True, help="log server certificate")
    p.add_argument("--key", type=Path, required=True, help="log server key")
    p.add_argument("--state-dir", type=Path, required=True, help="pod logs and files")
    p.add_argument("--workdir", type=Path, default=REPO_ROOT,
                   help="working directory of pod processes (default: repository root)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    NodeAgent(args).run()


if __name__ == "__main__":
    main()
