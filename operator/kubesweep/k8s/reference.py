"""A Markdown reference of the Sweep resource, rendered from the generated CRD schema.

`scripts/gen-crd-reference.py` writes it into README.md between markers; a unit
test fails when the committed text differs, so the docs follow the spec models.
"""

from __future__ import annotations

from typing import Any

from kubesweep.k8s.crd import crd

BEGIN = "<!-- BEGIN GENERATED CRD REFERENCE (scripts/gen-crd-reference.py) -->"
END = "<!-- END GENERATED CRD REFERENCE -->"


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        return "string, number or boolean"
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {_type(node.get('items') or {})}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {_type(node['additionalProperties'])}"
    return str(kind)


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "minimum" in node:
        op = ">" if node.get("exclusiveMinimum") else "≥"
        parts.append(f"{op} {node['minimum']:g}")
    if "minItems" in node:
        parts.append(f"at least {node['minItems']} item(s)")
    if "minLength" in node:
        parts.append(f"at least {node['minLength']} character(s)")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(path: str, node: dict[str, Any], out: list[str], nested: list) -> None:
    required = set(node.get("required") or [])
    out.append(f"### `{path}`\n")
    if node.get("description"):
        out.append(_cell(node["description"]) + "\n")
    out.append("| field | type | required | description |")
    out.append("|---|---|---|---|")
    for name, child in (node.get("properties") or {}).items():
        desc = _cell(child.get("description", ""))
        extra = _constraints(child)
        if extra:
            desc = f"{desc} ({extra})" if desc else extra
        out.append(f"| `{name}` | {_type(child)} | {'yes' if name in required else ''} | "
                   f"{desc} |")
        target = child
        suffix = ""
        if isinstance(child.get("additionalProperties"), dict):
            target, suffix = child["additionalProperties"], ".<name>"
        elif child.get("type") == "array" and isinstance(child.get("items"), dict):
            target, suffix = child["items"], "[]"
        if target.get("properties") and not child.get("x-kubernetes-preserve-unknown-fields"):
            nested.append((f"{path}.{name}{suffix}", target))
    rules = node.get("x-kubernetes-validations") or []
    if rules:
        out.append("\nChecked by the API server at `kubectl apply`:\n")
        out.extend(f"- {_cell(r['message'])}" for r in rules)
    out.append("")


def render_reference() -> str:
    """The reference section (between the BEGIN/END markers, markers included)."""
    version = crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    out = [BEGIN, "", "Generated from `operator/kubesweep/spec.py` via the CRD schema; do not "
           "edit by hand (run `python scripts/gen-crd-reference.py`).", ""]
    queue: list[tuple[str, dict[str, Any]]] = [("spec", schema["spec"])]
    while queue:
        path, node = queue.pop(0)
        nested: list[tuple[str, dict[str, Any]]] = []
        _table(path, node, out, nested)
        queue[0:0] = nested
    out.append("### `spec.trialTemplate`\n")
    out.append(_cell(schema["spec"]["properties"]["trialTemplate"]["description"]) +
               " Any batch/v1 JobSpec fields are accepted; `spec.template.spec.containers` "
               "must list at least one container with a `name`.\n")
    queue = [("status", schema["status"])]
    while queue:
        path, node = queue.pop(0)
        nested = []
        _table(path, node, out, nested)
        queue[0:0] = nested
    out.append("### `kubectl get sweeps` columns\n")
    out.append("| column | from |")
    out.append("|---|---|")
    for col in version["additionalPrinterColumns"]:
        out.append(f"| {col['name']} | `{col['jsonPath']}` |")
    out.extend(["", END])
    return "\n".join(out) + "\n"


def update(text: str) -> str:
    """`text` (README.md) with the section between the markers regenerated."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render_reference().rstrip("\n") + text[end:]
