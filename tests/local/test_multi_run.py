"""`kubesweep run` end to end with several objectives, constraints and a warm start."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml

from tests.local.test_run import ended, kubesweep

TRIAL = """\
import json, sys
x, y = float(sys.argv[1]), float(sys.argv[2])
print(json.dumps({"acc": 1 - (x - 0.3) ** 2, "latency_ms": 10 * y + x, "mem": x + y}))
"""


def write(tmp_path: Path, name: str, **spec: object) -> Path:
    (tmp_path / "trial.py").write_text(textwrap.dedent(TRIAL))
    body = {
        "method": "bayes", "maxTrials": 8,
        "parameters": {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0},
                       "y": {"distribution": "uniform", "min": 0.0, "max": 1.0}},
        "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
            "name": "t", "image": "python:3.11",
            "command": ["python", "trial.py", "${params.x}", "${params.y}"]}]}}}},
        **spec,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
                                    "metadata": {"name": name}, "spec": body}))
    return path


def test_several_objectives_with_a_constraint_show_the_pareto_front(tmp_path):
    path = write(tmp_path, "mo", metric=[{"name": "acc", "goal": "maximize"},
                                         {"name": "latency_ms", "goal": "minimize"}],
                 constraints=[{"metric": "mem", "max": 1.2}])
    proc = kubesweep("run", str(path), "--plain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "maximize acc, minimize latency_ms (Pareto front) subject to mem <= 1.2" \
        in proc.stdout
    trials = ended(tmp_path / "kubesweep-results" / "mo" / "trials.jsonl")
    assert len(trials) == 8 and all(t["state"] == "succeeded" for t in trials)
    feasible = [t for t in trials if t["metrics"]["mem"] <= 1.2]
    front = [t for t in feasible if not any(
        o["metrics"]["acc"] >= t["metrics"]["acc"] and
        o["metrics"]["latency_ms"] <= t["metrics"]["latency_ms"] and
        (o["metrics"]["acc"], o["metrics"]["latency_ms"]) !=
        (t["metrics"]["acc"], t["metrics"]["latency_ms"]) for o in feasible)]
    assert f"Pareto front ({len(front)} trial" in proc.stdout
    listed = proc.stdout.split("Pareto front (")[1]
    for t in front:
        assert f"\n  {t['name']}  acc=" in listed
    for t in trials:
        if t["metrics"]["mem"] > 1.2:
            assert f"(infeasible: mem={t['metrics']['mem']:g} outside max 1.2)" in proc.stdout


def test_warm_start_reads_earlier_local_results(tmp_path):
    first = write(tmp_path, "old", metric={"name": "acc", "goal": "maximize"}, maxTrials=6)
    assert kubesweep("run", str(first), "--plain", cwd=tmp_path).returncode == 0
    # by sweep name (kubesweep-results/old/) and by path: one source read once
    second = write(tmp_path, "new", metric={"name": "acc", "goal": "maximize"}, maxTrials=3,
                   warmStart={"sweeps": ["old"], "results": ["kubesweep-results/old"]})
    proc = kubesweep("run", str(second), "--plain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warm start: 6 earlier trials seed the model" in proc.stdout
    trials = ended(tmp_path / "kubesweep-results" / "new" / "trials.jsonl")
    assert [t["index"] for t in trials] == [0, 1, 2]  # its own budget, its own indices
    old = ended(tmp_path / "kubesweep-results" / "old" / "trials.jsonl")
    best_new = max(t["value"] for t in trials)
    assert "best trial: " in proc.stdout and f"acc={best_new:.6g}" in proc.stdout
    assert {json.dumps(t["params"]) for t in trials}.isdisjoint(
        json.dumps(t["params"]) for t in old)


def test_missing_warm_start_source_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "new", metric={"name": "acc"}, warmStart={"sweeps": ["typo"]})
    proc = kubesweep("run", str(path), "--plain", cwd=tmp_path)
    assert proc.returncode != 0
    assert "warmStart:" in proc.stderr and "typo/trials.jsonl does not exist" in proc.stderr


def test_validate_names_bad_new_fields(tmp_path):
    path = write(tmp_path, "bad", metric=[{"name": "a", "target": 1}, {"name": "b"}],
                 constraints=[{"metric": "mem"}])
    proc = kubesweep("validate", str(path), cwd=tmp_path)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "spec.metrics[0].target" in text or "spec.constraints[0]" in text, text
