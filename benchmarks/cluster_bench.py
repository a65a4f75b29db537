"""What the load and scale benchmarks share: a test cluster, the operator as a process,
its CPU and memory, the API server's request counters, and a watch that times each
trial from its Job finishing to its result in the Sweep's status.

Not a test helper: nothing here asserts anything; the scripts print tables.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from kubesweep.k8s.history import recorded_indices
from tests.cluster.control_plane import LocalCluster, NodeSpec
from tests.cluster.fixtures import ClusterHandle, _kubectl_path
from tests.k8s.operator_fixtures import GROUP, PLURAL, VERSION, OperatorProcess, install_crd

TRIAL_LABEL = "kubesweep.io/trial"
#: Client rate limits of the controller manager and scheduler as large clusters set them.
#: The defaults (20 requests/s for kube-controller-manager) make the Job controller, not
#: the operator, the bottleneck at a few hundred trials per minute: it needs ~6 requests
#: per Job (create the pod, status updates, the pod's tracking finalizer).
FAST_CONTROL_PLANE = {
    "kube-controller-manager": ["--kube-api-qps=300", "--kube-api-burst=600"],
    "kube-scheduler": ["--kube-api-qps=300", "--kube-api-burst=600"],
}


@contextlib.contextmanager
def local_cluster(run_dir: Path, nodes: list[NodeSpec],
                  fast: bool = True) -> Iterator[ClusterHandle]:
    """A LocalCluster (tests/cluster) with `nodes` (may be []), the Sweep CRD installed;
    `fast`: with FAST_CONTROL_PLANE's rate limits (else the components' defaults)."""
    local = LocalCluster(run_dir, nodes, extra_args=FAST_CONTROL_PLANE if fast else None)
    state = local.start()
    api = kubernetes.config.new_client_from_config(config_file=state.kubeconfig)
    try:
        handle = ClusterHandle(Path(state.kubeconfig), api, _kubectl_path(), local)
        install_crd(handle)
        yield handle
    finally:
        api.close()
        local.stop()


def start_operator(cluster: ClusterHandle, namespace: str, log_dir: Path,
                   extra_args: list[str] | None = None,
                   env: dict[str, str] | None = None) -> OperatorProcess:
    """`kubesweep operator` as a subprocess watching `namespace` ("*": all), ready."""
    op = OperatorProcess(cluster, namespace, log_dir, extra_args, env=env)
    op.start()
    return op


# -- the operator process -------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    """The process's resident set size now (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric_sum(text: str, name: str) -> float:
    """Sum of every series of the Prometheus metric `name` in an exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def operator_requests(text: str) -> dict[str, float]:
    """`kubesweep_api_requests_total` by "verb resource"."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'kubesweep_api_requests_total\{resource="([^"]+)",verb="([^"]+)"\} '
                     r'(\S+)', line)
        if m:
            out[f"{m.group(2)} {m.group(1)}"] = float(m.group(3))
    return out


def apiserver_requests(cluster: ClusterHandle) -> dict[str, float]:
    """The API server's `apiserver_request_total`, summed by "VERB resource" (every
    client: the operator, kube-controller-manager, scheduler, node agents or kwok), plus
    "seconds CONNECT pods/log": the total time its pods/log requests took."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    out: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        if line.startswith("apiserver_request_duration_seconds_sum{") and \
                'subresource="log"' in line and 'verb="CONNECT"' in line:
            out["seconds CONNECT pods/log"] += float(line.rsplit(" ", 1)[1])
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        out[f"{labels.get('verb', '?')} {resource}"] += float(line.rsplit(" ", 1)[1])
    return dict(out)


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """after - before, keys with a change only."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


# -- timing trials through a watch ----------------------------------------------------------

@dataclass
class SweepTimes:
    """What the watch saw of one Sweep (monotonic seconds)."""

    finished_at: float | None = None
    phase: str | None = None
    #: trial index -> when its result was first seen in status.history
    recorded: dict[int, float] = field(default_factory=dict)
    #: trial index -> when its Job was first seen Complete/Failed
    job_done: dict[int, float] = field(default_factory=dict)
    #: trial index -> the Job's completionTime (wall clock, 1 s resolution) and when the
    #: result was seen (wall clock)
    completion_wall: dict[int, float] = field(default_factory=dict)
    recorded_wall: dict[int, float] = field(default_factory=dict)
    #: size in bytes of the Sweep object (compact JSON) as last seen
    size: int = 0


