"""The first step of a pass: read what the cluster holds about one Sweep into plain data.

`observe` is the only code of a pass that reads from the API; `decide` (pure) turns the
`Snapshot` into a `Plan` and `apply` writes it. Observe reads only what decide will need:
the Jobs always; the pods only when a Job's trial is not yet recorded in the status; a
log only for a finished, unrecorded trial (its result) or, under early termination, for
a running one (its curve). A finished trial whose log read fails (its node unreachable or
gone) is judged from its termination message when that holds the objective; otherwise
the pass fails and is retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kubesweep.k8s import objects
from kubesweep.k8s.api import Api, ApiError
from kubesweep.k8s.names import SWEEP_LABEL, label_value
from kubesweep.k8s.recovery import readable_indices
from kubesweep.k8s.status import changed_fields
from kubesweep.spec import SpecError, parse_spec

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """What one pass knows about a Sweep: API objects as dicts, logs as text."""

    #: the Sweep object (metadata, spec, status)
    sweep: dict[str, Any]
    #: the Sweep's trial Jobs (owned by it)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    #: pods by trial index, oldest first (read only when some Job is not yet recorded)
    pods: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: the primary container's log by pod name (None: could not be read)
    logs: dict[str, str | None] = field(default_factory=dict)
    #: Job creations the API server refused earlier in this pass: index → (params, message)
    rejected: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)
    #: the Sweeps spec.warmStart.sweeps names, by name (None: not found)
    warm: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def selector(sweep_name: str) -> str:
    """Label selector of a sweep's Jobs and pods."""
    return f"{SWEEP_LABEL}={label_value(sweep_name)}"


def observe(api: Api, namespace: str, name: str) -> Snapshot | None:
    """Read the Sweep and what decide needs of its Jobs, pods and logs; None when the
    Sweep is gone or being deleted."""
    sweep = api.get_sweep(namespace, name)
    if sweep is None or sweep["metadata"].get("deletionTimestamp"):
        return None
    snap = Snapshot(sweep)
    try:
        spec = parse_spec(dict(sweep.get("spec") or {}))
    except SpecError:
        return snap  # decide reports the spec; no trial is looked at
    status = sweep.get("status") or {}
    if changed_fields(sweep.get("spec") or {}, status.get("specHashes")):
        return snap  # decide refuses the change; no trial is looked at
    finished = status.get("phase") in ("Succeeded", "Failed") and \
        status.get("observedGeneration") == sweep["metadata"].get("generation")
    if spec.warmStart is not None and not finished:
        # warm start: the earlier Sweeps' status.history seeds this sweep's model
        snap.warm = {n: api.get_sweep(namespace, n) for n in spec.warmStart.sweeps or []}
    uid = sweep["metadata"].get("uid", "")
    snap.jobs = [j for j in api.list_jobs(namespace, selector(name)) if objects.owned_by(j, uid)]
    # unreadable: every Job counts as unrecorded (decide reports it and rebuilds)
    recorded = readable_indices(status.get("history")) or set()
    unrecorded = [j for j in snap.jobs if objects.trial_index(j) not in recorded]
    if not unrecorded:
        return snap
    snap.pods = objects.pods_by_trial(api.list_pods(namespace, selector(name)))
    container = spec.primary_container().get("name")
    for job in unrecorded:
        index = objects.trial_index(job)
        pods = snap.pods.get(index, []) if index is not None else []
        if objects.job_finished(job):
            pod = objects.result_pod(pods, container)
        elif spec.earlyTerminate is not None and not job["metadata"].get("deletionTimestamp"):
            pod = objects.running_pod(pods)
        else:
            pod = None
        if pod is not None:
            pod_name = pod["metadata"]["name"]
            try:
                snap.logs[pod_name] = api.read_log(namespace, pod_name, container)
            except ApiError as err:
                if not (objects.job_finished(job) and
                        objects.result_without_log(pod, container, spec.objective)):
                    raise  # the pass fails and is retried: the log may come back
                # the result is in the termination message: judge the trial from it
                log.debug("log of pod %s/%s unreadable (%s); its result is in the "
                          "termination message", namespace, pod_name, err)
                snap.logs[pod_name] = None
    return snap
