"""End-to-end runs of `kubesweep run` and `kubesweep validate` as a user would type them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def kubesweep(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubesweep.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def ended(path: Path) -> list[dict]:
    return [r for r in results(path) if r["event"] == "end"]


def write_sweep(tmp_path: Path, script: str, *, parameters: dict | None = None,
                **spec: object) -> Path:
    (tmp_path / "trial.py").write_text(textwrap.dedent(script))
    manifest = {
        "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
        "metadata": {"name": "t"},
        "spec": {
            "method": "random", "maxTrials": 3,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": parameters or {"x": {"min": 0.0, "max": 1.0}},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
                "name": "t", "image": "python:3.11",
                "command": ["python", "trial.py", "${params.x}"]}]}}}},
            **spec,
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


@pytest.mark.parametrize("example", ["digits-mlp.yaml", "digits-mlp-random.yaml",
                                     "digits-mlp-grid.yaml"])
def test_examples_run_locally(example, tmp_path):
    out = tmp_path / "trials.jsonl"
    proc = kubesweep("run", str(EXAMPLES / example), "--max-trials", "3", "--out", str(out),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = ended(out)
    assert len(trials) == 3 and all(t["state"] == "succeeded" for t in trials)
    assert all(0.05 < t["value"] <= 1.0 for t in trials)
    best = max(trials, key=lambda t: t["value"])
    assert f"best trial: {best['name']}" in proc.stdout
    assert "Succeeded (BudgetReached)" in proc.stdout
    # every trial reported one val_acc per epoch
    assert all(len(t["history"]) == t["params"]["epochs"] for t in trials)


def test_failed_trials_are_reported_with_reasons(tmp_path):
    sweep = write_sweep(tmp_path, """
        import sys
        x = float(sys.argv[1])
        mode = int(open("counter").read()) if __import__("os").path.exists("counter") else 0
        open("counter", "w").write(str(mode + 1))
        if mode == 0:
            sys.exit("cannot load data")
        if mode == 1:
            print("accuracy=0.5")
        if mode == 2:
            print("loss=nan")
    """, parallelism=1)
    proc = kubesweep("run", str(sweep), "--plain", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reasons = [t["reason"] for t in ended(tmp_path / "kubesweep-results/t/trials.jsonl")]
    assert reasons[0].startswith("exited with code 1: cannot load data")
    assert "printed no 'loss' metric (saw: accuracy)" in reasons[1]
    assert reasons[2].startswith("reported loss=nan")
    assert "Failed (NoSuccessfulTrial)" in proc.stdout


def test_max_failed_trials_fails_the_sweep(tmp_path):
    sweep = write_sweep(tmp_path, "raise SystemExit(1)\n", maxTrials=5, maxFailedTrials=1)
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 1
    assert "TooManyFailedTrials" in proc.stdout
    assert len(ended(tmp_path / "kubesweep-results/t/trials.jsonl")) == 2


def test_a_sweep_whose_first_trials_all_fail_stops_after_five(tmp_path):
    sweep = write_sweep(tmp_path, "import missing_module\n", maxTrials=20, parallelism=2)
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 1
    assert "FirstTrialsFailed" in proc.stdout
    assert "No module named 'missing_module'" in proc.stdout
    records = ended(tmp_path / "kubesweep-results/t/trials.jsonl")
    failed = sum(r["state"] == "failed" for r in records)
    # the fifth failure ends it; the trial beside it is stopped, unless it had already
    # failed in the same moment (both exits read in one batch): then it counts as the
    # sixth, truthfully. Never the full budget.
    assert failed in (5, 6) and len(records) <= 6, records
    assert f"the first {failed} trials failed" in proc.stdout


def test_target_stops_the_sweep(tmp_path):
    sweep = write_sweep(tmp_path, "print('loss=0.01')\n", maxTrials=10,
                        metric={"name": "loss", "goal": "minimize", "target": 0.05})
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0
    assert "TargetReached" in proc.stdout
    assert len(ended(tmp_path / "kubesweep-results/t/trials.jsonl")) == 1


def test_early_termination_stops_running_trials(tmp_path):
    script = """
        import sys, time
        x = float(sys.argv[1])
        for step in range(1, 30):
            print(f"step={step} loss={x + 1.0 / step}", flush=True)
            time.sleep(0.05)
    """
    sweep = write_sweep(tmp_path, script, maxTrials=8, parallelism=2,
                        parameters={"x": {"values": [0.0, 5.0, 0.1, 6.0, 0.2, 7.0, 0.3, 8.0]}},
                        earlyTerminate={"type": "median", "minIter": 3, "minTrials": 1})
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = ended(tmp_path / "kubesweep-results/t/trials.jsonl")
    stopped = [t for t in trials if t["state"] == "stopped"]
    assert stopped, trials
    assert all("median rule" in t["reason"] for t in stopped)
    assert all(len(t["history"]) < 29 for t in stopped)
    assert all(t["params"]["x"] >= 5 for t in stopped)


def test_ctrl_c_keeps_results_and_resume_finishes_without_duplicates(tmp_path):
    # trials 0 and 1 finish at once; later ones wait for the file `release`, so the sweep
    # is certainly running when Ctrl-C arrives, however slow the machine
    script = """
        import os, pathlib, sys, time
        index = int(os.environ["KUBESWEEP_TRIAL"].rsplit("-", 1)[1])
        while index >= 2 and not pathlib.Path("release").exists():
            time.sleep(0.05)
        print(f"loss={float(sys.argv[1])}")
    """
    sweep = write_sweep(tmp_path, script, maxTrials=6, parallelism=2)
    out = tmp_path / "kubesweep-results/t/trials.jsonl"
    # SIGINT back to its default in the child: pytest started from a non-interactive
    # shell's background job (`bash .ci/run &`) inherits SIGINT ignored, and Python then
    # never turns SIGINT into KeyboardInterrupt; a user's terminal always delivers it
    proc = subprocess.Popen([sys.executable, "-m", "kubesweep.cli", "run", str(sweep), "--plain"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.exists() and len(ended(out)) >= 2 and \
                len([r for r in results(out) if r["event"] == "start"]) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a hung sweep (and its waiting trials) behind
            proc.kill()
            (tmp_path / "release").touch()
    assert proc.returncode == 130, output
    assert "--resume" in output
    first = ended(out)
    assert sorted(t["index"] for t in first) == [0, 1]  # the cut-off trials 2 and 3 are not kept

    (tmp_path / "release").touch()
    again = kubesweep("run", str(sweep), cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite
    resumed = kubesweep("run", str(sweep), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = ended(out)
    indexes = sorted(t["index"] for t in final)
    assert indexes == list(range(6))
    # the uninterrupted sweep would have drawn the same parameters
    fresh = kubesweep("run", str(sweep), "--out", str(tmp_path / "fresh.jsonl"), cwd=tmp_path)
    assert fresh.returncode == 0
    assert {t["index"]: t["params"] for t in final} == {
        t["index"]: t["params"] for t in ended(tmp_path / "fresh.jsonl")}


def test_resume_refuses_a_changed_sweep(tmp_path):
    sweep = write_sweep(tmp_path, "print('loss=1')\n", maxTrials=1)
    assert kubesweep("run", str(sweep), cwd=tmp_path).returncode == 0
    write_sweep(tmp_path, "print('loss=1')\n", maxTrials=2,
                parameters={"x": {"min": 0.0, "max": 2.0}})
    proc = kubesweep("run", str(sweep), "--resume", cwd=tmp_path)
    assert proc.returncode == 2
    assert "spec fields changed: parameters" in proc.stderr


def test_command_not_found_is_a_failed_trial(tmp_path):
    sweep = write_sweep(tmp_path, "", maxTrials=1)
    data = yaml.safe_load(sweep.read_text())
    data["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "no-such-program-xyz"]
    sweep.write_text(yaml.safe_dump(data))
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 1
    assert "cannot start 'no-such-program-xyz'" in proc.stdout


def test_trial_environment(tmp_path):
    script = """
        import json, os
        params = json.loads(os.environ["KUBESWEEP_PARAMS"])
        assert os.environ["KUBESWEEP_TRIAL"] == "t-0", os.environ["KUBESWEEP_TRIAL"]
        assert os.environ["LR"] == str(params["x"])
        print(f"loss={params['x']}")
    """
    sweep = write_sweep(tmp_path, script, maxTrials=1)
    data = yaml.safe_load(sweep.read_text())
    container = data["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "LR", "value": "${params.x}"}]
    sweep.write_text(yaml.safe_dump(data))
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_validate_reports_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""
        apiVersion: kubesweep.io/v1alpha1
        kind: Sweep
        metadata: {name: bad}
        spec:
          method: bayes
          metric: {name: acc, goal: maximize}
          parameters:
            lr: {distribution: log_uniform_values, min: 0, max: 0.1}
            epochs: {min: 10, max: 1}
          trialTemplate:
            spec: {template: {spec: {containers: [{name: t, command: [python, "${params.lr}"]}]}}}
    """))
    proc = kubesweep("validate", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "spec.parameters.lr: log_uniform_values needs min > 0" in proc.stderr
    assert "spec.parameters.epochs: min (10) must be less than max (1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    ok = kubesweep("validate", str(EXAMPLES / "digits-mlp.yaml"), cwd=tmp_path)
    assert ok.returncode == 0 and "is valid" in ok.stdout


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("kind: Sweep\nspec:\n  method: [grid\n")
    proc = kubesweep("run", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "broken.yaml: line" in proc.stderr and "Traceback" not in proc.stderr


def test_python_in_manifest_is_this_interpreter(tmp_path):
    script = "import sys; open('prefix.txt', 'w').write(sys.prefix); print('loss=1')\n"
    sweep = write_sweep(tmp_path, script, maxTrials=1)
    proc = kubesweep("run", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0
    assert (tmp_path / "prefix.txt").read_text() == sys.prefix


def test_whole_float_bounds_mean_the_same_as_on_kubernetes(tmp_path):
    sweep = write_sweep(tmp_path, "print('loss=1')\n", maxTrials=1,
                        parameters={"x": {"min": 0.0, "max": 3.0}})
    proc = kubesweep("validate", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0
    assert "spec.parameters.x: min 0.0 and max 3.0 are whole numbers" in proc.stderr
    assert "distribution: uniform" in proc.stderr
    from kubesweep.manifest import load_sweep

    assert load_sweep(sweep).spec.parameters["x"].distribution.value == "int_uniform"


def test_non_finite_values_fail_the_trial_and_never_reach_the_results_file(tmp_path):
    script = """
        import sys
        print("acc=inf other=-inf")
        print(f"loss={sys.argv[1].replace('big', '1e309')}")
    """
    sweep = write_sweep(tmp_path, script, method="grid", maxTrials=5,
                        parameters={"x": {"values": ["nan", "inf", "-inf", "big", "0.5"]}})
    proc = kubesweep("run", str(sweep), "--plain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "kubesweep-results/t/trials.jsonl"

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in {out}")

    records = [json.loads(line, parse_constant=refuse) for line in out.read_text().splitlines()]
    by_x = {r["params"]["x"]: r for r in records if r["event"] == "end"}
    for bad in ("nan", "inf", "-inf", "big"):
        assert by_x[bad]["state"] == "failed" and by_x[bad]["value"] is None
        assert by_x[bad]["reason"].startswith("reported loss=")
    assert by_x["0.5"]["state"] == "succeeded" and by_x["0.5"]["metrics"] == {"loss": 0.5}


def test_summary_shows_importance_and_results_can_be_looked_at(tmp_path):
    """A real local run, then the look-at-results commands on its directory."""
    sweep = write_sweep(tmp_path, """
        import sys
        x, unused = float(sys.argv[1]), sys.argv[2]
        print(f"loss={(x - 0.3) ** 2} acc={1 - x}")
    """, maxTrials=12, parallelism=3, seed=1,
        parameters={"x": {"min": 0.0, "max": 1.0}, "unused": {"values": ["a", "b", "c"]}})
    manifest = yaml.safe_load(sweep.read_text())
    manifest["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0][
        "command"].append("${params.unused}")
    sweep.write_text(yaml.safe_dump(manifest))
    proc = kubesweep("run", str(sweep), "--plain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(li for li in proc.stdout.splitlines() if li.startswith("parameter importance"))
    assert line.startswith("parameter importance (fANOVA): x 0.9"), line

    results_dir = "kubesweep-results/t"
    records = {t["index"]: t for t in ended(tmp_path / results_dir / "trials.jsonl")}
    listed = json.loads(kubesweep("trials", results_dir, "-o", "json", cwd=tmp_path).stdout)
    assert [t["index"] for t in listed] == sorted(records)
    assert all(t["params"] == records[t["index"]]["params"] and
               t["value"] == records[t["index"]]["value"] and
               t["metrics"] == records[t["index"]]["metrics"] for t in listed)
    best = min(records.values(), key=lambda t: t["value"])
    shown = kubesweep("best", results_dir, cwd=tmp_path)
    assert json.loads(shown.stdout) == best["params"]
    wide = kubesweep("trials", results_dir, "-o", "wide", "--sort", "value", cwd=tmp_path)
    assert wide.stdout.splitlines()[1].startswith(f"{best['index']}*")
    assert "parameter importance (fANOVA): x" in wide.stdout
    logs = kubesweep("logs", results_dir, str(best["index"]), cwd=tmp_path)
    assert f"loss={best['value']}" in logs.stdout
    report = kubesweep("report", results_dir, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / results_dir / "report.html").stat().st_size > 1_000_000


def test_looking_at_missing_results_is_one_clear_line(tmp_path):
    proc = kubesweep("trials", "kubesweep-results/none", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: kubesweep-results/none: no results here")
    assert "Traceback" not in proc.stderr
