"""The operator against the real control plane: Sweeps applied with kubectl run to the end.

Nothing is mocked: a real kube-apiserver, controller manager (Job controller, garbage
collector), scheduler, and the node agent running each pod as a process. The operator
is a subprocess (`kubesweep operator`), so tests can SIGKILL it.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixtures crd, operator)
    REPO,
    OperatorProcess,
    apply,
    crd_fixture,
    get_sweep,
    jobs,
    operator_fixture,
    sweep_manifest,
    trial_records,
    wait_events,
    wait_phase,
    wait_until,
)

pytestmark = pytest.mark.k8s

# prints loss = (x - 0.3)^2 for a float parameter x
QUADRATIC = "x=${params.x}; print(f'loss={(x - 0.3) ** 2}')"


def _conditions(sweep: dict) -> dict[str, dict]:
    return {c["type"]: c for c in sweep["status"].get("conditions") or []}


def test_failing_trials_are_recorded_with_reasons(cluster: ClusterHandle, namespace: str,
                                                  operator: OperatorProcess):
    """A Job that exits 1 and a trial that prints no metric fail with the reason; the
    sweep still succeeds on the trials that worked, whether they printed the metric,
    used kubesweep.report, or only wrote the termination message."""
    command = ("import sys; m='${params.mode}'\n"
               "if m == 'crash': print('boom', file=sys.stderr); sys.exit(1)\n"
               "if m == 'silent': print('training done, no metric')\n"
               "if m == 'ok': print('loss=0.25')\n"
               "if m == 'report':\n"
               "    import kubesweep; kubesweep.report(loss=0.5, acc=0.8)\n"
               "if m == 'termination-only':\n"
               "    import json, os\n"
               "    path = os.environ.get('KUBESWEEP_TERMINATION_MESSAGE_PATH',\n"
               "                          '/dev/termination-log')  # the real node's\n"
               "    with open(path, 'w') as f:\n"
               "        json.dump({'loss': 0.125}, f)\n")
    apply(cluster, namespace, sweep_manifest(
        "fails", command, method="grid", parallelism=5,
        parameters={"mode": {"values": ["ok", "crash", "silent", "report",
                                        "termination-only"]}}))
    sweep = wait_phase(cluster, operator, namespace, "fails")
    status = sweep["status"]
    assert status["phase"] == "Succeeded"
    assert status["trials"]["succeeded"] == 3 and status["trials"]["failed"] == 2, \
        [(r["params"], r["reason"]) for r in trial_records(sweep)]
    by_mode = {r["params"]["mode"]: r for r in trial_records(sweep)}
    assert by_mode["ok"]["state"] == "succeeded" and by_mode["ok"]["value"] == 0.25
    assert by_mode["report"]["value"] == 0.5
    # no output at all: the value comes from the container's termination message
    assert by_mode["termination-only"]["state"] == "succeeded"
    assert by_mode["termination-only"]["value"] == 0.125
    assert by_mode["crash"]["state"] == "failed"
    assert "exited with code 1" in by_mode["crash"]["reason"]
    assert by_mode["silent"]["state"] == "failed"
    assert "printed no 'loss' metric" in by_mode["silent"]["reason"]
    wait_events(cluster, operator, namespace, "fails",
                {"TrialCreated", "TrialSucceeded", "TrialFailed", "SweepSucceeded"})


def test_unschedulable_trial_fails_after_the_start_timeout(cluster: ClusterHandle,
                                                           namespace: str,
                                                           operator: OperatorProcess):
    """A trial asking for more GPUs than any node has fails (after --trial-start-timeout,
    6 s here) with the scheduler's reason; meanwhile it is counted as unschedulable."""
    operator.stop()
    operator.start("--trial-start-timeout", "6")
    apply(cluster, namespace, sweep_manifest(
        "greedy", QUADRATIC, maxTrials=1, trialResources={"gpu": 16}))
    gauge = f'kubesweep_trials_unschedulable{{namespace="{namespace}",sweep="greedy"}} 1.0'
    wait_until(lambda: gauge in operator.metrics(), 30, "the unschedulable gauge", operator)
    job = jobs(cluster, namespace, "greedy")[0]
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "16"}
    sweep = wait_phase(cluster, operator, namespace, "greedy", timeout=60)
    assert sweep["status"]["phase"] == "Failed"
    assert _conditions(sweep)["Failed"]["reason"] == "NoSuccessfulTrial"
    (record,) = trial_records(sweep)
    assert record["state"] == "failed"
    assert "did not start within 6s" in record["reason"]
    assert "nvidia.com/gpu" in record["reason"]  # the scheduler's own message
    # the stuck Job is deleted, so its pod stops waiting for GPUs
    wait_until(lambda: not jobs(cluster, namespace, "greedy"), 30, "Job deleted", operator)


