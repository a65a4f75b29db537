"""W&B sweep files, read as they are: `kubesweep run sweep.yaml` and `kubesweep convert`.

A W&B sweep config (`method`, `metric`, `parameters`, `early_terminate`, `run_cap`,
`program`, `command`, `name`, `description`) becomes the equivalent Sweep:

- `program` and `command` become the trial container's command: `${env}`,
  `${interpreter}` and `${program}` are resolved here as `wandb agent` resolves them
  (`/usr/bin/env`, `python`, the program); `${args}`, `${args_no_hyphens}`, `${args_json}`,
  `${args_json_file}` and the other argument macros stay in the command and expand per
  trial (kubesweep.template), as the agent expands them per run.
- Parameters keep the YAML's own types: `min: 0.0, max: 1.0` is `uniform` (as W&B reads
  it), so the distribution is written out explicitly; the exponent forms `log_uniform`,
  `q_log_uniform` and `inv_log_uniform` become their `*_values` equivalents (the same
  distribution over the same values).
- The metric's trial value is the best value the trial logged (W&B's engine ranks a run by
  its extremum).

A config using a W&B feature kubesweep does not have is refused with a message that
names the feature (`method: custom`, `scheduler`, `metrics`, Launch's `job`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from kubesweep.spec import ARGS_PLACEHOLDERS, ENVVAR, PLACEHOLDER

#: The command `wandb agent` runs when the config has none.
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
#: What the agent puts for `${env}` and `${interpreter}` (on Linux).
ENV_COMMAND = "/usr/bin/env"
INTERPRETER = "python"
#: Image of a converted Sweep's trial container when `--image` is not given.
DEFAULT_IMAGE = "python:3.12-slim"
#: Annotation holding a W&B config's `description`.
DESCRIPTION_ANNOTATION = "kubesweep.io/description"

#: Top-level keys of a W&B sweep config that kubesweep reads.
READ_KEYS = {"method", "metric", "parameters", "early_terminate", "run_cap", "program",
             "command", "name", "description"}
#: Keys that only address W&B's servers; they do not change what runs.
IGNORED_KEYS = {"entity", "project", "apiVersion", "kind", "controller"}
#: Keys of W&B features kubesweep does not have, and what each one is.
UNSUPPORTED_KEYS = {
    "scheduler": "a custom scheduler (`scheduler`, W&B's Optuna/Ax engines)",
    "metrics": "several objectives (`metrics`, W&B's method: custom)",
    "job": "W&B Launch jobs (`job`)",
    "image_uri": "W&B Launch images (`image_uri`)",
}
#: The exponent forms W&B still accepts, and their `*_values` equivalents.
EXPONENT_FORMS = {
    "log_uniform": "log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
}
#: W&B metric keys and their Sweep spelling.
METRIC_KEYS = {"name": "name", "goal": "goal", "target": "target", "impute": "impute",
               "impute_while_running": "imputeWhileRunning"}
EARLY_TERMINATE_KEYS = {"type": "type", "min_iter": "minIter", "max_iter": "maxIter",
                        "s": "s", "eta": "eta", "strict": "strict"}


class WandbConfigError(ValueError):
    """A W&B sweep config kubesweep cannot run; the message names the field or feature."""


def is_wandb_config(doc: Any) -> bool:
    """True when a YAML document is a W&B sweep config rather than a Kubernetes object."""
    if not isinstance(doc, dict):
        return False
    kind = doc.get("kind")
    if kind not in (None, "sweep"):
        return False
    return "method" in doc or "parameters" in doc


def _unsupported(feature: str) -> WandbConfigError:
    return WandbConfigError(f"uses {feature}, a W&B feature kubesweep does not support")


def _dns_name(text: str) -> str:
    """`text` as a Kubernetes object name (lowercase letters, digits and -)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "sweep"


