"""Load: many Sweeps at once on the real test control plane.

50 Sweeps (default) created together, parallelism 20 each, 40 instant trials each
(`echo loss=<x>`), run by one `kubesweep operator` process (default settings) against
the test control plane (tests/cluster: kube-apiserver, etcd, controller manager,
scheduler) with one process node (the node agent runs each pod as a host process: the
fast simulated node, not a kubelet). Reports:

- whether every Sweep finished, and the spread of finish times (first/median/last and
  last/first: a starved Sweep would finish far behind the others), plus the spread of
  each Sweep's first recorded result;
- operator CPU seconds (user+system from /proc) total and per trial, peak RSS (VmHWM);
- reconcile lag: from a trial's Job seen Complete by a watch to its result seen in the
  Sweep's status.history by a watch on the Sweeps (p50/p95/max), and the same from the
  Job's completionTime (1 s resolution);
- API requests: the operator's own (`kubesweep_api_requests_total`) and every client's
  (`apiserver_request_total`) per trial.

    nice -n 5 python -m benchmarks.load                     # 50 × 40 trials, ~5 min
    nice -n 5 python -m benchmarks.load --sweeps 10 --trials 20

Needs scripts/build-control-plane.sh and scripts/install-tools.sh first.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.cluster_bench import (
    Watcher,
    apiserver_requests,
    cpu_seconds,
    diff,
    loadavg,
    local_cluster,
    median,
    metric_sum,
    operator_requests,
    peak_rss_mib,
    percentile,
    print_table,
    start_operator,
)
from tests.cluster.control_plane import NodeSpec

#: the operator's log is copied here (the run's directory is removed)
KEPT_LOG = Path(tempfile.gettempdir()) / "kubesweep-load-operator.log"
NAMESPACE = "load"


def sweep(name: str, trials: int, parallelism: int, seed: int) -> dict[str, Any]:
    """A random sweep of instant trials that print their loss."""
    return {
        "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "method": "random", "maxTrials": trials, "parallelism": parallelism,
            "seed": seed, "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1},
                           "act": {"values": ["relu", "tanh"]}},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
                "name": "trial", "image": "python:3.12-slim",
                "command": ["echo", "loss=${params.x}"]}]}}}},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--trials", type=int, default=40, help="trials per sweep")
    parser.add_argument("--parallelism", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--default-rate-limits", action="store_true",
                        help="keep kube-controller-manager's default 20 requests/s (the Job "
                        "controller is then the bottleneck)")
    args = parser.parse_args()
    # SIGTERM runs the clean-up below (the operator and kwok run in their own sessions)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    total = args.sweeps * args.trials
    with tempfile.TemporaryDirectory(prefix="kubesweep-load-") as tmp:
        tmp_path = Path(tmp)
        # finished pods stay until their Job is pruned (keepFinishedJobs 100 per sweep):
        # room for every trial's pod on the one node
        node = NodeSpec(cpu="4000", memory="4000Gi", pods=total + 200)
        with local_cluster(tmp_path / "cluster", [node],
                           fast=not args.default_rate_limits) as cluster:
            cluster.kubectl("create", "namespace", NAMESPACE)
            op = start_operator(cluster, NAMESPACE, tmp_path)
            assert op.proc is not None
            pid = op.proc.pid
            watcher = Watcher(cluster, NAMESPACE)
            watcher.start()
            try:
                load_before = loadavg()
                cpu0 = cpu_seconds(pid)
                ops0 = operator_requests(op.metrics())
                api0 = apiserver_requests(cluster)
                started = time.monotonic()
                docs = [sweep(f"load-{i:02d}", args.trials, args.parallelism, i)
                        for i in range(args.sweeps)]
                cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
                created = time.monotonic() - started
                names = [f"{NAMESPACE}/{d['metadata']['name']}" for d in docs]
                while True:
                    with watcher.lock:
                        done = sum(1 for n in names if watcher.sweeps[n].finished_at)
                    if done == len(names) or time.monotonic() - started > args.timeout:
                        break
                    time.sleep(1)
                elapsed = time.monotonic() - started
                cpu = cpu_seconds(pid) - cpu0
                rss = peak_rss_mib(pid)
                ops = diff(operator_requests(op.metrics()), ops0)
                api = diff(apiserver_requests(cluster), api0)
                log_seconds = api.pop("seconds CONNECT pods/log", 0.0)
                errors = metric_sum(op.metrics(), "kubesweep_reconcile_errors_total")
                conflicts = metric_sum(op.metrics(), "kubesweep_status_conflicts_total")
                load_after = loadavg()
                time.sleep(2)  # let the watches catch the last events
            finally:
                watcher.stop()
                op.stop()
                shutil.copy(op.log_path, KEPT_LOG)
    with watcher.lock:
        times = {n: watcher.sweeps[n] for n in names}
    finish = sorted(t.finished_at - started for t in times.values() if t.finished_at)
    first = sorted(min(t.recorded.values()) - started for t in times.values() if t.recorded)
    phases = [t.phase for t in times.values()]
    succeeded = phases.count("Succeeded")
    recorded = sum(len(t.recorded) for t in times.values())
    precise, coarse = watcher.lags()

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        return (f"{values[0]:.1f} / {median(values):.1f} / {values[-1]:.1f} s "
                f"(last/first {values[-1] / max(values[0], 1e-9):.2f})")

    rows = [
        ("sweeps", f"{args.sweeps} × {args.trials} trials (random, `echo`), "
                   f"parallelism {args.parallelism} each = {total} trials; one process node"),
        ("controller manager / scheduler client limits",
         "defaults (20 / 50 requests/s)" if args.default_rate_limits else "300 requests/s"),
        ("every sweep finished", f"{'yes' if succeeded == args.sweeps else 'NO'} "
                                 f"({succeeded}/{args.sweeps} Succeeded, "
                                 f"{len(finish)} finished)"),
        ("trials recorded in status", f"{recorded}/{total}"),
        ("wall time (apply → last Succeeded)", f"{elapsed:.1f} s (apply took {created:.1f} s)"),
        ("trials / minute", f"{recorded / elapsed * 60:.0f}"),
        ("finish time first / median / last", spread(finish)),
        ("first result first / median / last", spread(first)),
        ("operator CPU s total", f"{cpu:.1f} ({cpu / elapsed * 100:.0f} % of one core)"),
        ("operator CPU s / trial", f"{cpu / max(recorded, 1):.4f}"),
        ("operator peak RSS", f"{rss:.0f} MiB"),
        ("reconcile lag p50 / p95 / max (watch)",
         f"{median(precise):.2f} / {percentile(precise, 95):.2f} / "
         f"{max(precise, default=float('nan')):.2f} s (n={len(precise)})"),
        ("reconcile lag p50 / p95 / max (completionTime, 1 s res.)",
         f"{median(coarse):.2f} / {percentile(coarse, 95):.2f} / "
         f"{max(coarse, default=float('nan')):.2f} s (n={len(coarse)})"),
        ("operator API requests / trial", f"{sum(ops.values()) / max(recorded, 1):.2f}"),
        ("all apiserver requests / trial", f"{sum(api.values()) / max(recorded, 1):.1f}"),
        ("pods/log requests: mean time in the API server",
         f"{log_seconds / max(api.get('CONNECT pods/log', 0), 1):.3f} s (the node agent "
         "serves the log)"),
        ("reconcile errors / status conflicts", f"{errors:.0f} / {conflicts:.0f}"),
        ("load average before / after", f"{load_before} / {load_after}"),
    ]
    print_table(rows, "Load: many sweeps at once")
    print("\noperator requests by call:")
    for call, count in sorted(ops.items(), key=lambda kv: -kv[1]):
        print(f"  {call:<22} {count:8.0f}  ({count / max(recorded, 1):.2f} / trial)")
    print("\nlargest lags (s after apply the Job was seen finished):")
    for lag, key, index, done in watcher.worst():
        print(f"  {lag:6.2f} s  {key} trial {index} (Job finished at {done - started:.1f} s)")
    if watcher.errors:
        print(f"\nwatch errors (re-opened): {len(watcher.errors)}, last: {watcher.errors[-1]}")
    return 0 if succeeded == args.sweeps else 1


if __name__ == "__main__":
    sys.exit(main())
