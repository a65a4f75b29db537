"""Helpers for the Helm chart tests: run helm, render the chart, read the dashboard's
queries and the alert rules, find the tools (helm, promtool, hadolint)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.paths import REPO_ROOT, tools_bin_dir

CHART = REPO_ROOT / "charts" / "kubesweep"
DASHBOARD = CHART / "dashboards" / "kubesweep.json"
RULES = CHART / "rules" / "kubesweep.rules.yaml"
#: What the cluster tests serve the dashboard's template variables as: every namespace
#: and sweep ("All"), and rate windows a few scrapes long (the test scrapes every second).
VARIABLES = {"$namespace": ".*", "$sweep": ".*", "$__rate_interval": "20s",
             "$__interval": "5s", "${datasource}": "prometheus"}


def tool(name: str, hint: str) -> str:
    """Path of a required executable; fails the test (with how to install it) if absent."""
    candidates = [tools_bin_dir() / name, Path(sys.executable).parent / name]
    for path in candidates:
        if os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {hint}", pytrace=False)
    return found


def helm_path() -> str:
    """The pinned helm binary."""
    return tool("helm", "run scripts/install-tools.sh")


def run(args: list[str], check: bool = True, env: dict[str, str] | None = None,
        timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure (when `check`) raise with its whole output."""
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT,
                          env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None,
         timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Run helm with its caches in a private, writable place."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return run([helm_path(), *args], check=check, env=env, timeout=timeout)


def set_args(values: dict[str, Any] | None) -> list[str]:
    """`--set-json` flags for a dict of top-level values."""
    out: list[str] = []
    for key, value in (values or {}).items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def render(values: dict[str, Any] | None = None, *, release: str = "ks",
           namespace: str = "kubesweep-system", crds: bool = True) -> list[dict[str, Any]]:
    """`helm template` the chart with `values`; the rendered objects."""
    args = ["template", release, str(CHART), "--namespace", namespace, *set_args(values)]
    if crds:
        args.append("--include-crds")
    out = helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The rendered objects of one kind."""
    return [d for d in docs if d.get("kind") == kind]


def dashboard() -> dict[str, Any]:
    """The generated dashboard JSON."""
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panel_queries() -> list[tuple[str, str]]:
    """(panel title + refId, PromQL expression) of every dashboard query."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    return out


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of the generated rules file."""
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def substitute(expr: str) -> str:
    """A dashboard query as Grafana sends it with every variable at "All"."""
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr
