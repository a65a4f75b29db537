"""Rendering a trial's Job: names, labels, params, owner, resources, disruption policy."""

from __future__ import annotations

import json

from kubesweep.k8s.jobs import render_job
from kubesweep.k8s.names import PARAMS_ANNOTATION, SWEEP_LABEL, TRIAL_LABEL, job_name
from kubesweep.spec import parse_spec
from tests.helpers import job_template, make_spec


def _render(spec_extra=None, template=None, index=3, params=None, **kw):
    raw = make_spec({"lr": {"min": 0.001, "max": 0.1}, "act": {"values": ["a", "b"]}},
                    **(spec_extra or {}))
    if template is not None:
        raw["trialTemplate"] = template
    spec = parse_spec(raw)
    return render_job(spec, sweep_name="mysweep", namespace="ns", sweep_uid="uid-1",
                      index=index, params=params or {"lr": 0.01, "act": "a"}, **kw)


def test_names_are_deterministic_dns_labels():
    assert job_name("digits", 7) == "digits-7"
    long = "s" * 70
    name = job_name(long, 12345)
    assert len(name) <= 63 and name.endswith("-12345")
    assert name == job_name(long, 12345)
    assert job_name(long + "x", 12345) != name  # the hash keeps distinct sweeps apart
    assert job_name("a" * 57, 12345) == "a" * 57 + "-12345"  # exactly 63: no hash needed


def test_job_carries_labels_params_and_owner():
    job = _render()
    meta = job["metadata"]
    assert meta["name"] == "mysweep-3" and meta["namespace"] == "ns"
    assert meta["labels"] == {SWEEP_LABEL: "mysweep", TRIAL_LABEL: "3"}
    assert json.loads(meta["annotations"][PARAMS_ANNOTATION]) == {"lr": 0.01, "act": "a"}
    assert meta["ownerReferences"] == [{
        "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep", "name": "mysweep",
        "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[SWEEP_LABEL] == "mysweep" and pod_labels[TRIAL_LABEL] == "3"


def test_parameters_are_substituted_and_env_added():
    job = _render(template=job_template(["python", "train.py", "--lr=${params.lr}",
                                         "--act=${params.act}", "--name=${trial.name}"]))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "train.py", "--lr=0.01", "--act=a",
                                    "--name=mysweep-3"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["KUBESWEEP_PARAMS"]) == {"lr": 0.01, "act": "a"}
    assert env["KUBESWEEP_TRIAL"] == "mysweep-3"


def test_defaults_and_disruption_policy():
    job = _render()
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    rule = spec["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "Ignore"
    assert rule["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    container = spec["template"]["spec"]["containers"][0]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_user_settings_win_and_on_failure_gets_no_policy():
    template = job_template()
    template["spec"]["backoffLimit"] = 2
    template["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    job = _render(template=template)
    assert job["spec"]["backoffLimit"] == 2
    assert "podFailurePolicy" not in job["spec"]  # the API only allows it with Never


def test_trial_resources_merge_into_the_primary_container():
    template = job_template()
    sidecar = {"name": "side", "image": "busybox", "command": ["sleep", "1"]}
    template["spec"]["template"]["spec"]["containers"] = [
        sidecar, {"name": "train", "image": "x", "command": ["python", "t.py"],
                  "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}}]
    job = _render({"primaryContainer": "train",
                   "trialResources": {"gpu": 2, "cpu": 4, "memory": "8Gi"}},
                  template=template, gpu_resource_name="amd.com/gpu")
    side, train = job["spec"]["template"]["spec"]["containers"]
    assert side == sidecar
    assert train["resources"]["requests"] == {"cpu": "4", "memory": "8Gi", "amd.com/gpu": "2"}
    assert train["resources"]["limits"] == {"memory": "1Gi", "amd.com/gpu": "2"}


def test_quantities_written_as_numbers_become_strings():
    template = job_template()
    pod = template["spec"]["template"]["spec"]
    pod["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "1Gi"},
                                         "requests": {"cpu": 0.5}}
    pod["containers"].append({"name": "side", "image": "x",
                              "resources": {"requests": {"cpu": 2}}})
    pod["initContainers"] = [{"name": "init", "image": "x",
                              "resources": {"limits": {"memory": 1073741824}}}]
    job = _render(template=template)
    spec = job["spec"]["template"]["spec"]
    trial, side = spec["containers"]
    assert trial["resources"] == {"limits": {"nvidia.com/gpu": "1", "memory": "1Gi"},
                                  "requests": {"cpu": "0.5"}}
    assert side["resources"] == {"requests": {"cpu": "2"}}
    assert spec["initContainers"][0]["resources"] == {"limits": {"memory": "1073741824"}}


def test_gpu_resource_name_in_the_sweep_beats_the_operator_flag():
    job = _render({"trialResources": {"gpu": 1, "gpuResourceName": "nvidia.com/mig-1g.5gb"}},
                  gpu_resource_name="amd.com/gpu")
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/mig-1g.5gb": "1"}


def test_long_sweep_names_give_valid_labels():
    raw = make_spec({"lr": {"min": 0.001, "max": 0.1}})
    job = render_job(parse_spec(raw), sweep_name="x" * 80, namespace="ns", sweep_uid="u",
                     index=1, params={"lr": 0.01})
    assert len(job["metadata"]["name"]) <= 63
    assert len(job["metadata"]["labels"][SWEEP_LABEL]) <= 63


def test_dollar_in_values_is_escaped_so_kubernetes_passes_them_verbatim():
    """Kubernetes expands `$(VAR)` in command, args and env values; a parameter value
    such as `$(HOSTNAME)` must arrive as written (the expansion below is the one the
    test node implements, Kubernetes' rules: `$$` is `$`)."""
    from tests.cluster.container_env import expand

    template = job_template(["python", "train.py", "--act=${params.act}"])
    template["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "ACT", "value": "${params.act}"},
        {"name": "MINE", "value": "$(HOSTNAME)"},  # the user's own reference: expanded
    ]
    value = "$(HOSTNAME) $$ $(SECRET)"
    job = _render(template=template, params={"lr": 0.01, "act": value})
    container = job["spec"]["template"]["spec"]["containers"][0]
    pod_env = {"HOSTNAME": "pod-1", "SECRET": "hunter2"}
    assert [expand(a, pod_env) for a in container["command"]][-1] == f"--act={value}"
    env = {e["name"]: expand(e["value"], pod_env) for e in container["env"]}
    assert env["ACT"] == value and env["MINE"] == "pod-1"
    assert json.loads(env["KUBESWEEP_PARAMS"])["act"] == value
    # the annotation is not expanded by Kubernetes: it holds the value itself
    assert json.loads(job["metadata"]["annotations"][PARAMS_ANNOTATION])["act"] == value
