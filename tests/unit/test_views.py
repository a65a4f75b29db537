"""The trials table, best parameters and report data, from local results and from a
cluster Sweep object (pure: no cluster, no browser)."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest
import yaml

from kubesweep.k8s.status import build_status, spec_hashes
from kubesweep.local.results import ResultsWriter
from kubesweep.spec import parse_spec
from kubesweep.tuner import Trial, Tuner
from kubesweep.views import model, table
from kubesweep.views.report import render_report, report_data
from tests.helpers import make_spec

PARAMS = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
          "act": {"values": ["relu", "tanh"]}}


def _trials() -> list[Trial]:
    return [
        Trial(0, "s-0", {"lr": 0.01, "act": "relu"}, "succeeded", 0.5,
              metrics={"loss": 0.5, "acc": 0.8}, history=[(1, 0.9), (2, 0.5)]),
        Trial(1, "s-1", {"lr": 0.1, "act": "tanh"}, "succeeded", 0.25,
              metrics={"loss": 0.25, "acc": 0.9}),
        Trial(2, "s-2", {"lr": 0.001, "act": "relu"}, "failed", None,
              reason="exited with code 1: Traceback ... </script><b>"),
        Trial(3, "s-3", {"lr": 0.5, "act": "tanh"}, "stopped", None,
              metrics={"loss": 0.7}, history=[(1, 0.95)], reason="early termination"),
    ]


def _local(tmp_path: Path) -> Path:
    spec = parse_spec(make_spec(PARAMS))
    writer = ResultsWriter(tmp_path / "r" / "trials.jsonl", append=False)
    writer.header("s", spec.model_dump(mode="json", exclude_none=True), 0)
    for i, t in enumerate(_trials()):
        writer.start(t)
        writer.end(t, 10.0 + i, tmp_path / f"{t.name}.log")
    writer.start(Trial(4, "s-4", {"lr": 0.2, "act": "relu"}))
    writer.close()
    return tmp_path / "r"


def test_local_results_become_rows(tmp_path: Path):
    results = model.load_local(_local(tmp_path))
    assert results.name == "s" and results.metric == "loss" and not results.maximize
    assert [(t.index, t.state) for t in results.trials] == [
        (0, "succeeded"), (1, "succeeded"), (2, "failed"), (3, "stopped"), (4, "running")]
    assert results.trials[1].duration == 11.0
    assert results.best.index == 1
    assert results.param_names == ["act", "lr"]  # the results file sorts its keys
    assert results.metric_names == ["acc"]  # the objective is the value column


def test_missing_results_say_what_was_expected(tmp_path: Path):
    with pytest.raises(model.ResultsNotFound, match="kubesweep-results/NAME"):
        model.load_local(tmp_path / "nothing")


def test_table_sorts_filters_and_marks_the_best(tmp_path: Path):
    results = model.load_local(_local(tmp_path))
    text = table.render_table(results, table.select(results, sort="value"))
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["TRIAL", "STATE", "LOSS", "ACT", "LR"]
    assert [line.split()[0] for line in lines[1:]] == ["1*", "0", "2", "3", "4"]
    assert [t.index for t in table.select(results, state="failed")] == [2]
    assert [t.index for t in table.select(results, sort="acc")] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="--sort 'nope': not a column; valid: index"):
        table.select(results, sort="nope")


def test_wide_table_has_metrics_and_the_importance_footer(tmp_path: Path):
    results = model.load_local(_local(tmp_path))
    text = table.render_table(results, results.trials, wide=True,
                              importance={"lr": 0.75, "act": 0.25})
    assert "ACC" in text.splitlines()[0]
    assert "parameter importance (fANOVA): lr 0.75, act 0.25" in text
    assert "best: trial 1  loss=0.25  act=tanh lr=0.1" in text
    assert "needs at least 4 succeeded" in table.render_table(results, [], wide=True)


def test_json_and_csv_keep_every_field(tmp_path: Path):
    results = model.load_local(_local(tmp_path))
    records = json.loads(table.render_json(results.trials))
    assert records[0] == {"index": 0, "name": "s-0", "state": "succeeded", "value": 0.5,
                          "params": {"lr": 0.01, "act": "relu"},
                          "metrics": {"loss": 0.5, "acc": 0.8}, "duration": 10.0,
                          "reason": None}
    rows = list(csv.DictReader(io.StringIO(table.render_csv(results, results.trials))))
    assert rows[1]["loss"] == "0.25" and rows[1]["act"] == "tanh" and rows[1]["acc"] == "0.9"
    assert rows[2]["reason"].startswith("exited with code 1")


def test_best_as_json_env_and_yaml(tmp_path: Path):
    results = model.load_local(_local(tmp_path))
    assert json.loads(table.render_best(results, "json")) == {"lr": 0.1, "act": "tanh"}
    assert yaml.safe_load(table.render_best(results, "yaml")) == {"lr": 0.1, "act": "tanh"}
    env = dict(shlex.split(line)[0].split("=", 1)
               for line in table.render_best(results, "env").splitlines())
    assert env["LR"] == "0.1" and env["ACT"] == "tanh"
    assert json.loads(env["KUBESWEEP_PARAMS"]) == {"lr": 0.1, "act": "tanh"}
    results.trials = [t for t in results.trials if t.state != "succeeded"]
    with pytest.raises(LookupError, match="no succeeded trial"):
        table.render_best(results, "json")


def _sweep_object(trials: list[Trial]) -> dict:
    raw = make_spec(PARAMS)
    spec = parse_spec(raw)
    tuner = Tuner(spec, name="s", history=trials)
    status = build_status({}, tuner, spec, running=set(), unschedulable=0, generation=1,
                          outcome=None, hashes=spec_hashes(raw))
    return {"metadata": {"name": "s", "namespace": "ns", "uid": "u1"}, "spec": raw,
            "status": status}


def _job(index: int, params: dict, status: dict, uid: str = "u1") -> dict:
    return {"metadata": {"name": f"s-{index}", "labels": {"kubesweep.io/trial": str(index)},
                         "annotations": {"kubesweep.io/params": json.dumps(params)},
                         "ownerReferences": [{"uid": uid}]},
            "status": status}


def test_cluster_sweep_rows_come_from_history_and_jobs():
    trials = _trials()
    trials[0].duration = 42.0  # recorded by the operator; its Job is gone since
    sweep = _sweep_object(trials)
    jobs = [
        _job(1, {"lr": 0.1, "act": "tanh"}, {
            "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:05Z",
            "conditions": [{"type": "Complete", "status": "True"}]}),
        _job(4, {"lr": 0.2, "act": "relu"}, {"startTime": "2026-01-01T00:00:00Z",
                                             "active": 1, "ready": 1}),
        _job(5, {"lr": 0.3, "act": "relu"}, {"active": 1}),
        _job(6, {"lr": 0.3, "act": "relu"}, {}, uid="another-sweep"),
    ]
    results = model.from_cluster(sweep, jobs)
    assert results.source == "ns/s" and results.best.index == 1
    by_index = {t.index: t for t in results.trials}
    assert sorted(by_index) == [0, 1, 2, 3, 4, 5]
    assert by_index[1].duration == 65.0 and by_index[0].duration == 42.0
    assert by_index[2].duration is None  # not recorded, no Job left
    assert by_index[0].metrics == {"loss": 0.5, "acc": 0.8}
    assert by_index[0].curve == [(1.0, 0.9), (2.0, 0.5)]  # for the report's curves plot
    assert (by_index[4].state, by_index[5].state) == ("running", "pending")
    assert by_index[5].params == {"lr": 0.3, "act": "relu"}
    assert by_index[2].reason.startswith("exited with code 1")


def test_report_data_is_columnar_and_escapes_script_ends(tmp_path: Path):
    results = model.load_local(_local(tmp_path))
    data = report_data(results, {"lr": 0.6, "act": 0.4})
    assert data["trials"]["index"] == [0, 1, 2, 3, 4]
    assert data["kinds"]["act"]["choices"] == ["relu", "tanh"]
    assert data["trials"]["params"]["act"] == [0, 1, 0, 1, 0]
    assert data["kinds"]["lr"]["log"] is True
    assert [c[0] for c in data["curves"]] == [0, 3]
    page = render_report(results, {"lr": 0.6, "act": 0.4})
    assert page.count("</script>") == page.count("<script")  # the reason cannot close one
    assert "<\\/script><b>" in page
    # nothing is fetched: plotly.js is inline (the browser test blocks the network too)
    assert "<script src" not in page and "<link" not in page
