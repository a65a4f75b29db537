"""Rendering one trial's batch/v1 Job from the Sweep's trialTemplate."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubesweep.k8s.names import PARAMS_ANNOTATION, SWEEP_LABEL, TRIAL_LABEL, job_name, label_value
from kubesweep.settings import DEFAULT_GPU_RESOURCE
from kubesweep.spec import API_VERSION, KIND, SweepSpec
from kubesweep.template import render_container

#: Evictions and preemptions are not the training code's fault: the Job controller re-runs
#: such pods without counting them against backoffLimit; the operator bounds how often
#: with spec.trialRetries.
DISRUPTION_POLICY = {"rules": [{
    "action": "Ignore",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}]}


def owner_reference(sweep_name: str, sweep_uid: str) -> dict[str, Any]:
    """The ownerReference that makes a Job belong to its Sweep (deleted with it)."""
    return {"apiVersion": API_VERSION, "kind": KIND, "name": sweep_name, "uid": sweep_uid,
            "controller": True, "blockOwnerDeletion": True}


def trial_labels(sweep_name: str, index: int) -> dict[str, str]:
    """Labels on a trial's Job and pods: which sweep, which trial."""
    return {SWEEP_LABEL: label_value(sweep_name), TRIAL_LABEL: str(index)}


def _quantity(value: Any) -> str:
    return str(value)


def _quantities_as_strings(container: dict[str, Any]) -> None:
    """Resource quantities written as YAML numbers (`nvidia.com/gpu: 1`, `cpu: 0.5`) as
    the strings the API's Quantity type is (in place): the API server takes either, but
    the Python client refuses a number when it builds the request, and the pass would
    fail on every retry."""
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return
    for kind in ("requests", "limits"):
        values = resources.get(kind)
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[key] = _quantity(value)


def merge_resources(container: dict[str, Any], spec: SweepSpec,
                    gpu_resource_name: str = DEFAULT_GPU_RESOURCE) -> None:
    """Merge spec.trialResources into the container's requests/limits (in place).

    GPUs (extended resources) go to limits and requests alike, as Kubernetes requires;
    cpu and memory are requests. trialResources wins over the template's own values.
    """
    res = spec.trialResources
    if res is None:
        return
    resources = container.setdefault("resources", {})
    requests = resources.setdefault("requests", {})
    if res.cpu is not None:
        requests["cpu"] = _quantity(res.cpu)
    if res.memory is not None:
        requests["memory"] = _quantity(res.memory)
    if res.gpu is not None:
        # a gpuResourceName written in the Sweep beats the operator's --gpu-resource-name
        name = res.gpuResourceName if "gpuResourceName" in res.model_fields_set \
            else gpu_resource_name
        resources.setdefault("limits", {})[name] = str(res.gpu)
        requests[name] = str(res.gpu)
    if not requests:
        resources.pop("requests")


def render_job(spec: SweepSpec, *, sweep_name: str, namespace: str, sweep_uid: str,
               index: int, params: dict[str, Any],
               gpu_resource_name: str = DEFAULT_GPU_RESOURCE) -> dict[str, Any]:
    """The Job that runs trial `index` with `params`: deterministic name, labels, params
    annotation, owner reference, resources and the disruption policy."""
    name = job_name(sweep_name, index)
    template = copy.deepcopy(spec.trialTemplate)
    job_spec: dict[str, Any] = template.get("spec") or {}
    meta_in = template.get("metadata") or {}
    labels = {**(meta_in.get("labels") or {}), **trial_labels(sweep_name, index)}
    annotations = {**(meta_in.get("annotations") or {}),
                   PARAMS_ANNOTATION: json.dumps(params, sort_keys=True)}

    pod = job_spec.setdefault("template", {})
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **trial_labels(sweep_name, index)}
    pod_spec = pod.setdefault("spec", {})
    containers = pod_spec["containers"]
    primary = spec.primaryContainer
    at = next((i for i, c in enumerate(containers) if c.get("name") == primary), 0) \
        if primary else 0
    # escape=True: Kubernetes would expand `$(VAR)` in a parameter value
    container = render_container(containers[at], params, name, index, sweep_name,
                                 spec.parameters, escape=True)
    merge_resources(container, spec, gpu_resource_name)
    # the log tail becomes the termination message of a crashed trial: the reason is kept
    # even after the pod and its logs are gone
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    containers[at] = container
    for each in [*(pod_spec.get("initContainers") or []), *containers]:
        _quantities_as_strings(each)

    pod_spec.setdefault("restartPolicy", "Never")
    # a trial that fails because of its code fails; re-running it rarely helps and would
    # spend the budget's time (Kubernetes' default is 6 retries)
    job_spec.setdefault("backoffLimit", 0)
    if pod_spec["restartPolicy"] == "Never" and "podFailurePolicy" not in job_spec:
        job_spec["podFailurePolicy"] = copy.deepcopy(DISRUPTION_POLICY)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(sweep_name, sweep_uid)],
        },
        "spec": job_spec,
    }
