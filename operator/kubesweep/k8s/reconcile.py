"""One pass of the control loop for one Sweep.

The operator keeps no state of its own: every pass rebuilds the Tuner from the Sweep's
status (finished trials) and its Jobs (trials in flight, and finished ones not yet
recorded), decides, and writes the decisions down in an order that survives a crash at
any instant:

1. results of newly finished trials (and trials it decided to stop or fail) go into
   the status *before* their Jobs are deleted, so nothing finished is ever lost;
2. new trials get Jobs with deterministic names (sweep name + trial index), so a
   pass repeated after a crash re-creates nothing (AlreadyExists is success); the Job
   carries the parameters, so a trial in flight is recovered from it alone;
3. the final status write only summarises (counts, best, history).
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubesweep.k8s import history, metrics, observe
from kubesweep.k8s.api import Api, ApiError
from kubesweep.k8s.jobs import DEFAULT_GPU_RESOURCE, render_job
from kubesweep.k8s.names import (
    DISRUPTIONS_ANNOTATION,
    PARAMS_ANNOTATION,
    SWEEP_LABEL,
    job_name,
    label_value,
)
from kubesweep.k8s.status import (
    MUTABLE_FIELDS,
    build_status,
    changed_fields,
    set_condition,
    spec_hashes,
    status_patch,
)
from kubesweep.spec import SpecError, SweepSpec, parse_spec
from kubesweep.trial_output import failure_reason
from kubesweep.tuner import Trial, Tuner

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """Operator-wide knobs (from the command line)."""

    gpu_resource_name: str = DEFAULT_GPU_RESOURCE
    #: seconds a trial's pod may take to start (scheduling, image pull) before it fails
    trial_start_timeout: float = 600.0
    #: seconds between passes while trials run, to catch what no Job event announces
    #: (a start timeout, a missed watch event)
    poll_interval: float = 30.0
    #: seconds between passes while early termination watches running trials' metrics
    early_stop_interval: float = 5.0
    #: finished trial Jobs kept (for `kubectl logs`) once their results are in the status;
    #: older ones are deleted (the best trial's is always kept). -1 keeps every Job.
    keep_finished_jobs: int = 100


@dataclass
class Result:
    """What the caller should do next: run again after `requeue_after` seconds (or only
    on the next event when None)."""

    requeue_after: float | None = None
    phase: str | None = None


def warm_trials(sweep: dict[str, Any]) -> list[Trial]:
    """The finished trials recorded in another Sweep's status, each with its objective
    value also under the objective's name in `metrics` (see warm_start.with_objective)."""
    from kubesweep.warm_start import with_objective

    status = sweep.get("status") or {}
    try:
        objective = parse_spec(sweep.get("spec") or {}).objective
        records = history.decode(status.get("history"))
    except (SpecError, ValueError, KeyError, TypeError):
        return []  # an unreadable Sweep seeds nothing (status.warmStart shows the count)
    listed = {t.get("index"): t for t in [*(status.get("recentTrials") or []),
                                          status.get("bestTrial") or {}]}
    out = []
    for record in records:
        record["metrics"] = {**record.get("metrics", {}),
                             **((listed.get(record["index"]) or {}).get("metrics") or {})}
        out.append(with_objective(Trial.from_dict(record), objective))
    return out


def selector(sweep_name: str) -> str:
    """Label selector of a sweep's Jobs and pods."""
    return f"{SWEEP_LABEL}={label_value(sweep_name)}"


def reconcile(api: Api, settings: Settings, namespace: str, name: str) -> Result:
    """Bring the Sweep `namespace/name` one step closer to done."""
    sweep = api.get_sweep(namespace, name)
    if sweep is None or sweep["metadata"].get("deletionTimestamp"):
        return Result(None)
    return SweepReconciler(api, settings, sweep).run()


@dataclass
class _Open:
    """An unfinished trial and its Job as seen in this pass."""

    trial: Trial
    job: dict[str, Any]
    pods: list[dict[str, Any]]
    state: observe.PendingState


