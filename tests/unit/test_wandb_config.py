"""W&B sweep files: the agent's command macros, types, nesting, and named refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kubesweep.manifest import ManifestError, load_sweep
from kubesweep.spec import SpecError, parse_sweep
from kubesweep.template import CLUSTER_PARAMS_FILE, agent_args, local_command, render_container
from kubesweep.wandb_config import WandbConfigError, convert_command, is_wandb_config, to_sweep

PARAMS = {"lr": 0.001, "layers": [64, 64], "amp": True, "dropout": False, "opt": "adam",
          "tag": None}


def spec_for(command: list[str] | None = None, **extra) -> object:
    config = {"method": "grid", "program": "train.py",
              "parameters": {k: {"value": v} for k, v in PARAMS.items()}, **extra}
    if command is not None:
        config["command"] = command
    return parse_sweep(to_sweep(config, name="t")).spec


def argv_for(command: list[str], tmp_path: Path | None = None) -> list[str]:
    spec = spec_for(command)
    file = tmp_path / "p.json" if tmp_path else None
    argv, _ = local_command(spec, dict(PARAMS), "t-0", 0, "t", params_file=file,
                            environ={"HOME": "/home/me"})
    return argv


def test_default_command_is_env_python_program_args():
    assert argv_for(None) == [  # type: ignore[arg-type]
        "/usr/bin/env", "python", "train.py", "--lr=0.001", "--layers=[64, 64]",
        "--amp=True", "--dropout=False", "--opt=adam", "--tag=None"]


def test_args_no_hyphens_for_hydra():
    assert argv_for(["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"])[3:] == [
        "lr=0.001", "layers=[64, 64]", "amp=True", "dropout=False", "opt=adam", "tag=None"]


def test_args_no_boolean_flags_drops_false_and_keeps_true_as_a_flag():
    assert argv_for(["python", "${program}", "${args_no_boolean_flags}"])[2:] == [
        "--lr=0.001", "--layers=[64, 64]", "--amp", "--opt=adam", "--tag=None"]


def test_args_no_equals_and_hydra_forms():
    assert argv_for(["python", "x.py", "${args_no_equals}"])[2:6] == [
        "--lr", "0.001", "--layers", "[64, 64]"]
    assert argv_for(["python", "x.py", "${args_append_hydra}"])[2] == "+lr=0.001"
    assert argv_for(["python", "x.py", "${args_override_hydra}"])[2] == "++lr=0.001"


def test_args_json_is_one_item_of_json():
    argv = argv_for(["python", "x.py", "${args_json}"])
    assert len(argv) == 3 and json.loads(argv[2]) == PARAMS


def test_args_json_file_locally_is_written_before_the_trial(tmp_path):
    argv = argv_for(["python", "x.py", "--config", "${args_json_file}"], tmp_path)
    assert argv[3] == str(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text()) == PARAMS


def test_args_json_file_on_a_cluster_is_written_by_a_shell_step():
    spec = spec_for(["python", "x.py", "${args_json_file}"])
    container = render_container(spec.primary_container(), dict(PARAMS), "t-0", 0, "t",
                                 spec.parameters)
    command = container["command"]
    assert command[:2] == ["/bin/sh", "-c"] and CLUSTER_PARAMS_FILE in command[2]
    assert command[4:] == ["python", "x.py", CLUSTER_PARAMS_FILE]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["KUBESWEEP_PARAMS"]) == PARAMS


def test_envvar_locally_from_the_environment_and_on_a_cluster_from_the_container():
    assert argv_for(["python", "x.py", "--home=${envvar:HOME}", "${envvar:UNSET_X}"])[2:] == [
        "--home=/home/me", "UNSET_X"]  # W&B's agent: the name itself when unset
    spec = spec_for(["python", "x.py", "--home=${envvar:HOME}"])
    container = render_container(spec.primary_container(), dict(PARAMS), "t-0", 0, "t",
                                 spec.parameters)
    assert container["command"][2] == "--home=$(HOME)"


def test_a_macro_inside_a_longer_item_passes_literally_as_the_agent_does():
    notes: list[str] = []
    command = convert_command(["${env}", "python", "${program}", "--bs=${batch_size}"],
                              "run.py", notes)
    assert command == ["/usr/bin/env", "python", "run.py", "--bs=$${batch_size}"]
    assert "passed as it is written" in notes[0]
    spec = spec_for(["python", "x.py", "--bs=${batch_size}"])
    argv, _ = local_command(spec, dict(PARAMS), "t-0", 0, "t", environ={})
    assert argv[2] == "--bs=${batch_size}"


def test_unknown_whole_macro_is_refused_with_the_known_ones():
    with pytest.raises(WandbConfigError, match=r"unknown macro \$\{args_dict\}.*\$\{args\}"):
        convert_command(["python", "${args_dict}"], "x.py")


def test_program_missing_names_wandb_agent_function():
    with pytest.raises(WandbConfigError, match=r"wandb\.agent"):
        to_sweep({"method": "grid", "parameters": {"a": {"value": 1}}}, name="t")
    with pytest.raises(WandbConfigError, match="program: required, because command uses"):
        to_sweep({"method": "grid", "parameters": {"a": {"value": 1}},
                  "command": ["python", "${program}"]}, name="t")


def test_nested_parameters_reach_the_trial_as_nested_objects():
    config = {"method": "grid", "program": "train.py", "parameters": {
        "batch_size": {"values": [32]},
        "optimizer": {"parameters": {"lr": {"values": [0.001]},
                                     "nadam": {"parameters": {"beta": {"values": [0.9]}}}}}}}
    spec = parse_sweep(to_sweep(config, name="t")).spec
    assert list(spec.leaf_parameters) == ["batch_size", "optimizer.lr", "optimizer.nadam.beta"]
    params = {"batch_size": 32, "optimizer.lr": 0.001, "optimizer.nadam.beta": 0.9}
    argv, env = local_command(spec, params, "t-0", 0, "t", environ={})
    # as W&B's agent: the top-level name with Python's str() of the nested dict
    assert argv[3:] == ["--batch_size=32", "--optimizer={'lr': 0.001, 'nadam': {'beta': 0.9}}"]
    assert json.loads(env["KUBESWEEP_PARAMS"]) == {
        "batch_size": 32, "optimizer": {"lr": 0.001, "nadam": {"beta": 0.9}}}


def test_whole_number_float_bounds_are_uniform_in_a_wandb_file():
    sweep = parse_sweep(to_sweep({"method": "random", "run_cap": 3, "program": "t.py",
                                  "parameters": {"x": {"min": 0.0, "max": 1.0},
                                                 "n": {"min": 0, "max": 4}}}, name="t"))
    params = sweep.spec.parameters
    assert params["x"].distribution.value == "uniform"
    assert params["n"].distribution.value == "int_uniform"


def test_exponent_forms_become_the_same_distribution_over_values():
    config = {"method": "random", "run_cap": 3, "program": "t.py", "parameters": {
        "a": {"distribution": "log_uniform", "min": -4, "max": 0},
        "b": {"distribution": "inv_log_uniform", "min": 1, "max": 3},
        "c": {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2}}}
    params = parse_sweep(to_sweep(config, name="t")).spec.parameters
    assert params["a"].distribution.value == "log_uniform_values"
    assert math.isclose(params["a"].min, math.exp(-4)) and params["a"].max == 1.0
    # W&B draws exp(-u), u in [1, 3]: values in [e^-3, e^-1]
    assert math.isclose(params["b"].min, math.exp(-3))
    assert math.isclose(params["b"].max, math.exp(-1))
    assert params["c"].distribution.value == "q_log_uniform_values" and params["c"].q == 2


def test_keys_are_renamed_and_the_metric_is_ranked_by_its_best_value():
    manifest = to_sweep({
        "name": "My Sweep #1", "description": "lr search", "method": "bayes", "run_cap": 7,
        "program": "t.py", "entity": "me", "project": "p",
        "metric": {"name": "val/loss", "goal": "minimize", "impute": "latest",
                   "impute_while_running": "false"},
        "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2.0, "eta": 3},
        "parameters": {"lr": {"min": 0.001, "max": 0.1}}}, name="file")
    assert manifest["metadata"] == {"name": "my-sweep-1",
                                    "annotations": {"kubesweep.io/description": "lr search"}}
    spec = manifest["spec"]
    assert spec["maxTrials"] == 7
    assert spec["metric"] == {"name": "val/loss", "goal": "minimize", "impute": "latest",
                              "imputeWhileRunning": "false", "summary": "best"}
    assert spec["earlyTerminate"] == {"type": "hyperband", "maxIter": 27, "s": 2, "eta": 3}
    parse_sweep(manifest)


@pytest.mark.parametrize(("config", "words"), [
    ({"method": "custom"}, "`method: custom`"),
    ({"method": "bayes", "scheduler": {"engine": "optuna"}}, "custom scheduler"),
    ({"method": "custom", "metrics": [{"name": "a"}, {"name": "b"}]}, "several objectives"),
    ({"method": "grid", "job": "x:latest"}, "Launch jobs"),
    ({"method": "grid", "image_uri": "x"}, "Launch images"),
])
def test_unsupported_features_are_named(config, words):
    config = {"parameters": {"a": {"value": 1}}, "program": "t.py", **config}
    with pytest.raises(WandbConfigError) as info:
        to_sweep(config, name="t")
    assert words in str(info.value) and "does not support" in str(info.value)


def test_unknown_keys_and_missing_budget_are_explained():
    with pytest.raises(WandbConfigError, match="unknown W&B sweep key.*metrc"):
        to_sweep({"method": "grid", "metrc": {}, "parameters": {"a": {"value": 1}}}, name="t")
    with pytest.raises(WandbConfigError, match="run_cap: missing.*--max-trials N"):
        to_sweep({"method": "random", "program": "t.py",
                  "parameters": {"a": {"value": 1}}}, name="t")


def test_is_wandb_config():
    assert is_wandb_config({"method": "grid", "parameters": {}})
    assert is_wandb_config({"kind": "sweep", "method": "grid"})
    assert not is_wandb_config({"kind": "Sweep", "spec": {}})
    assert not is_wandb_config({"kind": "Deployment"})


def test_load_sweep_reads_a_wandb_file_and_names_wandb_fields_in_errors(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("program: t.py\nmethod: random\nrun_cap: 0\n"
                    "parameters:\n  lr: {min: 0.0, max: 1.0}\n")
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    assert info.value.problems[0][0] == "run_cap"
    path.write_text("program: t.py\nmethod: custom\nparameters:\n  lr: {value: 1}\n")
    with pytest.raises(ManifestError, match="sweep.yaml: W&B sweep config: uses `method: cu"):
        load_sweep(path)
    path.write_text("program: t.py\nmethod: random\nparameters:\n  lr: {min: 0.0, max: 1.0}\n")
    sweep = load_sweep(path, max_trials=4)
    assert sweep.spec.maxTrials == 4 and sweep.metadata.name == "sweep"


def test_agent_args_match_the_agents_formats():
    formats = agent_args({"a": 1, "b": True, "c": False})
    assert formats["args"] == ["--a=1", "--b=True", "--c=False"]
    assert formats["args_no_boolean_flags"] == ["--a=1", "--b"]
    assert formats["args_json"] == ['{"a": 1, "b": true, "c": false}']
