"""Start and stop a local cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and node agents, all on 127.0.0.1, each logging to <run dir>/logs; with
a RealNodeSpec also a real node (containerd, kubelet, kube-proxy; tests/cluster/real_node.py),
and then the API server listens on the host's end of the node's veth instead."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import pki as pki_mod
from . import processes
from . import real_node as rn
from .kube_rest import MERGE_PATCH, ApiError, KubeRest
from .paths import REPO_ROOT, control_plane_binary

STATE_FILE = "state.json"

# The node lifecycle controller taints (and evicts pods from) nodes without a kubelet
# heartbeat it trusts; the agent's Lease would do, but nothing is gained by risking it.
CONTROLLERS = "*,-node-lifecycle-controller"


class ClusterError(RuntimeError):
    """The cluster failed to start or is not healthy."""


@dataclass
class NodeSpec:
    """Capacity of one node-agent node."""

    name: str = "kubesweep-node-0"
    cpu: str = "32"
    memory: str = "64Gi"
    pods: int = 110
    gpus: int = 2
    labels: dict[str, str] = field(default_factory=dict)
    # Where pod processes run unless a container's workingDir exists on this machine;
    # None means the repository root. A real node's equivalent is the image's WORKDIR,
    # so pointing it at e.g. examples/ lets manifests run unchanged.
    workdir: Path | None = None

    def resolved_workdir(self) -> Path:
        """The absolute working directory the node agent gets."""
        return (self.workdir or REPO_ROOT).resolve()


@dataclass
class ClusterState:
    """What `down` (or a later process) needs to find and stop a running cluster."""

    run_dir: str
    run_id: str
    kubeconfig: str
    server: str
    pids: dict[str, int] = field(default_factory=dict)  # component -> pid (group leader)
    logs: dict[str, str] = field(default_factory=dict)
    real_node: str | None = None  # the real node's name, when there is one

    def save(self) -> None:
        """Write to <run_dir>/state.json."""
        path = Path(self.run_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, run_dir: Path) -> ClusterState | None:
        """Read <run_dir>/state.json, or None when no cluster was started there."""
        try:
            return cls(**json.loads((run_dir / STATE_FILE).read_text()))
        except FileNotFoundError:
            return None

    def log_hint(self) -> str:
        """Where to look when something went wrong."""
        return "component logs: " + ", ".join(f"{k}={v}" for k, v in self.logs.items())


def _write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    # JSON is valid YAML; no need for a YAML writer.
    path.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesweep-test",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "kubesweep-test",
                      "context": {"cluster": "kubesweep-test", "user": "admin",
                                  "namespace": "default"}}],
        "current-context": "kubesweep-test",
    }, indent=2))
    path.chmod(0o600)


def _write_cert_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubesweep-test",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": {"client-certificate": str(cert),
                                            "client-key": str(key)}}],
        "contexts": [{"name": "kubesweep-test",
                      "context": {"cluster": "kubesweep-test", "user": "user"}}],
        "current-context": "kubesweep-test",
    }, indent=2))
    path.chmod(0o600)


def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class LocalCluster:
    """A cluster of real control-plane binaries and node agents in `run_dir`.

    `die_with_parent=True` (pytest) ties every component to this process's life, so a
    killed test run leaves nothing behind; `python -m tests.cluster up` uses False.
    """

    def __init__(self, run_dir: Path, nodes: list[NodeSpec] | None = None, *,
                 die_with_parent: bool = True, real_node: rn.RealNodeSpec | None = None,
                 real_node_wait: float = 0.0,
                 extra_args: dict[str, list[str]] | None = None) -> None:
        self.run_dir = run_dir.resolve()
        self.nodes = nodes if nodes is not None else [NodeSpec()]
        self.die_with_parent = die_with_parent
        #: more flags for a component, by name (e.g. "kube-controller-manager"): the
        #: benchmarks raise client rate limits with it
        self.extra_args = dict(extra_args or {})
        # A real node needs the machine to itself: wait this long for another to finish.
        self.real_node = real_node
        self.real_node_wait = real_node_wait
        self.state: ClusterState | None = None
        self._procs: dict[str, Any] = {}
        self.teardown_problems: list[str] = []
        #: how each component was started, so a fault test can crash and restart it
        self._launches: dict[str, tuple[list[Any], Path, dict[str, str], Any]] = {}

    # --- start ---------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> ClusterState:
        """Start every component and wait until the cluster can run pods."""
        binaries = {b: control_plane_binary(b) for b in
                    ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")}
        for node in self.nodes:  # before starting anything that would need stopping
            if not node.resolved_workdir().is_dir():
                raise ClusterError(f"node {node.name}: workdir {node.resolved_workdir()} "
                                   "is not a directory")
        if self.real_node is not None:
            for b in ("kubelet", "kube-proxy", "fake-gpu-plugin"):
                control_plane_binary(b)
        if self.run_dir.exists():
            rn.unmount_under(str(self.run_dir))  # a crashed real node's leftovers
            shutil.rmtree(self.run_dir)
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True)
        # With a real node the API server must be reachable from pods: it listens on
        # the host's end of the node's veth (a local address, never the external one).
        api_ip = rn.HOST_IP if self.real_node else "127.0.0.1"
        pki = pki_mod.generate(self.run_dir / "pki", (api_ip,) if self.real_node else ())
        token = secrets.token_hex(16)
        (self.run_dir / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
        ports = {k: processes.free_port() for k in
                 ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler")}
        server = f"https://{api_ip}:{ports['apiserver']}"
        kubeconfig = self.run_dir / "kubeconfig"
        _write_kubeconfig(kubeconfig, server, pki.ca_cert, token)
        run_id = uuid.uuid4().hex
        self.state = state = ClusterState(str(self.run_dir), run_id, str(kubeconfig), server)
        env = dict(os.environ, **{processes.RUN_ID_ENV: run_id})
        record = None
        if self.real_node is not None:
            state.real_node = self.real_node.name
            record = rn.claim_host(self.run_dir, run_id, self.real_node_wait)
        deadline = time.monotonic() + timeout

        def launch(name: str, argv: list[Any]) -> None:
            log_path = logs / f"{name}.log"
            state.logs[name] = str(log_path)
            death_signal = None
            if self.die_with_parent:
                # SIGTERM lets a node agent stop its pods' processes before it exits.
                death_signal = signal.SIGTERM if name.startswith("node-") else signal.SIGKILL
            argv = [*argv, *self.extra_args.get(name, [])]
            proc = processes.start(argv, log_path, env=env, death_signal=death_signal)
            self._procs[name] = proc
            self._launches[name] = (argv, log_path, env, death_signal)
            state.pids[name] = proc.pid
            state.save()

        try:
            if record is not None:
                state.save()
                rn.setup_network(record)
            etcd_url = f"http://127.0.0.1:{ports['etcd']}"
            peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
            launch("etcd", [
                binaries["etcd"], "--name=default", f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Test data is throwaway: skipping fsync makes every API write faster.
                "--unsafe-no-fsync", "--log-level=warn",
            ])
            self._wait("etcd", deadline, lambda: self._http_ok(f"{etcd_url}/health"))

            launch("kube-apiserver", [
                binaries["kube-apiserver"],
                f"--etcd-servers={etcd_url}",
                f"--bind-address={api_ip}", f"--secure-port={ports['apiserver']}",
                f"--advertise-address={api_ip}",
                # The `kubernetes` Service gets the API server as its endpoint only when
                # pods can reach it (the real node); process nodes use 127.0.0.1 directly.
                *([] if self.real_node else ["--endpoint-reconciler-type=none"]),
                f"--cert-dir={self.run_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.apiserver_cert}",
                f"--tls-private-key-file={pki.apiserver_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={self.run_dir / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={pki_mod.SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # pods/log is proxied to the node agent with this client identity.
                f"--kubelet-client-certificate={pki.kubelet_client_cert}",
                f"--kubelet-client-key={pki.kubelet_client_key}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                # Publishes a front-proxy CA for the controller manager's and scheduler's
                # delegated authentication, which otherwise log an error every second.
                f"--requestheader-client-ca-file={pki.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--profiling=false",
            ])
            ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
            self._wait("kube-apiserver", deadline, lambda: self._http_ok(
                f"{server}/readyz", token=token, context=ctx))

            common = [f"--kubeconfig={kubeconfig}", "--leader-elect=false",
                      "--bind-address=127.0.0.1"]
            launch("kube-controller-manager", [
                binaries["kube-controller-manager"], *common,
                f"--secure-port={ports['kcm']}",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
            ])
            launch("kube-scheduler", [
                binaries["kube-scheduler"], *common, f"--secure-port={ports['scheduler']}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
            ])
            for node in self.nodes:
                self._launch_node(launch, node, kubeconfig, pki)
            rest = KubeRest(kubeconfig, maxsize=2)
            if self.real_node is not None and record is not None:
                self._start_real_node(launch, self.real_node, record, server, pki, rest,
                                      deadline)

            for name in [n.name for n in self.nodes] + (
                    [self.real_node.name] if self.real_node else []):
                self._wait(f"node {name}", deadline,
                           lambda n=name: self._node_schedulable(rest, n))
            # Created by the controller manager's serviceaccount controller; pods in a
            # namespace are rejected until it exists, so it proves the KCM works.
            self._wait("default ServiceAccount", deadline, lambda: self._exists(
                rest, "/api/v1/namespaces/default/serviceaccounts/default"))
            self._wait("kube-scheduler", deadline, lambda: self._http_ok(
                f"https://127.0.0.1:{ports['scheduler']}/healthz", context=_insecure()))
        except BaseException:
            self.stop()
            raise
        return state

    def _start_real_node(self, launch: Callable[[str, list[Any]], None],
                         spec: rn.RealNodeSpec, record: rn.HostRecord, server: str,
                         pki: pki_mod.Pki, rest: KubeRest, deadline: float) -> None:
        assert self.state is not None
        state = self.state
        kubelet_kc = self.run_dir / "node" / "kubelet.kubeconfig"
        proxy_kc = self.run_dir / "node" / "kube-proxy.kubeconfig"
        kubelet_kc.parent.mkdir(parents=True, exist_ok=True)
        # The Node authorizer and NodeRestriction know a kubelet by this identity.
        cert, key = pki_mod.issue_client(pki, "kubelet", f"system:node:{spec.name}",
                                         "system:nodes")
        _write_cert_kubeconfig(kubelet_kc, server, pki.ca_cert, cert, key)
        # Bound to the system:node-proxier ClusterRole by default.
        cert, key = pki_mod.issue_client(pki, "kube-proxy", "system:kube-proxy")
        _write_cert_kubeconfig(proxy_kc, server, pki.ca_cert, cert, key)
        paths = rn.write_configs(self.run_dir, spec, pki.ca_cert, proxy_kc)
        rn.record_host_state(record)

        launch("containerd", rn.containerd_argv(paths))
        self._wait("containerd", deadline, lambda: paths["containerd_sock"].exists()
                   and rn.image_names(paths) is not None, log="containerd")
        rn.import_images(paths, spec.resolved_images_dir(), Path(state.logs["containerd"]))
        launch("kubelet", rn.kubelet_argv(spec, paths, kubelet_kc))
        launch("kube-proxy", rn.kube_proxy_argv(paths))
        if spec.gpus > 0:
            launch("fake-gpu-plugin", rn.device_plugin_argv(spec))
        # This process (pytest, or `up` until it returns) and the node's components:
        # while any lives, no other session takes the host over.
        record.owner_pids = [os.getpid()] + [
            state.pids[n] for n in ("containerd", "kubelet", "kube-proxy", "fake-gpu-plugin")
            if n in state.pids]
        record.save()

        self._wait(f"real node {spec.name} Ready", deadline,
                   lambda: self._node_ready(rest, spec.name), log="kubelet")
        self._untaint(rest, spec.name)
        if spec.gpus > 0:
            self._wait(f"{spec.gpus} nvidia.com/gpu on {spec.name}", deadline, lambda: (
                rest.get(f"/api/v1/nodes/{spec.name}")["status"].get("allocatable", {})
                .get("nvidia.com/gpu") == str(spec.gpus)), log="fake-gpu-plugin")
        self._wait("kube-proxy", deadline, lambda: self._http_ok(
            f"http://{rn.NODE_IP}:{rn.KUBE_PROXY_HEALTHZ_PORT}/healthz"), log="kube-proxy")
        # The kubelet and kube-proxy prepend their own jumps when they start: the guard
        # goes back on top once both have.
        self._wait("the real node's guard rules first in FORWARD/OUTPUT", deadline,
                   rn.guard_settled, log="kube-proxy")

    @staticmethod
    def _node_ready(rest: KubeRest, name: str) -> bool:
        node = rest.get(f"/api/v1/nodes/{name}")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))

    @staticmethod
    def _untaint(rest: KubeRest, name: str) -> None:
        # The node-lifecycle controller (disabled, see CONTROLLERS) would remove the
        # not-ready taint the API server puts on every new Node once it is Ready.
        node = rest.get(f"/api/v1/nodes/{name}")
        taints = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if not t["key"].startswith("node.kubernetes.io/not-ready")]
        if kept != taints:
            rest.request("PATCH", f"/api/v1/nodes/{name}",
                         {"spec": {"taints": kept or None}}, content_type=MERGE_PATCH)

    def _launch_node(self, launch: Callable[[str, list[Any]], None], node: NodeSpec,
                     kubeconfig: Path, pki: pki_mod.Pki) -> None:
        argv: list[Any] = [
            sys.executable, "-m", "tests.cluster.node_agent",
            f"--kubeconfig={kubeconfig}", f"--name={node.name}", f"--cpu={node.cpu}",
            f"--memory={node.memory}", f"--pods={node.pods}", f"--gpus={node.gpus}",
            f"--cert={pki.node_cert}", f"--key={pki.node_key}",
            f"--state-dir={self.run_dir / 'nodes' / node.name}",
            f"--workdir={node.resolved_workdir()}",
        ]
        argv += [f"--label={k}={v}" for k, v in node.labels.items()]
        # `-m tests.cluster...` resolves from the repository root.
        cwd = os.getcwd()
        os.chdir(REPO_ROOT)
        try:
            launch(f"node-{node.name}", argv)
        finally:
            os.chdir(cwd)

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool],
              log: str | None = None) -> None:
        """Poll `ready` until true; on timeout name `log` (the component that should
        have made it true) first, with its tail, then every log."""
        while True:
            self._check_alive()
            try:
                if ready():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                assert self.state is not None
                detail = ""
                if log and log in self.state.logs:
                    path = self.state.logs[log]
                    detail = f"; see {path}:\n{_tail(path)}\n"
                raise ClusterError(f"timed out waiting for {what}{detail}; "
                                   f"{self.state.log_hint()}")
            time.sleep(0.2)

    def _check_alive(self) -> None:
        assert self.state is not None
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                log = self.state.logs[name]
                raise ClusterError(
                    f"{name} exited with code {proc.returncode}; log {log}:\n{_tail(log)}")

    @staticmethod
    def _http_ok(url: str, token: str | None = None,
                 context: ssl.SSLContext | None = None) -> bool:
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return bool(resp.status == 200)

    @staticmethod
    def _exists(rest: KubeRest, path: str) -> bool:
        try:
            rest.get(path)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    @staticmethod
    def _node_schedulable(rest: KubeRest, name: str) -> bool:
        node = rest.get(f"/api/v1/nodes/{name}")
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))
        return ready and not node.get("spec", {}).get("taints")

    # --- faults ----------------------------------------------------------------------

    def crash(self, name: str) -> None:
        """SIGKILL one component (e.g. `kube-apiserver`, `etcd`) as a crash would: no
        graceful shutdown. `start_again` brings it back with the same arguments."""
        proc = self._procs.pop(name)
        processes.stop_group(proc.pid, timeout=0.0)
        proc.wait(10)

    def start_again(self, name: str, timeout: float = 120.0) -> None:
        """Start a component `crash` stopped, with its original arguments and log, and
        wait until it is healthy again (the API server's /readyz; etcd's /health)."""
        assert self.state is not None
        argv, log_path, env, death_signal = self._launches[name]
        proc = processes.start(argv, log_path, env=env, death_signal=death_signal)
        self._procs[name] = proc
        self.state.pids[name] = proc.pid
        self.state.save()
        deadline = time.monotonic() + timeout
        if name == "kube-apiserver":
            token = self._admin_token()
            self._wait("kube-apiserver /readyz", deadline, lambda: self._http_ok(
                f"{self.state.server}/readyz", token, _insecure()))  # type: ignore[union-attr]
        elif name == "etcd":
            url = next(a.split("=", 1)[1] for a in map(str, argv)
                       if a.startswith("--listen-client-urls="))
            self._wait("etcd /health", deadline, lambda: self._http_ok(f"{url}/health"))

    def _admin_token(self) -> str:
        return (self.run_dir / "tokens.csv").read_text().split(",", 1)[0]

    # --- stop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component (node agents first so they can stop their pods), then
        kill anything still carrying this run's id; what the real node could not undo
        on the host is in `teardown_problems`."""
        if self.state is not None:
            stop_state(self.state, self.teardown_problems)


# Stop order: nodes first (a node agent stops its pods' processes; the kubelet is stopped
# before containerd), then the control plane from the top down.
_STOP_RANK = {"kubelet": 0, "kube-proxy": 1, "fake-gpu-plugin": 1, "containerd": 2,
              "kube-scheduler": 3, "kube-controller-manager": 4, "kube-apiserver": 5}


def stop_state(state: ClusterState, problems: list[str] | None = None) -> list[int]:
    """Stop the cluster described by `state` and undo what its real node changed on the
    host (what could not be undone is appended to `problems`, or printed); returns PIDs
    that had to be swept up."""
    if state.real_node:
        rn.hold_for_stop(state.run_id)
    order = sorted(state.pids, key=lambda n: 0 if n.startswith("node-") else
                   _STOP_RANK.get(n, 6))
    for name in order:
        processes.stop_group(state.pids[name], timeout=10.0)
    swept = processes.kill_run(state.run_id)
    if state.real_node:
        found = rn.release(state.run_id) or []
        if problems is not None:
            problems += found
        elif found:
            print("real node teardown: " + "; ".join(found), file=sys.stderr)
    return swept


def _insecure() -> ssl.SSLContext:
    # The scheduler's self-signed serving cert is only used for this health probe.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
