"""The middle step of a pass: a pure function from a `Snapshot` to a `Plan`.

No I/O, and the time is an argument: `decide(snapshot, now, settings)` returns the same
plan for the same arguments (it only times the strategy, for a metric), so every
operator decision is unit-tested with plain dicts (tests/unit/test_k8s_decide.py).
The operator keeps no state of its own: each pass rebuilds the Tuner from the Sweep's
status (finished trials) and its Jobs (trials in flight, and finished ones not yet
recorded), then decides:

- the verdict on each newly finished trial (`rules.judge`, shared with the local back
  end), and the trials to end now: start timeout, too many disruptions, early
  termination, the sweep's end (`rules.to_stop`);
- the status to write *before* any Job is deleted (`Plan.record`), so a crash between
  the two loses no result;
- new trials' Jobs, with deterministic names (sweep name + trial index) and their
  parameters in an annotation, so a pass repeated after a crash re-creates nothing and a
  trial in flight is recovered from its Job alone;
- the final status (counts, best, history), old finished Jobs to prune, events and
  metrics, and when to look again.

`apply.apply` carries the plan out in that order.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from kubesweep import rules
from kubesweep.k8s import objects
from kubesweep.k8s.jobs import render_job
from kubesweep.k8s.names import DISRUPTIONS_ANNOTATION, PARAMS_ANNOTATION, job_name
from kubesweep.k8s.recovery import read_history, readable_indices
from kubesweep.k8s.snapshot import Snapshot
from kubesweep.k8s.status import (
    build_status,
    changed_fields,
    history_of,
    now_iso,
    set_condition,
    spec_hashes,
    status_patch,
)
from kubesweep.k8s.warm import warm_status, warm_trials
from kubesweep.rules import MUTABLE_FIELDS, Outcome
from kubesweep.settings import Settings
from kubesweep.spec import SpecError, SweepSpec, parse_spec
from kubesweep.tuner import Trial, Tuner

FINISHED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Event:
    """An Event to post on the Sweep."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class NewJob:
    """A trial Job to create, and the event to post once it is created."""

    index: int
    params: dict[str, Any]
    body: dict[str, Any]
    event: Event


@dataclass(frozen=True)
class Ended:
    """A trial that ended in this pass (for the Prometheus series)."""

    state: str
    value: float | None
    duration: float | None
    #: the trial's index (its own kubesweep_trial_value series)
    index: int


@dataclass(frozen=True)
class Gauges:
    """The per-sweep gauges after the pass."""

    phase: str
    #: None for a sweep the operator will not run (only its phase is known)
    counts: dict[str, int] | None
    budget: int | None
    metric: str | None
    best: float | None


@dataclass
class Plan:
    """Everything one pass writes, in the order `apply` writes it."""

    namespace: str
    name: str
    #: the Sweep as observed (the object events are posted on)
    sweep: dict[str, Any]
    #: status merge patch with the results of trials ended in this pass; written before
    #: any Job is deleted or created
    record: dict[str, Any] | None = None
    #: Jobs of trials ended in this pass (or recorded earlier but still running)
    delete: list[str] = field(default_factory=list)
    #: annotations to merge into Jobs (disruption counts)
    annotate: dict[str, dict[str, str]] = field(default_factory=dict)
    create: list[NewJob] = field(default_factory=list)
    #: status merge patch written after the creates (counts, best, history)
    status: dict[str, Any] | None = None
    #: finished Jobs whose results the status already held before this pass
    prune: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    gauges: Gauges | None = None
    #: (method, seconds) the strategy took to suggest the new trials (a measurement for
    #: the metrics, not a decision: plans that differ only here are equal)
    suggest: tuple[str, float] | None = field(default=None, compare=False)
    #: the whole status once `record` is written (the base of a re-decision)
    recorded_status: dict[str, Any] = field(default_factory=dict)
    #: seconds until the next pass (None: only on the next event)
    requeue_after: float | None = None
    phase: str | None = None


