"""The Sweep's status: phase, counts, best trial, recent trials, history, conditions."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubesweep.k8s import history
from kubesweep.rules import MUTABLE_FIELDS, RECENT_TRIALS, Outcome
from kubesweep.spec import SweepSpec
from kubesweep.tuner import Trial, Tuner

#: Pareto-optimal trials listed with their metrics in status.paretoFront.trials (all of
#: them are in .indices).
PARETO_LISTED = 20
#: Every condition type the operator sets, in the order the status lists them
#: (StatusRecovered: a corrupt status was rebuilt from the Jobs).
CONDITION_TYPES = ("Running", "Succeeded", "Failed", "SpecAccepted", "StatusRecovered")


def now_iso(now: datetime.datetime | None = None) -> str:
    """`now` (default: the current time) as an API timestamp."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_hashes(spec: Mapping[str, Any]) -> dict[str, str]:
    """A short hash of each spec field that may not change once the sweep runs."""
    return {
        key: hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"),
                                       default=str).encode()).hexdigest()[:12]
        for key, value in sorted(spec.items()) if key not in MUTABLE_FIELDS
    }


def changed_fields(spec: Mapping[str, Any], recorded: Mapping[str, str] | None) -> list[str]:
    """The immutable spec fields that differ from those the sweep started with."""
    if not recorded:
        return []
    now = spec_hashes(spec)
    return sorted(k for k in set(now) | set(recorded) if now.get(k) != recorded.get(k))


def trial_summary(trial: Trial, state: str | None = None) -> dict[str, Any]:
    """A trial as listed in status (bestTrial, recentTrials)."""
    out: dict[str, Any] = {"name": trial.name, "index": trial.index,
                           "state": state or trial.state, "params": dict(trial.params)}
    if trial.value is not None:
        out["value"] = trial.value
    if trial.metrics:
        out["metrics"] = dict(trial.metrics)
    if trial.reason:
        out["reason"] = trial.reason
    return out


def recorded_metrics(spec: SweepSpec) -> list[str]:
    """Metrics the compact history keeps per trial besides the objective value: every
    objective of a multi-objective sweep and every constrained metric."""
    names = [m.name for m in spec.objectives] if spec.multi_objective else []
    return list(dict.fromkeys(names + [c.metric for c in spec.constraints or []]))


def set_condition(conditions: list[dict[str, Any]], type_: str, status: bool, reason: str,
                  message: str, generation: int | None,
                  now: str | None = None) -> list[dict[str, Any]]:
    """Conditions with `type_` set; lastTransitionTime only moves when the status flips
    (to `now`, an API timestamp; default the current time)."""
    value = "True" if status else "False"
    out = [dict(c) for c in conditions if c.get("type") != type_]
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value and \
        old.get("lastTransitionTime") else (now or now_iso())
    new = {"type": type_, "status": value, "reason": reason, "message": message,
           "lastTransitionTime": since}
    if generation is not None:
        new["observedGeneration"] = generation
    out.append(new)
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    out.sort(key=lambda c: order.get(c["type"], len(order)))
    return out


def phase_conditions(old: list[dict[str, Any]], outcome: Outcome | None,
                     generation: int | None, running_message: str,
                     now: str | None = None) -> list[dict[str, Any]]:
    """The Running/Succeeded/Failed conditions: running while there is no outcome."""
    conds = list(old)
    if outcome is None:
        for type_ in ("Running", "Succeeded", "Failed"):
            conds = set_condition(conds, type_, type_ == "Running", "TrialsRunning",
                                  running_message, generation, now)
        return conds
    conds = set_condition(conds, "Running", False, outcome.reason, outcome.message, generation,
                          now)
    for type_ in ("Succeeded", "Failed"):
        conds = set_condition(conds, type_, outcome.phase == type_, outcome.reason,
                              outcome.message, generation, now)
    return conds


def history_of(tuner: Tuner, spec: SweepSpec) -> dict[str, Any]:
    """status.history: the tuner's finished trials, compact (`history.encode`)."""
    return history.encode(tuner.trials, spec.leaf_parameters,
                          metric_names=recorded_metrics(spec))


def build_status(old: Mapping[str, Any], tuner: Tuner, spec: SweepSpec, *,
                 running: set[int], unschedulable: int, generation: int | None,
                 outcome: Outcome | None, hashes: dict[str, str],
                 now: str | None = None,
                 warm: dict[str, Any] | None = None,
                 encoded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole status for the tuner's trials (`running` = indices whose pod runs;
    `now` an API timestamp, default the current time; `warm`: what the warm start read,
    for status.warmStart; `encoded`: `history_of(tuner, spec)` when the caller already
    has it for these finished trials — it is the costly part, linear in the trials)."""
    now = now or now_iso()
    trials = tuner.trials
    finished = [t for t in trials if t.finished]
    pending = [t for t in trials if not t.finished]
    counts = {
        "created": len(trials),
        "pending": sum(1 for t in pending if t.index not in running),
        "running": sum(1 for t in pending if t.index in running),
        "succeeded": tuner.count("succeeded"),
        "failed": tuner.count("failed"),
        "stopped": tuner.count("stopped"),
        "unschedulable": unschedulable,
    }
    if outcome is not None:
        phase = outcome.phase
    elif trials:
        phase = "Running"
    else:
        phase = "Pending"
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "progress": f"{len(finished)}/{tuner.budget}",
        "trials": counts,
        "recentTrials": [
            trial_summary(t, None if t.finished else
                          ("running" if t.index in running else "pending"))
            for t in sorted(trials, key=lambda t: t.index)[-RECENT_TRIALS:]
        ],
        "history": encoded if encoded is not None else history_of(tuner, spec),
        "specHashes": hashes,
        "startTime": old.get("startTime") or now,
    }
    best = tuner.best
    if best is not None:
        status["bestTrial"] = trial_summary(best)
        status["bestValue"] = best.value
    if spec.multi_objective:
        front = tuner.pareto_front
        status["paretoFront"] = {"size": len(front), "indices": [t.index for t in front],
                                 "trials": [trial_summary(t) for t in front[:PARETO_LISTED]]}
    if warm is not None:
        status["warmStart"] = warm
    if outcome is not None:
        status["completionTime"] = old.get("completionTime") or now
    message = (f"{len(finished)} of {tuner.budget} trials finished, {counts['running']} "
               f"running, {counts['pending']} waiting to start")
    conditions = phase_conditions(list(old.get("conditions") or []), outcome, generation,
                                  message, now)
    status["conditions"] = set_condition(conditions, "SpecAccepted", True, "SpecAccepted",
                                         "the spec is valid and unchanged since the start",
                                         generation, now)
    return status


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning `old` into `new`: nested objects are diffed
    key by key, keys `new` lacks become None (removed), lists are sent whole."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = status_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value or key not in old:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
