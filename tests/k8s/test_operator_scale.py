"""A Sweep holding 10,000 finished trials × 10 parameters × 4 metrics (and their run
times): the API server stores its status (under 1 MiB, well under the object size limit),
and the operator resumes from it — rebuilds the tuner from the compact history — and runs
the one remaining trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kubesweep.k8s.names import job_name
from kubesweep.k8s.status import build_status, spec_hashes
from kubesweep.spec import MAX_TRIALS, parse_spec
from kubesweep.tuner import Trial, Tuner
from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    GROUP,
    PLURAL,
    VERSION,
    OperatorProcess,
    apply,
    crd_fixture,
    custom,
    jobs,
    sweep_manifest,
    trial_records,
    wait_phase,
)

pytestmark = pytest.mark.k8s
#: trials already recorded; the operator runs one more, up to the largest budget
DONE = MAX_TRIALS - 1


def test_ten_thousand_trials_in_status(cluster: ClusterHandle, namespace: str, crd: Path,
                                       tmp_path: Path):
    params = {f"p{i}": {"distribution": "uniform", "min": 0, "max": 1} for i in range(9)}
    params["act"] = {"values": ["relu", "tanh", "gelu"]}
    manifest = sweep_manifest("big", "print('loss=0.5')", parameters=params,
                              maxTrials=DONE + 1, parallelism=1)
    apply(cluster, namespace, manifest)
    spec = parse_spec(manifest["spec"])
    rng = np.random.default_rng(0)
    trials = [Trial(i, job_name("big", i),
                    {**{f"p{j}": float(f"{rng.random():.6g}") for j in range(9)},
                     "act": ["relu", "tanh", "gelu"][i % 3]},
                    "succeeded", 1.0 + float(rng.random()),
                    metrics={"loss": float(rng.random()), "accuracy": float(rng.random()),
                             "lr_now": float(rng.random()), "epoch": float(i % 50)},
                    duration=float(rng.integers(10, 3600)))
              for i in range(DONE)]
    tuner = Tuner(spec, name="big")
    tuner.trials = trials  # a finished history, as an earlier operator would have written
    sweep = custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                         "big")
    status = build_status({}, tuner, spec, running=set(), unschedulable=0,
                          generation=sweep["metadata"]["generation"], outcome=None,
                          hashes=spec_hashes(sweep["spec"]))
    custom(cluster).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "big", {"status": status})
    stored = custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                          "big")
    size = len(json.dumps(stored, separators=(",", ":")))
    assert size < 1024 * 1024, size
    assert stored["status"]["history"]["count"] == DONE

    op = OperatorProcess(cluster, namespace, tmp_path)
    op.start()
    try:
        final = wait_phase(cluster, op, namespace, "big", timeout=240)
    finally:
        op.stop()
    assert final["status"]["phase"] == "Succeeded"
    size = len(json.dumps(final, separators=(",", ":")))
    assert size < 1024 * 1024, size  # 10,000 trials as the operator itself wrote them
    records = trial_records(final)
    assert len(records) == DONE + 1
    assert [r["index"] for r in records] == list(range(DONE + 1))
    assert records[DONE]["value"] == 0.5
    assert final["status"]["bestValue"] == 0.5
    assert [j["metadata"]["name"] for j in jobs(cluster, namespace, "big")] == \
        [f"big-{DONE}"]
    # the history read back is the one written
    assert all(r["params"] == t.params and r["value"] == t.value
               for r, t in zip(records, trials, strict=False))
    # every trial's metrics too (float32: ~7 significant digits), and the new trial's
    assert all(r["metrics"] == {k: float(f"{np.float32(v):.7g}") for k, v in t.metrics.items()}
               for r, t in zip(records, trials, strict=False))
    assert records[DONE]["metrics"] == {"loss": 0.5}
    # and every trial's run time (the new one's from its Job, which the operator read)
    assert [r["duration"] for r in records[:DONE]] == [t.duration for t in trials]
    assert records[DONE]["duration"] is not None
