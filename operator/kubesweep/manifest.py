"""Reading Sweep manifests from YAML files, with errors that point at the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kubesweep.spec import KIND, SpecError, Sweep, parse_sweep
from kubesweep.wandb_config import WandbConfigError, is_wandb_config, to_sweep


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


#: Sweep field names as a W&B config spells them (for errors about a W&B file).
_WANDB_FIELDS = (("spec.maxTrials", "run_cap"), ("spec.earlyTerminate", "early_terminate"),
                 ("imputeWhileRunning", "impute_while_running"), ("minIter", "min_iter"),
                 ("maxIter", "max_iter"), ("spec.", ""))


def _wandb_path(field: str) -> str:
    for ours, theirs in _WANDB_FIELDS:
        field = field.replace(ours, theirs)
    return field


def load_sweep_document(path: Path, name: str | None = None,
                        warnings: list[str] | None = None, *, max_trials: int | None = None,
                        image: str | None = None) -> tuple[dict[str, Any], bool]:
    """The Sweep manifest in `path` as a dict, and whether it was a W&B sweep config.

    A file holding no Sweep but one W&B sweep config is converted (kubesweep.wandb_config):
    `max_trials` is the budget when it has no `run_cap`, `image` its trial image.
    """
    all_docs = load_documents(path)
    docs = [d for d in all_docs if isinstance(d, dict) and d.get("kind") == KIND]
    if not docs and len(all_docs) == 1 and is_wandb_config(all_docs[0]):
        try:
            converted = to_sweep(all_docs[0], name=path.stem, image=image,
                                 max_trials=max_trials, notes=warnings)
        except WandbConfigError as exc:
            raise ManifestError(f"{path}: W&B sweep config: {exc}") from None
        return converted, True
    if name is not None:
        docs = [d for d in docs if (d.get("metadata") or {}).get("name") == name]
    if not docs:
        which = f" named {name!r}" if name else ""
        hint = "" if name else " (nor a W&B sweep config: method, parameters, ...)"
        raise ManifestError(f"{path}: no document of kind: Sweep{which}{hint}")
    if len(docs) > 1:
        names = ", ".join(str((d.get("metadata") or {}).get("name")) for d in docs)
        raise ManifestError(f"{path}: holds several Sweeps ({names}); choose one with --name")
    return docs[0], False


def load_sweep(path: Path, name: str | None = None,
               warnings: list[str] | None = None, *, max_trials: int | None = None,
               image: str | None = None) -> Sweep:
    """The Sweep in a manifest file (the one called `name` when the file holds several),
    or the Sweep equivalent to the W&B sweep config in it.

    Notes about how the manifest is read (see `whole_float_bounds`) go to `warnings`.
    A W&B file keeps its YAML's own types (`min: 0.0` is a float, as W&B reads it).
    """
    doc, from_wandb = load_sweep_document(path, name, warnings, max_trials=max_trials,
                                          image=image)
    if from_wandb:
        try:
            return parse_sweep(doc)
        except SpecError as exc:
            raise SpecError([(_wandb_path(f), m) for f, m in exc.problems]) from None
        except RecursionError:
            raise ManifestError(f"{path}: the W&B config is nested too deeply") from None
    if warnings is not None:
        warnings.extend(whole_float_bounds(doc))
    try:
        sweep = parse_sweep(as_json_numbers(doc))
    except RecursionError:
        raise ManifestError(f"{path}: the Sweep is nested too deeply to be a manifest") from None
    if not sweep.metadata.name:
        sweep.metadata.name = path.stem
    return sweep
