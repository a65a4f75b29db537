"""`kubectl-sweep` is installed with the package and runs the plugin's commands."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from kubesweep import plugin

REPO = Path(__file__).resolve().parents[2]


def test_the_executable_kubectl_runs_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    scripts = text[text.index("[project.scripts]"):].split("\n\n")[0]
    # kubectl finds plugins as executables named kubectl-<command> on PATH
    found = re.search(r'^kubectl-sweep = "([\w.]+):(\w+)"$', scripts, re.M)
    assert found, scripts
    module, func = found.groups()
    assert getattr(importlib.import_module(module), func) is plugin.main


def test_every_command_takes_kubectl_flags(capsys):
    for command in ("trials", "report", "logs", "best"):
        with pytest.raises(SystemExit):
            plugin.main([command, "--help"])
        text = capsys.readouterr().out
        assert "--context" in text and "--namespace" in text and "--kubeconfig" in text
        assert text.startswith(f"usage: kubectl sweep {command}")


def test_a_missing_kubeconfig_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert plugin.main(["trials", "my-sweep"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no usable kubeconfig") and "KUBECONFIG" in err
