"""Fixtures and helpers for tests of the operator against the real control plane.

The operator runs as a real subprocess (`python -m kubesweep.cli operator`) with the
test cluster's kubeconfig, watching only the test's namespace, so a test can SIGKILL
and restart it. Import the fixtures into a test module:

    from tests.k8s.operator_fixtures import crd_fixture, operator_fixture  # noqa: F401

(the functions are registered under the fixture names `crd` and `operator`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.cluster.processes import free_port

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "sweeps.kubesweep.io.yaml"
GROUP, VERSION, PLURAL = "kubesweep.io", "v1alpha1", "sweeps"


def _still_free(port: int) -> int:
    """`port` if nothing listens on or holds it now, else a fresh free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return free_port()
    return port


class OperatorProcess:
    """`kubesweep operator` as a subprocess: start, SIGKILL, restart, read its metrics.

    `namespace` "*" runs it with --all-namespaces.
    """

    def __init__(self, cluster: ClusterHandle, namespace: str, log_dir: Path,
                 extra_args: list[str] | None = None, kubeconfig: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.env = dict(env or {})
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.namespace = namespace
        self.log_path = log_dir / "operator.log"
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *extra: str, ready: bool = True) -> None:
        """Start the operator and wait until its readiness probe says ready (its watches
        run), or with `ready=False` only until its liveness probe answers."""
        if self.starts:
            # the same ports again (a Prometheus may be scraping them), unless one was
            # taken meanwhile, e.g. as the ephemeral source port of some connection
            self.metrics_port = _still_free(self.metrics_port)
            self.liveness_port = _still_free(self.liveness_port)
        scope = ["--all-namespaces"] if self.namespace == "*" else \
            ["--namespace", self.namespace]
        args = [sys.executable, "-m", "kubesweep.cli", "operator", *scope,
                "--metrics-port", str(self.metrics_port),
                "--liveness-port", str(self.liveness_port), *self.extra_args, *extra]
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                   PYTHONPATH=str(REPO / "operator"), **self.env)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        path = "/readyz" if ready else "/healthz"
        # generous: importing kopf, kubernetes and numpy takes a while on a loaded machine
        wait_for(lambda: self._alive(path), 180, f"the operator's {path}", self.hint())

    def _alive(self, path: str = "/healthz") -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}\n{self.hint()}")
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}{path}", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def kill9(self) -> None:
        """SIGKILL the operator (no cleanup of any kind) and reap it."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def metrics(self) -> str:
        """The text of the /metrics endpoint."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as resp:
            return resp.read().decode()

    def hint(self) -> str:
        """Where to look when a test fails."""
        tail = ""
        if self.log_path.exists():
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        return f"operator log {self.log_path}:\n{tail}\n{self.cluster.log_hint()}"


def install_crd(cluster: ClusterHandle) -> Path:
    """Apply the generated Sweep CRD and wait until it is established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))

    # Polled, not `kubectl wait --for=condition=Established`: on a CRD the API server
    # has not given a status yet, kubectl wait fails at once (".status.conditions
    # accessor error: <nil>"), which happens right after a cluster starts.
    def established() -> bool:
        crd = kubernetes.client.ApiextensionsV1Api(cluster.api).read_custom_resource_definition(
            f"{PLURAL}.{GROUP}")
        return any(c.type == "Established" and c.status == "True"
                   for c in (crd.status.conditions if crd.status else None) or [])

    wait_for(established, 60, f"CRD {PLURAL}.{GROUP} Established", cluster.log_hint())
    return CRD_FILE


@pytest.fixture(scope="session", name="crd")
def crd_fixture(cluster: ClusterHandle) -> Path:
    """The generated Sweep CRD applied and established."""
    return install_crd(cluster)


@pytest.fixture(name="operator")
def operator_fixture(cluster: ClusterHandle, namespace: str, crd: Path,
             tmp_path: Path) -> Iterator[OperatorProcess]:
    """A running operator watching the test's namespace (fast timeouts for tests)."""
    op = OperatorProcess(cluster, namespace, tmp_path,
                         ["--trial-start-timeout", "60", "--poll-interval", "5",
                          "--early-stop-interval", "0.5"])
    op.start()
    yield op
    op.stop()


