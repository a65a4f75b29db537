"""Several objectives, constraints and warm start on the real control plane."""

from __future__ import annotations

import pytest

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixtures crd, operator)
    OperatorProcess,
    apply,
    crd_fixture,
    operator_fixture,
    sweep_manifest,
    trial_records,
    wait_phase,
)

pytestmark = pytest.mark.k8s

# acc peaks at x = 0.3, latency grows with x; mem = x (constrained to <= 0.8)
TWO = ("import json; x=${params.x}; "
       "print(json.dumps({'acc': 1 - (x - 0.3) ** 2, 'latency': x, 'mem': x}))")


def test_several_objectives_and_a_constraint(cluster: ClusterHandle, namespace: str,
                                             operator: OperatorProcess):
    manifest = sweep_manifest("mo", TWO, method="bayes", maxTrials=7, parallelism=2,
                              constraints=[{"metric": "mem", "max": 0.8}])
    del manifest["spec"]["metric"]
    manifest["spec"]["metrics"] = [{"name": "acc", "goal": "maximize"},
                                   {"name": "latency", "goal": "minimize"}]
    apply(cluster, namespace, manifest)
    sweep = wait_phase(cluster, operator, namespace, "mo", timeout=180)
    status = sweep["status"]
    assert status["phase"] == "Succeeded", status
    records = trial_records(sweep)
    assert len(records) == 7 and all(r["state"] == "succeeded" for r in records), \
        [(r["state"], r["reason"]) for r in records]
    # the history keeps both objectives and the constrained metric of every trial
    assert all(set(r["metrics"]) == {"acc", "latency", "mem"} for r in records)
    feasible = [r for r in records if r["metrics"]["mem"] <= 0.8]
    front = sorted(r["index"] for r in feasible if not any(
        o["metrics"]["acc"] >= r["metrics"]["acc"] and
        o["metrics"]["latency"] <= r["metrics"]["latency"] and o is not r and
        (o["metrics"]["acc"], o["metrics"]["latency"]) !=
        (r["metrics"]["acc"], r["metrics"]["latency"]) for o in feasible))
    assert status["paretoFront"]["indices"] == front
    assert status["paretoFront"]["size"] == len(front)
    assert "bestTrial" not in status
    # `kubectl get sw` shows the front's size
    header, row = cluster.kubectl("get", "sw", "mo", "-n", namespace).stdout.splitlines()[:2]
    start = header.index("PARETO")  # columns are aligned; BEST is blank here
    assert row[start:].split()[0] == str(len(front)), (header, row)


def test_constraint_violations_are_refused_by_the_schema(cluster: ClusterHandle,
                                                         namespace: str, crd):
    manifest = sweep_manifest("c", TWO, constraints=[{"metric": "mem"}])
    proc = apply(cluster, namespace, manifest, check=False)
    assert proc.returncode != 0 and "needs `max`, `min` or both" in proc.stderr
    manifest = sweep_manifest("w", TWO, method="bayes",
                              warmStart={"results": ["kubesweep-results/old"]})
    proc = apply(cluster, namespace, manifest, check=False)
    assert proc.returncode != 0 and "cannot read" in proc.stderr


def test_warm_start_from_an_earlier_sweep(cluster: ClusterHandle, namespace: str,
                                          operator: OperatorProcess):
    quad = "x=${params.x}; print(f'loss={(x - 0.3) ** 2}')"
    apply(cluster, namespace, sweep_manifest("old", quad, method="bayes", maxTrials=6,
                                             parallelism=3))
    old = wait_phase(cluster, operator, namespace, "old", timeout=180)
    assert old["status"]["phase"] == "Succeeded"
    apply(cluster, namespace, sweep_manifest(
        "new", quad, method="bayes", maxTrials=2,
        warmStart={"sweeps": ["old", "never-existed"]}))
    new = wait_phase(cluster, operator, namespace, "new", timeout=120)
    status = new["status"]
    assert status["phase"] == "Succeeded", status
    assert status["warmStart"] == {"trials": 6, "read": 6, "missing": ["never-existed"]}
    records = trial_records(new)
    assert [r["index"] for r in records] == [0, 1]  # own budget and indices only
    assert status["bestTrial"]["index"] in (0, 1)
    old_params = [r["params"] for r in trial_records(old)]
    assert all(r["params"] not in old_params for r in records)
