"""Turning the trial template and a trial's parameters into what runs: a Job or a command.

Besides `${params.NAME}`, `${trial.name}`, `${trial.index}` and `${sweep.name}` inside any
string, a command or args item that is exactly one of W&B's agent macros (`${args}`,
`${args_no_hyphens}`, `${args_json}`, ...) expands to several items the way `wandb agent`
builds them, and `${envvar:NAME}` is an environment variable's value. `$${...}` is a
literal `${...}`.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

from kubesweep.spec import ARGS_PLACEHOLDERS, ENVVAR, Parameter, SweepSpec, nest_params

PARAMS_ENV = "KUBESWEEP_PARAMS"
TRIAL_ENV = "KUBESWEEP_TRIAL"
#: Where `${args_json_file}` points inside a trial container (written before the command).
CLUSTER_PARAMS_FILE = "/tmp/kubesweep-params.json"
#: The shell step that writes it: the parameters are already in $KUBESWEEP_PARAMS.
_WRITE_PARAMS_FILE = f'printf "%s" "${PARAMS_ENV}" > {CLUSTER_PARAMS_FILE} && exec "$@"'
#: `${REF}` to substitute, or `$${REF}`: a literal `${REF}` (kubesweep.spec.PLACEHOLDER).
_TOKEN = re.compile(r"\$(\$?)\{([^}]*)\}")


def format_value(value: Any) -> str:
    """A parameter value as text in `${params.NAME}`: scalars as Python prints them (floats in
    shortest round-trip form), lists, objects and null as JSON."""
    if value is None or isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def escape_dollars(text: str) -> str:
    """`text` as Kubernetes passes it on verbatim: it expands `$(VAR)` in a container's
    command, args and env values, and `$$` stands for one `$`."""
    return text.replace("$", "$$")


def agent_args(config: dict[str, Any]) -> dict[str, list[str]]:
    """The expansions of W&B's agent macros for a trial's (nested) parameter values.

    As `wandb agent` builds them: `--name=value` with Python's str() of the value (so a
    nested object reads `--opt={'lr': 0.1}` and a boolean `--flag=True`), `${args_json}`
    one JSON item, `${args_no_boolean_flags}` `--flag` for true and nothing for false.
    """
    flags = [f"{name}={value}" for name, value in config.items()]
    no_booleans = []
    for name, value in config.items():
        if isinstance(value, bool):
            no_booleans += [f"--{name}"] if value else []
        else:
            no_booleans.append(f"--{name}={value}")
    return {
        "args": ["--" + f for f in flags],
        "args_no_equals": [x for name, value in config.items() for x in (f"--{name}",
                                                                         str(value))],
        "args_no_hyphens": flags,
        "args_no_boolean_flags": no_booleans,
        "args_json": [json.dumps(config)],
        "args_append_hydra": ["+" + f for f in flags],
        "args_override_hydra": ["++" + f for f in flags],
    }


def substitute(text: str, params: dict[str, Any], trial_name: str, trial_index: int,
               sweep_name: str, escape: bool = False, nested: dict[str, Any] | None = None,
               environ: dict[str, str] | None = None) -> str:
    """Replace `${params.NAME}`, `${trial.name}`, `${trial.index}`, `${sweep.name}` and
    `${envvar:NAME}` in text; `$${...}` becomes a literal `${...}`.

    With `escape`, substituted values have `$` doubled (`escape_dollars`), so a value such
    as `$(HOSTNAME)` reaches a Kubernetes container as written; the template's own text
    is left alone (its `$(VAR)` references are the user's to make). `nested` (the values
    as nested objects) lets `${params.GROUP}` name a whole nested group; `environ` is where
    `${envvar:NAME}` looks (W&B's agent: its own environment, the name itself when unset);
    without it the reference becomes Kubernetes' `$(NAME)`, which the kubelet fills from
    the container's environment.
    """
    known = {"trial.name": trial_name, "trial.index": str(trial_index), "sweep.name": sweep_name}

    def value_of(ref: str) -> str:
        if ref.startswith("params."):
            name = ref[len("params."):]
            if name in params:
                return format_value(params[name])
            value: Any = nested or {}
            for part in name.split("."):
                value = value[part]
            return format_value(value)
        return known[ref]

    def repl(match: Any) -> str:
        ref = match.group(2).strip()
        if match.group(1):
            return f"${{{match.group(2)}}}"  # $${...}: literal
        envvar = ENVVAR.fullmatch(ref)
        if envvar:
            var = envvar.group(1)
            return environ.get(var, var) if environ is not None else f"$({var})"
        value = value_of(ref)
        return escape_dollars(value) if escape else value

    return _TOKEN.sub(repl, text)


def render_container(container: dict[str, Any], params: dict[str, Any], trial_name: str,
                     trial_index: int, sweep_name: str,
                     parameters: dict[str, Parameter] | None = None, *,
                     escape: bool = False, environ: dict[str, str] | None = None,
                     params_file: str | None = None) -> dict[str, Any]:
    """A copy of the primary container with parameters substituted and trial env added.

    `parameters` (the spec's) gives nested parameters their shape: the trial receives them
    as nested objects in KUBESWEEP_PARAMS and the args macros. `escape` (for a Kubernetes
    Job) keeps Kubernetes from expanding `$(VAR)` inside the values kubesweep puts in (see
    `substitute`). `environ` and `params_file` are set for a local process; without them
    the container is for a cluster, where `${args_json_file}` is written by a shell step
    before the command runs.
    """
    out = copy.deepcopy(container)
    quote = escape_dollars if escape else str
    nested = nest_params(params, parameters) if parameters is not None else dict(params)
    macros = {k: [quote(x) for x in v] for k, v in agent_args(nested).items()}
    macros["args_json_file"] = [params_file or CLUSTER_PARAMS_FILE]

    def sub(text: Any) -> str:
        return substitute(str(text), params, trial_name, trial_index, sweep_name, escape,
                          nested, environ)

    def expand(items: list[Any]) -> list[str]:
        result: list[str] = []
        for item in items:
            text = str(item)
            if text.startswith("${") and text.endswith("}") and \
                    text[2:-1].strip() in ARGS_PLACEHOLDERS:
                result += macros[text[2:-1].strip()]
            else:
                result.append(sub(text))
        return result

    uses_file = any(str(x).strip() == "${args_json_file}"
                    for key in ("command", "args") for x in out.get(key) or [])
    if out.get("command"):
        out["command"] = expand(out["command"])
    if out.get("args"):
        out["args"] = expand(out["args"])
    if uses_file and params_file is None:
        argv = list(out.get("command") or []) + list(out.get("args") or [])
        out["command"] = ["/bin/sh", "-c", _WRITE_PARAMS_FILE, "kubesweep-trial", *argv]
        out.pop("args", None)
    env = [dict(e, value=sub(e["value"])) if "value" in e else dict(e)
           for e in out.get("env") or []
           if e.get("name") not in (PARAMS_ENV, TRIAL_ENV)]
    env.append({"name": PARAMS_ENV, "value": quote(json.dumps(nested, sort_keys=True))})
    env.append({"name": TRIAL_ENV, "value": quote(trial_name)})
    out["env"] = env
    return out


def local_command(spec: SweepSpec, params: dict[str, Any], trial_name: str, trial_index: int,
                  sweep_name: str, params_file: Path | None = None,
                  environ: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that run one trial as a local process.

    When the command uses `${args_json_file}`, the parameters are written to `params_file`
    (as `wandb agent` writes its config file) before this returns.
    """
    container = spec.primary_container()
    file_text = str(params_file) if params_file is not None else None
    rendered = render_container(container, params, trial_name, trial_index, sweep_name,
                                spec.parameters,
                                environ=dict(os.environ) if environ is None else environ,
                                params_file=file_text or "kubesweep-params.json")
    argv = list(rendered.get("command") or []) + list(rendered.get("args") or [])
    if not argv:
        raise ValueError(
            "trialTemplate: the primary container has no command or args; a local run needs "
            "the command that starts training, e.g. command: [python, train.py]"
        )
    uses_file = any(str(x).strip() == "${args_json_file}"
                    for key in ("command", "args") for x in container.get(key) or [])
    if uses_file and params_file is not None:
        params_file.parent.mkdir(parents=True, exist_ok=True)
        params_file.write_text(agent_args(nest_params(params, spec.parameters))["args_json"][0],
                               encoding="utf-8")
    env = {e["name"]: e["value"] for e in rendered["env"] if "value" in e}
    return argv, env