def test_max_failed_trials_fails_the_sweep(cluster: ClusterHandle, namespace: str,
                                           operator: OperatorProcess):
    apply(cluster, namespace, sweep_manifest(
        "doomed", "import sys; sys.exit(3)", maxTrials=20, maxFailedTrials=2))
    sweep = wait_phase(cluster, operator, namespace, "doomed")
    status = sweep["status"]
    assert status["phase"] == "Failed"
    cond = _conditions(sweep)["Failed"]
    assert cond["status"] == "True" and cond["reason"] == "TooManyFailedTrials"
    assert "maxFailedTrials=2" in cond["message"]
    assert status["trials"]["failed"] == 3  # more than 2, then no more trials
    assert status["trials"]["created"] == 3
    assert len(jobs(cluster, namespace, "doomed")) == 3


def test_metric_target_ends_the_sweep_and_stops_the_rest(cluster: ClusterHandle,
                                                         namespace: str,
                                                         operator: OperatorProcess):
    """Trial 0 reaches the target at once; the slow trials still running are stopped."""
    command = ("import time; i=${trial.index}\n"
               "if i == 0: print('loss=0.01')\n"
               "else: time.sleep(60); print('loss=1')\n")
    manifest = sweep_manifest("target", command, maxTrials=30, parallelism=3)
    manifest["spec"]["metric"]["target"] = 0.05
    apply(cluster, namespace, manifest)
    sweep = wait_phase(cluster, operator, namespace, "target", timeout=60)
    status = sweep["status"]
    assert status["phase"] == "Succeeded"
    assert _conditions(sweep)["Succeeded"]["reason"] == "TargetReached"
    states = {r["index"]: r["state"] for r in trial_records(sweep)}
    assert states[0] == "succeeded"
    assert all(s == "stopped" for i, s in states.items() if i != 0)
    assert status["trials"]["created"] < 30
    wait_until(lambda: all(j["metadata"]["name"] == "target-0"
                           for j in jobs(cluster, namespace, "target")),
               30, "the stopped trials' Jobs to be deleted", operator)


def test_early_termination_stops_poor_trials(cluster: ClusterHandle, namespace: str,
                                             operator: OperatorProcess):
    """Median rule: once two trials finished, a trial whose curve is worse than theirs
    at the same step is stopped (its Job deleted) and recorded as Stopped."""
    command = ("import time; x=${params.x}\n"
               "for s in range(1, 13):\n"
               "    print(f'step={s} loss={x + 1 / s}', flush=True); time.sleep(0.35)\n")
    apply(cluster, namespace, sweep_manifest(
        "early", command, method="grid", parallelism=1,
        parameters={"x": {"values": [0.1, 0.2, 5.0, 7.0]}},
        earlyTerminate={"type": "median", "minIter": 2, "minTrials": 2}))
    sweep = wait_phase(cluster, operator, namespace, "early", timeout=120)
    records = {r["params"]["x"]: r for r in trial_records(sweep)}
    assert records[0.1]["state"] == "succeeded" and records[0.2]["state"] == "succeeded"
    for x in (5.0, 7.0):
        assert records[x]["state"] == "stopped", records[x]
        assert "median rule" in records[x]["reason"]
    assert sweep["status"]["phase"] == "Succeeded"
    assert sweep["status"]["trials"]["stopped"] == 2
    stopped_jobs = {f"early-{r['index']}" for r in records.values() if r["state"] == "stopped"}
    wait_until(lambda: not stopped_jobs & {j["metadata"]["name"]
                                           for j in jobs(cluster, namespace, "early")},
               30, "stopped Jobs to be deleted", operator)
    wait_events(cluster, operator, namespace, "early", {"TrialStopped"})


