"""Scale: a large GPU cluster simulated with kwok, one big sweep plus many small ones.

The test control plane (tests/cluster: kube-apiserver, etcd, controller manager,
scheduler; no process node, no kubelet) plus kwok (sigs.k8s.io/kwok, built by
scripts/build-kwok.sh), which fakes `--nodes` Nodes with `--gpus` `nvidia.com/gpu`
each and plays every pod's lifecycle with the stages in benchmarks/kwok/stages.yaml:
Running at once, Succeeded 2–5 s later, the trial's `loss=<x>` in its container's
termination message (kwok runs nothing and serves no logs). One `kubesweep operator`
process (default settings) runs one big sweep (`--big-trials`, one GPU per trial,
parallelism `--big-parallelism`) and `--small-sweeps` small ones at the same time.

Reports trials/minute (overall, and sustained between 10 % and 90 % of all trials),
API requests per trial (the API server's `apiserver_request_total` before/after, by
verb and resource, every client; and the operator's own), operator CPU per trial —
also per fifth of the run, to see whether it grows with the sweep's size — peak RSS,
and the big Sweep object's size at the end.

    scripts/build-kwok.sh
    nice -n 5 python -m benchmarks.scale_kwok                         # the full size
    nice -n 5 python -m benchmarks.scale_kwok --big-trials 1000       # a scaled run

Set KUBESWEEP_PROFILE=<file> to have the operator write a cProfile of its run there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from benchmarks.cluster_bench import (
    apiserver_requests,
    cpu_seconds,
    diff,
    loadavg,
    local_cluster,
    operator_requests,
    peak_rss_mib,
    print_table,
    rss_mib,
    start_operator,
)
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.processes import free_port

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "benchmarks" / "kwok" / "stages.yaml"
#: the operator's log is copied here (the run's directory is removed)
KEPT_LOG = Path(tempfile.gettempdir()) / "kubesweep-kwok-operator.log"
NAMESPACE = "scale"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


def kwok_binary() -> Path:
    """The kwok binary scripts/build-kwok.sh builds (it prints the path)."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "build-kwok.sh")], check=True,
                         capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def start_kwok(cluster: ClusterHandle, log_path: Path) -> subprocess.Popen[bytes]:
    """kwok managing the Nodes annotated kwok.x-k8s.io/node=fake, with our stages.

    Its nodes' addresses and kubelet endpoint are kwok's own server on 127.0.0.1 (which
    has no logs to serve): the API server's pods/log proxy stays on loopback."""
    port = free_port()
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [str(kwok_binary()), f"--kubeconfig={cluster.kubeconfig}", f"--config={STAGES}",
             f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
             "--node-ip=127.0.0.1", f"--node-port={port}",
             f"--server-address=127.0.0.1:{port}", "--cidr=10.96.0.1/12"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)


def make_nodes(cluster: ClusterHandle, count: int, gpus: int) -> None:
    """Create `count` kwok Nodes with `gpus` GPUs each; wait until Ready and untainted."""
    core = cluster.core()
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    for i in range(count):
        core.create_node({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"kwok-gpu-{i:03d}", "annotations": {KWOK_ANNOTATION: "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-gpu-{i:03d}"}},
            "status": {"capacity": capacity, "allocatable": capacity},
        })
    deadline = time.monotonic() + 300
    while True:
        nodes = core.list_node(label_selector="type=kwok").items
        ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True"
                                         for c in n.status.conditions or [])]
        if len(ready) == count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ready)}/{count} kwok nodes Ready after 300 s")
        time.sleep(1)
    # The API server taints a new Node not-ready; the node lifecycle controller, which
    # would lift it, is off in the test cluster (the node agent lifts its own).
    for n in nodes:
        if n.spec.taints:
            core.patch_node(n.metadata.name, {"spec": {"taints": None}})


def sweep(name: str, trials: int, parallelism: int, seed: int) -> dict[str, Any]:
    """A random sweep whose trials take one GPU and print (kwok: write) their loss."""
    return {
        "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "method": "random", "maxTrials": trials, "parallelism": parallelism,
            "seed": seed, "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1},
                           "act": {"values": ["relu", "tanh"]}},
            "trialResources": {"gpu": 1},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
                "name": "trial", "image": "trainer:1",
                "command": ["echo", "loss=${params.x}"]}]}}}},
        },
    }


