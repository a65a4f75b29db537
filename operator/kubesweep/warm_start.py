"""Warm start: finished trials of earlier sweeps that seed a new sweep's model.

Where they come from: locally, the results files `kubesweep run` wrote
(`warmStart.sweeps: [NAME]` reads kubesweep-results/NAME/trials.jsonl next to this
sweep's own results; `warmStart.results: [PATH]` names files or their directories); on a
cluster, the status.history of Sweeps in the same namespace (kubesweep.k8s reads those).

Which ones count: a trial that succeeded, reported every objective of the new sweep, and
whose parameters the new space can produce (every parameter of the new space present
with a value inside its range or among its choices; parameters the new space no longer
has are ignored). They only inform the model: they never count toward the new sweep's
budget, its best trial or its Pareto front.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubesweep.space import Constant, IntUniform, Space
from kubesweep.spec import SweepSpec
from kubesweep.tuner import Trial

#: The results file name of `kubesweep run` inside a sweep's results directory.
RESULTS_FILE = "trials.jsonl"


class WarmStartError(ValueError):
    """A warm-start source that cannot be read (named in the message)."""


def fits(space: Space, params: Mapping[str, Any]) -> bool:
    """True when every parameter of `space` has a value in `params` it can produce."""
    for d in space.dimensions:
        if d.name not in params:
            return False
        value = params[d.name]
        param = d.param
        if isinstance(d, Constant):
            if value != param.value or type(value) is not type(param.value):
                return False
            continue
        if d.kind == "categorical":
            try:
                d.encode(value)
            except (ValueError, KeyError, TypeError):
                return False
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            return False
        if isinstance(d, IntUniform) and float(value) != int(value):
            return False
        if param.min is not None and value < param.min:
            return False
        if param.max is not None and value > param.max:
            return False
    return True


def with_objective(trial: Trial, objective: str | None) -> Trial:
    """The trial with its summary value also under its objective's name in `metrics`, so
    a new sweep optimising that metric reads the value the old one optimised."""
    if objective is not None and trial.value is not None:
        trial.metrics = {**trial.metrics, objective: trial.value}
    return trial


def local_sources(spec: SweepSpec, results_root: Path) -> list[Path]:
    """The results files a local sweep's warmStart names (`results_root` holds one
    directory per sweep name, as kubesweep-results/)."""
    if spec.warmStart is None:
        return []
    paths = [(results_root / name / RESULTS_FILE).resolve()
             for name in spec.warmStart.sweeps or []]
    for text in spec.warmStart.results or []:
        path = Path(text).resolve()
        paths.append(path / RESULTS_FILE if path.is_dir() else path)
    return list(dict.fromkeys(paths))  # one source named twice is read once


def read_local(spec: SweepSpec, results_root: Path) -> list[Trial]:
    """Finished trials of every local warm-start source (raises WarmStartError)."""
    from kubesweep.local.results import ResultsError, read_results

    trials: list[Trial] = []
    for path in local_sources(spec, results_root):
        if not path.is_file():
            raise WarmStartError(f"warmStart: {path} does not exist (no results of an earlier "
                                 "`kubesweep run` there)")
        try:
            recorded = read_results(path)
        except (ResultsError, OSError, KeyError, ValueError) as exc:
            raise WarmStartError(f"warmStart: cannot read {path}: {exc}") from None
        objective = _objective_of((recorded.header or {}).get("spec"))
        trials += [with_objective(t, objective) for t in recorded.finished]
    return trials


def _objective_of(spec: Any) -> str | None:
    if isinstance(spec, Mapping) and isinstance(spec.get("metric"), Mapping):
        name = spec["metric"].get("name")
        return name if isinstance(name, str) else None
    return None