def test_invalid_sweeps_are_refused_by_kubectl_apply(cluster: ClusterHandle, namespace: str,
                                                     crd: Path):
    """The CRD's schema and CEL rules refuse bad manifests with the field and the fix."""
    base = sweep_manifest("bad", QUADRATIC)
    cases = []
    m = copy.deepcopy(base)
    m["spec"]["parameters"]["x"] = {"distribution": "log_uniform_values", "min": 0, "max": 1}
    cases.append((m, "log distributions need min > 0"))
    m = copy.deepcopy(base)
    m["spec"]["parameters"]["x"] = {"min": 5.0, "max": 1.0}
    cases.append((m, "min must be less than max"))
    m = copy.deepcopy(base)
    del m["spec"]["maxTrials"]
    cases.append((m, "maxTrials is required for method random and bayes"))
    m = copy.deepcopy(base)
    m["spec"]["method"] = "annealing"
    cases.append((m, 'spec.method: Unsupported value: "annealing"'))
    m = copy.deepcopy(base)
    m["spec"]["parameters"]["x"]["distribution"] = "log_uniform"
    cases.append((m, "spec.parameters.x.distribution: Unsupported value"))
    m = copy.deepcopy(base)
    m["spec"]["parallelism"] = 0
    cases.append((m, "spec.parallelism: Invalid value: 0"))
    m = copy.deepcopy(base)
    m["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"] = []
    cases.append((m, "containers in body should have at least 1 items"))
    m = copy.deepcopy(base)
    m["spec"]["parameters"]["x"]["mni"] = 3
    cases.append((m, 'unknown field "spec.parameters.x.mni"'))
    m = copy.deepcopy(base)
    m["spec"]["earlyTerminate"] = {"type": "hyperband"}
    cases.append((m, "hyperband needs `minIter`"))
    for manifest, message in cases:
        result = apply(cluster, namespace, manifest, check=False)
        assert result.returncode != 0, f"accepted: {manifest['spec']}"
        assert message in result.stderr, result.stderr

    # categorical values of mixed scalar types are fine (the schema leaves them untyped)
    mixed = sweep_manifest("mixed", QUADRATIC, method="grid", parameters={
        "x": {"values": [1, "a", True, 0.5]}})
    cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-",
                    input=yaml.safe_dump(mixed))

    # a valid Sweep: only the fields in rules.MUTABLE_FIELDS may change afterwards
    apply(cluster, namespace, base)
    changed = copy.deepcopy(base)
    changed["spec"]["parallelism"] = 3
    changed["spec"]["maxTrials"] = 9
    apply(cluster, namespace, changed)
    changed["spec"]["method"] = "bayes"
    result = apply(cluster, namespace, changed, check=False)
    assert result.returncode != 0
    from kubesweep.rules import MUTABLE_FIELDS

    assert f"only {', '.join(MUTABLE_FIELDS)} may change once a Sweep is created" in \
        result.stderr


