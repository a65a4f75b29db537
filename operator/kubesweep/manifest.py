"""Reading Sweep manifests from YAML files, with errors that point at the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kubesweep.spec import KIND, Sweep, parse_sweep


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; sweeps are full of such numbers, so read them as
    floats the way YAML 1.2 (and kubectl) does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class ManifestError(ValueError):
    """A manifest file that cannot be read or holds no usable Sweep."""


#: Largest manifest read: a Sweep is a few kB; anything near this is not one.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Most YAML nodes a manifest may hold once its aliases (`*name`) are expanded. Everything
#: that walks the document expands them, so a few nested anchors (a "billion laughs"
#: file) would otherwise take forever.
MAX_EXPANDED_NODES = 200_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes under `node` with every alias expanded (each shared node counted once per use)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive anchor counts once instead of looping
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = total
    return total


def load_documents(path: Path) -> list[Any]:
    """Every YAML document in `path`."""
    try:
        data = path.read_bytes() if path.stat().st_size <= MAX_MANIFEST_BYTES else None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data is None:
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES // 2**20} MiB; "
                            "a Sweep manifest is a small YAML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}); save the manifest as UTF-8") from None
    try:
        memo: dict[int, int] = {}
        size = sum(_expanded_size(node, memo) for node in yaml.compose_all(text, Loader=_Loader))
        if size > MAX_EXPANDED_NODES:
            raise ManifestError(f"{path}: its YAML aliases (*name) expand to {size:,} values, "
                                f"more than {MAX_EXPANDED_NODES:,}; write the values out instead")
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except RecursionError:
        raise ManifestError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{path}:{where}: invalid YAML: {problem}") from None


def as_json_numbers(value: Any) -> Any:
    """`value` with whole floats turned into ints, as kubectl's YAML → JSON does (1.0 → 1).

    Applied to local runs too, so one manifest means the same on a laptop and on a cluster.
    """
    if isinstance(value, dict):
        return {k: as_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def whole_float_bounds(doc: dict[str, Any]) -> list[str]:
    """Warnings for parameters whose bounds are written as whole floats (`min: 0.0`) with no
    `distribution`: like kubectl, kubesweep reads them as integers and infers int_uniform."""
    spec = doc.get("spec")
    params = spec.get("parameters") if isinstance(spec, dict) else None
    notes = []
    for name, param in params.items() if isinstance(params, dict) else ():
        if not isinstance(param, dict) or "distribution" in param:
            continue
        bounds = [param.get("min"), param.get("max")]
        if all(isinstance(b, (int, float)) for b in bounds) and \
                any(isinstance(b, float) for b in bounds) and \
                all(float(b).is_integer() for b in bounds):
            notes.append(
                f"spec.parameters.{name}: min {bounds[0]} and max {bounds[1]} are whole numbers, "
                "so int_uniform is inferred (Kubernetes stores 1.0 as 1); add "
                "`distribution: uniform` for real values"
            )
    return notes


def load_sweep(path: Path, name: str | None = None,
               warnings: list[str] | None = None) -> Sweep:
    """The Sweep in a manifest file (the one called `name` when the file holds several).

    Notes about how the manifest is read (see `whole_float_bounds`) go to `warnings`.
    """
    docs = [d for d in load_documents(path) if isinstance(d, dict) and d.get("kind") == KIND]
    if name is not None:
        docs = [d for d in docs if (d.get("metadata") or {}).get("name") == name]
    if not docs:
        which = f" named {name!r}" if name else ""
        raise ManifestError(f"{path}: no document of kind: Sweep{which}")
    if len(docs) > 1:
        names = ", ".join(str((d.get("metadata") or {}).get("name")) for d in docs)
        raise ManifestError(f"{path}: holds several Sweeps ({names}); choose one with --name")
    if warnings is not None:
        warnings.extend(whole_float_bounds(docs[0]))
    try:
        sweep = parse_sweep(as_json_numbers(docs[0]))
    except RecursionError:
        raise ManifestError(f"{path}: the Sweep is nested too deeply to be a manifest") from None
    if not sweep.metadata.name:
        sweep.metadata.name = path.stem
    return sweep
