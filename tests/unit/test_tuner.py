"""The ask/tell Tuner: budget, outcome, summaries, and rebuilding from recorded trials."""

from __future__ import annotations

import math

import pytest

import kubesweep
from tests.helpers import make_spec

SPACE = {"x": {"min": -5.0, "max": 5.0}, "k": {"values": ["a", "b", "c"]},
         "n": {"min": 1, "max": 8}}


def objective(params: dict) -> float:
    return (params["x"] - 1) ** 2 + {"a": 0, "b": 1, "c": 2}[params["k"]] + params["n"] / 10


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_rebuilt_tuner_suggests_what_the_uninterrupted_one_would(method):
    spec = make_spec(SPACE, method=method, maxTrials=16, parallelism=3)
    live = kubesweep.Tuner(spec, seed=7)
    compared = 0
    while len(live.trials) < 16:
        batch = live.ask(2)
        # a rebuilt tuner: fresh object, only the recorded trials (some still pending)
        rebuilt = kubesweep.Tuner(spec, seed=7, history=[t.to_dict() for t in live.trials])
        again, expected = rebuilt.ask(2), live.ask(2)
        assert [t.params for t in again] == [t.params for t in expected]
        compared += len(expected)
        for t in batch + live.pending[:1]:
            live.tell(t, objective(t.params))
    # the rebuilt tuner was compared on suggestions made with 0 to 12 trials recorded
    assert compared == 8


def test_rebuild_with_add_matches_history_argument():
    spec = make_spec(SPACE, maxTrials=6)
    live = kubesweep.Tuner(spec, seed=1)
    for t in live.ask(4):
        live.tell(t, objective(t.params))
    by_add = kubesweep.Tuner(spec, seed=1)
    for t in live.trials:
        by_add.add(t.params, t.value, t.state, index=t.index)
    assert by_add.ask().params == kubesweep.Tuner(spec, seed=1, history=live.trials).ask().params


def test_budget_counts_every_trial_and_ask_stops_at_it():
    tuner = kubesweep.Tuner(make_spec(SPACE, maxTrials=3))
    assert len(tuner.ask(5)) == 3
    assert tuner.ask() is None
    assert not tuner.done  # three pending trials
    for t in list(tuner.pending):
        tuner.tell(t, 1.0)
    assert tuner.done and tuner.outcome.phase == "Succeeded"


def test_best_respects_goal():
    spec = make_spec(SPACE, maxTrials=3)
    spec["metric"] = {"name": "acc", "goal": "maximize"}
    tuner = kubesweep.Tuner(spec)
    for value, t in zip([0.5, 0.9, 0.7], tuner.ask(3), strict=True):
        tuner.tell(t, value)
    assert tuner.best.value == 0.9 and tuner.best.index == 1


def test_target_reached_ends_the_sweep_early():
    spec = make_spec(SPACE, maxTrials=10)
    spec["metric"]["target"] = 0.1
    tuner = kubesweep.Tuner(spec)
    a, b = tuner.ask(2)
    tuner.tell(a, 0.05)
    assert tuner.done and tuner.outcome.reason == "TargetReached"
    assert b.state == "pending"  # a back end stops it
    assert tuner.ask() is None


def test_too_many_failures_fails_the_sweep():
    tuner = kubesweep.Tuner(make_spec(SPACE, maxTrials=10, maxFailedTrials=1))
    for t in tuner.ask(2):
        tuner.tell(t, None, "failed", reason="exited with code 1")
    assert tuner.outcome.phase == "Failed" and tuner.outcome.reason == "TooManyFailedTrials"


def test_all_failed_sweep_is_failed():
    tuner = kubesweep.Tuner(make_spec(SPACE, maxTrials=2))
    for t in tuner.ask(2):
        tuner.tell(t, None, "failed")
    assert tuner.outcome.phase == "Failed" and tuner.outcome.reason == "NoSuccessfulTrial"


def test_nan_or_missing_value_makes_a_failed_trial_with_a_reason():
    tuner = kubesweep.Tuner(make_spec(SPACE, maxTrials=2))
    a, b = tuner.ask(2)
    tuner.tell(a, math.nan)
    tuner.tell(b, None)
    assert a.state == b.state == "failed"
    assert "loss=nan" in a.reason and "no 'loss'" in b.reason
    assert a.value is None


def test_summary_best_takes_best_report():
    spec = make_spec(SPACE, maxTrials=1)
    spec["metric"]["summary"] = "best"
    tuner = kubesweep.Tuner(spec)
    t = tuner.ask()
    for step, v in enumerate([3.0, 1.0, 2.0], 1):
        tuner.report(t, step, v)
    tuner.tell(t, 2.0)
    assert t.value == 1.0


def test_last_summary_uses_last_report_when_no_value_given():
    tuner = kubesweep.Tuner(make_spec(SPACE, maxTrials=1))
    t = tuner.ask()
    tuner.report(t, 1, 3.0)
    tuner.report(t, 2, 2.5)
    tuner.tell(t, None)
    assert t.state == "succeeded" and t.value == 2.5


def test_trial_names_are_deterministic():
    tuner = kubesweep.Tuner(make_spec(SPACE), name="mysweep")
    assert [t.name for t in tuner.ask(3)] == ["mysweep-0", "mysweep-1", "mysweep-2"]


def test_duplicate_index_is_refused():
    tuner = kubesweep.Tuner(make_spec(SPACE))
    tuner.add({"x": 0.0, "k": "a", "n": 1}, 1.0, index=0)
    with pytest.raises(ValueError, match="index 0 is already recorded"):
        tuner.add({"x": 0.0, "k": "a", "n": 1}, 1.0, index=0)


def test_trial_round_trips_through_dict():
    tuner = kubesweep.Tuner(make_spec(SPACE))
    t = tuner.ask()
    tuner.report(t, 1, 0.5)
    tuner.tell(t, 0.4, metrics={"acc": 0.9})
    again = kubesweep.Trial.from_dict(t.to_dict())
    assert again == t


def test_a_spec_without_trial_template_is_enough_for_ask_and_tell():
    spec = make_spec(SPACE, maxTrials=3)
    del spec["trialTemplate"]
    tuner = kubesweep.Tuner(spec, seed=1)
    while (trial := tuner.ask()) is not None:
        tuner.tell(trial, objective(trial.params))
    assert tuner.outcome is not None and tuner.outcome.reason == "BudgetReached"
    # a whole Sweep manifest still needs one: that is what runs the trials
    with pytest.raises(kubesweep.SpecError, match="trialTemplate"):
        kubesweep.Tuner({"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
                         "metadata": {"name": "s"}, "spec": spec})
