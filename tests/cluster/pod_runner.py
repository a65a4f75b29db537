"""Run one bound pod's containers as host processes and report their state to the API,
as a kubelet would: phase, container states, restarts, termination messages, deletion."""

from __future__ import annotations

import datetime
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .container_env import (
    ContainerConfigError,
    DataLookup,
    container_argv,
    container_env,
)
from .container_logs import ContainerLog, pump
from .kube_rest import STRATEGIC_MERGE_PATCH, ApiError, KubeRest

log = logging.getLogger(__name__)

GPU_RESOURCE = "nvidia.com/gpu"
# Where a process writes its termination message: the container's
# terminationMessagePath cannot exist on the host, so each is mapped to a file per pod.
TERMINATION_MESSAGE_ENV = "KUBESWEEP_TERMINATION_MESSAGE_PATH"
# Where the pod's ServiceAccount token, ca.crt and namespace files are.
SERVICE_ACCOUNT_DIR_ENV = "KUBESWEEP_SERVICEACCOUNT_DIR"
MAX_TERMINATION_MESSAGE = 4096  # the kubelet's per-container limit
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048  # FallbackToLogsOnError, as the kubelet
# Restart back-off is 1s doubling to 30s (the kubelet uses 10s to 5min): tests of
# restartPolicy OnFailure should not take minutes.
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0
NODE_IP = "127.0.0.1"