def test_spec_errors_the_schema_cannot_see_go_to_status(cluster: ClusterHandle,
                                                        namespace: str,
                                                        operator: OperatorProcess):
    """What only the pydantic models catch (here: probabilities vs values) fails the
    Sweep with the field named in a condition and a Warning event; the operator keeps
    running other Sweeps."""
    bad = sweep_manifest("probs", QUADRATIC, parameters={
        "act": {"values": ["a", "b", "c"], "probabilities": [0.5, 0.5]}})
    apply(cluster, namespace, bad)
    apply(cluster, namespace, sweep_manifest("fine", QUADRATIC, maxTrials=2))
    sweep = wait_phase(cluster, operator, namespace, "probs", timeout=30)
    cond = _conditions(sweep)["Failed"]
    assert cond["reason"] == "InvalidSpec"
    assert "spec.parameters.act" in cond["message"] and "probabilities" in cond["message"]
    wait_events(cluster, operator, namespace, "probs", {"InvalidSpec"})
    assert wait_phase(cluster, operator, namespace, "fine")["status"]["phase"] == "Succeeded"

    # a NUL byte the API server stores but no container could receive in its argv
    nul = sweep_manifest("nul", QUADRATIC, maxTrials=2)
    nul["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] \
        .append("x\x00y")
    apply(cluster, namespace, nul)
    sweep = wait_phase(cluster, operator, namespace, "nul", timeout=30)
    cond = _conditions(sweep)["Failed"]
    assert cond["reason"] == "InvalidSpec" and "contains a NUL byte" in cond["message"], cond
    assert not jobs(cluster, namespace, "nul")

    # a template the Job API refuses (container names are DNS labels): each trial fails
    # with the API server's message, the sweep ends, nothing retries forever
    broken = sweep_manifest("badjob", QUADRATIC, maxTrials=2)
    broken["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["name"] = \
        "Train_Container"
    apply(cluster, namespace, broken)
    sweep = wait_phase(cluster, operator, namespace, "badjob", timeout=30)
    assert sweep["status"]["phase"] == "Failed"
    records = trial_records(sweep)
    assert len(records) == 2
    assert all("cannot create Job" in r["reason"] and "Train_Container" in r["reason"]
               for r in records), records


def test_deleting_a_sweep_deletes_its_jobs(cluster: ClusterHandle, namespace: str,
                                           operator: OperatorProcess):
    apply(cluster, namespace, sweep_manifest("gone", "import time; time.sleep(30)",
                                             maxTrials=4, parallelism=2))
    wait_until(lambda: len(jobs(cluster, namespace, "gone")) == 2, 30, "2 Jobs", operator)
    cluster.kubectl("delete", "-n", namespace, "sweep/gone", "--wait=true", "--timeout=30s")
    wait_until(lambda: not jobs(cluster, namespace, "gone"), 60,
               "the garbage collector to delete the Jobs", operator)


def test_raising_max_trials_continues_a_finished_sweep(cluster: ClusterHandle,
                                                       namespace: str,
                                                       operator: OperatorProcess):
    apply(cluster, namespace, sweep_manifest("more", QUADRATIC, maxTrials=2))
    wait_phase(cluster, operator, namespace, "more")
    cluster.kubectl("patch", "-n", namespace, "sweep/more", "--type=merge",
                    "-p", '{"spec": {"maxTrials": 4}}')
    sweep = wait_until(
        lambda: (s := get_sweep(cluster, namespace, "more"))["status"].get("progress") == "4/4"
        and s["status"]["phase"] == "Succeeded" and s, 60, "4 trials", operator)
    assert len(trial_records(sweep)) == 4


SERIES = [
    "kubesweep_sweeps{", "kubesweep_trials{", "kubesweep_trials_created_total{",
    "kubesweep_sweep_best_value{", "kubesweep_trial_value{", "kubesweep_sweep_max_trials{",
    "kubesweep_trials_unschedulable{", "kubesweep_trial_duration_seconds_bucket{",
    "kubesweep_suggest_duration_seconds_bucket{", "kubesweep_reconcile_duration_seconds_bucket{",
]


def test_metrics_endpoint_exposes_the_series(cluster: ClusterHandle, namespace: str,
                                             operator: OperatorProcess):
    apply(cluster, namespace, sweep_manifest("metered", QUADRATIC, maxTrials=3))
    sweep = wait_phase(cluster, operator, namespace, "metered")
    text = operator.metrics()
    for series in SERIES:
        assert series in text, f"{series} missing from /metrics"
    assert _has(text, "kubesweep_sweeps", namespace, "metered", 'phase="Succeeded"', "1.0")
    assert _has(text, "kubesweep_sweeps", namespace, "metered", 'phase="Running"', "0.0")
    assert _has(text, "kubesweep_trials", namespace, "metered", 'state="succeeded"', "3.0")
    assert _has(text, "kubesweep_trials_created_total", namespace, "metered", "", "3.0")
    assert _has(text, "kubesweep_sweep_max_trials", namespace, "metered", "", "3.0")
    best = sweep["status"]["bestValue"]
    assert _has(text, "kubesweep_sweep_best_value", namespace, "metered", 'metric="loss"',
                repr(float(best)))
    # error counters are declared (TYPE line) even before any error, so rate() works
    assert "# TYPE kubesweep_reconcile_errors_total counter" in text
    assert "# TYPE kubesweep_api_errors_total counter" in text


def _has(text: str, name: str, namespace: str, sweep: str, extra: str, value: str) -> bool:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, got = line.rpartition(" ")
        if f'namespace="{namespace}"' in labels and f'sweep="{sweep}"' in labels and \
                (not extra or extra in labels) and float(got) == float(value):
            return True
    return False


def test_evicted_trial_is_rerun_without_using_the_budget(cluster: ClusterHandle,
                                                         namespace: str,
                                                         operator: OperatorProcess,
                                                         tmp_path: Path):
    """Evicting a trial's pod (not the code's fault) re-runs it in the same Job: the
    trial succeeds, the sweep does not create another trial for it."""
    if not cluster.is_local:
        pytest.skip("the trial's marker file must be on this machine (node agent)")
    marker = tmp_path / "attempts"  # one line per attempt of the trial's pod
    command = (f"import os, time; f={str(marker)!r}; first = not os.path.exists(f); "
               "open(f, 'a').write('attempt\\n'); time.sleep(60 if first else 0); "
               "print('loss=${params.x}')")
    apply(cluster, namespace, sweep_manifest("evict", command, maxTrials=1))
    wait_until(marker.exists, 60, "the first attempt to start", operator)
    core = cluster.core()
    (pod,) = core.list_namespaced_pod(namespace, label_selector="kubesweep.io/sweep=evict").items
    core.create_namespaced_pod_eviction(pod.metadata.name, namespace, {
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod.metadata.name, "namespace": namespace}})
    sweep = wait_phase(cluster, operator, namespace, "evict", timeout=90)
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"].get("recentTrials")
    assert sweep["status"]["trials"]["created"] == 1
    (record,) = trial_records(sweep)
    assert record["state"] == "succeeded", record
    (job,) = jobs(cluster, namespace, "evict")
    # the same Job ran a second pod, and the eviction did not count as a failed pod
    assert marker.read_text().splitlines() == ["attempt", "attempt"]
    assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), \
        job["status"]