def decide(snap: Snapshot, now: datetime.datetime, settings: Settings) -> Plan:
    """The plan of one pass over the Sweep in `snap` at time `now`."""
    sweep = snap.sweep
    meta = sweep["metadata"]
    plan = Plan(meta["namespace"], meta["name"], sweep)
    status = dict(sweep.get("status") or {})
    plan.recorded_status = status
    generation = meta.get("generation")
    raw_spec = dict(sweep.get("spec") or {})
    try:
        spec = parse_spec(raw_spec)
        if spec.warmStart is not None and spec.warmStart.results:
            raise SpecError([("spec.warmStart.results", "names local files, which the "
                              "operator cannot read; name earlier Sweeps of this namespace "
                              "in warmStart.sweeps instead")])
    except SpecError as exc:
        return _invalid(plan, exc, status, generation, now)
    phase = status.get("phase")
    if phase in FINISHED_PHASES and status.get("observedGeneration") == generation and \
            readable_indices(status.get("history")) is not None:
        # finished and unchanged: only the gauges need refreshing (after a restart)
        plan.gauges = Gauges(phase, dict(status.get("trials") or {}), spec.budget,
                             spec.objective, status.get("bestValue"))
        _clean_up_finished(plan, snap, status, settings)
        plan.phase = phase
        return plan
    changed = changed_fields(raw_spec, status.get("specHashes"))
    if changed:
        return _refuse_change(plan, changed, status, generation, settings, now)
    return _Pass(snap, now, settings, spec, status, plan).run()


# -- sweeps the operator will not run -----------------------------------------------------

def _invalid(plan: Plan, exc: SpecError, status: dict[str, Any], generation: int | None,
             now: datetime.datetime) -> Plan:
    message = "invalid spec: " + "; ".join(
        f"spec.{p.removeprefix('spec.')}: {m}" if p else m for p, m in exc.problems)
    plan.phase = "Failed"
    if status.get("observedGeneration") == generation and status.get("phase") == "Failed":
        return plan
    stamp = now_iso(now)
    conds = set_condition(list(status.get("conditions") or []), "Failed", True,
                          "InvalidSpec", message, generation, stamp)
    conds = set_condition(conds, "Running", False, "InvalidSpec", message, generation, stamp)
    plan.status = {"phase": "Failed", "observedGeneration": generation, "conditions": conds}
    plan.events.append(Event("Warning", "InvalidSpec", message))
    plan.gauges = Gauges("Failed", None, None, None, None)
    return plan


def _refuse_change(plan: Plan, changed: list[str], status: dict[str, Any],
                   generation: int | None, settings: Settings,
                   now: datetime.datetime) -> Plan:
    fields = ", ".join(f"spec.{f}" for f in changed)
    message = (f"{fields} changed after the sweep started; only "
               f"{', '.join(MUTABLE_FIELDS)} may change. Revert the edit to continue, "
               "or create a new Sweep for the new search")
    plan.requeue_after = settings.poll_interval
    plan.phase = status.get("phase")
    old = next((c for c in status.get("conditions") or []
                if c.get("type") == "SpecAccepted"), None)
    if old and old.get("status") == "False" and old.get("message") == message:
        return plan
    conds = set_condition(list(status.get("conditions") or []), "SpecAccepted", False,
                          "ImmutableFieldChanged", message, generation, now_iso(now))
    plan.status = {"conditions": conds}
    plan.events.append(Event("Warning", "SpecChangeRefused", message))
    return plan


def _prunable(by_index: dict[int, dict[str, Any]], recorded: set[int],
              best: int | None, keep: int) -> list[str]:
    """Old finished Jobs whose results the status already holds (safe to delete)."""
    if keep < 0:
        return []
    done = sorted(i for i, job in by_index.items() if i in recorded and
                  objects.job_finished(job) and not job["metadata"].get("deletionTimestamp"))
    return [by_index[i]["metadata"]["name"] for i in done[:max(0, len(done) - keep)]
            if i != best]


def _clean_up_finished(plan: Plan, snap: Snapshot, status: dict[str, Any],
                       settings: Settings) -> None:
    """A finished sweep runs no Jobs: delete any left running (a pass that stopped them
    crashed between recording and deleting) and prune old finished ones."""
    if not snap.jobs:
        return
    recorded = readable_indices(status.get("history")) or set()
    by_index = {i: j for j in snap.jobs if (i := objects.trial_index(j)) is not None}
    plan.prune = [j["metadata"]["name"] for j in by_index.values()
                  if not objects.job_finished(j) and not j["metadata"].get("deletionTimestamp")]
    plan.prune += _prunable(by_index, recorded, (status.get("bestTrial") or {}).get("index"),
                            settings.keep_finished_jobs)


# -- a running sweep ------------------------------------------------------------------------

@dataclass
class _Open:
    """An unfinished trial and its Job as seen in this pass."""

    trial: Trial
    job: dict[str, Any]
    pods: list[dict[str, Any]]
    state: objects.PendingState


