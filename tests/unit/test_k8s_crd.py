"""The generated CRD: committed copy in sync, structural, and the parts kubectl shows."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubesweep.k8s.crd import crd, crd_yaml

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "crds" / "sweeps.kubesweep.io.yaml"


def test_committed_crd_matches_the_models():
    assert COMMITTED.read_text() == crd_yaml(), (
        "crds/sweeps.kubesweep.io.yaml is out of date with operator/kubesweep/spec.py; "
        "regenerate it: kubesweep crd > crds/sweeps.kubesweep.io.yaml")


def _walk(node, path="$"):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def test_schema_is_structural():
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or \
            node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        for banned in ("anyOf", "oneOf", "$ref", "default", "title"):
            assert banned not in node, f"{path} has {banned}"
        # null is a valid parameter value (W&B allows any JSON value), nothing else is null
        assert "nullable" not in node or (
            path.endswith((".value", ".values[]")) and
            node.get("x-kubernetes-preserve-unknown-fields")), f"{path} is nullable"


def test_names_columns_and_subresources():
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["sw"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Method", "Phase", "Trials", "Running", "Best", "Pareto", "Age"]


def test_descriptions_enums_and_rules_come_through():
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    param = spec["properties"]["parameters"]["additionalProperties"]
    assert "distribution" in param["properties"]["distribution"]["description"].lower()
    assert "log_uniform_values" in param["properties"]["distribution"]["enum"]
    assert spec["properties"]["method"]["enum"] == ["grid", "random", "bayes"]
    assert spec["properties"]["parallelism"]["minimum"] == 1
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("maxTrials" in r for r in rules)
    assert any("oldSelf" in r for r in rules)  # immutable fields
    param_rules = " ".join(r["rule"] for r in param["x-kubernetes-validations"])
    assert "self.min < self.max" in param_rules
    containers = spec["properties"]["trialTemplate"]["properties"]["spec"]["properties"][
        "template"]["properties"]["spec"]["properties"]["containers"]
    assert containers["minItems"] == 1


def test_yaml_round_trips():
    assert yaml.safe_load(crd_yaml()) == crd()


def test_readme_crd_reference_matches_the_models():
    from kubesweep.k8s.reference import update

    doc = REPO / "README.md"
    text = doc.read_text()
    assert update(text) == text, (
        "README.md's CRD reference is out of date: run "
        "python scripts/gen-crd-reference.py")


def test_the_immutability_rule_guards_every_spec_field_but_the_mutable_ones():
    """One list (rules.MUTABLE_FIELDS) decides what may change: the CEL rule compares
    every other field of the spec with its old value, and none of the mutable ones."""
    import re

    from kubesweep.rules import MUTABLE_FIELDS
    from kubesweep.spec import SweepSpec

    fields = set(SweepSpec.model_fields)
    assert set(MUTABLE_FIELDS) <= fields, "a mutable field that the spec does not have"
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    [rule] = [r for r in spec["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    compared = set(re.findall(r"oldSelf\.(\w+)", rule["rule"]))
    assert compared == fields - set(MUTABLE_FIELDS)
    assert ", ".join(MUTABLE_FIELDS) in rule["message"]
