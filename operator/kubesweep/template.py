"""Turning the trial template and a trial's parameters into what runs: a Job or a command."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubesweep.spec import PLACEHOLDER, SweepSpec

PARAMS_ENV = "KUBESWEEP_PARAMS"
TRIAL_ENV = "KUBESWEEP_TRIAL"


def format_value(value: Any) -> str:
    """A parameter value as text on a command line (floats in shortest round-trip form)."""
    return str(value)


def escape_dollars(text: str) -> str:
    """`text` as Kubernetes passes it on verbatim: it expands `$(VAR)` in a container's
    command, args and env values, and `$$` stands for one `$`."""
    return text.replace("$", "$$")


def substitute(text: str, params: dict[str, Any], trial_name: str, trial_index: int,
               sweep_name: str, escape: bool = False) -> str:
    """Replace `${params.NAME}`, `${trial.name}`, `${trial.index}`, `${sweep.name}` in text.

    With `escape`, substituted values have `$` doubled (`escape_dollars`), so a value such
    as `$(HOSTNAME)` reaches a Kubernetes container as written; the template's own text
    is left alone (its `$(VAR)` references are the user's to make).
    """
    known = {"trial.name": trial_name, "trial.index": str(trial_index), "sweep.name": sweep_name}

    def repl(match: Any) -> str:
        ref = match.group(1).strip()
        if ref.startswith("params."):
            value = format_value(params[ref[len("params."):]])
        else:
            value = known[ref]
        return escape_dollars(value) if escape else value

    return PLACEHOLDER.sub(repl, text)


def render_container(container: dict[str, Any], params: dict[str, Any], trial_name: str,
                     trial_index: int, sweep_name: str,
                     escape: bool = False) -> dict[str, Any]:
    """A copy of the primary container with parameters substituted and trial env added.

    `escape` (for a Kubernetes Job) keeps Kubernetes from expanding `$(VAR)` inside the
    values kubesweep puts in (see `substitute`)."""
    out = copy.deepcopy(container)
    quote = escape_dollars if escape else str

    def sub(text: Any) -> str:
        return substitute(str(text), params, trial_name, trial_index, sweep_name, escape)

    if out.get("command"):
        out["command"] = [sub(x) for x in out["command"]]
    if out.get("args"):
        out["args"] = [sub(x) for x in out["args"]]
    env = [dict(e, value=sub(e["value"])) if "value" in e else dict(e)
           for e in out.get("env") or []
           if e.get("name") not in (PARAMS_ENV, TRIAL_ENV)]
    env.append({"name": PARAMS_ENV, "value": quote(json.dumps(params, sort_keys=True))})
    env.append({"name": TRIAL_ENV, "value": quote(trial_name)})
    out["env"] = env
    return out


def local_command(spec: SweepSpec, params: dict[str, Any], trial_name: str, trial_index: int,
                  sweep_name: str) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that run one trial as a local process."""
    container = render_container(spec.primary_container(), params, trial_name, trial_index,
                                 sweep_name)
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv:
        raise ValueError(
            "trialTemplate: the primary container has no command or args; a local run needs "
            "the command that starts training, e.g. command: [python, train.py]"
        )
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return argv, env