@dataclass
class SweepReconciler:
    """One pass over one Sweep (see the module docstring for the order of writes)."""

    api: Api
    settings: Settings
    sweep: dict[str, Any]
    now: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))

    def __post_init__(self) -> None:
        meta = self.sweep["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str = meta.get("uid", "")
        self.generation: int | None = meta.get("generation")
        self.status: dict[str, Any] = dict(self.sweep.get("status") or {})
        self.raw_spec: dict[str, Any] = dict(self.sweep.get("spec") or {})
        self.to_delete: list[str] = []
        self.to_prune: list[str] = []
        self.finished_now: list[tuple[Trial, float | None]] = []

    # -- the pass -------------------------------------------------------------------------

    def run(self) -> Result:
        """Reconcile; returns when to come back."""
        try:
            spec = parse_spec(self.raw_spec)
            if spec.warmStart is not None and spec.warmStart.results:
                raise SpecError([("spec.warmStart.results", "names local files, which the "
                                  "operator cannot read; name earlier Sweeps of this "
                                  "namespace in warmStart.sweeps instead")])
        except SpecError as exc:
            return self._invalid(exc)
        phase = self.status.get("phase")
        if phase in ("Succeeded", "Failed") and \
                self.status.get("observedGeneration") == self.generation:
            # finished and unchanged: only the gauges need refreshing (after a restart)
            metrics.set_sweep(self.namespace, self.name, phase,
                              dict(self.status.get("trials") or {}), spec.budget,
                              spec.objective or "", self.status.get("bestValue"))
            self._clean_up_finished()
            return Result(None, phase)
        changed = changed_fields(self.raw_spec, self.status.get("specHashes"))
        if changed:
            return self._refuse_change(changed)
        self.spec = spec
        tuner = self._rebuild(spec)
        outcome = tuner.outcome
        if outcome is not None:
            for trial in tuner.pending:
                self._finish(tuner, trial, "stopped", f"sweep finished: {outcome.message}")
            outcome = tuner.outcome
        if self.to_delete or self.finished_now:
            # record results before deleting anything (crash safety, see module doc)
            self._write_status(tuner, outcome)
            for job in self.to_delete:
                self.api.delete_job(self.namespace, job)
        if outcome is None:
            self._launch(tuner)
            outcome = tuner.outcome
        new_status = self._write_status(tuner, outcome)
        for job in self.to_prune:
            self.api.delete_job(self.namespace, job)
        self._post_trial_events()
        if outcome is not None and phase not in ("Succeeded", "Failed"):
            self.api.event(self.sweep, "Normal" if outcome.phase == "Succeeded" else "Warning",
                           f"Sweep{outcome.phase}", outcome.message)
        return Result(self._requeue_after(tuner, outcome), new_status["phase"])

    # -- rebuilding the tuner from the cluster --------------------------------------------

    def _rebuild(self, spec: SweepSpec) -> Tuner:
        records = history.decode(self.status.get("history"),
                                 lambda i: job_name(self.name, i))
        # the compact history keeps only the metrics the search needs (objectives,
        # constrained ones); the listed trials keep every metric they reported
        listed = {t.get("index"): t for t in [*(self.status.get("recentTrials") or []),
                                              self.status.get("bestTrial") or {}]}
        for record in records:
            record["metrics"] = {**record.get("metrics", {}),
                                 **((listed.get(record["index"]) or {}).get("metrics") or {})}
        tuner = Tuner(spec, name=self.name, history=records, prior=self._warm_start(spec))
        recorded = {r["index"]: r for r in records}
        jobs = [j for j in self.api.list_jobs(self.namespace, selector(self.name))
                if self._owned(j)]
        by_index = {i: j for j in jobs if (i := observe.trial_index(j)) is not None}
        unrecorded = {i: j for i, j in by_index.items() if i not in recorded}
        pods = observe.pods_by_trial(
            self.api.list_pods(self.namespace, selector(self.name))) if unrecorded else {}

        # a recorded trial whose Job still runs was stopped or failed by an earlier pass
        # that crashed before the delete: finish the job off
        for index, job in by_index.items():
            if index in recorded and not observe.job_finished(job) and \
                    not job["metadata"].get("deletionTimestamp"):
                self.to_delete.append(job["metadata"]["name"])

        self._choose_prunes(by_index, recorded)
        self.open: list[_Open] = []
        for index, job in sorted(unrecorded.items()):
            self._observe_job(tuner, index, job, pods.get(index, []))
        self._early_stop(tuner)
        return tuner

    def _warm_start(self, spec: SweepSpec) -> list[Trial]:
        """Finished trials of the Sweeps spec.warmStart.sweeps names (same namespace),
        read from their status.history; what was read goes to status.warmStart."""
        self.warm_status: dict[str, Any] | None = None
        if spec.warmStart is None or not spec.warmStart.sweeps:
            return []
        trials: list[Trial] = []
        missing = []
        for name in spec.warmStart.sweeps:
            other = self.api.get_sweep(self.namespace, name)
            if other is None:
                missing.append(name)
                continue
            trials += warm_trials(other)
        self.warm_status = {"read": len(trials), "missing": missing}
        return trials

    def _clean_up_finished(self) -> None:
        """A finished sweep runs no Jobs: delete any left running (a pass that stopped
        them crashed between recording and deleting) and prune old finished ones."""
        jobs = [j for j in self.api.list_jobs(self.namespace, selector(self.name))
                if self._owned(j)]
        if not jobs:
            return
        recorded = {r["index"]: r for r in history.decode(self.status.get("history"))}
        by_index = {i: j for j in jobs if (i := observe.trial_index(j)) is not None}
        for job in by_index.values():
            if not observe.job_finished(job) and not job["metadata"].get("deletionTimestamp"):
                self.to_prune.append(job["metadata"]["name"])
        self._choose_prunes(by_index, recorded)
        for name in self.to_prune:
            self.api.delete_job(self.namespace, name)

    def _choose_prunes(self, by_index: dict[int, dict[str, Any]],
                       recorded: dict[int, Any]) -> None:
        """Old finished Jobs whose results the status already holds (safe to delete)."""
        keep = self.settings.keep_finished_jobs
        if keep < 0:
            return
        done = sorted(i for i, job in by_index.items() if i in recorded and
                      observe.job_finished(job) and not job["metadata"].get("deletionTimestamp"))
        best = (self.status.get("bestTrial") or {}).get("index")
        for index in done[:max(0, len(done) - keep)]:
            if index != best:
                self.to_prune.append(by_index[index]["metadata"]["name"])

    def _owned(self, job: dict[str, Any]) -> bool:
        refs = job["metadata"].get("ownerReferences") or []
        return any(r.get("uid") == self.uid for r in refs)

    def _observe_job(self, tuner: Tuner, index: int, job: dict[str, Any],
                     pods: list[dict[str, Any]]) -> None:
        name = job["metadata"]["name"]
        params = observe.job_params(job)
        if params is None:
            tuner.add({}, None, "failed", index=index, name=name,
                      reason=f"Job {name} has no readable {PARAMS_ANNOTATION} annotation")
            self.finished_now.append((tuner.trials[-1], None))
            return
        finished = observe.job_finished(job)
        if finished:
            self._record_finished(tuner, index, job, pods, params, finished)
            return
        trial = tuner.add(params, state="pending", index=index, name=name)
        if job["metadata"].get("deletionTimestamp"):
            # deleted by someone else before the operator recorded a result
            self._finish(tuner, trial, "stopped", f"Job {name} was deleted", delete=False)
            return
        state = observe.pending_state(job, pods, self.now)
        lost = observe.disruptions(job, pods)
        if lost > self.spec.trialRetries:
            self._finish(tuner, trial, "failed",
                         f"pod evicted or preempted {lost} times, more than trialRetries="
                         f"{self.spec.trialRetries}")
            return
        noted = (job["metadata"].get("annotations") or {}).get(DISRUPTIONS_ANNOTATION)
        if lost and str(lost) != noted:
            self.api.annotate_job(self.namespace, name, {DISRUPTIONS_ANNOTATION: str(lost)})
        if not state.started and state.waiting_seconds > self.settings.trial_start_timeout:
            why = state.stuck or "its pod was not scheduled or did not start"
            self._finish(tuner, trial, "failed",
                         f"did not start within {self.settings.trial_start_timeout:g}s: {why}")
            return
        self.open.append(_Open(trial, job, pods, state))

    def _primary(self) -> str | None:
        return self.spec.primary_container().get("name")

    def _record_finished(self, tuner: Tuner, index: int, job: dict[str, Any],
                         pods: list[dict[str, Any]], params: dict[str, Any],
                         finished: str) -> None:
        container = self._primary()
        pod = next((p for p in reversed(pods) if observe.terminated(p, container)),
                   pods[-1] if pods else None)
        term = observe.terminated(pod, container) if pod else None
        log_text = self.api.read_log(self.namespace, pod["metadata"]["name"], container) \
            if pod else None
        metric_log = observe.read_metrics(log_text, (term or {}).get("message"),
                                          self.spec.objective)
        summary = self.spec.metric.summary if self.spec.metric is not None else "last"
        value = metric_log.final_value(summary, tuner.maximize)
        exit_code = (term or {}).get("exitCode")
        if finished == "Complete":
            reason = failure_reason(metric_log, 0, self.spec.objective)
        else:
            code_reason = failure_reason(metric_log, exit_code or None, self.spec.objective)
            reason = observe.job_failure_message(job)
            if exit_code:
                reason = f"{code_reason} ({reason})"
        state = "failed" if reason else "succeeded"
        trial = tuner.add(params, value, state, metrics=metric_log.latest,
                          history=metric_log.history, reason=reason, index=index,
                          name=job["metadata"]["name"])
        self.finished_now.append((trial, observe.duration_seconds(job, self.now)))

    def _early_stop(self, tuner: Tuner) -> None:
        if self.spec.earlyTerminate is None:
            return
        running = [o for o in self.open if o.state.started]
        for item in running:  # load every curve first: the rule compares them
            pod = next((p for p in reversed(item.pods)
                        if (p.get("status") or {}).get("phase") == "Running"), None)
            if pod is None:
                continue
            text = self.api.read_log(self.namespace, pod["metadata"]["name"], self._primary())
            item.trial.history = list(
                observe.read_metrics(text, None, self.spec.objective).history)
        for item in running:
            reason = tuner.should_stop(item.trial)
            if reason:
                self._finish(tuner, item.trial, "stopped", f"early termination: {reason}")

    def _finish(self, tuner: Tuner, trial: Trial, state: str, reason: str,
                delete: bool = True) -> None:
        """End a trial the operator decided about (stop, timeout): record, then delete."""
        tuner.tell(trial, None, state, reason=reason)  # type: ignore[arg-type]
        job = next((o.job for o in getattr(self, "open", []) if o.trial is trial), None)
        duration = observe.duration_seconds(job, self.now) if job else None
        self.finished_now.append((trial, duration))
        self.open = [o for o in getattr(self, "open", []) if o.trial is not trial]
        if delete:
            self.to_delete.append(trial.name)

    # -- new trials -----------------------------------------------------------------------

    def _launch(self, tuner: Tuner) -> None:
        free = self.spec.parallelism - len(tuner.pending)
        if free <= 0:
            return
        started = time.perf_counter()
        batch = tuner.ask(free)
        metrics.SUGGEST_DURATION.labels(self.spec.method).observe(time.perf_counter() - started)
        for trial in batch:
            trial.name = job_name(self.name, trial.index)
            body = render_job(self.spec, sweep_name=self.name, namespace=self.namespace,
                              sweep_uid=self.uid, index=trial.index, params=trial.params,
                              gpu_resource_name=self.settings.gpu_resource_name)
            try:
                created = self.api.create_job(self.namespace, body)
            except ApiError as err:
                if err.status not in (400, 422):
                    raise
                # the template itself is bad: every trial would fail the same way
                self._finish(tuner, trial, "failed",
                             f"cannot create Job {trial.name}: {err.message}", delete=False)
                continue
            if created:
                metrics.TRIALS_CREATED.labels(self.namespace, self.name).inc()
                params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
                self.api.event(self.sweep, "Normal", "TrialCreated",
                               f"trial {trial.index} (Job {trial.name}): {params}")

    # -- writing down ---------------------------------------------------------------------

    def _write_status(self, tuner: Tuner, outcome: Any) -> dict[str, Any]:
        running = {o.trial.index for o in getattr(self, "open", []) if o.state.started
                   and not o.trial.finished}
        unschedulable = sum(1 for o in getattr(self, "open", []) if o.state.unschedulable
                            and not o.trial.finished)
        warm = getattr(self, "warm_status", None)
        if warm is not None:
            warm = {"trials": len(tuner.prior), **warm}
        new = build_status(self.status, tuner, self.spec, running=running,
                           unschedulable=unschedulable, generation=self.generation,
                           outcome=outcome, hashes=spec_hashes(self.raw_spec), warm=warm)
        patch = status_patch(self.status, new)
        if patch:
            self.api.patch_sweep_status(self.namespace, self.name, patch)
            self.status = new
        metrics.set_sweep(self.namespace, self.name, new["phase"], new["trials"],
                          tuner.budget, self.spec.objective or "", new.get("bestValue"))
        return new

    def _post_trial_events(self) -> None:
        for trial, duration in self.finished_now:
            if trial.value is not None and self.spec.objective is not None:
                metrics.TRIAL_VALUE.labels(self.namespace, self.name,
                                           self.spec.objective).set(trial.value)
            if duration is not None:
                metrics.TRIAL_DURATION.labels(self.namespace, self.name,
                                              trial.state).observe(duration)
            if trial.state == "succeeded":
                result = f"{self.spec.objective}={trial.value:g}" \
                    if self.spec.objective is not None and trial.value is not None else "done"
                if self.spec.multi_objective:
                    result = ", ".join(f"{m.name}={trial.metrics.get(m.name)}"
                                       for m in self.spec.objectives)
                self.api.event(self.sweep, "Normal", "TrialSucceeded",
                               f"trial {trial.index} ({trial.name}): {result}")
            else:
                kind = "Warning" if trial.state == "failed" else "Normal"
                self.api.event(self.sweep, kind, f"Trial{trial.state.capitalize()}",
                               f"trial {trial.index} ({trial.name}): {trial.reason}")
        self.finished_now = []

    def _requeue_after(self, tuner: Tuner, outcome: Any) -> float | None:
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

    # -- sweeps the operator will not run -------------------------------------------------

    def _invalid(self, exc: SpecError) -> Result:
        message = "invalid spec: " + "; ".join(
            f"spec.{p.removeprefix('spec.')}: {m}" if p else m for p, m in exc.problems)
        if self.status.get("observedGeneration") == self.generation and \
                self.status.get("phase") == "Failed":
            return Result(None, "Failed")
        conds = set_condition(list(self.status.get("conditions") or []), "Failed", True,
                              "InvalidSpec", message, self.generation)
        conds = set_condition(conds, "Running", False, "InvalidSpec", message, self.generation)
        self.api.patch_sweep_status(self.namespace, self.name, {
            "phase": "Failed", "observedGeneration": self.generation, "conditions": conds})
        self.api.event(self.sweep, "Warning", "InvalidSpec", message)
        metrics.SWEEPS.labels(self.namespace, self.name, "Failed").set(1)
        return Result(None, "Failed")

    def _refuse_change(self, changed: list[str]) -> Result:
        fields = ", ".join(f"spec.{f}" for f in changed)
        message = (f"{fields} changed after the sweep started; only "
                   f"{', '.join(MUTABLE_FIELDS)} may change. Revert the edit to continue, "
                   "or create a new Sweep for the new search")
        old = next((c for c in self.status.get("conditions") or []
                    if c.get("type") == "SpecAccepted"), None)
        if old and old.get("status") == "False" and old.get("message") == message:
            return Result(self.settings.poll_interval, self.status.get("phase"))
        conds = set_condition(list(self.status.get("conditions") or []), "SpecAccepted",
                              False, "ImmutableFieldChanged", message, self.generation)
        self.api.patch_sweep_status(self.namespace, self.name, {"conditions": conds})
        self.api.event(self.sweep, "Warning", "SpecChangeRefused", message)
        return Result(self.settings.poll_interval, self.status.get("phase"))
