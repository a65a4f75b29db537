"""The rules both back ends share: judging a finished trial and ending a sweep.

`local.runner` (processes) and `k8s.decide` (Jobs) only translate what they observe into
these calls, so a trial that crashes, prints no metric or prints NaN ends the same way on
a laptop and on a cluster, and a sweep ends for the same reasons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kubesweep.spec import SweepSpec
    from kubesweep.trial_output import MetricLog
    from kubesweep.tuner import Trial

#: Spec fields a user may change while a sweep runs (on the cluster) or between a local
#: run and its --resume; every other change is refused. The CRD's CEL rule is generated
#: from this list (k8s/crd.py).
MUTABLE_FIELDS = ("parallelism", "maxTrials", "maxFailedTrials", "trialRetries")
#: Trials listed in status.recentTrials (newest last).
RECENT_TRIALS = 10
#: Without `maxFailedTrials`, a sweep fails once this many trials failed before any
#: succeeded: a broken command or image fails every trial, and should not burn a whole
#: GPU budget finding that out (W&B's agent stops after repeated initial failures too).
FAIL_FAST_TRIALS = 5


@dataclass(frozen=True)
class Outcome:
    """Why a sweep is over: `phase` is Succeeded or Failed, `reason` a CamelCase word."""

    phase: Literal["Succeeded", "Failed"]
    reason: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """How a finished trial ended: its state, objective value (as reported: `Tuner.tell`
    drops a non-finite one) and, if not succeeded, why."""

    state: Literal["succeeded", "failed"]
    value: float | None
    reason: str | None


def is_finite(value: object) -> bool:
    """True for a real number that JSON can carry (not NaN, inf, -inf, nor a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def finite_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    """`metrics` without non-finite values: NaN and infinities never reach JSON."""
    return {k: float(v) for k, v in (metrics or {}).items() if is_finite(v)}


def summarize(values: Sequence[float], summary: str, maximize: bool) -> float | None:
    """A trial's value from its objective reports: the last one, or the best finite one."""
    if not values:
        return None
    if summary == "last":
        return values[-1]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return values[-1]
    return max(finite) if maximize else min(finite)


def failure_reason(log: MetricLog, exit_code: int | None,
                   objective: str | None) -> str | None:
    """Why a finished trial counts as failed, in words a user can act on; None if it
    succeeded. Without an objective (a sweep with no metric) only the exit code counts."""
    from kubesweep.trial_output import example_line

    if exit_code not in (0, None):
        why = f"killed by signal {-exit_code}" if exit_code < 0 else \
            f"exited with code {exit_code}"
        # the last line is usually the error ("No such file", a Python exception)
        return f"{why}: {log.last_line}" if log.last_line else why
    if objective is None:
        return None
    if not log.has_objective:
        seen = ", ".join(sorted(log.latest)) or "nothing"
        call = f"kubesweep.report({objective}=...)" if objective.isidentifier() else \
            f"kubesweep.report(**{{{objective!r}: ...}})"
        return (
            f"printed no {objective!r} metric (saw: {seen}); print a line like "
            f"'{example_line(objective)}' or call {call}"
        )
    value = log.last_objective
    if value is None or not math.isfinite(value):
        return f"reported {objective}={value}"
    return None


def judge(log: MetricLog, exit_code: int | None, spec: SweepSpec, *,
          platform_failure: str | None = None) -> Verdict:
    """The verdict on a trial whose process ended with `exit_code` after printing `log`.

    `platform_failure` is the runtime's own reason when it says the trial failed (the Job
    controller's `BackoffLimitExceeded: ...`); the trial then fails whatever it printed.
    """
    metric = spec.metric
    maximize = metric is not None and metric.goal.value == "maximize"
    value = log.final_value(metric.summary, maximize) if metric is not None else None
    objective = spec.objective
    if platform_failure is None:
        reason = failure_reason(log, exit_code, objective)
    else:
        reason = platform_failure
        if exit_code:
            reason = f"{failure_reason(log, exit_code, objective)} ({platform_failure})"
    return Verdict("failed" if reason else "succeeded", value, reason)


def outcome(trials: Sequence[Trial], spec: SweepSpec, best: Trial | None,
            exhausted: bool) -> Outcome | None:
    """Why the sweep is over, or None while it is not.

    Checked in this order: too many failed trials (more than `maxFailedTrials`, or, when
    it is not set, the first FAIL_FAST_TRIALS to finish all failed), the metric's target
    reached, the budget used (or the grid exhausted) with nothing left running.
    """
    failed = [t for t in trials if t.state == "failed"]
    limit = spec.maxFailedTrials
    if limit is not None and len(failed) > limit:
        return Outcome("Failed", "TooManyFailedTrials",
                       f"{len(failed)} trials failed, more than maxFailedTrials={limit}")
    if limit is None and len(failed) >= FAIL_FAST_TRIALS and \
            not any(t.state == "succeeded" for t in trials):
        last = failed[-1]
        return Outcome("Failed", "FirstTrialsFailed",
                       f"the first {len(failed)} trials failed and none succeeded (trial "
                       f"{last.name or last.index}: {last.reason}); fix the trial and start "
                       "again, or set maxFailedTrials to let more trials fail")
    target = spec.metric.target if spec.metric is not None else None
    if spec.metric is not None and target is not None and best is not None and \
            best.value is not None:
        maximize = spec.metric.goal.value == "maximize"
        if best.value >= target if maximize else best.value <= target:
            return Outcome("Succeeded", "TargetReached",
                           f"trial {best.name} reached {spec.metric.name}={best.value:g} "
                           f"(target {target:g})")
    finished = sum(1 for t in trials if t.finished)
    budget_used = finished >= spec.budget
    if (budget_used or exhausted) and not any(not t.finished for t in trials):
        if spec.metric is None:
            # a sweep that only explores: it fails only when no trial ran through
            if not any(t.state == "succeeded" for t in trials):
                return Outcome("Failed", "NoSuccessfulTrial",
                               f"none of {finished} trials succeeded")
        elif best is None:
            return Outcome("Failed", "NoSuccessfulTrial",
                           f"none of {finished} trials reported a usable "
                           f"{spec.metric.name!r} value")
        if budget_used:
            return Outcome("Succeeded", "BudgetReached", f"{finished} trials finished")
        return Outcome("Succeeded", "GridExhausted", f"all {finished} grid points were tried")
    return None


def stop_reason(result: Outcome) -> str:
    """The reason recorded on trials still running when the sweep ends."""
    return f"sweep finished: {result.message}"


def to_stop(pending: Iterable[Trial], result: Outcome | None) -> list[tuple[Trial, str]]:
    """The running trials to stop, and why, once the sweep has an outcome."""
    if result is None:
        return []
    return [(t, stop_reason(result)) for t in pending]
