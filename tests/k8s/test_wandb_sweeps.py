"""W&B sweep files converted with `kubesweep convert` on the real API server and operator.

Every runnable config of the W&B corpus, converted, passes the CRD's schema and CEL rules
(`kubectl apply --dry-run=server`); the CEL rules refuse what W&B refuses; and converted
sweeps with nested parameters, list choices, a `val/loss` metric, no metric at all and
`${args_json_file}` run to the end on the operator.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from kubesweep.manifest import load_documents
from kubesweep.wandb_config import WandbConfigError, to_sweep
from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixtures crd, operator)
    OperatorProcess,
    apply,
    crd_fixture,
    operator_fixture,
    trial_records,
    wait_phase,
)
from tests.unit.test_wandb_corpus import VALID

pytestmark = pytest.mark.k8s


def _converted(index: int) -> list[dict]:
    sweeps = []
    for i, path in enumerate(VALID):
        [doc] = load_documents(path)
        if "program" not in doc and "command" not in doc:
            doc["program"] = "train.py"
        try:
            manifest = to_sweep(doc, name=f"c{index}-{i}", max_trials=5)
        except WandbConfigError:
            continue  # a W&B feature kubesweep refuses (tests/unit/test_wandb_corpus.py)
        manifest["metadata"]["name"] = f"c{index}-{i}"
        sweeps.append(manifest)
    return sweeps


def test_converted_corpus_passes_the_api_server(cluster: ClusterHandle, namespace: str,
                                                crd: object):
    sweeps = _converted(0)
    assert len(sweeps) >= 70
    cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-",
                    input=yaml.safe_dump_all(sweeps))


def test_cel_refuses_what_wandb_refuses(cluster: ClusterHandle, namespace: str, crd: object):
    base = to_sweep({"method": "grid", "program": "t.py", "metric": {"name": "loss"},
                     "parameters": {"a": {"values": [1, 2]}}}, name="cel")
    cases = []
    m = copy.deepcopy(base)
    m["spec"]["method"], m["spec"]["maxTrials"] = "bayes", 3
    del m["spec"]["metric"]
    cases.append((m, "metric is required for method bayes"))
    m = copy.deepcopy(base)
    m["spec"]["parameters"]["a"]["probabilities"] = [0.5, 0.5]
    cases.append((m, "probabilities have no meaning in a grid search"))
    m = copy.deepcopy(base)
    del m["spec"]["metric"]
    m["spec"]["earlyTerminate"] = {"type": "hyperband", "minIter": 1}
    cases.append((m, "metric is required by earlyTerminate"))
    m = copy.deepcopy(base)
    m["spec"]["parameters"]["a"] = {"min": 1, "max": 2, "parameters": {"b": {"value": 1}}}
    cases.append((m, "nested `parameters` takes no other keys"))
    for manifest, message in cases:
        result = apply(cluster, namespace, manifest, check=False)
        assert result.returncode != 0, f"accepted: {manifest['spec']}"
        assert message in result.stderr, result.stderr


TRAIN = """\
import json, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
lr = float(args["lr"])
print(f"val/loss={(lr - 0.3) ** 2}")
"""
EXPLORE = """\
import json, sys
config = json.load(open(sys.argv[1]))
assert config["note"] is None, config
print(f"width={sum(config['layers'])} depth={len(config['layers'])}")
"""


def test_converted_sweeps_run_on_the_operator(cluster: ClusterHandle, namespace: str,
                                              operator: OperatorProcess):
    optimise = to_sweep({
        "name": "wb-optimise", "method": "random", "run_cap": 3,
        "metric": {"name": "val/loss", "goal": "minimize"},
        "command": ["${interpreter}", "-c", TRAIN, "${args}"],
        "parameters": {"lr": {"min": 0.0, "max": 1.0},
                       "opt": {"parameters": {"name": {"values": ["adam", "sgd"]},
                                              "beta": {"value": None}}}}}, name="x")
    explore = to_sweep({
        "name": "wb-explore", "method": "grid",
        "command": ["${interpreter}", "-c", EXPLORE, "${args_json_file}"],
        "parameters": {"layers": {"values": [[64, 64], [128]]}, "note": {"value": None},
                       "sched": {"values": [None, "cos"]}}},
        name="x")
    apply(cluster, namespace, optimise)
    apply(cluster, namespace, explore)

    done = wait_phase(cluster, operator, namespace, "wb-optimise")
    assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"])[:2000]
    records = trial_records(done)
    assert len(records) == 3
    for r in records:
        assert set(r["params"]) == {"lr", "opt.name"}  # null constants are not stored
        assert abs(r["value"] - (r["params"]["lr"] - 0.3) ** 2) < 1e-9
    assert done["status"]["bestTrial"]["metrics"]["val/loss"] == done["status"]["bestValue"]

    done = wait_phase(cluster, operator, namespace, "wb-explore")
    assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"])[:2000]
    assert "bestValue" not in done["status"]
    # every grid point once: a null choice is a point of its own, and nulls (which the
    # API server drops from the status) do not make a finished point look new
    history = trial_records(done)
    assert sorted(json.dumps([r["params"]["layers"], r["params"].get("sched")])
                  for r in history) == ['[[128], "cos"]', '[[128], null]',
                                        '[[64, 64], "cos"]', '[[64, 64], null]']
    assert {json.dumps(r["params"]["layers"]): r["state"] for r in history} == {
        "[64, 64]": "succeeded", "[128]": "succeeded"}
    recent = {json.dumps(t["params"]["layers"]): t["metrics"]
              for t in done["status"]["recentTrials"]}
    assert recent == {"[64, 64]": {"width": 128, "depth": 2},
                      "[128]": {"width": 128, "depth": 1}}
