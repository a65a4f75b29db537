"""Hostile parameter values reach a local trial verbatim (tests/hostile_values.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.hostile_values import HOSTILE_VALUES, checking_trial


def test_hostile_values_arrive_verbatim_in_argv_env_and_params(tmp_path: Path):
    manifest = {
        "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
        "metadata": {"name": "hostile"},
        "spec": {
            "method": "grid", "parallelism": 4,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"v": {"values": HOSTILE_VALUES}},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
                "name": "t", "image": "python:3.12-slim",
                "command": ["python", "-c", checking_trial(), "${params.v}"],
                "env": [{"name": "V", "value": "${params.v}"}]}]}}}},
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(manifest))
    proc = subprocess.run([sys.executable, "-m", "kubesweep.cli", "run", "sweep.yaml",
                           "--out", "trials.jsonl", "--plain"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pwned" not in proc.stdout.replace("echo pwned", "")
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    ends = [r for r in map(json.loads, lines) if r["event"] == "end"]
    assert len(ends) == len(HOSTILE_VALUES)
    # each trial found its value intact (loss = its position; -1 if anything differed)
    by_value = {r["params"]["v"]: r for r in ends}
    assert set(by_value) == set(HOSTILE_VALUES)
    for position, value in enumerate(HOSTILE_VALUES):
        record = by_value[value]
        assert record["state"] == "succeeded", record
        assert record["value"] == position, (value[:40], record)
    assert not (tmp_path / "tmp").exists()
