"""The last step of a pass: carry out a `Plan`. The only code of a pass that writes.

The order survives a crash at any instant (see `decide`): the results of trials ended in
this pass go into the status before any Job is deleted, and only if the Sweep is still at
the resourceVersion the pass read (409 otherwise: decide again); new Jobs have deterministic
names (AlreadyExists is success); the final status write only summarises; events and
metrics come last (a lost event loses no data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubesweep.k8s import metrics
from kubesweep.k8s.api import Api, ApiError
from kubesweep.k8s.decide import Plan


@dataclass
class Applied:
    """What `apply` could not do as planned: Job creations the API server refused
    (400/422: the rendered Job is invalid), by trial index → (params, message)."""

    rejected: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)


def apply(plan: Plan, api: Api) -> Applied:
    """Write `plan` to the cluster. When a Job creation is refused the final status is not
    written: the caller decides again with the refusals (`Snapshot.rejected`)."""
    ns, name = plan.namespace, plan.name
    done = Applied()
    # each status write is conditional on the version this pass read (or wrote last): a
    # concurrent writer (a second replica, a hand edit) makes it fail with 409 and the
    # pass is decided again from a fresh read, so no write drops a recorded result
    version = (plan.sweep.get("metadata") or {}).get("resourceVersion")
    if plan.record:
        version = api.patch_sweep_status(ns, name, plan.record, version)
    for job in plan.delete:
        api.delete_job(ns, job)
    for job, notes in plan.annotate.items():
        api.annotate_job(ns, job, notes)
    for new in plan.create:
        try:
            created = api.create_job(ns, new.body)
        except ApiError as err:
            if err.status not in (400, 422):
                raise
            # the template itself is bad: every trial would fail the same way
            done.rejected[new.index] = (new.params, err.message)
            continue
        if created:
            metrics.TRIALS_CREATED.labels(ns, name).inc()
            api.event(plan.sweep, new.event.type, new.event.reason, new.event.message)
    if plan.suggest is not None:
        metrics.SUGGEST_DURATION.labels(plan.suggest[0]).observe(plan.suggest[1])
    if done.rejected:
        _report(plan, api)
        return done
    if plan.status:
        api.patch_sweep_status(ns, name, plan.status, version)
    for job in plan.prune:
        api.prune_job(ns, job)
    _report(plan, api)
    return done


def _report(plan: Plan, api: Api) -> None:
    """Metrics and events of the plan (best effort, after every write)."""
    ns, name, gauges = plan.namespace, plan.name, plan.gauges
    if gauges is not None:
        if gauges.counts is None:
            metrics.set_phase(ns, name, gauges.phase)
        else:
            metrics.set_sweep(ns, name, gauges.phase, gauges.counts, gauges.budget or 0,
                              gauges.metric or "", gauges.best)
    for ended in plan.ended:
        if ended.value is not None and gauges is not None and gauges.metric:
            metrics.set_trial_value(ns, name, gauges.metric, ended.index, ended.value)
        if ended.duration is not None:
            metrics.TRIAL_DURATION.labels(ns, name, ended.state).observe(ended.duration)
    for event in plan.events:
        api.event(plan.sweep, event.type, event.reason, event.message)