# -- helpers --------------------------------------------------------------------------------


def custom(cluster: ClusterHandle) -> kubernetes.client.CustomObjectsApi:
    """CustomObjectsApi on the test cluster."""
    return kubernetes.client.CustomObjectsApi(cluster.api)


def apply(cluster: ClusterHandle, namespace: str, manifest: dict[str, Any],
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` a manifest (as a user would)."""
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest),
                           check=check)


def get_sweep(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, Any]:
    """The Sweep object."""
    return custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                        name)


def wait_phase(cluster: ClusterHandle, op: OperatorProcess | None, namespace: str, name: str,
               phases: tuple[str, ...] = ("Succeeded", "Failed"),
               timeout: float = 120) -> dict[str, Any]:
    """Wait until the Sweep reaches one of `phases`; returns it."""
    def check() -> dict[str, Any] | None:
        sweep = get_sweep(cluster, namespace, name)
        return sweep if (sweep.get("status") or {}).get("phase") in phases else None

    def hint() -> str:
        try:
            status = json.dumps(get_sweep(cluster, namespace, name).get("status"), indent=1)
        except Exception as exc:  # noqa: BLE001
            status = repr(exc)
        return f"status: {status[:3000]}\n" + (op.hint() if op else cluster.log_hint())

    try:
        return wait_for(check, timeout, f"sweep {name} to reach {'/'.join(phases)}",
                        interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{hint()}") from None


def jobs(cluster: ClusterHandle, namespace: str, sweep: str) -> list[dict[str, Any]]:
    """The sweep's Jobs as dicts."""
    resp = cluster.batch().list_namespaced_job(
        namespace, label_selector=f"kubesweep.io/sweep={sweep}", _preload_content=False)
    return json.loads(resp.data)["items"]


def events(cluster: ClusterHandle, namespace: str, sweep: str) -> list[dict[str, Any]]:
    """Events posted on the Sweep."""
    resp = cluster.core().list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={sweep},involvedObject.kind=Sweep",
        _preload_content=False)
    return json.loads(resp.data)["items"]


def wait_events(cluster: ClusterHandle, op: OperatorProcess | None, namespace: str, sweep: str,
                reasons: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """The Sweep's events once every reason in `reasons` is among them.

    The operator posts events after the status write they describe (a lost event loses no
    data), so a test that has just seen a phase must wait for its events, not read them."""
    def check() -> list[dict[str, Any]] | None:
        found = events(cluster, namespace, sweep)
        return found if reasons <= {e["reason"] for e in found} else None

    try:
        return wait_for(check, timeout, f"events {sorted(reasons)} on sweep {sweep}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{op.hint() if op else cluster.log_hint()}") from None


def sweep_manifest(name: str, command: str, *, parameters: dict[str, Any] | None = None,
                   method: str = "random", **spec: Any) -> dict[str, Any]:
    """A Sweep whose trial runs `python -c COMMAND` (instant trials by default)."""
    body: dict[str, Any] = {
        "method": method,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": parameters or {"x": {"distribution": "uniform", "min": 0, "max": 1}},
        "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
            # the built trial image: python and kubesweep, imported on the real node
            "name": "trial", "image": "ghcr.io/kubesweep/trial-sklearn:0.1.0",
            "command": ["python", "-c", command]}]}}}},
    }
    if method != "grid":
        body["maxTrials"] = 4
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Sweep", "metadata": {"name": name},
            "spec": body}


def trial_records(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Every finished trial from the Sweep's compact history."""
    from kubesweep.k8s.history import decode

    name = sweep["metadata"]["name"]
    return decode(sweep["status"].get("history"), lambda i: f"{name}-{i}")


def wait_until(check: Any, timeout: float, what: str, op: OperatorProcess | None = None,
               interval: float = 0.2) -> Any:
    """wait_for with the operator log in the failure message."""
    return wait_for(check, timeout, what, op.hint() if op else "", interval)


def sleep_until(deadline: float) -> None:
    """Sleep until a monotonic deadline (no-op when it passed)."""
    time.sleep(max(0.0, deadline - time.monotonic()))