def convert_parameter(path: str, param: Any) -> dict[str, Any]:
    """One W&B parameter as a Sweep parameter, with its distribution written out."""
    if not isinstance(param, dict):
        raise WandbConfigError(
            f"parameters.{path}: must be a mapping such as {{values: [...]}} or "
            f"{{min: 0, max: 1}} (got {param!r})"
        )
    out = dict(param)
    if "parameters" in out and isinstance(out["parameters"], dict):
        out["parameters"] = {k: convert_parameter(f"{path}.{k}", v)
                             for k, v in out["parameters"].items()}
        return out
    dist = out.get("distribution")
    if dist is None and "value" in out and out["value"] is None:
        # a null constant: Kubernetes drops `value: null` inside nested parameters, and
        # `distribution: constant` without a value keeps meaning null
        out["distribution"] = "constant"
    elif dist == "categorical_w_probabilities":
        out["distribution"] = "categorical"
    elif dist in EXPONENT_FORMS:
        _from_exponents(path, out, dist)
    elif dist is None and "min" in out and "max" in out and "values" not in out:
        # W&B reads the YAML's types: both bounds integers → int_uniform, else uniform
        ints = all(isinstance(out[k], int) and not isinstance(out[k], bool)
                   for k in ("min", "max"))
        out["distribution"] = "int_uniform" if ints else "uniform"
    elif dist is None and "values" not in out and "value" not in out and \
            ("mu" in out or "sigma" in out):
        raise WandbConfigError(
            f"parameters.{path}: W&B needs `distribution` for mu/sigma (normal or log_normal)"
        )
    return out


def _from_exponents(path: str, out: dict[str, Any], dist: str) -> None:
    """W&B's deprecated exponent forms as the same distribution over actual values."""
    low, high = out.get("min"), out.get("max")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise WandbConfigError(f"parameters.{path}: {dist} needs numeric min and max")
    if dist == "inv_log_uniform":
        # W&B draws exp(-u) with u uniform in [min, max]: log-uniform on [e^-max, e^-min]
        low, high = -high, -low
    # e^x is a positive finite float only for x in about (-745, 709)
    bounds = [math.exp(v) if v < 709 else math.inf for v in (low, high)]
    if not all(0 < v < math.inf for v in bounds):
        raise WandbConfigError(
            f"parameters.{path}: {dist} takes exponents (values e^min..e^max), and "
            f"min {out['min']:g}, max {out['max']:g} give values no float holds; use "
            f"exponents between -745 and 709, or {EXPONENT_FORMS[dist]} with the values"
        )
    out["distribution"] = EXPONENT_FORMS[dist]
    out["min"], out["max"] = bounds


def convert_command(command: Any, program: Any, notes: list[str] | None = None) -> list[str]:
    """W&B's `command` as the trial container's command, as `wandb agent` would resolve it.

    Notes about items passed on literally go to `notes`.
    """
    notes = notes if notes is not None else []
    items = DEFAULT_COMMAND if command is None else command
    if not isinstance(items, list) or not items:
        raise WandbConfigError(f"command: must be a non-empty list (got {command!r})")
    out: list[str] = []
    for item in items:
        text = str(item)  # the agent runs str() on every item: numbers become text
        macro = text[2:-1] if text.startswith("${") and text.endswith("}") else None
        if macro == "env":
            out.append(ENV_COMMAND)
        elif macro == "interpreter":
            out.append(INTERPRETER)
        elif macro == "program":
            if (not isinstance(program, str) or not program) and command is None:
                raise WandbConfigError(
                    "program: missing; W&B runs a config without program or command only "
                    "through wandb.agent(sweep_id, function=...) inside Python, which "
                    "kubesweep cannot call: add program: train.py (or a command)"
                )
            if not isinstance(program, str) or not program:
                raise WandbConfigError(
                    "program: required, because command uses ${program} (the default "
                    "command is ${env} ${interpreter} ${program} ${args}); e.g. "
                    "program: train.py"
                )
            out.append(program)
        elif macro is not None and macro not in ARGS_PLACEHOLDERS and \
                not ENVVAR.fullmatch(macro):
            valid = ", ".join("${" + m + "}" for m in
                              ("env", "interpreter", "program", *ARGS_PLACEHOLDERS,
                               "envvar:NAME"))
            raise WandbConfigError(f"command: unknown macro {text}; W&B's agent knows {valid}")
        else:
            inner = [r for r in PLACEHOLDER.findall(text) if not ENVVAR.fullmatch(r.strip())]
            for ref in inner if macro is None else ():
                # W&B's agent expands a macro only when it is a whole item and passes this
                # one on as it is written: escape it so the trial gets it literally too
                text = text.replace(f"${{{ref}}}", f"$${{{ref}}}")
                notes.append(f"command: {str(item)!r} is passed as it is written: W&B's agent "
                             "expands a macro only when it is a whole item")
            out.append(text)
    return out


