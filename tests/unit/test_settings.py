"""One set of operator defaults: the CLI flags and the Helm chart follow `Settings`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from kubesweep.cli import build_parser
from kubesweep.settings import Settings, flag_name, from_args

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubesweep"


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def test_the_cli_flags_default_to_the_settings():
    args = build_parser().parse_args(["operator"])
    assert from_args(args) == Settings()
    args = build_parser().parse_args(["operator", "--poll-interval", "2.5", "--workers", "7",
                                      "--metrics-address", "127.0.0.1"])
    assert from_args(args) == Settings(poll_interval=2.5, workers=7,
                                       metrics_address="127.0.0.1")


def test_the_chart_defaults_are_the_settings_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    shared = {key: value for key, value in values.items() if _snake(key) in fields}
    # the chart sets these; a new Setting need not be in the chart, but one that is must
    # default to the same value
    assert {"metricsPort", "livenessPort", "trialStartTimeout", "workers",
            "gpuResourceName"} <= set(shared)
    for key, value in shared.items():
        assert value == fields[_snake(key)], f"values.yaml operator.{key}"


def test_the_chart_passes_each_value_to_its_flag():
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    passed = re.findall(r'printf "(--[a-z-]+)=%[vs]" \.Values\.operator\.(\w+)', helpers)
    assert passed, "no operator flags found in the chart's kubesweep.args"
    for flag, key in passed:
        assert flag == flag_name(_snake(key)), f"{flag} is fed from operator.{key}"


def _shown(default: object) -> str:
    """A default as the docs' tables write it."""
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def test_every_flag_is_documented_with_its_default():
    text = (CHART.parents[1] / "docs" / "operator.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"^\| `(--[a-z-]+)[^|]*\| ([^|]+) \|", text, flags=re.M)}
    for f in dataclasses.fields(Settings):
        flag = flag_name(f.name)
        assert flag in rows, f"{flag} not in docs/operator.md's flag table"
        if isinstance(f.default, bool):
            assert rows[flag].startswith("on" if f.default else "off"), flag
        elif f.default != "":  # an empty default is described in words
            assert rows[flag].strip("`") == _shown(f.default), \
                f"docs/operator.md: {flag} defaults to {rows[flag]}, the code to {f.default}"


def test_the_helm_docs_show_the_chart_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]
    text = (CHART.parents[1] / "docs" / "helm.md").read_text()
    fields = {f.name for f in dataclasses.fields(Settings)}
    for key, value in values.items():
        if _snake(key) not in fields:
            continue
        row = re.search(rf"^\| `operator\.{key}` \| `([^`]*)` \|", text, flags=re.M)
        assert row, f"docs/helm.md has no row for operator.{key}"
        assert row.group(1) == _shown(value), f"docs/helm.md: operator.{key}"
