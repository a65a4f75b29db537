"""Every code example in README.md and docs/ runs (or, for shell commands that need a
cluster, at least parses): Python blocks are executed, YAML blocks parsed (Sweeps
validated), `kubesweep ...` command lines parsed by the real argument parser."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubesweep.cli import build_parser
from kubesweep.manifest import load_sweep
from tests.unit.test_k8s_decide import World

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        REPO / "benchmarks" / "README.md"]


def blocks(lang: str) -> list[tuple[str, str]]:
    """(where, text) of every fenced block of `lang` in the docs."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(rf"```{lang}\n(.*?)```", text, flags=re.S):
            line = text[:match.start()].count("\n") + 1
            out.append((f"{path.relative_to(REPO)}:{line}", match.group(1)))
    return out


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


def kubesweep_lines() -> list[tuple[str, str]]:
    out = []
    for where, text in blocks("sh"):
        for line in text.splitlines():
            if line.strip().startswith("kubesweep "):
                out.append((where, line.split("#")[0].strip()))
    return out


@pytest.mark.parametrize("where, line", kubesweep_lines(), ids=lambda v: str(v)[:40])
def test_kubesweep_commands_parse(where: str, line: str):
    # `[--flag N]` in a synopsis is optional: drop the brackets, keep the flag
    words = [w.strip("[]") for w in shlex.split(line)[1:]]
    # the shell's redirections and pipes are not the command's arguments
    words = words[:next((i for i, w in enumerate(words) if w in (">", "|")), len(words))]
    words = ["3" if w == "N" else w for w in words]
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{where}: `{line}` does not parse (exit {exc.code})")
