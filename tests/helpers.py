"""Helpers shared by the pure tests: minimal specs and templates."""

from __future__ import annotations

from typing import Any


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
