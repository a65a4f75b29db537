"""Operator throughput on the real control plane.

A 200-trial random sweep of instant trials (`python -c "print('loss=...')"`) with
parallelism 20, run by `kubesweep operator` as a subprocess against the test control
plane (tests/cluster: real kube-apiserver, etcd, controller manager, scheduler; a node
agent runs pods as processes). Reports:

- trials per minute (Sweep created → phase Succeeded),
- API requests per trial: the operator's own reconcile calls
  (`kubesweep_api_requests_total`, kopf's watch streams excluded) and, for context, every
  request the apiserver served meanwhile (`apiserver_request_total`: Job controller,
  scheduler, node agent included),
- operator CPU seconds per trial (user+system of the operator process, from /proc).

    python benchmarks/operator_throughput.py                 # starts its own cluster
    python benchmarks/operator_throughput.py --trials 50     # smaller run
    KUBECONFIG=... python benchmarks/operator_throughput.py --kubeconfig $KUBECONFIG

Needs scripts/build-control-plane.sh and scripts/install-tools.sh (kubectl) first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cluster_bench import metric_sum  # noqa: E402
from tests.cluster.control_plane import LocalCluster, NodeSpec  # noqa: E402
from tests.cluster.paths import tools_bin_dir  # noqa: E402
from tests.cluster.processes import free_port  # noqa: E402

NAMESPACE = "bench"


def kubectl(kubeconfig: str, *args: str, input: str | None = None) -> str:
    exe = tools_bin_dir() / "kubectl"
    out = subprocess.run([str(exe), *args], input=input, capture_output=True, text=True,
                         env=dict(os.environ, KUBECONFIG=kubeconfig), check=True)
    return out.stdout


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def apiserver_requests(kubeconfig: str) -> float:
    return metric_sum(kubectl(kubeconfig, "get", "--raw", "/metrics"), "apiserver_request_total")


def sweep(trials: int, parallelism: int) -> dict:
    return {
        "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
        "metadata": {"name": "throughput"},
        "spec": {
            "method": "random", "maxTrials": trials, "parallelism": parallelism, "seed": 1,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1},
                           "act": {"values": ["relu", "tanh"]}},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
                "name": "trial", "image": "python:3.12-slim",
                "command": ["python", "-c", "print('loss=${params.x}')"]}]}}}},
        },
    }


def run(kubeconfig: str, trials: int, parallelism: int, log_dir: Path) -> dict:
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f",
            str(REPO / "crds" / "sweeps.kubesweep.io.yaml"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/sweeps.kubesweep.io")
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    metrics_port, liveness_port = free_port(), free_port()
    log = open(log_dir / "operator.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesweep.cli", "operator", "-n", NAMESPACE,
         "--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port)],
        stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, KUBECONFIG=kubeconfig, PYTHONPATH=str(REPO / "operator")))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                scrape(f"http://127.0.0.1:{liveness_port}/readyz")  # watches running
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"operator did not start; see {log_dir}") from None
                time.sleep(0.2)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        cpu0 = cpu_seconds(proc.pid)
        ops0 = metric_sum(scrape(metrics_url), "kubesweep_api_requests_total")
        api0 = apiserver_requests(kubeconfig)
        started = time.monotonic()
        kubectl(kubeconfig, "apply", "-n", NAMESPACE, "-f", "-",
                input=yaml.safe_dump(sweep(trials, parallelism)))
        while True:
            status = json.loads(kubectl(kubeconfig, "get", "-n", NAMESPACE, "sweep/throughput",
                                        "-o", "json")).get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                break
            if time.monotonic() - started > 3600:
                raise RuntimeError("sweep did not finish within an hour")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(proc.pid) - cpu0
        ops = metric_sum(scrape(metrics_url), "kubesweep_api_requests_total") - ops0
        api = apiserver_requests(kubeconfig) - api0
        text = scrape(metrics_url)
        by_call = {}
        for line in text.splitlines():
            m = re.match(r'kubesweep_api_requests_total\{resource="([^"]+)",verb="([^"]+)"\} '
                         r'(\S+)', line)
            if m:
                by_call[f"{m.group(2)} {m.group(1)}"] = float(m.group(3))
        return {"phase": status["phase"], "trials": status["trials"], "elapsed": elapsed,
                "cpu": cpu, "operator_requests": ops, "apiserver_requests": api,
                "by_call": by_call}
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=20)
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubesweep-bench-") as tmp:
        tmp_path = Path(tmp)
        cluster = None
        kubeconfig = args.kubeconfig
        if kubeconfig is None:
            # pods stay after their Job completes: room for every trial's pod
            cluster = LocalCluster(tmp_path / "cluster",
                                   [NodeSpec(pods=max(110, args.trials + 50))])
            kubeconfig = cluster.start().kubeconfig
        try:
            r = run(kubeconfig, args.trials, args.parallelism, tmp_path)
        finally:
            if cluster is not None:
                cluster.stop()
    n = r["trials"]["created"]
    rows = [
        ("sweep", f"{args.trials} trials, random, parallelism {args.parallelism}"),
        ("phase", f"{r['phase']} ({r['trials']['succeeded']} succeeded, "
                  f"{r['trials']['failed']} failed)"),
        ("wall time", f"{r['elapsed']:.1f} s"),
        ("trials / minute", f"{n / r['elapsed'] * 60:.1f}"),
        ("operator API requests / trial", f"{r['operator_requests'] / n:.2f}"),
        ("all apiserver requests / trial", f"{r['apiserver_requests'] / n:.1f}"),
        ("operator CPU s / trial", f"{r['cpu'] / n:.4f}"),
        ("operator CPU s total", f"{r['cpu']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\noperator requests by call:")
    for call, count in sorted(r["by_call"].items(), key=lambda kv: -kv[1]):
        print(f"  {call:<22} {count:8.0f}  ({count / n:.2f} / trial)")
    return 0 if r["phase"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
