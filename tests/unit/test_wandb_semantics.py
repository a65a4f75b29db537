"""W&B's semantics in the spec, the space, the tuner and the trial output (issue 14)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kubesweep.early_stopping import HyperbandRule
from kubesweep.rules import failure_reason
from kubesweep.space import Space
from kubesweep.spec import EarlyTerminate, SpecError, parse_spec
from kubesweep.trial_output import MetricLog, parse_line
from kubesweep.tuner import Tuner
from tests.helpers import make_spec


def problems(spec: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return info.value.problems


# -- metric optional for grid and random --------------------------------------------------

def no_metric(method: str = "random", **params) -> dict:
    spec = make_spec(params or {"x": {"values": [1, 2, 3]}}, method=method)
    del spec["metric"]
    return spec


def test_grid_and_random_need_no_metric():
    assert parse_spec(no_metric("grid")).metric is None
    assert parse_spec(no_metric("random")).objective is None


def test_bayes_and_early_termination_need_a_metric():
    [(path, msg)] = problems(no_metric("bayes"))
    assert "metric: required for method 'bayes'" in f"{path}: {msg}"
    spec = no_metric("random")
    spec["earlyTerminate"] = {"type": "hyperband", "minIter": 1}
    assert "required by earlyTerminate" in problems(spec)[0][1]


def test_sweep_without_metric_runs_its_budget_and_keeps_every_metric():
    tuner = Tuner(no_metric("grid"), name="t")
    while (trial := tuner.ask()) is not None:
        tuner.tell(trial, None, metrics={"acc": 0.5 + trial.index, "loss": 1.0})
    assert [t.state for t in tuner.trials] == ["succeeded"] * 3
    assert tuner.trials[2].metrics == {"acc": 2.5, "loss": 1.0}
    assert tuner.best is None
    assert tuner.outcome is not None and tuner.outcome.phase == "Succeeded"


def test_sweep_without_metric_fails_only_when_no_trial_succeeded():
    tuner = Tuner(no_metric("grid"), name="t")
    while (trial := tuner.ask()) is not None:
        tuner.tell(trial, None, "failed", reason="exited with code 1")
    assert tuner.outcome is not None and tuner.outcome.reason == "NoSuccessfulTrial"


def test_trial_without_objective_succeeds_on_exit_zero():
    log = MetricLog(None)
    log.feed("acc=0.9")
    assert failure_reason(log, 0, None) is None
    assert failure_reason(log, 2, None).startswith("exited with code 2")
    assert log.latest == {"acc": 0.9} and not log.history


# -- any JSON value as a choice ------------------------------------------------------------

def test_values_may_be_lists_objects_and_null():
    spec = parse_spec(make_spec({"layers": {"values": [[64, 64], [128]]},
                                 "sched": {"values": [None, "cos", {"name": "step"}]},
                                 "c": {"value": None}}))
    space = Space(spec.parameters)
    seen = {repr(space.sample(np.random.default_rng(i))["layers"]) for i in range(20)}
    assert seen == {"[64, 64]", "[128]"}
    assert space.decode(space.encode({"layers": [128], "sched": None, "c": None})) == {
        "layers": [128], "sched": None, "c": None}
    assert spec.model_dump(exclude_none=True)["parameters"]["c"] == {
        "distribution": "constant", "value": None}


def test_bad_value_is_named_without_a_misleading_type_message():
    [(path, msg)] = problems(make_spec({"x": {"values": [[2, 3], {"a": float("inf")}]}}))
    assert path == "spec.parameters.x" and msg == "values[1]: inf is not a finite number"
    [(path, msg)] = problems(make_spec({"x": {"values": [[2, 3], {1, 2}]}}))
    assert msg == "values[1]: set is not a JSON value"


# -- nested parameters --------------------------------------------------------------------

def test_nested_parameters_flatten_into_dotted_dimensions():
    spec = parse_spec(make_spec({"opt": {"parameters": {
        "lr": {"min": 0.001, "max": 0.1}, "inner": {"parameters": {"b": {"values": [1, 2]}}}}}}))
    assert Space(spec.parameters).names == ["opt.lr", "opt.inner.b"]


def test_nested_parameter_takes_no_other_keys_and_names_do_not_collide():
    [(_, msg)] = problems(make_spec({"opt": {"values": [1], "parameters": {"a": {"value": 1}}}}))
    assert "takes no other keys (got values)" in msg
    [(_, msg)] = problems(make_spec({"opt.lr": {"value": 1},
                                     "opt": {"parameters": {"lr": {"value": 2}}}}))
    assert "same full name (opt.lr)" in msg


def test_placeholders_name_nested_values_and_groups():
    spec = parse_spec(make_spec({"opt": {"parameters": {"lr": {"value": 0.1}}}},
                                trialTemplate={"spec": {"template": {"spec": {"containers": [{
                                    "name": "t", "command": ["x", "${params.opt.lr}",
                                                             "${params.opt}"]}]}}}}))
    from kubesweep.template import local_command

    argv, _ = local_command(spec, {"opt.lr": 0.1}, "t-0", 0, "t", environ={})
    assert argv == ["x", "0.1", '{"lr": 0.1}']
    assert "names no parameter" in problems(make_spec(
        {"a": {"value": 1}}, trialTemplate={"spec": {"template": {"spec": {"containers": [{
            "name": "t", "command": ["x", "${params.b}"]}]}}}}))[0][1]


# -- q_* values are multiples of q (the rounding bug) ------------------------------------

@pytest.mark.parametrize("q", [0.125, 2.341, 0.1, 0.05, 1e-05, 3])
def test_quantized_values_are_exact_multiples_of_q(q):
    spec = parse_spec(make_spec({"x": {"distribution": "q_uniform", "min": 0, "max": 20 * q,
                                       "q": q}}))
    space = Space(spec.parameters)
    for i in range(50):
        x = space.sample(np.random.default_rng(i))["x"]
        k = round(x / q)
        assert math.isclose(x, k * q, rel_tol=1e-12, abs_tol=1e-15), (x, q)
        assert len(repr(x)) <= len(repr(q)) + 4  # no float noise such as 0.30000000000000004


def test_q_0125_samples_eighths_not_hundredths():
    spec = parse_spec(make_spec({"x": {"distribution": "q_uniform", "min": 0, "max": 1,
                                       "q": 0.125}}))
    values = {Space(spec.parameters).sample(np.random.default_rng(i))["x"] for i in range(60)}
    assert values <= {k / 8 for k in range(9)} and 0.375 in values


def test_q_beta():
    spec = parse_spec(make_spec({"x": {"distribution": "q_beta", "a": 2, "b": 5, "q": 0.05}}))
    space = Space(spec.parameters)
    values = [space.sample(np.random.default_rng(i))["x"] for i in range(40)]
    assert all(0 <= v <= 1 and math.isclose(v, round(v / 0.05) * 0.05) for v in values)
    assert len(set(values)) > 3


# -- grid with probabilities: refused, as W&B does -------------------------------------

def test_grid_with_probabilities_is_refused():
    [(path, msg)] = problems(make_spec({"a": {"values": [1, 2], "probabilities": [0.5, 0.5]}},
                                       method="grid"))
    assert path == "spec.parameters.a" and "no meaning in a grid search" in msg


# -- hyperband as W&B's engine computes it ------------------------------------------------

def test_hyperband_brackets_are_truncated_as_wandb():
    rule = HyperbandRule(EarlyTerminate(type="hyperband", minIter=30, eta=1.5, maxIter=160))
    assert rule.brackets == [30, 45, 67, 101, 151]
    rule = HyperbandRule(EarlyTerminate(type="hyperband", maxIter=27, s=2, eta=3))
    assert rule.brackets == [3, 9]
    assert EarlyTerminate(type="hyperband", minIter=1).strict is True


# -- impute ---------------------------------------------------------------------------

def bayes_spec(**metric) -> dict:
    spec = make_spec({"x": {"min": 0.0, "max": 1.0}}, method="bayes")
    spec["metric"].update(metric)
    return spec


def observations(tuner: Tuner) -> list[float | None]:
    return [o.loss for o in tuner._observations()]


def test_impute_worst_leaves_failed_trials_to_the_strategys_worst():
    tuner = Tuner(bayes_spec(), name="t")
    tuner.add({"x": 0.1}, 0.5)
    tuner.add({"x": 0.2}, None, "failed", history=[(1, 0.3), (2, 0.4)])
    assert observations(tuner) == [0.5, None]


@pytest.mark.parametrize(("impute", "loss"), [("best", 0.3), ("latest", 0.4)])
def test_impute_best_and_latest_use_what_the_failed_trial_reported(impute, loss):
    tuner = Tuner(bayes_spec(impute=impute), name="t")
    tuner.add({"x": 0.1}, 0.5)
    tuner.add({"x": 0.2}, None, "failed", history=[(1, 0.3), (2, 0.4)])
    tuner.add({"x": 0.3}, None, "failed")  # reported nothing: the worst
    assert observations(tuner) == [0.5, loss, None]


def test_impute_while_running_models_running_trials_instead_of_pending():
    tuner = Tuner(bayes_spec(impute_while_running="latest", goal="maximize"), name="t")
    tuner.add({"x": 0.1}, 0.5)
    running = tuner.add({"x": 0.2}, state="pending")
    assert tuner._pending_params() == [{"x": 0.2}] and observations(tuner) == [-0.5]
    tuner.report(running, 1, 0.7)
    assert tuner._pending_params() == [] and observations(tuner) == [-0.5, -0.7]
    assert parse_spec(bayes_spec(impute_while_running=False)).metric.imputeWhileRunning == \
        "false"


# -- metric names W&B users log --------------------------------------------------------

@pytest.mark.parametrize("name", ["Valid_mAP@0.50", "val/loss", "metrics/mAP_0.5:0.95",
                                  "train.loss", "eval/f1-score", "top-1", "acc[0]",
                                  "f1(macro)", "loss%", "epoch/val_loss", "val/acc@1"])
def test_metric_names_wandb_users_log_parse(name):
    assert parse_line(f"{name}=0.5") == {name: 0.5}
    assert parse_line(f"step=3 {name}=0.25 other=1") == {"step": 3.0, name: 0.25, "other": 1.0}
    log = MetricLog(name)
    log.feed(f"{name}=0.93")
    assert failure_reason(log, 0, name) is None


def test_failure_message_example_parses_back():
    log = MetricLog("val loss")
    log.feed("acc=1")
    reason = failure_reason(log, 0, "val loss")
    assert "\'{\"val loss\": 0.93}\'" in reason  # a name with a space: a JSON line
    assert parse_line('{"val loss": 0.93}') == {"val loss": 0.93}


def test_constant_without_value_is_null_as_kubernetes_stores_it():
    # the API server drops `value: null` inside nested parameters; the distribution stays
    spec = parse_spec(make_spec({"g": {"parameters": {"c": {"distribution": "constant"}}}}))
    assert Space(spec.parameters).sample(np.random.default_rng(0)) == {"g.c": None}


def test_a_trial_read_back_without_its_nulls_is_the_same_point():
    """The status history (and the API server) drop null values: a grid must not run the
    point again, and bayes must still encode the trial."""
    spec = parse_spec(make_spec({"s": {"values": [None, "cos"]}, "c": {"value": None},
                                 "x": {"values": [1, 2]}}, method="grid"))
    tuner = Tuner(spec, name="t")
    first = tuner.ask()
    assert first.params == {"s": None, "c": None, "x": 1}
    rebuilt = Tuner(spec, name="t", history=[{"index": 0, "name": "t-0", "params": {"x": 1},
                                              "state": "succeeded", "value": 1.0}])
    assert rebuilt.ask().params == {"s": None, "c": None, "x": 2}
    space = Space(spec.parameters)
    assert list(space.encode({"x": 1})) == list(space.encode(first.params))
