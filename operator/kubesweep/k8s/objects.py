"""What a trial's Job and pods say about the trial: pure functions over API objects (dicts).

No I/O here: `snapshot.observe` fetches the objects and the logs, `decide` reads them
with these functions.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from kubesweep.k8s.names import DISRUPTIONS_ANNOTATION, PARAMS_ANNOTATION, TRIAL_LABEL
from kubesweep.trial_output import MetricLog

#: Container waiting reasons that mean the trial's image or config will not start by
#: itself; the trial fails once the start timeout passes.
STUCK_WAITING_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                         "CreateContainerConfigError", "CreateContainerError",
                         "ErrImageNeverPull", "RunContainerError"}


def parse_time(text: str | None) -> datetime.datetime | None:
    """An API timestamp (RFC 3339) as an aware datetime; None when absent."""
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def trial_index(obj: dict[str, Any]) -> int | None:
    """The trial number from a Job's or pod's `kubesweep.io/trial` label."""
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(TRIAL_LABEL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def job_params(job: dict[str, Any]) -> dict[str, Any] | None:
    """The trial parameters recorded in the Job's annotation (None if unreadable)."""
    text = ((job.get("metadata") or {}).get("annotations") or {}).get(PARAMS_ANNOTATION)
    try:
        params = json.loads(text) if text else None
    except ValueError:
        return None
    return params if isinstance(params, dict) else None


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def job_finished(job: dict[str, Any]) -> str | None:
    """'Complete' or 'Failed' once the Job controller says so, else None."""
    for kind in ("Complete", "Failed"):
        if _condition(job, kind):
            return kind
    return None


def job_failure_message(job: dict[str, Any]) -> str:
    """The Job controller's reason a Job failed, e.g. 'BackoffLimitExceeded: ...'."""
    cond = _condition(job, "Failed") or {}
    return ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x) or "Job failed"


def pods_by_trial(pods: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Pods grouped by trial index, oldest first."""
    out: dict[int, list[dict[str, Any]]] = {}
    for pod in pods:
        index = trial_index(pod)
        if index is not None:
            out.setdefault(index, []).append(pod)
    for group in out.values():
        group.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                  p["metadata"].get("name") or ""))
    return out


def container_status(pod: dict[str, Any], container: str | None) -> dict[str, Any] | None:
    """The status of the named container (the first one when `container` is None)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if container is None or status.get("name") == container:
            return status
    return None


def terminated(pod: dict[str, Any], container: str | None) -> dict[str, Any] | None:
    """The container's `state.terminated` (exit code, reason, message), if it ended."""
    status = container_status(pod, container) or {}
    return (status.get("state") or {}).get("terminated")


def started(pod: dict[str, Any]) -> bool:
    """True once any container of the pod ran (running or terminated)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")


def unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's message when the pod cannot be placed (e.g. not enough GPUs)."""
    if (pod.get("status") or {}).get("phase") != "Pending":
        return None
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return cond.get("message") or cond.get("reason") or "Unschedulable"
    return None


def stuck_reason(pod: dict[str, Any]) -> str | None:
    """Why a pending pod does not start: unschedulable, image pull errors, bad config."""
    message = unschedulable(pod)
    if message:
        return f"unschedulable: {message}"
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING_REASONS:
            text = waiting["reason"]
            if waiting.get("message"):
                text += f": {waiting['message']}"
            return f"container {status.get('name')} cannot start: {text}"
    return None


def result_pod(pods: list[dict[str, Any]], container: str | None) -> dict[str, Any] | None:
    """The pod whose log holds a finished trial's result: the newest one whose container
    ended, else the newest one."""
    return next((p for p in reversed(pods) if terminated(p, container)),
                pods[-1] if pods else None)


def running_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest running pod of a trial (whose log early termination reads)."""
    return next((p for p in reversed(pods)
                 if (p.get("status") or {}).get("phase") == "Running"), None)


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """True when `obj` (a Job) belongs to the object with `uid` (its Sweep)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def disrupted(pod: dict[str, Any]) -> bool:
    """True when the pod was evicted or preempted (DisruptionTarget), not the code's fault."""
    return _condition(pod, "DisruptionTarget") is not None


def disruptions(job: dict[str, Any], pods: list[dict[str, Any]]) -> int:
    """Disruptions the trial suffered: the larger of the Job's annotation and the pods seen."""
    noted = ((job.get("metadata") or {}).get("annotations") or {}).get(DISRUPTIONS_ANNOTATION)
    try:
        recorded = int(noted) if noted else 0
    except ValueError:
        recorded = 0
    return max(recorded, sum(1 for p in pods if disrupted(p)))


@dataclass
class PendingState:
    """A running Job's trial: has it started, is it stuck, since when."""

    started: bool
    stuck: str | None
    unschedulable: bool
    waiting_seconds: float


def pending_state(job: dict[str, Any], pods: list[dict[str, Any]],
                  now: datetime.datetime) -> PendingState:
    """Whether an unfinished trial runs, and for how long it has been waiting to."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    # a pod that already ended counts too: the Job controller may lag behind it
    is_started = any(started(p) for p in live)
    stuck = next((r for r in (stuck_reason(p) for p in live) if r), None)
    since = parse_time((job.get("metadata") or {}).get("creationTimestamp")) or now
    if live:
        newest = parse_time(live[-1]["metadata"].get("creationTimestamp"))
        since = max(since, newest) if newest else since
    return PendingState(
        started=is_started,
        stuck=stuck,
        unschedulable=any(unschedulable(p) for p in live),
        waiting_seconds=max(0.0, (now - since).total_seconds()),
    )


def read_metrics(log_text: str | None, termination_message: str | None,
                 objective: str | None) -> MetricLog:
    """The trial's metrics: its log, else the termination message (JSON or log tail).

    The log is the full record (intermediate values); the termination message is the
    fallback when the log is gone or was never readable.
    """
    log = MetricLog(objective)
    if log_text:
        log.feed_text(log_text)
    if termination_message and not log.has_objective:
        log.feed_text(termination_message)
    elif termination_message:
        # the final JSON of kubesweep.report(): fill in metrics the log did not show
        extra = MetricLog(objective)
        extra.feed_text(termination_message)
        for key, value in extra.latest.items():
            log.latest.setdefault(key, value)
    return log


def result_without_log(pod: dict[str, Any], container: str | None,
                       objective: str | None) -> bool:
    """True when the ended container's termination message alone holds the trial's
    objective value: a finished trial can then be judged although reading its log fails
    (a node unreachable, or gone for good). Without it, the read is retried: judging from
    nothing would fail a trial that succeeded."""
    term = terminated(pod, container) or {}
    if objective is None or term.get("exitCode") != 0 or not term.get("message"):
        return False
    return read_metrics(None, term["message"], objective).has_objective


def duration_seconds(job: dict[str, Any], now: datetime.datetime) -> float | None:
    """Seconds from the Job's start to its completion (or now)."""
    status = job.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return None
    end = parse_time(status.get("completionTime"))
    if end is None:
        cond = _condition(job, "Failed") or _condition(job, "Complete") or {}
        end = parse_time(cond.get("lastTransitionTime")) or now
    return max(0.0, (end - start).total_seconds())
