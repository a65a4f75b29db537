"""One sweep's trials as plain data, from a local results file or a cluster Sweep."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesweep.local.results import read_results
from kubesweep.space import Space
from kubesweep.spec import Goal, SpecError, SweepSpec, parse_spec

#: Trial states in the order tables list them by.
STATES = ("succeeded", "failed", "stopped", "running", "pending")


@dataclass
class TrialRow:
    """One trial as the views show it."""

    index: int
    name: str
    state: str
    params: dict[str, Any]
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: seconds the trial ran (None when no record of it is left)
    duration: float | None = None
    reason: str | None = None
    #: (step, value) of the objective's intermediate reports
    curve: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (what `-o json` prints)."""
        return {"index": self.index, "name": self.name, "state": self.state,
                "value": self.value, "params": self.params, "metrics": self.metrics,
                "duration": self.duration, "reason": self.reason}


@dataclass
class SweepResults:
    """What the views need to know about one sweep."""

    name: str
    spec: SweepSpec | None
    trials: list[TrialRow]
    #: where the results came from, for messages ("namespace/name" or a path)
    source: str
    #: index of the best trial as the sweep itself recorded it (None: compute it)
    best_index: int | None = None
    phase: str | None = None

    @property
    def metric(self) -> str:
        """Name of the objective metric."""
        return self.spec.metric.name if self.spec else "value"

    @property
    def maximize(self) -> bool:
        """True when larger values are better."""
        return bool(self.spec and self.spec.metric.goal is Goal.maximize)

    @property
    def space(self) -> Space | None:
        """The search space (None when the spec could not be read)."""
        return Space(self.spec.parameters) if self.spec else None

    @property
    def param_names(self) -> list[str]:
        """Parameters in manifest order, then any others trials carry."""
        names = list(self.spec.parameters) if self.spec else []
        for t in self.trials:
            names.extend(k for k in t.params if k not in names)
        return names

    @property
    def metric_names(self) -> list[str]:
        """Every metric a trial reported, sorted, without the objective itself."""
        return sorted({k for t in self.trials for k in t.metrics} - {self.metric})

    @property
    def best(self) -> TrialRow | None:
        """The best succeeded trial."""
        if self.best_index is not None:
            found = next((t for t in self.trials if t.index == self.best_index), None)
            if found is not None:
                return found
        scored = [t for t in self.trials if t.state == "succeeded" and t.value is not None
                  and math.isfinite(t.value)]
        if not scored:
            return None
        pick = max if self.maximize else min
        return pick(scored, key=lambda t: t.value)  # type: ignore[arg-type,return-value]


class ResultsNotFound(ValueError):
    """No results where the user pointed."""


def load_local(path: Path) -> SweepResults:
    """The results of `kubesweep run`: a results directory or its trials.jsonl."""
    file = path / "trials.jsonl" if path.is_dir() else path
    if not file.exists():
        raise ResultsNotFound(f"{path}: no results here (expected the directory "
                              "`kubesweep run` wrote, e.g. kubesweep-results/NAME, or its "
                              "trials.jsonl)")
    recorded = read_results(file)
    header = recorded.header or {}
    spec: SweepSpec | None = None
    try:
        spec = parse_spec(header["spec"]) if header.get("spec") else None
    except SpecError:
        spec = None
    rows = [TrialRow(t.index, t.name, t.state, dict(t.params), t.value, dict(t.metrics),
                     t.duration, t.reason, [(float(s), v) for s, v in t.history])
            for t in recorded.finished]
    rows += [TrialRow(t.index, t.name, "running", dict(t.params),
                      reason="started; no end recorded (still running, or interrupted)")
             for t in recorded.interrupted]
    rows.sort(key=lambda r: r.index)
    name = str(header.get("name") or file.parent.name)
    return SweepResults(name, spec, rows, str(file))


def from_cluster(sweep: dict[str, Any], jobs: list[dict[str, Any]],
                 now: datetime.datetime | None = None) -> SweepResults:
    """A Sweep object (with status) and its trial Jobs as `SweepResults`.

    Finished trials come from `status.history` (every one, even after their Jobs were
    pruned, with the duration the operator recorded); trials in flight from their Jobs.
    """
    from kubesweep.k8s import history, objects
    from kubesweep.k8s.names import job_name

    meta = sweep.get("metadata") or {}
    name = str(meta.get("name"))
    status = sweep.get("status") or {}
    spec: SweepSpec | None
    try:
        spec = parse_spec(dict(sweep.get("spec") or {}))
    except SpecError:
        spec = None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    uid = meta.get("uid")
    by_index: dict[int, dict[str, Any]] = {}
    for job in jobs:
        owners = (job.get("metadata") or {}).get("ownerReferences") or []
        index = objects.trial_index(job)
        if index is not None and (uid is None or any(o.get("uid") == uid for o in owners)):
            by_index[index] = job
    rows: list[TrialRow] = []
    for record in history.decode(status.get("history"), lambda i: job_name(name, i)):
        job = by_index.get(record["index"])
        rows.append(TrialRow(
            record["index"], record["name"], record["state"], record["params"],
            record["value"], record.get("metrics") or {},
            objects.duration_seconds(job, now) if job else record.get("duration"),
            record["reason"],
            [(float(s), float(v)) for s, v in record["history"]]))
    recorded = {r.index for r in rows}
    for index, job in sorted(by_index.items()):
        if index in recorded:
            continue
        rows.append(TrialRow(index, job["metadata"]["name"], _job_state(job),
                             objects.job_params(job) or {},
                             duration=objects.duration_seconds(job, now)))
    rows.sort(key=lambda r: r.index)
    best = (status.get("bestTrial") or {}).get("index")
    return SweepResults(name, spec, rows, f"{meta.get('namespace')}/{name}",
                        best_index=best if isinstance(best, int) else None,
                        phase=status.get("phase"))


def _job_state(job: dict[str, Any]) -> str:
    from kubesweep.k8s import objects

    if objects.job_finished(job):
        return "finishing"  # done, the operator has not recorded it yet
    # `ready` counts pods whose containers run (no probes: running is ready)
    return "running" if (job.get("status") or {}).get("ready") else "pending"