class _Pass:
    """The decisions about a running sweep (all state is set up in __init__)."""

    def __init__(self, snap: Snapshot, now: datetime.datetime, settings: Settings,
                 spec: SweepSpec, status: dict[str, Any], plan: Plan) -> None:
        self.snap = snap
        self.now = now
        self.stamp = now_iso(now)
        self.settings = settings
        self.spec = spec
        self.status = status
        self.plan = plan
        meta = snap.sweep["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str = meta.get("uid", "")
        self.generation: int | None = meta.get("generation")
        self.hashes = spec_hashes(dict(snap.sweep.get("spec") or {}))
        self.container: str | None = spec.primary_container().get("name")
        #: trials that ended in this pass, with their run time
        self.ended: list[tuple[Trial, float | None]] = []
        self.open: list[_Open] = []
        #: why status.history could not be read (it is then rebuilt from the Jobs)
        self.corrupt: str | None = None
        #: why status.trials.created was not believed (a hand edit beyond any budget)
        self.bad_count: str | None = None
        self.corrupt_message = ""
        #: (finished trials, their encoded status.history) of the last status built
        self._encoded: tuple[int, dict[str, Any]] | None = None
        #: status.warmStart, with spec.warmStart (set by _rebuild)
        self.warm: dict[str, Any] | None = None
        self.tuner = self._rebuild()
        self._observe_jobs()
        self._vanished()

    def run(self) -> Plan:
        plan, tuner = self.plan, self.tuner
        for index, (params, message) in sorted(self.snap.rejected.items()):
            name = job_name(self.name, index)
            self._end(tuner.add(params, state="pending", index=index, name=name), "failed",
                      f"cannot create Job {name}: {message}", delete=False)
        outcome = tuner.outcome
        for trial, reason in rules.to_stop(list(tuner.pending), outcome):
            self._end(trial, "stopped", reason)
        outcome = tuner.outcome
        problems = []
        if self.corrupt:
            found = sum(1 for t in tuner.trials
                        if not (t.reason or "").startswith("Job deleted"))
            problems.append(f"{self.corrupt}; rebuilt from the Sweep's Jobs "
                            f"({found} trials recovered)")
        if self.bad_count:
            problems.append(self.bad_count)
        if problems:
            self.corrupt_message = "; ".join(problems)
            plan.events.append(Event("Warning", "CorruptStatus", self.corrupt_message))
        if plan.delete or self.ended or self.corrupt_message:
            # results into the status before any Job is deleted (crash safety)
            recorded = self._status(outcome)
            plan.record = status_patch(self.status, recorded) or None
            plan.recorded_status = recorded
        if outcome is None and not self.snap.rejected:
            self._launch()
            outcome = tuner.outcome
        final = self._status(outcome)
        plan.status = status_patch(plan.recorded_status, final) or None
        plan.gauges = Gauges(final["phase"], final["trials"], tuner.budget,
                             self.spec.objective, final.get("bestValue"))
        self._trial_events()
        if outcome is not None and self.status.get("phase") not in FINISHED_PHASES:
            plan.events.append(Event("Normal" if outcome.phase == "Succeeded" else "Warning",
                                     f"Sweep{outcome.phase}", outcome.message))
        plan.requeue_after = self._requeue_after(outcome)
        plan.phase = final["phase"]
        return plan

    # -- rebuilding the tuner from the cluster --------------------------------------------

    def _rebuild(self) -> Tuner:
        records, self.corrupt = read_history(self.status.get("history"),
                                             lambda i: job_name(self.name, i))
        prior = [t for other in self.snap.warm.values() if other is not None
                 for t in warm_trials(other)]
        tuner = Tuner(self.spec, name=self.name, history=records, prior=prior)
        warm = self.spec.warmStart
        self.warm = warm_status(warm.sweeps or [], self.snap.warm, prior, len(tuner.prior)) \
            if warm is not None else None
        return tuner

    def _observe_jobs(self) -> None:
        recorded = {t.index for t in self.tuner.trials}
        by_index = {i: j for j in self.snap.jobs if (i := objects.trial_index(j)) is not None}
        # a recorded trial whose Job still runs was stopped or failed by an earlier pass
        # that crashed before the delete: finish the job off
        for index, job in by_index.items():
            if index in recorded and not objects.job_finished(job) and \
                    not job["metadata"].get("deletionTimestamp"):
                self.plan.delete.append(job["metadata"]["name"])
        self.plan.prune = _prunable(by_index, recorded,
                                    (self.status.get("bestTrial") or {}).get("index"),
                                    self.settings.keep_finished_jobs)
        for index, job in sorted(by_index.items()):
            if index not in recorded:
                self._observe_job(index, job, self.snap.pods.get(index, []))
        self._early_stop()

    def _observe_job(self, index: int, job: dict[str, Any],
                     pods: list[dict[str, Any]]) -> None:
        tuner = self.tuner
        name = job["metadata"]["name"]
        params = objects.job_params(job)
        if params is None:
            trial = tuner.add({}, None, "failed", index=index, name=name,
                              reason=f"Job {name} has no readable {PARAMS_ANNOTATION} "
                              "annotation")
            self.ended.append((trial, None))
            return
        finished = objects.job_finished(job)
        if finished:
            self._record_finished(index, job, pods, params, finished)
            return
        trial = tuner.add(params, state="pending", index=index, name=name)
        if job["metadata"].get("deletionTimestamp"):
            # deleted by someone else before the operator recorded a result
            self._end(trial, "stopped", f"Job deleted: {name} was deleted before the trial "
                      "finished", delete=False)
            return
        state = objects.pending_state(job, pods, self.now)
        lost = objects.disruptions(job, pods)
        if lost > self.spec.trialRetries:
            self._end(trial, "failed", f"pod evicted or preempted {lost} times, more than "
                      f"trialRetries={self.spec.trialRetries}")
            return
        noted = (job["metadata"].get("annotations") or {}).get(DISRUPTIONS_ANNOTATION)
        if lost and str(lost) != noted:
            self.plan.annotate[name] = {DISRUPTIONS_ANNOTATION: str(lost)}
        if not state.started and state.waiting_seconds > self.settings.trial_start_timeout:
            why = state.stuck or "its pod was not scheduled or did not start"
            self._end(trial, "failed",
                      f"did not start within {self.settings.trial_start_timeout:g}s: {why}")
            return
        self.open.append(_Open(trial, job, pods, state))

    def _vanished(self) -> None:
        """Trials an earlier pass created whose Job is gone before a result was recorded
        (deleted by hand, or pruned while the history was lost): recorded as stopped, so
        each counts against the budget once and is never created again."""
        try:
            created = int((self.status.get("trials") or {}).get("created") or 0)
        except (TypeError, ValueError):
            created = 0
        known = {t.index for t in self.tuner.trials}
        # the operator never creates more trials than the budget (or than it already has,
        # when maxTrials was lowered): a larger count is a hand edit, and believing it
        # would record up to millions of trials as deleted, one event each
        bound = max(self.tuner.budget, max(known, default=-1) + 1)
        if created > bound:
            self.bad_count = (f"status.trials.created: {created} is more than this sweep "
                              f"has created or may create ({bound}); ignored")
            created = max(known, default=-1) + 1
        listed = {t.get("index"): t for t in self.status.get("recentTrials") or []
                  if isinstance(t, dict)}
        for index in range(created):
            if index in known:
                continue
            name = job_name(self.name, index)
            params = dict((listed.get(index) or {}).get("params") or {})
            trial = self.tuner.add(params, state="pending", index=index, name=name)
            why = (f"Job deleted: {name} is gone and status.history was unreadable, so its "
                   "result is lost") if self.corrupt else \
                f"Job deleted: {name} was deleted before the trial finished"
            self._end(trial, "stopped", why, delete=False)

    def _log(self, pod: dict[str, Any] | None) -> str | None:
        return self.snap.logs.get(pod["metadata"]["name"]) if pod else None

    def _record_finished(self, index: int, job: dict[str, Any], pods: list[dict[str, Any]],
                         params: dict[str, Any], finished: str) -> None:
        pod = objects.result_pod(pods, self.container)
        term = (objects.terminated(pod, self.container) if pod else None) or {}
        metric_log = objects.read_metrics(self._log(pod), term.get("message"),
                                          self.spec.objective)
        exit_code = term.get("exitCode")
        if finished == "Complete":
            verdict = rules.judge(metric_log, 0, self.spec)
        else:
            platform = objects.job_failure_message(job)
            if term.get("reason") == "OOMKilled":
                # the kubelet's reason says what exit code 137 alone does not
                platform = f"OOMKilled: the container exceeded its memory limit; {platform}"
            elif exit_code == 137:
                # SIGKILL. When the pod's cgroup (whose limit equals the container's) runs
                # out first, the runtime files the OOM under the pod sandbox and the
                # container's reason stays "Error": say what is most likely
                platform = ("killed by SIGKILL, most likely out of memory (the kubelet "
                            f"reported no OOMKilled reason); {platform}")
            verdict = rules.judge(metric_log, exit_code or None, self.spec,
                                  platform_failure=platform)
        trial = self.tuner.add(params, verdict.value, verdict.state, metrics=metric_log.latest,
                               history=metric_log.history, reason=verdict.reason, index=index,
                               name=job["metadata"]["name"])
        # into status.history with the result: the Job, which knows it, will be pruned
        trial.duration = objects.duration_seconds(job, self.now)
        self.ended.append((trial, trial.duration))

    def _early_stop(self) -> None:
        if self.spec.earlyTerminate is None:
            return
        running = [o for o in self.open if o.state.started]
        for item in running:  # load every curve first: the rule compares them
            pod = objects.running_pod(item.pods)
            if pod is None:
                continue
            item.trial.history = list(objects.read_metrics(
                self._log(pod), None, self.spec.objective).history)
        for item in running:
            reason = self.tuner.should_stop(item.trial)
            if reason:
                self._end(item.trial, "stopped", f"early termination: {reason}")

    def _end(self, trial: Trial, state: str, reason: str, delete: bool = True) -> None:
        """End a trial the operator decided about (stop, timeout): record, then delete."""
        self.tuner.tell(trial, None, state, reason=reason)  # type: ignore[arg-type]
        job = next((o.job for o in self.open if o.trial is trial), None)
        trial.duration = objects.duration_seconds(job, self.now) if job else None
        self.ended.append((trial, trial.duration))
        self.open = [o for o in self.open if o.trial is not trial]
        if delete:
            self.plan.delete.append(trial.name)

    # -- new trials -----------------------------------------------------------------------

    def _launch(self) -> None:
        free = self.spec.parallelism - len(self.tuner.pending)
        if free <= 0:
            return
        started = time.perf_counter()
        batch = self.tuner.ask(free)
        self.plan.suggest = (self.spec.method, time.perf_counter() - started)
        for trial in batch:
            trial.name = job_name(self.name, trial.index)
            body = render_job(self.spec, sweep_name=self.name, namespace=self.namespace,
                              sweep_uid=self.uid, index=trial.index, params=trial.params,
                              gpu_resource_name=self.settings.gpu_resource_name)
            params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
            self.plan.create.append(NewJob(trial.index, dict(trial.params), body, Event(
                "Normal", "TrialCreated", f"trial {trial.index} (Job {trial.name}): {params}")))

    # -- writing down ---------------------------------------------------------------------

    def _status(self, outcome: Outcome | None) -> dict[str, Any]:
        running = {o.trial.index for o in self.open if o.state.started}
        unschedulable = sum(1 for o in self.open if o.state.unschedulable)
        # A pass builds the status twice (results first, then after the new Jobs), but
        # launching adds only pending trials: the history of finished ones, linear in the
        # sweep's size, is encoded once unless a trial finished in between
        finished = sum(1 for t in self.tuner.trials if t.finished)
        if self._encoded is None or self._encoded[0] != finished:
            self._encoded = (finished, history_of(self.tuner, self.spec))
        status = build_status(self.status, self.tuner, self.spec, running=running,
                              unschedulable=unschedulable, generation=self.generation,
                              outcome=outcome, hashes=self.hashes, now=self.stamp,
                              warm=self.warm, encoded=self._encoded[1])
        if self.corrupt_message:
            status["conditions"] = set_condition(
                status["conditions"], "StatusRecovered", True, "CorruptStatus",
                self.corrupt_message, self.generation, self.stamp)
        return status

    def _trial_events(self) -> None:
        metric = self.spec.objective
        for trial, duration in self.ended:
            self.plan.ended.append(Ended(trial.state, trial.value, duration, trial.index))
            if trial.state == "succeeded":
                # a sweep without a metric has no value to show
                result = f"{metric}={trial.value:g}" \
                    if metric is not None and trial.value is not None else "done"
                if self.spec.multi_objective:
                    result = ", ".join(f"{m.name}={trial.metrics.get(m.name)}"
                                       for m in self.spec.objectives)
                self.plan.events.append(Event("Normal", "TrialSucceeded",
                                              f"trial {trial.index} ({trial.name}): "
                                              f"{result}"))
            else:
                kind = "Warning" if trial.state == "failed" else "Normal"
                self.plan.events.append(Event(kind, f"Trial{trial.state.capitalize()}",
                                              f"trial {trial.index} ({trial.name}): "
                                              f"{trial.reason}"))

    def _requeue_after(self, outcome: Outcome | None) -> float | None:
        if outcome is not None:
            return None
        wait = self.settings.poll_interval
        for item in self.open:
            if not item.state.started:
                left = self.settings.trial_start_timeout - item.state.waiting_seconds
                wait = min(wait, max(1.0, left + 0.5))
        if self.spec.earlyTerminate is not None and any(o.state.started for o in self.open):
            wait = min(wait, self.settings.early_stop_interval)
        return wait
