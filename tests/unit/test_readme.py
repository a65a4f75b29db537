"""The README's examples stay true."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kubesweep.manifest import load_sweep

README = Path(__file__).resolve().parents[2] / "README.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)


def test_full_sweep_example_is_valid(tmp_path):
    block = next(b for b in yaml_blocks() if "kind: Sweep" in b)
    path = tmp_path / "sweep.yaml"
    path.write_text(block)
    sweep = load_sweep(path)
    assert sweep.spec.method == "bayes" and len(sweep.spec.parameters) == 3
    assert yaml.safe_load(block)["metadata"]["name"] == sweep.metadata.name


def test_quick_start_commands_are_the_ci_commands():
    text = README.read_text()
    assert "pip install -e . && kubesweep run examples/digits-mlp.yaml" in text
    assert "bash scripts/test.sh" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "exec bash scripts/test.sh" in ci


def test_wandb_file_example_is_a_valid_wandb_config_that_runs(tmp_path):
    import json

    import jsonschema

    block = next(b for b in yaml_blocks() if "as written for `wandb sweep`" in b)
    schema = json.loads((README.parent / "tests" / "wandb_corpus" /
                         "wandb-sweep-config-schema.json").read_text())
    jsonschema.validate(yaml.safe_load(block), schema)
    path = tmp_path / "sweep.yaml"
    path.write_text(block)
    sweep = load_sweep(path)
    assert sweep.metadata.name == "lr-search"
    assert list(sweep.spec.leaf_parameters) == ["lr", "optimizer.name"]
    assert sweep.spec.earlyTerminate.minIter == 3 and sweep.spec.maxTrials == 20