def test_old_finished_jobs_are_pruned_once_recorded(cluster: ClusterHandle, namespace: str,
                                                    operator: OperatorProcess):
    """With --keep-finished-jobs 2 the operator deletes older finished Jobs (their results
    are already in the status), keeping the newest and the best trial's."""
    operator.stop()
    operator.start("--keep-finished-jobs", "2")
    apply(cluster, namespace, sweep_manifest("pruned", QUADRATIC, maxTrials=8, parallelism=1))
    sweep = wait_phase(cluster, operator, namespace, "pruned", timeout=90)
    assert len(trial_records(sweep)) == 8
    best = f"pruned-{sweep['status']['bestTrial']['index']}"
    left = wait_until(lambda: (names := {j["metadata"]["name"]
                                         for j in jobs(cluster, namespace, "pruned")})
                      and len(names) <= 3 and names, 30, "old Jobs pruned", operator)
    assert best in left
    assert "pruned-7" in left  # the newest is kept


def test_all_namespaces_mode(cluster: ClusterHandle, namespace: str, crd: Path,
                             tmp_path: Path):
    """--all-namespaces: one operator runs Sweeps of any namespace."""
    second = f"{namespace[:50]}-b"
    cluster.core().create_namespace({"metadata": {"name": second}})
    op = OperatorProcess(cluster, "*", tmp_path)
    op.start()
    try:
        for ns in (namespace, second):
            apply(cluster, ns, sweep_manifest("everywhere", QUADRATIC, maxTrials=2))
        for ns in (namespace, second):
            assert wait_phase(cluster, op, ns, "everywhere")["status"]["phase"] == "Succeeded"
    finally:
        op.stop()
        cluster.core().delete_namespace(second)


def test_changed_immutable_fields_pause_the_sweep(cluster: ClusterHandle, namespace: str,
                                                 operator: OperatorProcess):
    """The API server refuses such edits (CEL), so this simulates one that slipped past
    (e.g. a CRD installed without its rules) by changing the recorded hash of
    spec.method: the operator starts no more trials, says why in the SpecAccepted
    condition and an event, and resumes once the spec matches again."""
    apply(cluster, namespace, sweep_manifest(
        "frozen", "import time; time.sleep(2); " + QUADRATIC, maxTrials=3, parallelism=1))
    sweep = wait_until(lambda: (s := get_sweep(cluster, namespace, "frozen")).get("status", {})
                       .get("specHashes") and s, 30, "the first status", operator)
    real = sweep["status"]["specHashes"]["method"]

    def set_method_hash(value: str) -> None:
        cluster.kubectl("patch", "-n", namespace, "sweep/frozen", "--subresource=status",
                        "--type=merge", "-p",
                        f'{{"status": {{"specHashes": {{"method": "{value}"}}}}}}')

    set_method_hash("0123456789ab")
    cond = wait_until(
        lambda: next((c for c in get_sweep(cluster, namespace, "frozen")["status"]
                      .get("conditions", []) if c["type"] == "SpecAccepted"
                      and c["status"] == "False"), None), 30, "SpecAccepted=False", operator)
    assert cond["reason"] == "ImmutableFieldChanged"
    assert "spec.method changed" in cond["message"]
    wait_events(cluster, operator, namespace, "frozen", {"SpecChangeRefused"})
    paused = len(jobs(cluster, namespace, "frozen"))
    time.sleep(4)  # the running trial ends; no new one may start while paused
    assert len(jobs(cluster, namespace, "frozen")) == paused
    set_method_hash(real)
    sweep = wait_phase(cluster, operator, namespace, "frozen", timeout=60)
    assert sweep["status"]["phase"] == "Succeeded" and len(trial_records(sweep)) == 3
    accepted = {c["type"]: c for c in sweep["status"]["conditions"]}["SpecAccepted"]
    assert accepted["status"] == "True"
