"""Spec validation: every bad manifest gets a message naming the field and the fix."""

from __future__ import annotations

import pytest

from kubesweep.spec import MAX_GRID_POINTS, SpecError, parse_spec, parse_sweep
from tests.helpers import job_template, make_spec


def problems(spec: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return info.value.problems


def only_problem(spec: dict) -> tuple[str, str]:
    found = problems(spec)
    assert len(found) == 1, found
    return found[0]


def test_min_not_less_than_max():
    path, msg = only_problem(make_spec({"lr": {"min": 0.5, "max": 0.1}}))
    assert path == "spec.parameters.lr"
    assert "min (0.5) must be less than max (0.1)" in msg


def test_log_bounds_must_be_positive():
    path, msg = only_problem(make_spec(
        {"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}))
    assert path == "spec.parameters.lr"
    assert "min > 0" in msg and "log space" in msg


def test_empty_values():
    path, msg = only_problem(make_spec({"opt": {"values": []}}))
    assert path == "spec.parameters.opt.values"
    assert "at least 1" in msg


def test_probabilities_must_sum_to_one():
    path, msg = only_problem(make_spec(
        {"opt": {"values": ["a", "b"], "probabilities": [0.5, 0.6]}}))
    assert path == "spec.parameters.opt"
    assert "sum to 1.1" in msg


def test_probabilities_one_per_value():
    _, msg = only_problem(make_spec({"opt": {"values": ["a", "b"], "probabilities": [1.0]}}))
    assert "one probability per value" in msg


def test_grid_over_continuous_distribution():
    path, msg = only_problem(make_spec({"lr": {"min": 0.1, "max": 1.0}}, method="grid"))
    assert path == "spec.parameters.lr"
    assert "grid search needs discrete values" in msg and "q_uniform" in msg


def test_grid_larger_than_cap_says_how_many_points():
    spec = make_spec({"a": {"min": 0, "max": 999}, "b": {"min": 0, "max": 999}}, method="grid")
    path, msg = only_problem(spec)
    assert path == "spec.parameters"
    assert "1,000,000 points" in msg and f"{MAX_GRID_POINTS:,}" in msg


def test_unknown_placeholder():
    spec = make_spec({"lr": {"min": 0.1, "max": 1.0}})
    spec["trialTemplate"] = job_template(["python", "train.py", "--x=${foo.bar}"])
    path, msg = only_problem(spec)
    assert path == "spec.trialTemplate"
    assert "unknown placeholder ${foo.bar}" in msg and "${params.NAME}" in msg


def test_placeholder_for_missing_parameter():
    spec = make_spec({"lr": {"min": 0.1, "max": 1.0}})
    spec["trialTemplate"] = job_template(["python", "train.py", "--x=${params.epochs}"])
    path, msg = only_problem(spec)
    assert path == "spec.trialTemplate"
    assert "${params.epochs} names no parameter" in msg and "lr" in msg


def test_placeholders_in_env_are_checked():
    spec = make_spec({"lr": {"min": 0.1, "max": 1.0}})
    spec["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "X", "value": "${params.nope}"}]
    assert "names no parameter" in only_problem(spec)[1]


def test_unknown_keys_are_named():
    spec = make_spec({"lr": {"min": 0.1, "max": 1.0, "mni": 3}}, maxTrial=3)
    found = dict(problems(spec))
    assert found["spec.parameters.lr"] == "unknown field 'mni'"
    assert found["spec"] == "unknown field 'maxTrial'"


def test_deprecated_log_uniform_says_use_values_form():
    path, msg = only_problem(make_spec(
        {"lr": {"distribution": "log_uniform", "min": -9.2, "max": -2.3}}))
    assert path == "spec.parameters.lr"
    assert "log_uniform_values" in msg


def test_unknown_distribution_lists_valid_ones():
    _, msg = only_problem(make_spec({"lr": {"distribution": "loguniform", "min": 1, "max": 2}}))
    assert "unknown distribution 'loguniform'" in msg and "log_uniform_values" in msg


def test_max_trials_required_for_random_and_bayes():
    spec = make_spec({"lr": {"min": 0.1, "max": 1.0}}, method="bayes")
    del spec["maxTrials"]
    path, msg = only_problem(spec)
    assert path == "spec.maxTrials" and "required for method 'bayes'" in msg


def test_bad_enum_values_show_the_input():
    spec = make_spec({"lr": {"min": 0.1, "max": 1.0}})
    spec["method"] = "rand"
    spec["metric"]["goal"] = "max"
    found = dict(problems(spec))
    assert "'grid', 'random' or 'bayes'" in found["spec.method"]
    assert "(got 'max')" in found["spec.metric.goal"]


def test_int_uniform_needs_integers():
    _, msg = only_problem(make_spec({"n": {"distribution": "int_uniform", "min": 1.5, "max": 4}}))
    assert "integer min and max" in msg


def test_inference_follows_wandb():
    spec = parse_spec(make_spec({
        "a": {"values": [1, 2]}, "b": {"value": 3}, "c": {"min": 1, "max": 5},
        "d": {"min": 1.0, "max": 5}, "e": {"mu": 0, "sigma": 2},
    }))
    kinds = {k: p.distribution.value for k, p in spec.parameters.items()}
    assert kinds == {"a": "categorical", "b": "constant", "c": "int_uniform", "d": "uniform",
                     "e": "normal"}


def test_wandb_aliases_are_accepted():
    raw = make_spec({"a": {"min": 1, "max": 5}}, run_cap=7,
                    early_terminate={"type": "hyperband", "min_iter": 3})
    del raw["maxTrials"]
    spec = parse_spec(raw)
    assert spec.maxTrials == 7 and spec.earlyTerminate.minIter == 3


def test_grid_max_trials_defaults_to_grid_size():
    spec = parse_spec(make_spec({"a": {"values": [1, 2, 3]}, "b": {"min": 1, "max": 4}},
                                method="grid"))
    assert spec.maxTrials is None and spec.budget == 12


def test_whole_manifest_and_spec_only_both_parse():
    spec = make_spec({"a": {"min": 1, "max": 5}})
    sweep = parse_sweep({"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
                         "metadata": {"name": "s"}, "spec": spec})
    assert sweep.spec == parse_spec(spec)
    with pytest.raises(SpecError) as info:
        parse_sweep({"apiVersion": "kubesweep.io/v1", "kind": "Sweep", "spec": spec})
    assert info.value.problems[0][0] == "apiVersion"


def test_hyperband_needs_min_iter():
    spec = make_spec({"a": {"min": 1, "max": 5}}, earlyTerminate={"type": "hyperband"})
    path, msg = only_problem(spec)
    assert path == "spec.earlyTerminate" and "minIter" in msg


def test_primary_container_must_exist():
    spec = make_spec({"a": {"min": 1, "max": 5}}, primaryContainer="main")
    path, msg = only_problem(spec)
    assert path == "spec.primaryContainer" and "'main' is not in trialTemplate" in msg


def test_template_without_containers():
    spec = make_spec({"a": {"min": 1, "max": 5}})
    spec["trialTemplate"] = {"spec": {}}
    path, msg = only_problem(spec)
    assert path == "spec.trialTemplate" and "spec.template.spec.containers" in msg


def test_values_a_trial_cannot_receive_are_refused():
    with pytest.raises(SpecError) as err:
        parse_spec(make_spec({"a": {"values": ["ok", "x\x00y"]}}))
    assert err.value.problems[0][0] == "spec.parameters.a.values"
    assert "NUL byte" in err.value.problems[0][1]
    with pytest.raises(SpecError, match="spec.parameters.a.max: nan is not a finite number"):
        parse_spec(make_spec({"a": {"min": 0.0, "max": float("nan")}}))


def test_a_nul_byte_in_the_trial_command_or_env_is_refused_naming_the_item():
    spec = make_spec({"a": {"min": 1, "max": 5}})
    container = spec["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", "print(1)\x00", "${params.a}"]
    path, msg = only_problem(spec)
    assert path == "spec.trialTemplate"
    assert "command[2] contains a NUL byte" in msg and "print(1)" in msg
    container["command"] = ["python", "train.py"]
    container["env"] = [{"name": "MODE", "value": "fast\x00"}]
    path, msg = only_problem(spec)
    assert path == "spec.trialTemplate" and "env[0] ('MODE') contains a NUL byte" in msg
