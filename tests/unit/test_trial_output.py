"""Parsing metrics from trial output lines, and the trial-side report helper."""

from __future__ import annotations

import json
import math

import pytest

import kubesweep
from kubesweep.rules import failure_reason
from kubesweep.trial_output import MetricLog, parse_line


def test_key_value_pairs_several_per_line():
    assert parse_line("epoch=3 val_acc=0.91, loss=3e-2") == {
        "epoch": 3.0, "val_acc": 0.91, "loss": 0.03}


def test_key_value_inside_other_text():
    assert parse_line("INFO step 4 done: val_loss = 0.25 (best)") == {"val_loss": 0.25}


def test_non_numeric_values_and_urls_are_ignored():
    assert parse_line("mode=train url=http://x?a=1b path=/tmp/a=b") == {}


def test_json_lines():
    assert parse_line('{"val_acc": 0.98, "epoch": 3, "name": "x", "ok": true}') == {
        "val_acc": 0.98, "epoch": 3.0}


def test_nan_and_inf():
    assert math.isnan(parse_line("loss=nan")["loss"])
    assert parse_line("loss=inf")["loss"] == math.inf


def test_metric_log_history_steps_and_final_value():
    log = MetricLog("acc")
    for line in ["starting", "epoch=1 acc=0.5", '{"epoch": 2, "acc": 0.7, "loss": 1}',
                 "acc=0.6"]:
        log.feed(line)
    assert log.history == [(1, 0.5), (2, 0.7), (3, 0.6)]
    assert log.latest == {"epoch": 2.0, "acc": 0.6, "loss": 1.0}
    assert log.final_value("last") == 0.6
    assert log.final_value("best", maximize=True) == 0.7


def test_failure_reasons():
    log = MetricLog("acc")
    assert failure_reason(log, 1, "acc") == "exited with code 1"
    assert failure_reason(log, -9, "acc") == "killed by signal 9"
    log.feed("loss=0.2")
    log.feed("ValueError: bad learning rate")
    log.feed("")
    assert failure_reason(log, 2, "acc") == "exited with code 2: ValueError: bad learning rate"
    reason = failure_reason(log, 0, "acc")
    assert "printed no 'acc' metric" in reason and "loss" in reason
    log.feed("acc=nan")
    assert failure_reason(log, 0, "acc") == "reported acc=nan"
    log.feed("acc=0.9")
    assert failure_reason(log, 0, "acc") is None


def test_report_helper_prints_parseable_lines(capsys, tmp_path, monkeypatch):
    target = tmp_path / "termination-log"
    monkeypatch.setenv("KUBESWEEP_TERMINATION_MESSAGE_PATH", str(target))
    kubesweep.report(step=2, val_acc=0.875, loss=0.25)
    kubesweep.report(val_acc=float("nan"))
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0]) == {"step": 2, "val_acc": 0.875, "loss": 0.25}
    log = MetricLog("val_acc")
    for line in lines:
        log.feed(line)
    # NaN is remembered (it fails the trial) but never kept among the values
    assert log.history == [(2, 0.875)] and math.isnan(log.last_objective)
    assert log.latest == {"step": 2, "val_acc": 0.875, "loss": 0.25}
    assert json.loads(target.read_text())["loss"] == 0.25


def test_report_refuses_non_numbers():
    with pytest.raises(TypeError, match="acc='high' is not a number"):
        kubesweep.report(acc="high")