def now() -> str:
    """Current time as the API's metav1.Time (RFC 3339, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DeviceAllocator:
    """Hands out GPU indices 0..count-1 to containers, like a device plugin."""

    def __init__(self, count: int) -> None:
        self._free = list(range(count))
        self._lock = threading.Lock()

    def allocate(self, n: int) -> list[int] | None:
        """Take the `n` lowest free devices, or None if there are not enough."""
        with self._lock:
            if n > len(self._free):
                return None
            taken, self._free = self._free[:n], self._free[n:]
            return taken

    def release(self, devices: list[int]) -> None:
        """Return devices to the pool."""
        with self._lock:
            self._free = sorted(set(self._free) | set(devices))


@dataclass
class NodeContext:
    """What every pod runner on one node shares."""

    rest: KubeRest
    node_name: str
    pods_dir: Path
    workdir: Path
    base_env: dict[str, str]  # host + service variables, before the pod's own env
    devices: DeviceAllocator
    lookup: DataLookup


def gpu_request(container: Mapping[str, Any]) -> int:
    """GPUs a container asks for (extended resources: limits, or requests)."""
    resources = container.get("resources") or {}
    for kind in ("limits", "requests"):
        value = (resources.get(kind) or {}).get(GPU_RESOURCE)
        if value is not None:
            return int(value)
    return 0


@dataclass
class ContainerRunner:
    """One container of a pod: its process, state and log across restarts."""

    spec: dict[str, Any]
    log: ContainerLog
    termination_file: Path
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    proc: subprocess.Popen[bytes] | None = None
    devices: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self, pod_uid: str) -> dict[str, Any]:
        """The container's entry in pod.status.containerStatuses."""
        running = "running" in self.state
        image = self.spec.get("image", "")
        return {
            "name": self.name,
            "image": image,
            "imageID": image,
            "containerID": f"kubesweep://{pod_uid}/{self.name}/{self.restart_count}",
            "ready": running,
            "started": running,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodRunner:
    """Runs one pod in a thread: init containers in order, then all containers, with
    restarts per restartPolicy; reports status; finishes graceful deletion."""

    def __init__(self, ctx: NodeContext, pod: dict[str, Any]) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.dir = ctx.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy") or "Always"

        def runner(c: dict[str, Any]) -> ContainerRunner:
            return ContainerRunner(c, ContainerLog(self.dir / c["name"]),
                                   self.dir / f"{c['name']}.termination-log")

        self.init_containers = [runner(c) for c in spec.get("initContainers") or []]
        self.containers = [runner(c) for c in spec.get("containers") or []]
        self.phase = "Pending"
        self.start_time = now()
        self.initialized = not self.init_containers
        self.service_account_env: dict[str, str] = {}
        self._lock = threading.RLock()
        self._report_lock = threading.Lock()
        self.deleting = threading.Event()
        self.done = threading.Event()
        #: set when the pod vanished or the agent stops: no more status reports
        self.stopped = threading.Event()
        self._confirmed = False
        self._confirm_lock = threading.Lock()
        self._kill_timer: threading.Timer | None = None

    # --- public, called from the agent's watch thread ------------------------------

    def start(self) -> None:
        """Start running the pod in the background."""
        threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True).start()

    def container_log(self, name: str) -> ContainerLog | None:
        """Log of container (or init container) `name`."""
        for c in self.init_containers + self.containers:
            if c.name == name:
                return c.log
        return None

    def request_deletion(self, grace_seconds: int | None) -> None:
        """The pod got a deletionTimestamp: SIGTERM its processes, SIGKILL them after the
        grace period, then confirm the deletion once everything has exited."""
        if self.deleting.is_set():
            if self.done.is_set() and not self._confirmed:
                self.confirm_deletion()  # an earlier confirmation failed: try again
            return
        self.deleting.set()
        if self.done.is_set():
            self.confirm_deletion()
            return
        grace = 30 if grace_seconds is None else grace_seconds
        self._signal_all(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        self._kill_timer = threading.Timer(grace, self._signal_all, (signal.SIGKILL,))
        self._kill_timer.daemon = True
        self._kill_timer.start()

    def kill(self) -> None:
        """Stop every process now (pod vanished or the agent is shutting down)."""
        self.stopped.set()
        self.deleting.set()
        self._signal_all(signal.SIGTERM)
        timer = threading.Timer(3.0, self._signal_all, (signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def confirm_deletion(self) -> None:
        """Finish graceful deletion (what the kubelet does once containers are gone);
        until then the pod, and a namespace holding it, stay Terminating."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        with self._confirm_lock:
            for attempt in range(5):
                if self._confirmed:
                    return
                try:
                    self.ctx.rest.request("DELETE", path, body)
                    self._confirmed = True
                except ApiError as e:
                    if e.status in (404, 409):  # gone already / a different pod by now
                        self._confirmed = True
                    else:
                        log.warning("confirming deletion of %s/%s: %s",
                                    self.namespace, self.name, e)
                except Exception as e:  # connection trouble: retry shortly
                    log.warning("confirming deletion of %s/%s: %r",
                                self.namespace, self.name, e)
                if not self._confirmed:
                    time.sleep(0.2 * 2 ** attempt)

    # --- the pod's thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_pod()
        except Exception as e:  # report instead of leaving the pod Pending forever
            log.exception("pod %s/%s failed in the node agent", self.namespace, self.name)
            with self._lock:
                self.phase = "Failed"
            self._report(reason="NodeAgentError", message=str(e))
        finally:
            for c in self.init_containers + self.containers:
                self.ctx.devices.release(c.devices)
                c.devices = []
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self.done.set()
            if self.deleting.is_set():
                self.confirm_deletion()

    def _run_pod(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for c in self.init_containers + self.containers:
            wanted = gpu_request(c.spec)
            got = self.ctx.devices.allocate(wanted) if wanted else []
            if got is None:
                with self._lock:
                    self.phase = "Failed"
                self._report(reason="UnexpectedAdmissionError",
                             message=f"not enough free {GPU_RESOURCE} for container {c.name}")
                return
            c.devices = got

        self.service_account_env = self._mount_service_account()
        for c in self.init_containers:
            while True:
                code = self._run_container(c, init=True)
                if self.deleting.is_set():
                    return
                if code == 0:
                    break
                if self.restart_policy == "Never":
                    with self._lock:
                        self.phase = "Failed"
                    self._report()
                    return
                if not self._back_off(c):
                    return
        with self._lock:
            self.initialized = True

        threads = [threading.Thread(target=self._container_loop, args=(c,), daemon=True)
                   for c in self.containers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self._lock:
            codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in self.containers]
            self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        self._report()

    def _container_loop(self, c: ContainerRunner) -> None:
        while True:
            code = self._run_container(c, init=False)
            if self.deleting.is_set() or self.restart_policy == "Never":
                return
            if self.restart_policy == "OnFailure" and code == 0:
                return
            if not self._back_off(c):
                return

    def _back_off(self, c: ContainerRunner) -> bool:
        """Wait before restarting `c` (CrashLoopBackOff); False if the pod is deleted."""
        delay = min(BACKOFF_START * 2 ** c.restart_count, BACKOFF_MAX)
        with self._lock:
            c.last_state = c.state
            c.state = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off {delay:g}s restarting failed "
                                              f"container={c.name} pod={self.name}"}}
        self._report()
        if self.deleting.wait(delay):
            return False
        with self._lock:
            c.restart_count += 1
            c.log.attempt += 1
            c.log.finished.clear()
        return True

    def _mount_service_account(self) -> dict[str, str]:
        """Stand-in for the projected ServiceAccount token volume: mint a token bound to
        this pod and write it, with the CA and namespace, to <pod dir>/serviceaccount,
        plus a kubeconfig using it. /var/run/secrets/... cannot exist for a host
        process, so the process finds them through KUBECONFIG (which the kubernetes
        client and kopf read) and KUBESWEEP_SERVICEACCOUNT_DIR: in-pod code then talks to
        the API as its ServiceAccount, and RBAC applies to it."""
        volumes = self.pod["spec"].get("volumes") or []
        if not any(src.get("serviceAccountToken") for v in volumes
                   for src in (v.get("projected") or {}).get("sources") or []):
            return {}
        account = self.pod["spec"].get("serviceAccountName") or "default"
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 86400, "boundObjectRef": {
                       "apiVersion": "v1", "kind": "Pod", "name": self.name,
                       "uid": self.uid}}}
        answer = self.ctx.rest.request(
            "POST", f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token",
            request)
        token = answer["status"]["token"]
        sa_dir = self.dir / "serviceaccount"
        sa_dir.mkdir(parents=True, exist_ok=True)
        (sa_dir / "token").write_text(token)
        (sa_dir / "namespace").write_text(self.namespace)
        if self.ctx.rest.ca_file:
            (sa_dir / "ca.crt").write_bytes(Path(self.ctx.rest.ca_file).read_bytes())
        kubeconfig = self.dir / "kubeconfig"
        cluster: dict[str, Any] = {"server": self.ctx.rest.host}
        if self.ctx.rest.ca_file:
            cluster["certificate-authority"] = str(sa_dir / "ca.crt")
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {
                "cluster": "cluster", "user": account, "namespace": self.namespace}}],
            "current-context": "pod",
        }))
        return {"KUBECONFIG": str(kubeconfig), SERVICE_ACCOUNT_DIR_ENV: str(sa_dir)}

    def _container_environment(self, c: ContainerRunner) -> dict[str, str]:
        base = dict(self.ctx.base_env)
        base.update(self.service_account_env)
        # Like the NVIDIA device plugin: a container sees exactly its allocated GPUs,
        # and one without a GPU request sees none.
        visible = ",".join(str(d) for d in c.devices)
        base["CUDA_VISIBLE_DEVICES"] = visible
        if c.devices:
            base["NVIDIA_VISIBLE_DEVICES"] = visible
        base[TERMINATION_MESSAGE_ENV] = str(c.termination_file)
        base["HOSTNAME"] = self.pod["spec"].get("hostname") or self.name
        return container_env(self.pod, c.spec, base, self.ctx.lookup)

    def _run_container(self, c: ContainerRunner, *, init: bool) -> int:
        """Run one attempt of `c` to completion; returns its exit code."""
        log_path = c.log.path()
        try:
            env = self._container_environment(c)
            argv = container_argv(c.spec, env)
        except ContainerConfigError as e:
            return self._terminated(c, 128, "CreateContainerConfigError", str(e), init=init)
        workdir = c.spec.get("workingDir")
        # workingDir names a path in the image; use it only if it exists on this host.
        cwd = workdir if workdir and os.path.isdir(workdir) else str(self.ctx.workdir)
        c.termination_file.write_bytes(b"")
        log_path.touch()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            with open(log_path, "ab") as f:
                f.write(f"{now()} stdout F node agent: cannot start: {e}\n".encode())
            return self._terminated(c, 128, "StartError", f"cannot start {argv[0]!r}: {e}",
                                    init=init)
        started = now()
        with self._lock:
            c.proc = proc
            c.state = {"running": {"startedAt": started}}
            if not init and all("running" in x.state or "terminated" in x.state
                                for x in self.containers):
                self.phase = "Running"
        if self.deleting.is_set():  # deleted while we were starting it
            self._signal_all(signal.SIGTERM)
        self._report()
        assert proc.stdout is not None
        pumping = threading.Thread(target=pump, args=(proc.stdout, log_path), daemon=True)
        pumping.start()
        code = proc.wait()
        # A container ends with its main process: whatever it left running in its group
        # goes too (and so releases the output pipe), as when a runtime tears one down.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        pumping.join(timeout=10)
        proc.stdout.close()
        if code < 0:  # killed by a signal: report it as a shell/kubelet would
            code = 128 - code
        reason = "Completed" if code == 0 else "Error"
        return self._terminated(c, code, reason, None, init=init, started=started)

    def _terminated(self, c: ContainerRunner, code: int, reason: str, message: str | None,
                    *, init: bool, started: str | None = None) -> int:
        if message is None:
            message = self._termination_message(c, code)
        state: dict[str, Any] = {"exitCode": code, "reason": reason,
                                 "startedAt": started or now(), "finishedAt": now(),
                                 "containerID": f"kubesweep://{self.uid}/{c.name}/"
                                                f"{c.restart_count}"}
        if message:
            state["message"] = message
        with self._lock:
            c.proc = None
            c.state = {"terminated": state}
            others_running = any("running" in x.state for x in self.containers if x is not c)
        c.log.finished.set()
        # The pod's final report follows right away for the last container; report here
        # only when it says something new (init done, a sibling still running, a restart).
        if init or others_running:
            self._report()
        return code

    def _termination_message(self, c: ContainerRunner, code: int) -> str:
        try:
            with open(c.termination_file, "rb") as f:
                text = f.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
        except FileNotFoundError:
            text = ""
        policy = c.spec.get("terminationMessagePolicy") or "File"
        if not text and code != 0 and policy == "FallbackToLogsOnError":
            text = c.log.tail_text(FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES)
        return text

    def _signal_all(self, sig: signal.Signals) -> None:
        with self._lock:
            procs = [c.proc for c in self.init_containers + self.containers if c.proc]
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    # --- status --------------------------------------------------------------------

    def _status(self, reason: str | None, message: str | None) -> dict[str, Any]:
        with self._lock:
            t = now()
            running = self.phase == "Running" and all(
                "running" in c.state for c in self.containers)
            ready_reason = None if running else (
                "PodCompleted" if self.phase in ("Succeeded", "Failed") else "ContainersNotReady")

            def cond(type_: str, ok: bool, why: str | None = None) -> dict[str, Any]:
                # The strategic merge patch merges each condition into the stored one of
                # its type, so a key left out would survive from the last report: say
                # null to drop a reason that no longer applies.
                return {"type": type_, "status": "True" if ok else "False",
                        "reason": why, "message": None, "lastProbeTime": None,
                        "lastTransitionTime": t}

            status: dict[str, Any] = {
                "phase": self.phase,
                "hostIP": NODE_IP,
                "hostIPs": [{"ip": NODE_IP}],
                "podIP": NODE_IP,
                "podIPs": [{"ip": NODE_IP}],
                "startTime": self.start_time,
                "conditions": [
                    cond("PodReadyToStartContainers", True),
                    cond("Initialized", self.initialized or self.phase == "Succeeded",
                         None if self.initialized else "ContainersNotInitialized"),
                    cond("Ready", running, ready_reason),
                    cond("ContainersReady", running, ready_reason),
                    cond("PodScheduled", True),
                ],
                "containerStatuses": [c.status(self.uid) for c in self.containers],
                "reason": reason,
                "message": message,
            }
            if self.init_containers:
                status["initContainerStatuses"] = [
                    c.status(self.uid) for c in self.init_containers]
            return status

    def _report(self, reason: str | None = None, message: str | None = None) -> None:
        """Write the pod's status. The uid in the patch makes it fail instead of touching
        a newer pod with the same name.

        A strategic merge patch, because pod `conditions` merge by `type` there: the
        agent's own conditions are replaced, others stay. A JSON merge patch sends the
        list whole and so dropped conditions other components own, e.g. the
        DisruptionTarget the eviction API sets, which a Job's podFailurePolicy needs to
        tell an eviction from a failure (the kubelet keeps them too). The container
        status lists have no merge key, so they are still replaced whole."""
        body = {"metadata": {"uid": self.uid}, "status": self._status(reason, message)}
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status"
        with self._report_lock:  # keep reports in order
            # like a kubelet's status sync, keep trying through an API server outage: a
            # final status given up on would leave the pod Running (and its Job active)
            # forever
            attempt = 0
            while not self.stopped.is_set():
                attempt += 1
                try:
                    self.ctx.rest.request("PATCH", path, body,
                                          content_type=STRATEGIC_MERGE_PATCH)
                    return
                except ApiError as e:
                    if e.status in (404, 409):
                        return  # the pod is gone (or replaced)
                    log.warning("status of %s/%s: %s", self.namespace, self.name, e)
                except Exception as e:  # connection trouble: retry shortly
                    log.warning("status of %s/%s: %s", self.namespace, self.name, e)
                if self._confirmed:
                    return
                self.stopped.wait(min(0.2 * 2 ** attempt, 5.0))