def to_sweep(config: dict[str, Any], *, name: str, image: str | None = None,
             max_trials: int | None = None, notes: list[str] | None = None) -> dict[str, Any]:
    """The Sweep manifest (a dict) equivalent to a W&B sweep config.

    `name` is used when the config has none; `max_trials` is the budget of a config
    without `run_cap` (W&B runs such a sweep until its agents stop, `--count N`).
    Notes about what was ignored go to `notes`. Raises WandbConfigError.
    """
    notes = notes if notes is not None else []
    for key, feature in UNSUPPORTED_KEYS.items():
        if key in config:
            raise _unsupported(feature)
    unknown = sorted(k for k in config if k not in READ_KEYS | IGNORED_KEYS)
    if unknown:
        raise WandbConfigError(
            f"unknown W&B sweep key(s): {', '.join(unknown)}; W&B sweep configs have "
            f"{', '.join(sorted(READ_KEYS | IGNORED_KEYS | set(UNSUPPORTED_KEYS)))}"
        )
    ignored = sorted(k for k in config if k in IGNORED_KEYS - {"kind"})
    if ignored:
        notes.append(f"ignored {', '.join(ignored)} (they address W&B's servers)")
    method = config.get("method")
    if method == "custom":
        raise _unsupported("`method: custom` (a scheduler outside W&B's engine)")
    if "parameters" not in config:
        raise WandbConfigError(
            "parameters: missing; kubesweep searches the space `parameters` defines (a "
            "space that a W&B scheduler defines instead is not supported)"
        )
    params = config["parameters"]
    if not isinstance(params, dict):
        raise WandbConfigError(f"parameters: must be a mapping of names (got {params!r})")
    spec: dict[str, Any] = {
        "method": method,
        "parameters": {k: convert_parameter(k, v) for k, v in params.items()},
    }
    if "metric" in config:
        spec["metric"] = _rename(config["metric"], METRIC_KEYS, "metric")
        if isinstance(spec["metric"], dict):
            spec["metric"]["summary"] = "best"
    if "early_terminate" in config:
        spec["earlyTerminate"] = _rename(config["early_terminate"], EARLY_TERMINATE_KEYS,
                                         "early_terminate")
        s = spec["earlyTerminate"].get("s") if isinstance(spec["earlyTerminate"], dict) \
            else None
        if isinstance(s, float) and s.is_integer():
            spec["earlyTerminate"]["s"] = int(s)
    if "run_cap" in config:
        spec["maxTrials"] = config["run_cap"]
    elif max_trials is not None:
        spec["maxTrials"] = max_trials
    elif method in ("random", "bayes"):
        raise WandbConfigError(
            f"run_cap: missing, and W&B runs a {method} sweep without it until its agents "
            "stop (`wandb agent --count N`); give the budget with --max-trials N or add "
            "run_cap: N"
        )
    container = {"name": "trial", "image": image or DEFAULT_IMAGE,
                 "command": convert_command(config.get("command"), config.get("program"), notes)}
    spec["trialTemplate"] = {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [container]}}}}
    metadata: dict[str, Any] = {"name": _dns_name(str(config.get("name") or name))}
    if config.get("description"):
        metadata["annotations"] = {DESCRIPTION_ANNOTATION: str(config["description"])}
    return {"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep", "metadata": metadata,
            "spec": spec}


def _rename(section: Any, keys: dict[str, str], field: str) -> Any:
    if not isinstance(section, dict):
        return section  # the Sweep's validation names the field and the problem
    unknown = sorted(k for k in section if k not in keys)
    if unknown:
        raise WandbConfigError(
            f"{field}: unknown key(s) {', '.join(unknown)}; W&B's {field} has "
            f"{', '.join(keys)}"
        )
    return {keys[k]: v for k, v in section.items()}
