"""Every code example in README.md and docs/ runs (or, for shell commands that need a
cluster, at least parses): Python blocks are executed, YAML blocks parsed (Sweeps
validated), `kubesweep ...` command lines parsed by the real argument parser."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubesweep import plugin
from kubesweep.cli import build_parser
from kubesweep.manifest import load_sweep
from tests.helpers import doc_blocks as blocks
from tests.helpers import doc_commands
from tests.unit.test_k8s_decide import World


def sweep_json(path: Path) -> None:
    """What `kubectl get sw digits-mlp -o json > sweep.json` writes, from a real pass."""
    world = World("digits-mlp", parallelism=2, maxTrials=2)
    world.step()
    world.finish(0, "loss=0.5")
    world.finish(1, "loss=0.25")
    world.step()
    path.write_text(json.dumps(world.sweep))


@pytest.mark.parametrize("where, code", blocks("python"), ids=lambda v: str(v)[:40])
def test_python_examples_run(where: str, code: str, tmp_path: Path):
    sweep_json(tmp_path / "sweep.json")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{where}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("where, text", blocks("yaml"), ids=lambda v: str(v)[:40])
def test_yaml_examples_parse(where: str, text: str, tmp_path: Path):
    docs = list(yaml.safe_load_all(text))
    assert docs, where
    if any(isinstance(d, dict) and d.get("kind") == "Sweep" for d in docs):
        path = tmp_path / "sweep.yaml"
        path.write_text(text)
        load_sweep(path)  # raises with the bad field named


def synopsis_words(line: str, skip: int) -> list[str]:
    """The arguments of a documented command line as a user would type them: `[--flag N]`
    is optional (brackets dropped, flag kept), `a|b` alternatives take the first,
    placeholders get a value; the shell's redirections and pipes are not arguments."""
    line = re.sub(r"\s+\|\s+[^]\s]+\]", "]", line)  # `[--resume | --overwrite]`
    words = shlex.split(line)[skip:]
    words = words[:next((i for i, w in enumerate(words) if w in (">", "|")), len(words))]
    words = [w.strip("[]").split("|")[0] for w in words]
    return [{"N": "3", "NS": "default"}.get(w, w) for w in words]


def parses(parser: argparse.ArgumentParser, words: list[str]) -> bool:
    try:
        parser.parse_args(words)
    except SystemExit:
        return False
    return True


def test_every_documented_command_is_checked():
    # the commands below exist in the docs: a change to the extraction cannot skip them
    assert len(doc_commands("kubesweep")) >= 6
    assert len(doc_commands("kubectl", "sweep")) >= 4


@pytest.mark.parametrize("where, line", doc_commands("kubesweep"), ids=lambda v: str(v)[:40])
def test_kubesweep_commands_parse(where: str, line: str):
    words = synopsis_words(line, 1)
    assert parses(build_parser(), words), f"{where}: `{line}` does not parse"


@pytest.mark.parametrize("where, line", doc_commands("kubectl", "sweep"),
                         ids=lambda v: str(v)[:40])
def test_kubectl_sweep_commands_parse(where: str, line: str):
    words = synopsis_words(line, 2)
    assert parses(plugin.build_parser(), words), f"{where}: `{line}` does not parse"


def test_a_wrong_documented_command_would_be_caught():
    assert not parses(build_parser(), synopsis_words("kubesweep run x.yaml --no-such", 1))
    assert not parses(plugin.build_parser(),
                      synopsis_words("kubectl sweep best s -o toml", 2))


def test_the_architecture_names_every_module():
    """docs/architecture.md is the map to find a behaviour in one file: it names each
    module of the package (a new module must be placed on it)."""
    from tests.helpers import REPO

    text = (REPO / "docs" / "architecture.md").read_text()
    package = REPO / "operator" / "kubesweep"
    missing = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
               if path.name != "__init__.py" and path.name not in text]
    assert not missing, f"docs/architecture.md does not place {missing}"


def test_the_developer_guides_python_examples_compile():
    """tests/cluster/README.md shows fixtures and tests (they need a cluster to run):
    each at least compiles, and names only what tests.cluster.fixtures defines."""
    import ast
    import textwrap

    import tests.cluster.fixtures as fixtures
    from tests.helpers import REPO

    text = (REPO / "tests" / "cluster" / "README.md").read_text()
    found = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(found) >= 3
    for code in found:
        tree = ast.parse(textwrap.dedent(code))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "tests.cluster.fixtures":
                for alias in node.names:
                    assert hasattr(fixtures, alias.name), f"no tests.cluster.fixtures.{alias.name}"
