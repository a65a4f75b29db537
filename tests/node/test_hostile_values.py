"""Hostile parameter values (tests/hostile_values.py) reach a trial container on the real
node verbatim: in argv, in the environment and in KUBESWEEP_PARAMS, through the Job the
operator writes, the kubelet and containerd, with no shell, YAML or `$(VAR)` expansion
on the way."""

from __future__ import annotations

import pytest

from tests.cluster.fixtures import ClusterHandle
from tests.hostile_values import HOSTILE_VALUES, checking_trial
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixtures crd, operator)
    OperatorProcess,
    apply,
    crd_fixture,
    operator_fixture,
    sweep_manifest,
    trial_records,
    wait_phase,
)

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]


def test_hostile_values_arrive_verbatim_in_the_container(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    manifest = sweep_manifest("hostile", checking_trial(), method="grid", parallelism=4,
                              parameters={"v": {"values": HOSTILE_VALUES}})
    container = manifest["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["command"].append("${params.v}")
    container["env"] = [{"name": "V", "value": "${params.v}"}]
    apply(cluster, namespace, manifest)
    sweep = wait_phase(cluster, operator, namespace, "hostile", timeout=600)
    records = trial_records(sweep)
    assert sweep["status"]["phase"] == "Succeeded", [r.get("reason") for r in records]
    by_value = {r["params"]["v"]: r for r in records}
    assert set(by_value) == set(HOSTILE_VALUES)
    # each trial found its value intact (loss = its position; -1 if anything differed)
    for position, value in enumerate(HOSTILE_VALUES):
        assert by_value[value]["state"] == "succeeded", by_value[value]
        assert by_value[value]["value"] == position, (value[:40], by_value[value])