def finished_counts(custom: kubernetes.client.CustomObjectsApi) -> dict[str, tuple[int, str]]:
    """Finished trials and phase of each Sweep in the namespace."""
    out = {}
    for s in custom.list_namespaced_custom_object("kubesweep.io", "v1alpha1", NAMESPACE,
                                                  "sweeps")["items"]:
        status = s.get("status") or {}
        t = status.get("trials") or {}
        out[s["metadata"]["name"]] = (
            int(t.get("succeeded", 0)) + int(t.get("failed", 0)) + int(t.get("stopped", 0)),
            status.get("phase") or "")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--big-trials", type=int, default=5000)
    parser.add_argument("--big-parallelism", type=int, default=500)
    parser.add_argument("--small-sweeps", type=int, default=20)
    parser.add_argument("--small-trials", type=int, default=50)
    parser.add_argument("--small-parallelism", type=int, default=10)
    parser.add_argument("--interval", type=float, default=5.0, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--operator-source", type=Path,
                        help="run the operator from this copy of operator/ (e.g. an older "
                        "commit's, from `git archive`) to compare")
    args = parser.parse_args()
    # SIGTERM runs the clean-up below (the operator and kwok run in their own sessions)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    total = args.big_trials + args.small_sweeps * args.small_trials
    env = {}
    if args.operator_source:
        env["PYTHONPATH"] = str(args.operator_source.resolve())
    if os.environ.get("KUBESWEEP_PROFILE"):
        env["KUBESWEEP_PROFILE"] = os.environ["KUBESWEEP_PROFILE"]
    timeline: list[tuple[float, float, int, int]] = []  # (t, cpu, finished big, all)
    with tempfile.TemporaryDirectory(prefix="kubesweep-kwok-") as tmp:
        tmp_path = Path(tmp)
        with local_cluster(tmp_path / "cluster", []) as cluster:
            kwok = start_kwok(cluster, tmp_path / "kwok.log")
            try:
                make_nodes(cluster, args.nodes, args.gpus)
                cluster.kubectl("create", "namespace", NAMESPACE)
                op = start_operator(cluster, NAMESPACE, tmp_path, env=env)
                assert op.proc is not None
                pid = op.proc.pid
                custom = kubernetes.client.CustomObjectsApi(cluster.api)
                try:
                    load_before = loadavg()
                    cpu0 = cpu_seconds(pid)
                    ops0 = operator_requests(op.metrics())
                    api0 = apiserver_requests(cluster)
                    started = time.monotonic()
                    docs = [sweep("big", args.big_trials, args.big_parallelism, 0)] + [
                        sweep(f"small-{i:02d}", args.small_trials, args.small_parallelism,
                              i + 1) for i in range(args.small_sweeps)]
                    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
                    peak_sampled = 0.0
                    while True:
                        counts = finished_counts(custom)
                        now = time.monotonic() - started
                        all_done = sum(c for c, _ in counts.values())
                        timeline.append((now, cpu_seconds(pid) - cpu0,
                                         counts.get("big", (0, ""))[0], all_done))
                        peak_sampled = max(peak_sampled, rss_mib(pid))
                        if len(counts) == len(docs) and all(
                                p in ("Succeeded", "Failed") for _, p in counts.values()):
                            break
                        if now > args.timeout:
                            print(f"TIMEOUT after {now:.0f} s", file=sys.stderr)
                            break
                        time.sleep(args.interval)
                    elapsed = time.monotonic() - started
                    cpu = cpu_seconds(pid) - cpu0
                    rss = peak_rss_mib(pid)
                    ops = diff(operator_requests(op.metrics()), ops0)
                    api = diff(apiserver_requests(cluster), api0)
                    api.pop("seconds CONNECT pods/log", None)
                    text = op.metrics()
                    errors = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                 if line.startswith("kubesweep_reconcile_errors_total{"))
                    api_errors = {line.split("{", 1)[1].split("}")[0]: line.rsplit(" ", 1)[1]
                                  for line in text.splitlines()
                                  if line.startswith("kubesweep_api_errors_total{")}
                    load_after = loadavg()
                    big = custom.get_namespaced_custom_object(
                        "kubesweep.io", "v1alpha1", NAMESPACE, "sweeps", "big")
                    size = len(json.dumps(big, separators=(",", ":")))
                    history_size = len(json.dumps(big["status"].get("history"),
                                                  separators=(",", ":")))
                finally:
                    op.stop()
                    shutil.copy(op.log_path, KEPT_LOG)
            finally:
                os.killpg(kwok.pid, signal.SIGTERM)
                kwok.wait(15)
    finished = timeline[-1][3]
    big_status = big.get("status") or {}

    def at(fraction: float) -> tuple[float, float, int, int]:
        return next(s for s in timeline if s[3] >= fraction * finished)

    a, b = at(0.1), at(0.9)
    sustained = (b[3] - a[3]) / max(b[0] - a[0], 1e-9) * 60
    rows = [
        ("cluster", f"{args.nodes} kwok nodes × {args.gpus} nvidia.com/gpu; trials "
                    "Running → Succeeded after 2–5 s"),
        ("sweeps", f"big: {args.big_trials} trials, parallelism {args.big_parallelism}; "
                   f"{args.small_sweeps} small: {args.small_trials} trials, parallelism "
                   f"{args.small_parallelism} (random, 1 GPU per trial) = {total} trials"),
        ("big sweep", f"{big_status.get('phase')} ({big_status.get('trials')})"),
        ("trials finished", f"{finished}/{total}"),
        ("wall time", f"{elapsed:.0f} s"),
        ("trials / minute, overall", f"{finished / elapsed * 60:.0f}"),
        ("trials / minute, sustained (10 %→90 % of trials)", f"{sustained:.0f}"),
        ("operator CPU s total", f"{cpu:.0f} ({cpu / elapsed * 100:.0f} % of one core)"),
        ("operator CPU s / trial", f"{cpu / max(finished, 1):.4f}"),
        ("operator peak RSS", f"{rss:.0f} MiB (sampled peak {peak_sampled:.0f} MiB)"),
        ("big Sweep object at the end", f"{size:,} bytes (status.history {history_size:,})"),
        ("all apiserver requests / trial", f"{sum(api.values()) / max(finished, 1):.1f}"),
        ("operator API requests / trial", f"{sum(ops.values()) / max(finished, 1):.2f}"),
        ("reconcile errors", f"{errors:.0f}"),
        ("failed API calls of the operator", "; ".join(
            f"{k}: {v}" for k, v in api_errors.items()) or "none"),
        ("load average before / after", f"{load_before} / {load_after}"),
    ]
    print_table(rows, "Scale (kwok)")
    print("\nOperator CPU per trial by fifth of the run (trials finished, all sweeps):\n")
    print("| part | trials | big sweep's finished trials at its end | wall s | "
          "trials/min | operator CPU s / trial |\n|---|---|---|---|---|---|")
    prev = timeline[0]
    for k in range(1, 6):
        cur = at(k / 5) if k < 5 else timeline[-1]
        n = cur[3] - prev[3]
        dt = cur[0] - prev[0]
        print(f"| {k}/5 | {n} | {cur[2]} | {dt:.0f} | {n / max(dt, 1e-9) * 60:.0f} | "
              f"{(cur[1] - prev[1]) / max(n, 1):.4f} |")
        prev = cur
    print("\nAPI server requests by verb and resource (every client), per trial:\n")
    print("| request | count | per trial |\n|---|---|---|")
    for call, count in sorted(api.items(), key=lambda kv: -kv[1])[:25]:
        print(f"| {call} | {count:.0f} | {count / max(finished, 1):.2f} |")
    print("\noperator requests by call:\n")
    print("| request | count | per trial |\n|---|---|---|")
    for call, count in sorted(ops.items(), key=lambda kv: -kv[1]):
        print(f"| {call} | {count:.0f} | {count / max(finished, 1):.2f} |")
    ok = finished == total and big_status.get("phase") == "Succeeded"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