class Watcher:
    """Watches the namespace's Sweeps and trial Jobs from two threads and records, per
    trial, when its Job was seen finished and when its result appeared in the Sweep's
    status.history: the reconcile lag, as a client watching both would see it."""

    def __init__(self, cluster: ClusterHandle, namespace: str | None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.sweeps: dict[str, SweepTimes] = collections.defaultdict(SweepTimes)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(self._watch_sweeps,),
                                          daemon=True),
                         threading.Thread(target=self._run, args=(self._watch_jobs,),
                                          daemon=True)]
        self.errors: list[str] = []

    def start(self) -> None:
        """Start both watches."""
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop after the current watch call returns (at most a few seconds)."""
        self._stop.set()

    def _run(self, fn: Any) -> None:
        while not self._stop.is_set():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a broken watch is re-opened
                self.errors.append(repr(exc))
                time.sleep(0.5)

    def _watch_sweeps(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.cluster.api)
        if self.namespace:
            fn, args = custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace,
                                                              PLURAL)
        else:
            fn, args = custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        w = kubernetes.watch.Watch()
        for ev in w.stream(fn, *args, timeout_seconds=5, _request_timeout=30):
            if self._stop.is_set():
                w.stop()
                return
            self._sweep(ev["object"])

    def _sweep(self, obj: dict[str, Any]) -> None:
        now, wall = time.monotonic(), time.time()
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        status = obj.get("status") or {}
        try:
            indices = recorded_indices(status.get("history"))
        except Exception:  # noqa: BLE001 - an unreadable history records nothing
            indices = set()
        with self.lock:
            times = self.sweeps[key]
            for i in indices:
                if i not in times.recorded:
                    times.recorded[i] = now
                    times.recorded_wall[i] = wall
            times.size = len(json.dumps(obj, separators=(",", ":")))
            if status.get("phase") in ("Succeeded", "Failed") and times.finished_at is None:
                times.finished_at = now
                times.phase = status["phase"]

    def _watch_jobs(self) -> None:
        batch = kubernetes.client.BatchV1Api(self.cluster.api)
        fn = batch.list_namespaced_job if self.namespace else batch.list_job_for_all_namespaces
        args = (self.namespace,) if self.namespace else ()
        w = kubernetes.watch.Watch()
        for ev in w.stream(fn, *args, label_selector="kubesweep.io/sweep",
                           timeout_seconds=5, _request_timeout=30, _preload_content=True):
            if self._stop.is_set():
                w.stop()
                return
            self._job(ev["object"])

    def _job(self, job: Any) -> None:
        now = time.monotonic()
        meta = job.metadata
        conds = (job.status.conditions if job.status else None) or []
        if not any(c.type in ("Complete", "Failed") and c.status == "True" for c in conds):
            return
        sweep = (meta.labels or {}).get("kubesweep.io/sweep")
        index_text = (meta.labels or {}).get(TRIAL_LABEL)
        if sweep is None or index_text is None:
            return
        index = int(index_text)
        owner = next((r.name for r in meta.owner_references or [] if r.kind == "Sweep"),
                     sweep)
        key = f"{meta.namespace}/{owner}"
        with self.lock:
            times = self.sweeps[key]
            if index not in times.job_done:
                times.job_done[index] = now
                done = job.status.completion_time
                if done is not None:
                    times.completion_wall[index] = done.timestamp()

    def worst(self, count: int = 5) -> list[tuple[float, str, int, float]]:
        """The `count` largest watch-based lags: (lag, sweep, index, when the Job was
        seen finished, monotonic)."""
        out = []
        with self.lock:
            for key, times in self.sweeps.items():
                for i, done in times.job_done.items():
                    if i in times.recorded:
                        out.append((times.recorded[i] - done, key, i, done))
        return sorted(out, reverse=True)[:count]

    def lags(self) -> tuple[list[float], list[float]]:
        """(watch-based lags, completionTime-based lags) in seconds over every trial seen
        both finished and recorded. The first is precise; the second uses the Job's
        completionTime (1 s resolution, set by the Job controller)."""
        precise, coarse = [], []
        with self.lock:
            for times in self.sweeps.values():
                for i, done in times.job_done.items():
                    if i in times.recorded:
                        # a result recorded before the watch saw the Job finish (the two
                        # watches race) counts as no lag
                        precise.append(max(0.0, times.recorded[i] - done))
                    if i in times.completion_wall and i in times.recorded_wall:
                        coarse.append(max(0.0, times.recorded_wall[i] - times.completion_wall[i]))
        return precise, coarse


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    """statistics.median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def print_table(rows: list[tuple[str, str]], title: str | None = None) -> None:
    """A two-column markdown table."""
    if title:
        print(f"\n{title}\n")
    print("| metric | value |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
