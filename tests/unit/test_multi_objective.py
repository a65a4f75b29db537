"""Several objectives, constraints and warm starts: spec, tuner, strategies, status."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kubesweep.k8s import history
from kubesweep.k8s.status import build_status
from kubesweep.k8s.warm import warm_trials
from kubesweep.spec import SpecError, parse_spec
from kubesweep.strategies.multi_objective import pareto_mask, scalarise
from kubesweep.tuner import Trial, Tuner
from kubesweep.warm_start import WarmStartError, fits, read_local

TEMPLATE = {"spec": {"template": {"spec": {"containers": [
    {"name": "t", "image": "python:3.12", "command": ["true"]}]}}}}
XY = {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0},
      "y": {"distribution": "uniform", "min": 0.0, "max": 1.0}}
TWO = [{"name": "acc", "goal": "maximize"}, {"name": "latency", "goal": "minimize"}]


def spec(**extra: object) -> dict:
    return {"method": "bayes", "maxTrials": 20, "parameters": XY, "trialTemplate": TEMPLATE,
            **extra}


def problems(**extra: object) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as err:
        parse_spec(spec(**extra))
    return err.value.problems


# -- spec ------------------------------------------------------------------------------

def test_metric_list_becomes_metrics_and_a_single_entry_stays_metric():
    several = parse_spec(spec(metric=TWO))
    assert several.metric is None and [m.name for m in several.metrics] == ["acc", "latency"]
    assert several.multi_objective
    one = parse_spec(spec(metric=TWO[:1]))
    assert one.metric.name == "acc" and one.metrics is None and not one.multi_objective
    # the dumped form (what `convert` writes and the CRD holds) uses `metrics`
    assert "metrics" in several.model_dump(exclude_none=True)


@pytest.mark.parametrize(("extra", "path", "words"), [
    ({"metric": [{"name": "a", "target": 1}, {"name": "b"}]}, "spec.metrics[0].target",
     "single metric"),
    ({"metric": [{"name": "a", "summary": "best"}, {"name": "b"}]},
     "spec.metrics[0].summary", "only `last`"),
    ({"metrics": [{"name": "a"}, {"name": "a"}]}, "spec.metrics", "listed twice"),
    ({"metric": [{"name": "a", "imputeWhileRunning": "best"}, {"name": "b"}]},
     "spec.metrics[0]", "need a single metric"),
    ({"metrics": TWO, "metric": {"name": "q"}}, "spec.metrics", "not both"),
    ({"metrics": TWO, "earlyTerminate": {"type": "median"}}, "spec.metrics",
     "earlyTerminate needs a single metric"),
    ({"metric": {"name": "a"}, "constraints": [{"metric": "m"}]}, "spec.constraints[0]",
     "needs `max`, `min`"),
    ({"metric": {"name": "a"}, "constraints": [{"metric": "m", "min": 2, "max": 1}]},
     "spec.constraints[0]", "must not exceed max"),
    ({"metric": {"name": "a"}, "constraints": [{"metric": "a", "max": 1}]},
     "spec.constraints[0].metric", "is an objective"),
    ({"metric": {"name": "a"}, "warmStart": {}}, "spec.warmStart", "needs `sweeps"),
    ({"metric": {"name": "a"}, "warmStart": {"sweeps": ["old"]}, "method": "random"},
     "spec.warmStart", "only method bayes"),
])
def test_bad_new_fields_are_refused_naming_the_field(extra, path, words):
    found = problems(**extra)
    assert any(p == path and words in m for p, m in found), found


# -- pure helpers ----------------------------------------------------------------------

def test_pareto_mask_keeps_non_dominated_rows_and_ties():
    losses = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2], [6, 6]], dtype=float)
    assert pareto_mask(losses).tolist() == [True, True, False, True, True, False]


def test_scalarise_normalises_each_objective_and_keeps_failures_nan():
    losses = np.array([[0.0, 1000.0], [1.0, 0.0], [np.nan, 5.0]])
    out = scalarise(losses, np.array([0.5, 0.5]))
    assert math.isnan(out[2])
    # both rows are the best on one normalised objective and the worst on the other
    assert out[0] == pytest.approx(out[1])


# -- several objectives in the tuner ---------------------------------------------------

def run(tuner: Tuner, f, n: int) -> None:
    for _ in range(n):
        trial = tuner.ask()
        tuner.tell(trial, None, metrics=f(trial.params))


def two_objectives(p: dict) -> dict:
    return {"acc": 1 - (p["x"] - 0.3) ** 2 - 0.1 * p["y"], "latency": p["x"] + p["y"]}


def test_pareto_front_is_the_non_dominated_succeeded_trials():
    tuner = Tuner(spec(metric=TWO))
    for i, (acc, lat) in enumerate([(0.9, 5), (0.8, 1), (0.7, 3), (0.95, 9)]):
        tuner.add({"x": 0.1 * i, "y": 0.5}, metrics={"acc": acc, "latency": lat})
    tuner.add({"x": 0.9, "y": 0.9}, metrics={"acc": 0.99})  # no latency: failed
    assert [t.index for t in tuner.pareto_front] == [0, 1, 3]
    assert tuner.trials[4].state == "failed" and "latency" in tuner.trials[4].reason
    assert tuner.best is None


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_multi_objective_sweeps_run_and_rebuild_identically(method):
    first = Tuner(spec(metric=TWO, method=method, maxTrials=12), seed=3)
    run(first, two_objectives, 12)
    assert first.outcome is not None and first.outcome.reason == "BudgetReached"
    assert first.pareto_front
    # a tuner rebuilt from the records asks exactly what the original would have
    records = [t.to_dict() for t in first.trials[:9]]
    rebuilt = Tuner(spec(metric=TWO, method=method, maxTrials=12), seed=3, history=records)
    assert rebuilt.ask().params == first.trials[9].params


def test_grid_with_several_metrics_works_unchanged():
    grid = {"x": {"values": [0.1, 0.5]}, "y": {"values": [0.2, 0.4]}}
    tuner = Tuner({"method": "grid", "metric": TWO, "parameters": grid,
                   "trialTemplate": TEMPLATE})
    run(tuner, two_objectives, 4)
    assert tuner.ask() is None and tuner.outcome.phase == "Succeeded"
    assert len(tuner.trials) == 4 and tuner.pareto_front


def test_bayes_front_beats_random_on_two_objectives():
    """Hypervolume (ref 0,2 in (-acc, latency)) after 20 trials, summed over 4 seeds."""
    def hv(tuner: Tuner) -> float:
        pts = sorted((-t.metrics["acc"], t.metrics["latency"]) for t in tuner.pareto_front)
        total, prev = 0.0, 2.0
        for a, lat in pts:
            if lat < prev:
                total += (0.0 - a) * (prev - lat)
                prev = lat
        return total

    scores = {}
    for method in ("random", "bayes"):
        scores[method] = 0.0
        for seed in range(4):
            tuner = Tuner(spec(metric=TWO, method=method, maxTrials=20), seed=seed)
            run(tuner, two_objectives, 20)
            scores[method] += hv(tuner)
    assert scores["bayes"] > scores["random"]


# -- constraints -----------------------------------------------------------------------

def test_infeasible_or_unreported_trials_are_never_best():
    tuner = Tuner(spec(metric={"name": "loss"}, constraints=[{"metric": "mem", "max": 40},
                                                              {"metric": "acc", "min": 0.5}]))
    tuner.add({"x": 0.1, "y": 0.1}, 0.1, metrics={"mem": 41, "acc": 0.9})   # mem too high
    tuner.add({"x": 0.2, "y": 0.1}, 0.2, metrics={"acc": 0.9})              # no mem
    tuner.add({"x": 0.3, "y": 0.1}, 0.3, metrics={"mem": 40, "acc": 0.4})   # acc too low
    assert tuner.best is None
    tuner.add({"x": 0.4, "y": 0.1}, 0.5, metrics={"mem": 40, "acc": 0.5})   # bounds inclusive
    assert tuner.best.index == 3
    assert tuner.infeasibility(tuner.trials[0]) == "mem=41 outside max 40"
    assert "no 'mem'" in tuner.infeasibility(tuner.trials[1])
    assert tuner.infeasibility(tuner.trials[2]) == "acc=0.4 outside min 0.5"


def test_no_feasible_trial_fails_the_sweep_saying_so():
    tuner = Tuner(spec(metric={"name": "loss"}, maxTrials=2, method="random",
                       constraints=[{"metric": "mem", "max": 1}]))
    run(tuner, lambda p: {"mem": 5.0}, 0)
    for _ in range(2):
        t = tuner.ask()
        tuner.tell(t, 1.0, metrics={"mem": 5.0})
    assert tuner.outcome.reason == "NoFeasibleTrial"


def test_constrained_bayes_searches_where_the_constraint_holds():
    """Loss falls towards x = 1 but only x <= 0.3 is feasible: after the initial design,
    most suggestions must be feasible (unconstrained bayes would chase x = 1)."""
    def f(p: dict) -> tuple[float, dict]:
        return -p["x"] - 0.1 * p["y"], {"mem": p["x"] * 10}

    feasible_share = {}
    for constrained in (True, False):
        extra = {"constraints": [{"metric": "mem", "max": 3.0}]} if constrained else {}
        tuner = Tuner(spec(metric={"name": "loss"}, maxTrials=25, **extra), seed=1)
        for _ in range(25):
            t = tuner.ask()
            value, metrics = f(t.params)
            tuner.tell(t, value, metrics=metrics)
        late = tuner.trials[10:]
        feasible_share[constrained] = np.mean([t.metrics["mem"] <= 3.0 for t in late])
        if constrained:
            assert tuner.best.params["x"] > 0.25  # near the feasible optimum x = 0.3
    assert feasible_share[True] >= 0.6 > feasible_share[False]


# -- warm start ------------------------------------------------------------------------

def old_trials() -> list[Trial]:
    old = Tuner(spec(metric={"name": "loss"}, maxTrials=15), seed=5)
    for _ in range(15):
        t = old.ask()
        old.tell(t, (t.params["x"] - 0.7) ** 2 + (t.params["y"] - 0.2) ** 2,
                 metrics={"loss": 0.0})
    for t in old.trials:
        t.metrics["loss"] = t.value
    return old.trials


def test_warm_start_trials_seed_the_model_but_not_budget_best_or_indices():
    prior = old_trials()
    tuner = Tuner(spec(metric={"name": "loss"}, maxTrials=3), seed=0, prior=prior)
    assert len(tuner.prior) == 15
    first = tuner.ask()
    assert first.index == 0 and tuner.best is None
    # with 15 earlier trials the first suggestion is the model's, not the initial design's
    cold = Tuner(spec(metric={"name": "loss"}, maxTrials=3), seed=0).ask()
    assert cold.params != first.params
    without = Tuner(spec(metric={"name": "loss"}, maxTrials=3), seed=0,
                    history=[t.to_dict() for t in prior])
    assert without.ask() is None  # the same trials as its own would use up the budget
    tuner.tell(first, 5.0)
    for _ in range(2):
        tuner.tell(tuner.ask(), 5.0)
    assert tuner.ask() is None and tuner.outcome.reason == "BudgetReached"
    assert tuner.best.value == 5.0  # the earlier trials' better values do not count


def test_only_trials_that_fit_the_new_space_are_used():
    narrow = {"x": {"distribution": "uniform", "min": 0.0, "max": 0.5},
              "c": {"values": ["a", "b"]}, "k": {"value": 3}}
    tuner = Tuner({"method": "bayes", "maxTrials": 5, "metric": {"name": "loss"},
                   "parameters": narrow, "trialTemplate": TEMPLATE}, prior=[
        Trial(0, "o-0", {"x": 0.2, "c": "a", "k": 3, "gone": 1}, "succeeded", 1.0,
              {"loss": 1.0}),                                                # fits
        Trial(1, "o-1", {"x": 0.7, "c": "a", "k": 3}, "succeeded", 1.0, {"loss": 1.0}),
        Trial(2, "o-2", {"x": 0.2, "c": "z", "k": 3}, "succeeded", 1.0, {"loss": 1.0}),
        Trial(3, "o-3", {"x": 0.2, "k": 3}, "succeeded", 1.0, {"loss": 1.0}),
        Trial(4, "o-4", {"x": 0.2, "c": "a", "k": 4}, "succeeded", 1.0, {"loss": 1.0}),
        Trial(5, "o-5", {"x": 0.2, "c": "a", "k": 3}, "failed", None, {}),
        Trial(6, "o-6", {"x": 0.2, "c": "b", "k": 3}, "succeeded", 1.0, {"other": 1.0}),
    ])
    assert [t.name for t in tuner.prior] == ["o-0"]


def test_fits_checks_integers_and_bounds():
    from kubesweep.space import Space

    space = Space(parse_spec(spec(metric={"name": "l"}, parameters={
        "n": {"min": 1, "max": 8}})).parameters)
    assert fits(space, {"n": 3}) and not fits(space, {"n": 3.5}) and not fits(space, {"n": 9})
    assert not fits(space, {"n": True}) and not fits(space, {"n": "3"})


def test_read_local_uses_the_old_objective_value_and_names_missing_sources(tmp_path):
    root = tmp_path / "kubesweep-results"
    (root / "old").mkdir(parents=True)
    lines = [{"event": "sweep", "name": "old", "seed": 0,
              "spec": {"metric": {"name": "loss", "summary": "best"}}},
             {"event": "end", "index": 0, "name": "old-0", "params": {"x": 0.5, "y": 0.5},
              "state": "succeeded", "value": 0.25, "metrics": {"loss": 0.9}}]
    (root / "old" / "trials.jsonl").write_text("\n".join(json.dumps(r) for r in lines))
    s = parse_spec(spec(metric={"name": "loss"}, warmStart={"sweeps": ["old"]}))
    trials = read_local(s, root)
    assert [t.metrics["loss"] for t in trials] == [0.25]  # its summary, not its last report
    with pytest.raises(WarmStartError, match="nope/trials.jsonl does not exist"):
        read_local(parse_spec(spec(metric={"name": "l"}, warmStart={"sweeps": ["nope"]})),
                   root)


# -- cluster status --------------------------------------------------------------------

def test_history_keeps_objective_and_constraint_columns():
    trials = [Trial(0, "s-0", {"x": 0.5}, "succeeded", None, {"acc": 0.9, "mem": 3.0}),
              Trial(1, "s-1", {"x": 0.1}, "failed", None, {"acc": 0.5})]
    packed = history.encode(trials, {}, metric_names=["acc", "mem"])
    records = history.decode(packed)
    assert records[0]["metrics"] == {"acc": 0.9, "mem": 3.0}
    assert records[1]["metrics"] == {"acc": 0.5}
    # objectives and constrained metrics are kept even beyond the most-reported few
    many = [Trial(0, "s-0", {"x": 0.5}, "succeeded", None,
                  {**{f"m{i}": 1.0 for i in range(12)}, "zz_mem": 3.0})]
    kept = history.decode(history.encode(many, {}, metric_names=["zz_mem"]))[0]["metrics"]
    assert kept["zz_mem"] == 3.0


def test_status_lists_the_pareto_front_and_warm_start():
    s = parse_spec(spec(metric=TWO, constraints=[{"metric": "mem", "max": 1}]))
    tuner = Tuner(s)
    tuner.add({"x": 0.1, "y": 0.1}, metrics={"acc": 0.9, "latency": 5, "mem": 0})
    tuner.add({"x": 0.2, "y": 0.1}, metrics={"acc": 0.8, "latency": 1, "mem": 0})
    tuner.add({"x": 0.3, "y": 0.1}, metrics={"acc": 0.99, "latency": 0.5, "mem": 2})
    status = build_status({}, tuner, s, running=set(), unschedulable=0, generation=1,
                          outcome=None, hashes={}, warm={"trials": 0, "read": 0,
                                                         "missing": ["gone"]})
    assert status["paretoFront"]["size"] == 2
    assert status["paretoFront"]["indices"] == [0, 1]
    assert status["paretoFront"]["trials"][1]["metrics"]["latency"] == 1
    assert status["warmStart"]["missing"] == ["gone"]
    # what the operator rebuilds from the status gives the same front
    sweep = {"metadata": {"name": "s"}, "spec": s.model_dump(mode="json", exclude_none=True),
             "status": status}
    rebuilt = Tuner(s, history=[t.to_dict() for t in warm_trials(sweep)])
    assert [t.index for t in rebuilt.pareto_front] == [0, 1]


def test_warm_trials_from_another_sweep_carry_its_objective_value():
    old = parse_spec(spec(metric={"name": "loss"}))
    tuner = Tuner(old)
    tuner.add({"x": 0.5, "y": 0.5}, 0.3)
    status = build_status({}, tuner, old, running=set(), unschedulable=0, generation=1,
                          outcome=None, hashes={})
    sweep = {"metadata": {"name": "old"},
             "spec": old.model_dump(mode="json", exclude_none=True), "status": status}
    trials = warm_trials(sweep)
    assert [(t.params, t.metrics["loss"]) for t in trials] == [({"x": 0.5, "y": 0.5}, 0.3)]
    assert warm_trials({"metadata": {"name": "bad"}, "spec": {"method": "nope"}}) == []


def test_live_view_shows_each_objective_and_the_front_size():
    import io
    from types import SimpleNamespace

    from kubesweep.local.view import View

    tuner = Tuner(spec(metric=TWO))
    tuner.add({"x": 0.1, "y": 0.1}, metrics={"acc": 0.9, "latency": 5})
    tuner.add({"x": 0.2, "y": 0.1}, metrics={"acc": 0.8, "latency": 1})
    lines = View(io.StringIO(), live=True)._live_lines(SimpleNamespace(tuner=tuner,
                                                                       running={}))
    assert "Pareto front 2 trials" in lines[0]
    assert any("acc=0.9 latency=5" in line for line in lines[1:])


def test_scalarise_scales_by_the_front_so_a_bad_trial_does_not_squeeze_it():
    """Weights must keep pointing at different parts of the front when one trial is far
    behind on an objective: scaled by all trials' range, the front would shrink to a
    corner and every weight vector would prefer the same front point."""
    front = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    losses = np.vstack([front, [[0.2, 1000.0]]])  # dominated, far behind on the 2nd
    toward_first = scalarise(losses, np.array([0.9, 0.1]))
    toward_second = scalarise(losses, np.array([0.1, 0.9]))
    assert np.argmin(toward_first[:3]) == 0 and np.argmin(toward_second[:3]) == 2
    assert toward_first[3] > toward_first[:3].max()  # the straggler stays worst
    # the front's scores do not depend on how bad the straggler is
    again = scalarise(np.vstack([front, [[0.2, 10.0]]]), np.array([0.1, 0.9]))
    assert np.allclose(again[:3], toward_second[:3])
