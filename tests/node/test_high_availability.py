"""Two operator replicas with leader election (`--leader-elect`) on the real control plane:
only the Lease holder reconciles, and when it is SIGKILLed mid-sweep the standby takes
over and finishes the sweep with no trial run twice and no result lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    OperatorProcess,
    apply,
    crd_fixture,
    get_sweep,
    jobs,
    sweep_manifest,
    trial_records,
    wait_phase,
    wait_until,
)

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]

LEASE = "kubesweep-operator"


def _holder(cluster: ClusterHandle, namespace: str) -> str:
    try:
        lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease(LEASE, namespace)
    except client.ApiException:
        return ""
    return lease.spec.holder_identity or ""


def _counter(op: OperatorProcess, name: str) -> float:
    total = 0.0
    for line in op.metrics().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_standby_takes_over_a_running_sweep_when_the_leader_is_killed(
        cluster: ClusterHandle, namespace: str, crd: Path, tmp_path: Path):
    replicas = {}
    for name in ("op-a", "op-b"):
        (tmp_path / name).mkdir()
        replicas[name] = OperatorProcess(
            cluster, namespace, tmp_path / name,
            ["--leader-elect", "--lease-namespace", namespace, "--poll-interval", "2"],
            env={"POD_NAME": name})
    a, b = replicas["op-a"], replicas["op-b"]
    try:
        a.start()
        wait_until(lambda: _holder(cluster, namespace).startswith("op-a_"), 60,
                   "op-a to take the Lease", a)
        b.start()  # ready: it watches, but stands by
        command = ("import time; time.sleep(1.5); x = ${params.x}; print(f'loss={x}')")
        apply(cluster, namespace, sweep_manifest("ha", command, maxTrials=24, parallelism=4,
                                                 seed=7))
        wait_until(lambda: len(trial_records(get_sweep(cluster, namespace, "ha"))
                               if (get_sweep(cluster, namespace, "ha").get("status") or {})
                               .get("history") else []) >= 6, 180,
                   "6 trials to finish under op-a", a)
        # the standby has done nothing so far
        assert _counter(b, "kubesweep_trials_created_total") == 0
        assert _counter(b, "kubesweep_leader") == 0 and _counter(a, "kubesweep_leader") == 1

        a.kill9()
        killed = time.monotonic()
        wait_until(lambda: _holder(cluster, namespace).startswith("op-b_"), 90,
                   "op-b to take the Lease over", b)
        print(f"standby took over {time.monotonic() - killed:.1f}s after the leader's SIGKILL")
        sweep = wait_phase(cluster, b, namespace, "ha", timeout=300)
        created_by_b = _counter(b, "kubesweep_trials_created_total")
    finally:
        for op in replicas.values():
            op.stop()

    assert sweep["status"]["phase"] == "Succeeded", sweep["status"]
    records = trial_records(sweep)
    assert sorted(r["index"] for r in records) == list(range(24)), "a trial lost or repeated"
    for record in records:  # every recorded value is what that trial printed
        assert record["value"] == pytest.approx(record["params"]["x"], rel=1e-6)
    names = [j["metadata"]["name"] for j in jobs(cluster, namespace, "ha")]
    assert len(names) == len(set(names)) == 24
    assert created_by_b > 0
