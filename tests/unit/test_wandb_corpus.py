"""The W&B config corpus (tests/wandb_corpus): every config W&B accepts runs as W&B would
run it, or is refused with a message naming the W&B feature kubesweep does not have.

The corpus is data collected from W&B's sweeps engine tests, its example repositories, its
documentation and public projects (see tests/wandb_corpus/README.md). Each config is
first checked against W&B's own config schema (from the `sweeps` package), so the corpus
holds only configs W&B accepts; refused-by-wandb/ holds configs its engine refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from kubesweep.manifest import load_documents
from kubesweep.spec import parse_sweep
from kubesweep.template import local_command
from kubesweep.tuner import Tuner
from kubesweep.wandb_config import WandbConfigError, to_sweep

CORPUS = Path(__file__).resolve().parents[1] / "wandb_corpus"
SCHEMA = json.loads((CORPUS / "wandb-sweep-config-schema.json").read_text())
VALID = sorted(p for p in CORPUS.glob("*/*.yaml") if p.parent.name != "refused-by-wandb")
REFUSED_BY_WANDB = sorted((CORPUS / "refused-by-wandb").glob("*.yaml"))

#: Configs using a W&B feature kubesweep does not have, and the words naming it.
UNSUPPORTED = {
    "engine-tests/test_config-03.yaml": "`parameters`",
    **{f"engine-tests/test_config-{n:02d}.yaml": "several objectives (`metrics`"
       for n in (7, 8, 9, 10)},
    **{f"engine-tests/test_config-{n}.yaml": "custom scheduler (`scheduler`"
       for n in (11, 12, 13, 14, 15, 17, 19)},
    "engine-tests/test_config-18.yaml": "`parameters`",
    "examples/sweeps--examples--launch--sweep-launch-jobs.yaml": "Launch jobs (`job`)",
}


def _wandb_validator() -> jsonschema.Draft7Validator:
    # the format checks W&B's engine registers: "float" and "integer" by Python type
    checker = jsonschema.FormatChecker()
    checker.checks("float")(lambda v: isinstance(v, float))
    checker.checks("integer")(lambda v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.Draft7Validator(SCHEMA, format_checker=checker)


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _doc(path: Path) -> dict:
    [doc] = load_documents(path)
    return doc


def test_corpus_is_large_and_every_file_is_a_valid_wandb_config():
    assert len(VALID) >= 80
    validator = _wandb_validator()
    for path in VALID + REFUSED_BY_WANDB:
        errors = [e.message for e in validator.iter_errors(_doc(path))]
        assert not errors, f"{_name(path)} is not a valid W&B sweep config: {errors}"


def test_the_schema_check_can_fail():
    validator = _wandb_validator()
    assert list(validator.iter_errors({"method": "grid", "parameters": {
        "a": {"min": 0.0, "max": 1, "distribution": "int_uniform"}}}))


@pytest.mark.parametrize("path", VALID, ids=_name)
def test_config_runs_as_wandb_would_or_is_refused_naming_the_feature(path):
    doc = _doc(path)
    feature = UNSUPPORTED.get(_name(path))
    if feature is not None:
        with pytest.raises(WandbConfigError) as info:
            to_sweep(doc, name="x", max_trials=5)
        message = str(info.value)
        assert feature in message and ("not supported" in message or
                                       "does not support" in message), message
        return
    if "program" not in doc and "command" not in doc:
        # W&B runs these only from Python (wandb.agent(function=...)): say so, then
        # check the search part with a program
        with pytest.raises(WandbConfigError, match=r"wandb\.agent\(sweep_id, function"):
            to_sweep(doc, name="x", max_trials=5)
        doc["program"] = "train.py"
    if "run_cap" not in doc and doc.get("method") in ("random", "bayes"):
        with pytest.raises(WandbConfigError, match="--max-trials"):
            to_sweep(doc, name="x")
    manifest = to_sweep(doc, name=path.stem, max_trials=5)
    sweep = parse_sweep(manifest)
    # the printed manifest (kubesweep convert) reads back as the same sweep
    again = parse_sweep(yaml.safe_load(yaml.safe_dump(manifest)))
    assert again.spec == sweep.spec
    tuner = Tuner(sweep.spec, name="t")
    leaves = set(sweep.spec.leaf_parameters)
    asked = 0
    while (trial := tuner.ask()) is not None:
        asked += 1
        assert set(trial.params) == leaves
        argv, env = local_command(sweep.spec, trial.params, trial.name, trial.index, "s")
        assert argv and json.loads(env["KUBESWEEP_PARAMS"]).keys() == set(doc["parameters"])
        # every whole-item macro expanded (W&B's agent passes other text on as written)
        assert not [a for a in argv if a.startswith("${") and a.endswith("}")], argv
        tuner.tell(trial, float(np.random.default_rng(trial.index).random()))
    # the budget, or every point of a finite space smaller than it
    assert asked == tuner.budget or (1 <= asked < tuner.budget and tuner.outcome is not None
                                     and tuner.space.grid_size() == asked)


@pytest.mark.parametrize("path", REFUSED_BY_WANDB, ids=_name)
def test_configs_wandb_refuses_are_refused_too(path):
    doc = _doc(path)
    doc.setdefault("program", "train.py")
    with pytest.raises(ValueError):
        parse_sweep(to_sweep(doc, name="x", max_trials=5))
