"""Chaos on the real control plane: a 100-trial sweep (parallelism 10) while a seeded
schedule SIGKILLs the operator a dozen times, crashes kube-apiserver once and etcd once,
and deletes a running trial's pod by hand. Nothing may be lost or run twice. And an
operator rides out a 60 s API server outage without crashing or spinning."""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import pytest

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (
    OperatorProcess,
    apply,
    get_sweep,
    install_crd,
    jobs,
    sweep_manifest,
    trial_records,
    wait_phase,
    wait_until,
)

pytestmark = [pytest.mark.k8s, pytest.mark.chaos, pytest.mark.real_node]

TOTAL, PARALLELISM = 100, 10
#: loss = (x - 0.3)^2, computed by the trial after sleeping d seconds
COMMAND = "import time; time.sleep(${params.d}); x = ${params.x}; print(f'loss={(x - 0.3) ** 2!r}')"
PARAMETERS = {"x": {"distribution": "uniform", "min": 0, "max": 1},
              "d": {"distribution": "uniform", "min": 0.3, "max": 1.5}}


def _recorded(cluster: ClusterHandle, namespace: str, name: str) -> int:
    status = get_sweep(cluster, namespace, name).get("status") or {}
    return int((status.get("history") or {}).get("count") or 0)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_sweep_survives_operator_kills_control_plane_crashes_and_a_deleted_pod(
        cluster: ClusterHandle, namespace: str, tmp_path: Path):
    if cluster.local is None:
        pytest.skip("crashes the control plane: needs the harness's own cluster")
    install_crd(cluster)
    op = OperatorProcess(cluster, namespace, tmp_path, ["--poll-interval", "3"])
    op.start()
    apply(cluster, namespace, sweep_manifest("chaos", COMMAND, parameters=PARAMETERS,
                                             maxTrials=TOTAL, parallelism=PARALLELISM,
                                             seed=11))
    schedule = random.Random(2026)
    faults = ["kill"] * 12
    faults.insert(3, "pod")
    faults.insert(7, "kube-apiserver")
    faults.insert(11, "etcd")
    # each fault fires once the sweep has recorded a seeded number of trials, so every
    # one of them lands mid-sweep however fast the machine is
    points = sorted(schedule.sample(range(3, TOTAL - 10), len(faults)))
    done: list[str] = []
    try:
        for fault, point in zip(faults, points, strict=True):
            wait_until(lambda p=point: _recorded(cluster, namespace, "chaos") >= p, 300,
                       f"{point} trials recorded", op, interval=0.2)
            time.sleep(schedule.uniform(0.0, 0.5))  # at whatever the operator is doing
            if fault == "kill":
                op.kill9()
                time.sleep(schedule.uniform(0.0, 1.0))  # trials go on finishing meanwhile
                op.start()
            elif fault == "pod":
                def running() -> list[str]:
                    return [p.metadata.name for p in cluster.core().list_namespaced_pod(
                        namespace, label_selector="kubesweep.io/sweep=chaos").items
                        if p.status.phase == "Running"]

                wait_until(lambda: bool(running()), 60, "a running trial pod", op)
                cluster.core().delete_namespaced_pod(running()[0], namespace)
            else:
                cluster.local.crash(fault)
                time.sleep(schedule.uniform(2.0, 5.0))
                cluster.local.start_again(fault)
            done.append(fault)
        sweep = wait_phase(cluster, op, namespace, "chaos", timeout=600)
    finally:
        op.stop()
    print(f"faults injected: {', '.join(done)}; operator starts: {op.starts}")
    assert done == faults

    assert sweep["status"]["phase"] == "Succeeded", sweep["status"]
    records = sorted(trial_records(sweep), key=lambda r: r["index"])
    assert [r["index"] for r in records] == list(range(TOTAL))
    # the trial whose pod was deleted may have failed (a deleted pod is not an eviction);
    # every other one succeeded with exactly the value it printed
    assert sum(r["state"] == "succeeded" for r in records) >= TOTAL - 1, \
        [(r["index"], r["state"], r.get("reason")) for r in records if r["state"] != "succeeded"]
    for r in records:
        if r["state"] == "succeeded":
            assert math.isclose(r["value"], (r["params"]["x"] - 0.3) ** 2, rel_tol=1e-9)
    names = sorted(j["metadata"]["name"] for j in jobs(cluster, namespace, "chaos"))
    assert names == sorted(f"chaos-{i}" for i in range(TOTAL)), "a trial ran twice or not"
    # the same parameters as an undisturbed run with the same seed
    from kubesweep.spec import parse_spec
    from kubesweep.tuner import Tuner

    expected = [t.params for t in Tuner(parse_spec(sweep["spec"])).ask(TOTAL)]
    assert [r["params"] for r in records] == expected


def test_the_operator_rides_out_a_60s_api_server_outage(cluster: ClusterHandle,
                                                        namespace: str, tmp_path: Path):
    if cluster.local is None:
        pytest.skip("crashes the API server: needs the harness's own cluster")
    install_crd(cluster)
    op = OperatorProcess(cluster, namespace, tmp_path, ["--poll-interval", "3"])
    op.start()
    try:
        apply(cluster, namespace, sweep_manifest(
            "outage", "import time; time.sleep(1); x = ${params.x}; print(f'loss={x!r}')",
            maxTrials=12, parallelism=3, seed=5))
        wait_until(lambda: _recorded(cluster, namespace, "outage") >= 3, 120,
                   "3 trials recorded", op)
        assert op.proc is not None
        cluster.local.crash("kube-apiserver")
        cpu_before, down_at = _cpu_seconds(op.proc.pid), time.monotonic()
        while time.monotonic() - down_at < 60:
            assert op.proc.poll() is None, f"the operator exited\n{op.hint()}"
            time.sleep(1)
        cpu = _cpu_seconds(op.proc.pid) - cpu_before
        print(f"operator CPU while the API server was down 60 s: {cpu:.2f} s")
        # a busy loop would burn ~60 CPU-seconds; backoff costs a fraction of one
        assert cpu < 6.0, f"{cpu:.1f} CPU-s in 60 s: the operator spins while the API is down"
        cluster.local.start_again("kube-apiserver")
        sweep = wait_phase(cluster, op, namespace, "outage", timeout=300)
        assert op.proc.poll() is None and op.starts == 1
    finally:
        op.stop()
    assert sweep["status"]["phase"] == "Succeeded"
    assert sorted(r["index"] for r in trial_records(sweep)) == list(range(12))
