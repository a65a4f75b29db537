"""`kubesweep run`, `validate` and `convert` on W&B sweep files, as a W&B user types them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml

from tests.local.test_run import ended, kubesweep

PROGRAM = """\
import ast, json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
params = json.loads(os.environ["KUBESWEEP_PARAMS"])
print("argv=" + json.dumps(sys.argv[1:]))
lr = float(args["lr"])
assert ast.literal_eval(args["optimizer"]) == params["optimizer"], (args, params)  # str(dict)
for epoch in range(1, 4):
    print(f"epoch={epoch} val/loss={lr * 10 / epoch:.4f} Valid_mAP@0.50={1 - lr:.4f}")
"""

SWEEP = """\
program: train.py
name: W&B demo
description: a W&B sweep file, unchanged
method: bayes
run_cap: 4
metric:
  name: val/loss
  goal: minimize
parameters:
  lr:
    min: 0.0
    max: 1.0
  layers:
    values: [[64, 64], [128]]
  optimizer:
    parameters:
      name:
        values: [adam, sgd]
      momentum:
        distribution: q_uniform
        min: 0.0
        max: 1.0
        q: 0.125
early_terminate:
  type: hyperband
  min_iter: 2
"""


def write(tmp_path: Path, sweep: str, program: str = PROGRAM) -> Path:
    (tmp_path / "train.py").write_text(textwrap.dedent(program))
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep)
    return path


def test_wandb_file_runs_as_it_is(tmp_path):
    path = write(tmp_path, SWEEP)
    out = tmp_path / "trials.jsonl"
    proc = kubesweep("run", str(path), "--plain", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = ended(out)
    assert len(trials) == 4 and all(t["state"] in ("succeeded", "stopped") for t in trials)
    for t in trials:
        params = t["params"]
        assert set(params) == {"lr", "layers", "optimizer.name", "optimizer.momentum"}
        assert 0.0 <= params["lr"] <= 1.0 and params["layers"] in ([64, 64], [128])
        assert (params["optimizer.momentum"] * 8).is_integer()  # multiples of q = 0.125
        # W&B's engine ranks a run by its best value: the last epoch's, or the last one
        # reached before hyperband stopped it
        reached = [3] if t["state"] == "succeeded" else [1, 2, 3]
        assert any(math_close(t["value"], params["lr"] * 10 / e) for e in reached), t
        assert t["metrics"]["Valid_mAP@0.50"] == round(1 - params["lr"], 4)
    log = next((tmp_path / "logs").glob("*-0.log")).read_text()
    argv = json.loads(log.splitlines()[0].removeprefix("argv="))
    assert argv[0].startswith("--lr=") and argv[1].startswith("--layers=[")
    assert argv[2].startswith("--optimizer={'name': ")


def math_close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-3


def test_args_json_file_and_args_no_hyphens(tmp_path):
    program = """\
    import json, sys
    config = json.load(open(sys.argv[1]))
    rest = dict(a.split("=", 1) for a in sys.argv[2:])
    assert rest["x"] == str(config["x"]), (rest, config)
    print(f"score={config['x'] * 2}")
    """
    sweep = """\
    program: train.py
    method: grid
    metric: {name: score, goal: maximize}
    parameters:
      x: {values: [1, 2, 3]}
    command: [python, "${program}", "${args_json_file}", "${args_no_hyphens}"]
    """
    path = write(tmp_path, textwrap.dedent(sweep), program)
    out = tmp_path / "trials.jsonl"
    proc = kubesweep("run", str(path), "--plain", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(t["value"] for t in ended(out)) == [2, 4, 6]
    assert "best trial" in proc.stdout


def test_grid_without_metric_records_every_metric(tmp_path):
    program = """\
    import sys
    print(f"train/loss={float(sys.argv[1][5:]) / 2} acc=0.5")
    """
    sweep = """\
    program: train.py
    method: grid
    parameters:
      lr: {values: [0.1, 0.2]}
    """
    path = write(tmp_path, textwrap.dedent(sweep), program)
    out = tmp_path / "trials.jsonl"
    proc = kubesweep("run", str(path), "--plain", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = ended(out)
    assert [t["state"] for t in trials] == ["succeeded", "succeeded"]
    assert [t["metrics"]["train/loss"] for t in trials] == [0.05, 0.1]
    assert "no metric" in proc.stdout and "best trial" not in proc.stdout


def test_validate_asks_for_a_budget_and_names_unsupported_features(tmp_path):
    path = write(tmp_path, "program: train.py\nmethod: random\n"
                           "parameters:\n  lr: {min: 0.0, max: 1.0}\n")
    proc = kubesweep("validate", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "--max-trials N" in proc.stderr
    proc = kubesweep("validate", str(path), "--max-trials", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "random search over 1 parameters (lr), 8 trials, no metric" in proc.stdout
    path.write_text("program: train.py\nmethod: custom\nparameters:\n  lr: {value: 1}\n")
    proc = kubesweep("validate", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "`method: custom`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_convert_writes_a_sweep_that_validates(tmp_path):
    path = write(tmp_path, SWEEP)
    proc = kubesweep("convert", str(path), "--image", "registry.example/train:1", "-n", "ml",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = yaml.safe_load(proc.stdout)
    assert manifest["kind"] == "Sweep" and manifest["metadata"]["name"] == "w-b-demo"
    assert manifest["metadata"]["namespace"] == "ml"
    container = manifest["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/train:1"
    assert container["command"] == ["/usr/bin/env", "python", "train.py", "${args}"]
    assert manifest["spec"]["parameters"]["lr"]["distribution"] == "uniform"
    converted = tmp_path / "sweep-cr.yaml"
    converted.write_text(proc.stdout)
    proc = kubesweep("validate", str(converted), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # whole floats in a Sweep read as integers (Kubernetes stores 1.0 as 1): the explicit
    # distribution keeps lr uniform
    assert "bayes search over 4 parameters" in proc.stdout
    proc = kubesweep("convert", str(path), cwd=tmp_path)
    assert proc.returncode == 0 and "no --image given" in proc.stderr
    proc = kubesweep("convert", str(converted), cwd=tmp_path)
    assert proc.returncode == 2 and "already a Sweep manifest" in proc.stderr
