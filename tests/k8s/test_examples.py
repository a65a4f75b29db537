"""The example Sweeps, applied unchanged with `kubectl apply -f examples/...`, run to the end.

Their trial command (`python train_digits_mlp.py`) is relative to examples/: `kubesweep
run` runs it there, and on a real cluster the trial image's WORKDIR holds the script.
So this module has its own cluster whose node runs pods in examples/ (the node agent's
stand-in for the image's WORKDIR) instead of the repository root. It costs one more
cluster start (~8 s) but keeps the manifests exactly as a user gets them; editing them
(workingDir, a nodeSelector for a special node) would no longer test the examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.fixtures import DEFAULT_NODES, ClusterHandle, start_cluster
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture operator)
    REPO,
    OperatorProcess,
    get_sweep,
    install_crd,
    operator_fixture,
    trial_records,
    wait_phase,
)

pytestmark = pytest.mark.k8s

EXAMPLES = REPO / "examples"
FILES = ("digits-mlp.yaml", "digits-mlp-random.yaml", "digits-mlp-grid.yaml")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """Overrides the session cluster for this module: the same node, pods run in
    examples/. `namespace` and `operator` use it too (fixtures resolve by name here)."""
    nodes = [dataclasses.replace(node, workdir=EXAMPLES) for node in DEFAULT_NODES]
    with start_cluster(tmp_path_factory, nodes) as handle:
        yield handle


@pytest.fixture(scope="module")
def crd(cluster: ClusterHandle) -> Path:
    """The Sweep CRD on this module's cluster (the session `crd` is on the other one)."""
    return install_crd(cluster)


def test_examples_run_to_success(cluster: ClusterHandle, namespace: str,
                                 operator: OperatorProcess):
    """Each example Sweep runs to Succeeded; the status holds every trial's parameters
    and metric, and the best trial is the best of that history."""
    args = [arg for file in FILES for arg in ("-f", str(EXAMPLES / file))]
    cluster.kubectl("apply", "-n", namespace, *args)
    docs = {(d := yaml.safe_load((EXAMPLES / f).read_text()))["metadata"]["name"]: d
            for f in FILES}
    for name, doc in docs.items():
        sweep = wait_phase(cluster, operator, namespace, name, timeout=400)
        status = sweep["status"]
        assert status["phase"] == "Succeeded", status["conditions"]
        budget = doc["spec"].get("maxTrials", 16)
        records = trial_records(sweep)
        assert len(records) == budget == status["trials"]["succeeded"], \
            (name, status["trials"], status["history"].get("reasons"))
        assert sorted(r["index"] for r in records) == list(range(budget))
        for r in records:
            assert set(r["params"]) == {"epochs", "learning_rate"}
            assert 0 < r["value"] <= 1
        best = max(records, key=lambda r: r["value"])
        assert status["bestValue"] == best["value"]
        assert status["bestTrial"]["params"] == best["params"]
        assert status["bestTrial"]["metrics"]["val_acc"] == best["value"]
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        assert conditions["Succeeded"]["status"] == "True"
        assert status["progress"] == f"{budget}/{budget}"
    grid = trial_records(get_sweep(cluster, namespace, "digits-mlp-grid"))
    assert len({(r["params"]["epochs"], r["params"]["learning_rate"]) for r in grid}) == 16
    out = cluster.kubectl("get", "sw", "-n", namespace).stdout
    assert "METHOD" in out and "digits-mlp-grid" in out and "16/16" in out
    # kubectl wait works on the standard condition
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Succeeded", "--timeout=5s",
                    "sweep/digits-mlp")
