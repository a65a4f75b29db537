"""Helpers shared by the pure tests: minimal specs and templates, the docs' examples."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The documents whose code examples CI runs or checks (tests/unit/test_docs_examples.py,
#: tests/chart/test_chart.py).
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        REPO / "benchmarks" / "README.md"]


def job_template(command: list[str] | None = None) -> dict[str, Any]:
    """A minimal trial Job template running `command`."""
    return {"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "trial", "image": "python:3.11",
                        "command": command or ["python", "-c", "print('loss=1')"]}],
    }}}}


def make_spec(parameters: dict[str, Any], method: str = "random", **extra: Any) -> dict[str, Any]:
    """A spec dict with sensible defaults for the fields a test does not care about."""
    spec: dict[str, Any] = {
        "method": method,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": parameters,
        "trialTemplate": job_template(),
    }
    if method != "grid":
        spec["maxTrials"] = 10
    spec.update(extra)
    return spec


def doc_blocks(lang: str) -> list[tuple[str, str]]:
    """(where, text) of every fenced code block of `lang` in the docs."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(rf"```{lang}\n(.*?)```", text, flags=re.S):
            line = text[:match.start()].count("\n") + 1
            out.append((f"{path.relative_to(REPO)}:{line}", match.group(1)))
    return out


def doc_commands(*program: str) -> list[tuple[str, str]]:
    """(where, command line) of every command in the docs' `sh` blocks that starts with
    the words `program`; lines continued with a backslash, or by an indented `[--option]`
    line of a synopsis, are joined, and comments dropped."""
    out = []
    for where, text in doc_blocks("sh"):
        joined = re.sub(r"\n\s+(?=\[)", " ", re.sub(r"\\\n\s*", " ", text))
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.split()[:len(program)] == list(program):
                out.append((where, line))
    return out
