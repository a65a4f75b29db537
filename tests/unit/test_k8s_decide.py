"""The operator's decisions, as a pure function of plain dicts (no cluster, milliseconds).

`World` holds a Sweep, its Jobs, pods and logs as the API server would return them, and
carries a plan out on that data the way `apply` does on the cluster, so a test walks a
sweep through several passes. tests/k8s/test_operator.py runs the same cases end to end.
"""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from kubesweep.k8s import history
from kubesweep.k8s.decide import Plan, decide
from kubesweep.k8s.snapshot import Snapshot
from kubesweep.k8s.status import spec_hashes
from kubesweep.settings import Settings
from tests.helpers import make_spec

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
SETTINGS = Settings()
SPACE = {"x": {"min": 0.0, "max": 1.0, "distribution": "uniform"}}


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch, as the API server applies it."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class World:
    """A Sweep and what the cluster holds for it, as plain API dicts."""

    def __init__(self, name: str = "s", **spec: Any) -> None:
        self.name = name
        self.sweep: dict[str, Any] = {
            "apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
            "metadata": {"name": name, "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": make_spec(spec.pop("parameters", SPACE), **spec),
        }
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[int, list[dict[str, Any]]] = {}
        self.logs: dict[str, str | None] = {}
        self.now = NOW
        self.deleted: list[str] = []
        #: other Sweeps by name, as observe reads them for spec.warmStart.sweeps
        self.warm: dict[str, dict[str, Any] | None] = {}

    @property
    def status(self) -> dict[str, Any]:
        return self.sweep.get("status") or {}

    def snapshot(self) -> Snapshot:
        return Snapshot(copy.deepcopy(self.sweep), copy.deepcopy(list(self.jobs.values())),
                        copy.deepcopy(self.pods), dict(self.logs),
                        warm=copy.deepcopy(self.warm))

    def step(self, settings: Settings = SETTINGS, seconds: float = 1.0) -> Plan:
        """One pass at the current time, carried out; then the clock moves on."""
        plan = decide(self.snapshot(), self.now, settings)
        # nothing the operator writes may hold NaN or infinity: JSON cannot carry them
        json.dumps([plan.record, plan.status, [c.body for c in plan.create],
                    [e.message for e in plan.events]], allow_nan=False)
        if plan.record:
            self.sweep["status"] = merge(self.status, plan.record)
        for name in plan.delete + plan.prune:
            if self.jobs.pop(name, None) is not None:
                self.deleted.append(name)
        for name, notes in plan.annotate.items():
            self.jobs[name]["metadata"].setdefault("annotations", {}).update(notes)
        for new in plan.create:
            body = copy.deepcopy(new.body)
            body["metadata"]["creationTimestamp"] = iso(self.now)
            self.jobs.setdefault(body["metadata"]["name"], body)
        if plan.status:
            self.sweep["status"] = merge(self.status, plan.status)
        self.now += datetime.timedelta(seconds=seconds)
        return plan

    def job(self, index: int) -> dict[str, Any]:
        return self.jobs[f"{self.name}-{index}"]

    def pod(self, index: int, phase: str = "Running", **status: Any) -> dict[str, Any]:
        pod = {"metadata": {"name": f"{self.name}-{index}-{len(self.pods.get(index, []))}",
                            "creationTimestamp": iso(self.now),
                            "labels": {"kubesweep.io/trial": str(index)}},
               "status": {"phase": phase, **status}}
        self.pods.setdefault(index, []).append(pod)
        return pod

    def run(self, index: int, log: str = "") -> None:
        pod = self.pod(index, containerStatuses=[{"name": "trial", "state": {"running": {}}}])
        self.job(index)["status"] = {"startTime": iso(self.now), "active": 1}
        self.logs[pod["metadata"]["name"]] = log

    def finish(self, index: int, log: str, exit_code: int = 0, reason: str = "") -> None:
        """The trial's container exits (the kubelet's `reason`, e.g. OOMKilled); the Job
        controller marks the Job."""
        phase = "Succeeded" if exit_code == 0 else "Failed"
        terminated = {"exitCode": exit_code, "message": log[-80:]}
        if reason:
            terminated["reason"] = reason
        pod = self.pod(index, phase, containerStatuses=[{"name": "trial", "state": {
            "terminated": terminated}}])
        self.logs[pod["metadata"]["name"]] = log
        cond = {"type": "Complete", "status": "True"} if exit_code == 0 else \
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}
        self.job(index)["status"] = {"startTime": iso(self.now - datetime.timedelta(seconds=9)),
                                     "completionTime": iso(self.now), "conditions": [cond]}

    def trials(self) -> dict[int, dict[str, Any]]:
        return {r["index"]: r for r in history.decode(self.status.get("history"))}

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


# -- starting and running -------------------------------------------------------------------

def test_a_new_sweep_creates_parallelism_jobs_with_deterministic_names():
    w = World(parallelism=3)
    plan = w.step()
    assert [c.body["metadata"]["name"] for c in plan.create] == ["s-0", "s-1", "s-2"]
    assert plan.record is None and plan.delete == []
    assert w.status["phase"] == "Running" and w.status["trials"]["created"] == 3
    assert w.status["trials"]["pending"] == 3
    assert reasons(plan) == []  # TrialCreated is posted by apply, once the Job exists
    assert [c.event.reason for c in plan.create] == ["TrialCreated"] * 3
    assert plan.requeue_after == 30.0


def test_deciding_twice_gives_the_same_plan():
    w = World(parallelism=2)
    w.step()
    w.finish(0, "loss=0.5")
    snap = w.snapshot()
    assert decide(snap, NOW, SETTINGS) == decide(copy.deepcopy(snap), NOW, SETTINGS)


def test_a_succeeded_trial_is_recorded_before_the_next_one_is_created():
    w = World(parallelism=1, maxTrials=3)
    w.step()
    w.finish(0, "epoch=1 loss=0.9\nepoch=2 loss=0.5\n")
    plan = w.step()
    assert plan.record is not None  # results first (crash safety) ...
    assert plan.record["trials"]["succeeded"] == 1
    assert [c.index for c in plan.create] == [1]  # ... then the next trial
    assert w.trials()[0]["state"] == "succeeded" and w.trials()[0]["value"] == 0.5
    assert w.status["bestTrial"]["metrics"] == {"epoch": 2.0, "loss": 0.5}
    assert "TrialSucceeded" in reasons(plan)
    assert plan.ended[0].state == "succeeded" and plan.ended[0].duration == 9.0


# -- judging finished trials ----------------------------------------------------------------

def test_a_crashed_trial_fails_quoting_its_last_line_and_the_job_controller():
    w = World()
    w.step()
    w.finish(0, "Traceback (most recent call last):\nValueError: boom\n", exit_code=1)
    plan = w.step()
    trial = w.trials()[0]
    assert trial["state"] == "failed"
    assert trial["reason"] == ("exited with code 1: ValueError: boom (BackoffLimitExceeded: "
                               "Job has reached the specified backoff limit)")
    assert next(e for e in plan.events if e.reason == "TrialFailed").type == "Warning"


def test_a_trial_the_kubelet_killed_for_memory_fails_as_oom_killed():
    w = World()
    w.step()
    w.finish(0, "epoch 1\n", exit_code=137, reason="OOMKilled")
    w.step()
    assert w.trials()[0]["reason"] == (
        "exited with code 137: epoch 1 (OOMKilled: the container exceeded its memory limit; "
        "BackoffLimitExceeded: Job has reached the specified backoff limit)")



def test_a_sigkill_without_oom_killed_reason_says_memory_is_the_likely_cause():
    """containerd may file the OOM under the pod sandbox (the pod's cgroup has the same
    limit and runs out first): the trial container then ends 'Error' with code 137."""
    w = World()
    w.step()
    w.finish(0, "epoch 1\n", exit_code=137, reason="Error")
    w.step()
    reason = w.trials()[0]["reason"]
    assert reason.startswith("exited with code 137: epoch 1 (killed by SIGKILL, most likely "
                             "out of memory"), reason
    w2 = World()
    w2.step()
    w2.finish(0, "epoch 1\n", exit_code=1, reason="Error")
    w2.step()
    assert "memory" not in w2.trials()[0]["reason"]

def test_a_trial_without_the_metric_fails_saying_what_it_printed():
    w = World()
    w.step()
    w.finish(0, "hello\nacc=0.3\n")
    w.step()
    assert w.trials()[0]["reason"].startswith("printed no 'loss' metric (saw: acc)")


def test_non_finite_values_fail_the_trial_and_never_reach_the_status():
    for bad in ("nan", "inf", "-inf", "1e309"):
        w = World(maxTrials=2, parallelism=2)
        w.step()
        w.finish(0, f"acc=inf\nloss={bad}\n")
        w.finish(1, "acc=nan\nloss=0.25\n")
        w.step()  # World.step refuses a plan that holds a non-finite float
        trials = w.trials()
        assert trials[0]["state"] == "failed" and trials[0]["value"] is None
        assert trials[0]["reason"].startswith("reported loss=")
        # the other trial is recorded too; its non-finite other metric is dropped
        assert trials[1]["state"] == "succeeded"
        assert w.status["bestTrial"]["metrics"] == {"loss": 0.25}



def test_a_metric_beyond_float32_is_recorded_and_the_next_pass_still_writes():
    """`acc=1e39` is finite; stored as float32 in status.history it came back as infinity
    and every later status write failed (the sweep froze)."""
    w = World(maxTrials=3, parallelism=1)
    w.step()
    w.finish(0, "acc=1e39 tiny=1e-50\nloss=0.5\n")
    for _ in range(3):
        w.step()  # World.step refuses a plan that holds a non-finite float
    assert w.trials()[0]["metrics"] == {"acc": 1e39, "tiny": 1e-50, "loss": 0.5}
    assert w.status["bestTrial"]["metrics"]["acc"] == 1e39


# -- trials that do not start ---------------------------------------------------------------

def test_an_unschedulable_trial_is_counted_then_failed_after_the_start_timeout():
    w = World()
    w.step()
    w.pod(0, "Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": "0/1 nodes are available: 1 Insufficient "
                                     "nvidia.com/gpu."}])
    settings = Settings(trial_start_timeout=10)
    plan = w.step(settings, seconds=11)
    assert w.status["trials"]["unschedulable"] == 1 and plan.delete == []
    assert plan.requeue_after == 10.5  # woken for the timeout, before the next poll
    plan = w.step(settings)
    assert plan.delete == ["s-0"] and plan.record is not None
    assert w.trials()[0]["reason"].startswith(
        "did not start within 10s: unschedulable: 0/1 nodes are available")


def test_a_trial_stuck_on_its_image_fails_after_the_start_timeout():
    w = World()
    w.step(seconds=601)
    w.pod(0, "Pending", containerStatuses=[{"name": "trial", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}])
    w.job(0)["metadata"]["creationTimestamp"] = iso(NOW)
    w.pods[0][0]["metadata"]["creationTimestamp"] = iso(NOW)
    w.step()
    assert "cannot start: ImagePullBackOff" in w.trials()[0]["reason"]


# -- ending trials and sweeps ---------------------------------------------------------------

def test_a_trial_past_its_jobs_active_deadline_fails_with_the_job_controllers_reason():
    """A template's activeDeadlineSeconds: the Job controller kills the pod and marks the
    Job failed; the trial fails with that reason, whatever it printed before."""
    w = World(parallelism=2, maxTrials=2)
    w.step()
    deadline = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline"}
    # trial 0: its pod is already gone; trial 1: its pod was killed with SIGTERM
    w.run(0, "loss=0.5\n")
    del w.logs[w.pods.pop(0)[0]["metadata"]["name"]]
    w.job(0)["status"] = {"startTime": iso(NOW), "conditions": [deadline]}
    w.pod(1, "Failed", containerStatuses=[{"name": "trial", "state": {"terminated": {
        "exitCode": 143, "message": "loss=0.4"}}}])
    w.logs["s-1-0"] = "loss=0.4\n"
    w.job(1)["status"] = {"startTime": iso(NOW), "conditions": [deadline]}
    plan = w.step()
    trials = w.trials()
    assert trials[0]["state"] == "failed" and trials[0]["reason"] == \
        "DeadlineExceeded: Job was active longer than specified deadline"
    assert trials[1]["state"] == "failed" and trials[1]["reason"] == (
        "exited with code 143: loss=0.4 (DeadlineExceeded: Job was active longer than "
        "specified deadline)")
    assert plan.create == [] and w.condition("Failed")["reason"] == "NoSuccessfulTrial"


def test_early_termination_stops_a_poor_running_trial():
    w = World(parallelism=2, maxTrials=4,
              earlyTerminate={"type": "median", "minIter": 1, "minTrials": 1})
    w.step()
    w.run(0, "step=1 loss=0.1\n")
    # a started trial is watched at the early-termination interval, not the poll interval
    assert w.step().requeue_after == SETTINGS.early_stop_interval
    w.finish(0, "step=1 loss=0.1\nstep=2 loss=0.1\n")
    w.run(1, "step=1 loss=5\nstep=2 loss=5\n")
    plan = w.step()
    trial = w.trials()[1]
    assert trial["state"] == "stopped" and trial["reason"].startswith("early termination")
    assert "s-1" in plan.delete and plan.record is not None
    # the trials running now (2 and 3) have not started: the next look is the usual poll
    assert plan.requeue_after == SETTINGS.poll_interval


def test_reaching_the_target_stops_the_rest_and_succeeds():
    w = World(parallelism=2, maxTrials=10,
              metric={"name": "loss", "goal": "minimize", "target": 0.1})
    w.step()
    w.run(1, "loss=3")
    w.finish(0, "loss=0.05")
    plan = w.step()
    assert w.status["phase"] == "Succeeded" and plan.create == []
    assert w.condition("Succeeded")["reason"] == "TargetReached"
    assert w.trials()[1]["state"] == "stopped"
    assert w.trials()[1]["reason"].startswith("sweep finished: trial s-0 reached loss=0.05")
    assert plan.delete == ["s-1"] and plan.record is not None  # recorded, then deleted
    assert "SweepSucceeded" in reasons(plan) and plan.requeue_after is None


def test_the_budget_ends_the_sweep():
    w = World(parallelism=2, maxTrials=2)
    w.step()
    w.finish(0, "loss=0.3")
    w.finish(1, "loss=0.2")
    plan = w.step()
    assert plan.create == [] and w.status["phase"] == "Succeeded"
    assert w.condition("Succeeded")["reason"] == "BudgetReached"
    assert w.status["bestValue"] == 0.2 and w.status["progress"] == "2/2"
    # a later pass of the finished, unchanged sweep writes nothing
    again = w.step()
    assert again.record is None and again.status is None and again.events == []


def test_more_failures_than_max_failed_trials_fail_the_sweep():
    w = World(parallelism=2, maxTrials=5, maxFailedTrials=0)
    w.step()
    w.run(1)
    w.finish(0, "oops", exit_code=2)
    plan = w.step()
    assert w.status["phase"] == "Failed"
    assert w.condition("Failed")["reason"] == "TooManyFailedTrials"
    assert plan.delete == ["s-1"] and "SweepFailed" in reasons(plan)


def test_without_max_failed_trials_the_first_five_failures_fail_the_sweep_fast():
    w = World(parallelism=5, maxTrials=20)
    w.step()
    for i in range(4):
        w.finish(i, "Traceback ... ModuleNotFoundError: No module named 'torch'", exit_code=1)
    w.step()
    assert w.status["phase"] == "Running"  # four failures: not yet
    w.finish(4, "ModuleNotFoundError: No module named 'torch'", exit_code=1)
    plan = w.step()
    assert w.status["phase"] == "Failed"
    failed = w.condition("Failed")
    assert failed["reason"] == "FirstTrialsFailed"
    assert "first 5 trials failed" in failed["message"]
    assert "No module named 'torch'" in failed["message"]
    assert "maxFailedTrials" in failed["message"]
    assert plan.create == [] and w.status["trials"]["failed"] == 5


def test_a_success_before_five_failures_turns_fail_fast_off():
    w = World(parallelism=1, maxTrials=8)
    w.step()
    w.finish(0, "loss=0.5")
    for i in range(1, 7):
        w.step()
        w.finish(i, "boom", exit_code=1)
    w.step()
    assert w.status["phase"] == "Running" and w.status["trials"]["failed"] == 6


def test_max_failed_trials_replaces_fail_fast():
    w = World(parallelism=6, maxTrials=10, maxFailedTrials=7)
    w.step()
    for i in range(6):
        w.finish(i, "boom", exit_code=1)
    w.step()
    assert w.status["phase"] == "Running" and w.status["trials"]["failed"] == 6


def test_no_successful_trial_fails_the_sweep():
    w = World(maxTrials=1)
    w.step()
    w.finish(0, "nothing")
    w.step()
    assert w.condition("Failed")["reason"] == "NoSuccessfulTrial"


def test_several_objectives_and_a_constraint_give_the_feasible_pareto_front():
    w = World(parallelism=4, maxTrials=4, constraints=[{"metric": "mem", "max": 0.8}])
    del w.sweep["spec"]["metric"]
    w.sweep["spec"]["metrics"] = [{"name": "acc", "goal": "maximize"},
                                  {"name": "latency", "goal": "minimize"}]
    w.step()
    w.finish(0, "acc=0.9 latency=20 mem=0.5")   # on the front
    w.finish(1, "acc=0.8 latency=10 mem=0.5")   # on the front
    w.finish(2, "acc=0.7 latency=30 mem=0.5")   # beaten by trial 0 on both
    w.finish(3, "acc=0.99 latency=5 mem=0.9")   # beats all, but breaks the constraint
    w.step()
    assert w.status["phase"] == "Succeeded"
    front = w.status["paretoFront"]
    assert front["indices"] == [0, 1] and front["size"] == 2
    assert "bestTrial" not in w.status
    # every objective and the constrained metric are kept for each trial
    assert all(set(t["metrics"]) == {"acc", "latency", "mem"} for t in w.trials().values())


def test_warm_start_seeds_the_model_from_an_earlier_sweep():
    old = World("old", method="bayes", parallelism=3, maxTrials=3)
    old.step()
    for i in range(3):
        old.finish(i, f"loss={0.1 * (i + 1)}")
    old.step()
    assert old.status["phase"] == "Succeeded"
    w = World("new", method="bayes", maxTrials=2,
              warmStart={"sweeps": ["old", "never-existed"]})
    w.warm = {"old": old.sweep, "never-existed": None}
    plan = w.step()
    assert w.status["warmStart"] == {"trials": 3, "read": 3, "missing": ["never-existed"]}
    assert [c.index for c in plan.create] == [0]  # its own budget and indices
    old_params = [t["params"] for t in old.trials().values()]
    assert plan.create[0].params not in old_params


# -- disruptions ----------------------------------------------------------------------------

def _evicted(w: World, index: int) -> None:
    w.pod(index, "Failed", conditions=[{"type": "DisruptionTarget", "status": "True",
                                        "reason": "EvictionByEvictionAPI"}])


def test_an_evicted_trial_is_retried_and_the_count_noted_on_its_job():
    w = World(trialRetries=1)
    w.step()
    _evicted(w, 0)
    plan = w.step()
    assert plan.annotate == {"s-0": {"kubesweep.io/disruptions": "1"}}
    assert plan.delete == [] and w.status["trials"]["failed"] == 0
    _evicted(w, 0)
    w.step()
    assert w.trials()[0]["reason"] == \
        "pod evicted or preempted 2 times, more than trialRetries=1"


# -- edits and leftovers --------------------------------------------------------------------

def test_an_immutable_edit_is_refused_and_the_sweep_waits():
    w = World(parallelism=1)
    w.step()
    w.sweep["spec"]["parameters"] = {"x": {"min": 0.0, "max": 2.0,
                                           "distribution": "uniform"}}
    w.sweep["metadata"]["generation"] = 2
    plan = w.step()
    assert plan.create == [] and plan.delete == []
    assert reasons(plan) == ["SpecChangeRefused"]
    cond = w.condition("SpecAccepted")
    assert cond["status"] == "False" and cond["message"].startswith(
        "spec.parameters changed after the sweep started; only parallelism, maxTrials")
    assert w.step().events == []  # refused once, not on every pass


def test_a_mutable_edit_is_taken():
    w = World(parallelism=1, maxTrials=3)
    w.step()
    w.sweep["spec"]["parallelism"] = 3
    w.sweep["metadata"]["generation"] = 2
    assert [c.index for c in w.step().create] == [1, 2]


def test_raising_max_trials_continues_a_finished_sweep():
    w = World(parallelism=2, maxTrials=2)
    w.step()
    w.finish(0, "loss=0.3")
    w.finish(1, "loss=0.2")
    w.step()
    assert w.status["phase"] == "Succeeded"
    w.sweep["spec"]["maxTrials"] = 4
    w.sweep["metadata"]["generation"] = 2
    plan = w.step()
    assert [c.index for c in plan.create] == [2, 3] and w.status["phase"] == "Running"
    w.finish(2, "loss=0.1")
    w.finish(3, "loss=0.4")
    w.step()
    assert w.status["phase"] == "Succeeded" and w.status["progress"] == "4/4"
    assert sorted(w.trials()) == [0, 1, 2, 3] and w.status["bestValue"] == 0.1


def test_an_invalid_spec_fails_the_sweep_once():
    w = World()
    w.sweep["spec"]["parameters"] = {"x": {"min": 1.0, "max": 0.0}}
    plan = w.step()
    assert w.status["phase"] == "Failed" and reasons(plan) == ["InvalidSpec"]
    assert "spec.parameters.x" in plan.events[0].message
    assert w.step().events == []


def test_a_recorded_trial_whose_job_still_runs_is_stopped():
    """A pass recorded a stop but crashed before deleting the Job."""
    w = World(parallelism=2, maxTrials=2,
              metric={"name": "loss", "goal": "minimize", "target": 0.1})
    w.step()
    w.run(1, "loss=3")
    w.finish(0, "loss=0.05")
    plan = decide(w.snapshot(), w.now, SETTINGS)
    w.sweep["status"] = merge(w.status, plan.record)  # ... and the crash: no delete
    w.sweep["status"] = merge(w.status, plan.status or {})
    assert "s-1" in w.jobs
    plan = w.step()
    assert plan.prune == ["s-1"] and plan.record is None  # finished sweep: just delete it


def test_a_running_sweep_deletes_a_recorded_job_that_still_runs():
    w = World(parallelism=2, maxTrials=3)
    w.step()
    w.finish(0, "loss=0.5")
    w.step()
    # put trial 0's Job back as running, as if the recorded trial's Job were never ended
    w.job(0)["status"] = {"active": 1}
    plan = w.step()
    assert plan.delete == ["s-0"] and plan.create == []


def test_a_job_deleted_by_someone_else_is_recorded_as_stopped():
    w = World(parallelism=1, maxTrials=3)
    w.step()
    w.job(0)["metadata"]["deletionTimestamp"] = iso(NOW)
    plan = w.step()
    assert w.trials()[0]["state"] == "stopped"
    assert w.trials()[0]["reason"] == "Job deleted: s-0 was deleted before the trial finished"
    assert plan.delete == []  # already going


def test_a_job_that_vanished_is_recorded_once_and_counts_against_the_budget():
    w = World(parallelism=2, maxTrials=3)
    w.step()
    w.run(0, "loss=1")
    del w.jobs["s-0"]  # kubectl delete job s-0: gone before the next pass looks
    plan = w.step()
    trial = w.trials()[0]
    assert trial["state"] == "stopped"
    assert trial["reason"] == "Job deleted: s-0 was deleted before the trial finished"
    assert trial["params"] == w.status["recentTrials"][0]["params"]  # from the last status
    assert "TrialStopped" in reasons(plan)
    assert [c.index for c in plan.create] == [2]  # trial 0 is not created again
    w.finish(1, "loss=0.5")
    w.finish(2, "loss=0.4")
    plan = w.step()
    assert plan.create == [] and w.status["phase"] == "Succeeded"
    assert w.status["trials"]["created"] == 3  # 3 trials for maxTrials 3, not 4
    assert w.step().events == []  # recorded once


def test_a_corrupt_history_is_reported_and_rebuilt_from_the_jobs():
    w = World(parallelism=2, maxTrials=4)
    w.step()
    w.finish(0, "loss=0.5")
    w.step()
    w.finish(1, "loss=0.25")
    w.run(2, "loss=1")
    w.sweep["status"]["history"]["indices"] = "xxx"  # kubectl edit --subresource=status
    plan = w.step()
    [event] = [e for e in plan.events if e.reason == "CorruptStatus"]
    assert event.type == "Warning" and event.message.startswith("status.history.indices:")
    cond = w.condition("StatusRecovered")
    assert cond["reason"] == "CorruptStatus" and "status.history.indices" in cond["message"]
    # trial 0 (recorded earlier, Job kept) and trial 1 are read back from their Jobs
    assert {i: t["state"] for i, t in w.trials().items()} == {0: "succeeded", 1: "succeeded"}
    assert w.status["bestValue"] == 0.25 and plan.record is not None
    assert [c.index for c in plan.create] == [3]  # trial 2 runs on; nothing is repeated
    assert w.step().events == []  # the status is readable again: no report on every pass


def test_unreadable_reasons_are_named():
    w = World(parallelism=1, maxTrials=3)
    w.step()
    w.finish(0, "Traceback\nValueError: boom\n", exit_code=1)
    w.step()
    w.sweep["status"]["history"]["reasonsPacked"] = "bm90IHpsaWI="  # base64, not zlib
    plan = w.step()
    [event] = [e for e in plan.events if e.reason == "CorruptStatus"]
    assert event.message.startswith("status.history.reasonsPacked: cannot be decoded")
    assert w.trials()[0]["reason"].startswith("exited with code 1")  # rebuilt from its Job


def test_a_non_finite_number_edited_into_the_history_is_reported_and_rebuilt():
    """A hand edit that decodes to infinity (or NaN where a number is read back) would
    go out in the next status write, which the API server refuses, on every pass."""
    import numpy as np

    w = World(parallelism=1, maxTrials=3)
    w.step()
    w.finish(0, "loss=0.5 acc=0.9")
    w.step()
    w.sweep["status"]["history"]["values"] = history._pack(np.array([np.inf]))
    plan = w.step()
    [event] = [e for e in plan.events if e.reason == "CorruptStatus"]
    assert event.message.startswith("status.history.values: holds a non-finite number (inf)")
    assert w.trials()[0]["value"] == 0.5  # read back from the Job
    assert w.step().events == []


def test_a_trial_count_edited_beyond_any_budget_is_reported_and_ignored():
    """status.trials.created: 1000000000 would have recorded a billion trials as deleted
    Jobs (one event each) in a pass that never ends."""
    w = World(parallelism=1, maxTrials=3)
    w.step()
    w.finish(0, "loss=0.5")
    w.step()
    w.sweep["status"]["trials"]["created"] = 10**9
    plan = w.step()
    assert reasons(plan) == ["CorruptStatus"]
    assert plan.events[0].message == ("status.trials.created: 1000000000 is more than this "
                                      "sweep has created or may create (3); ignored")
    assert w.condition("StatusRecovered")["reason"] == "CorruptStatus"
    assert w.status["trials"]["created"] == 2 and w.status["trials"]["stopped"] == 0
    assert w.step().events == []
    w.finish(1, "loss=0.4")
    w.step()
    w.finish(2, "loss=0.3")
    w.step()
    assert w.status["phase"] == "Succeeded" and w.status["trials"]["succeeded"] == 3


def test_a_warm_start_source_with_an_unreadable_history_seeds_nothing():
    """Another Sweep's corrupt status must not stop this one's passes (a zlib error
    escaped the warm start and failed every pass)."""
    w = World(method="bayes", parallelism=1, maxTrials=2, warmStart={"sweeps": ["old"]})
    old = {"metadata": {"name": "old", "namespace": "ns"}, "spec": w.sweep["spec"],
           "status": {"history": {"format": "v1", "count": 1, "indices": "AAAA",
                                  "values": "AAAA", "states": "s", "params": {}}}}
    snap = w.snapshot()
    snap.warm = {"old": old}
    plan = decide(snap, NOW, SETTINGS)
    assert [c.index for c in plan.create] == [0]
    assert plan.status["warmStart"] == {"trials": 0, "read": 0, "missing": []}


def test_a_refused_job_fails_its_trial_and_launches_nothing_more():
    w = World(parallelism=1)
    w.step()
    w.jobs.clear()
    snap = w.snapshot()
    snap.sweep["status"] = {}
    snap.rejected = {0: ({"x": 0.5}, "Job.batch \"s-0\" is invalid")}
    plan = decide(snap, NOW, SETTINGS)
    assert plan.create == []
    assert plan.record["trials"]["failed"] == 1
    assert plan.events[0].message == \
        'trial 0 (s-0): cannot create Job s-0: Job.batch "s-0" is invalid'


def test_old_finished_jobs_are_pruned_but_never_the_best():
    w = World(parallelism=1, maxTrials=4)
    settings = Settings(keep_finished_jobs=1)
    w.step(settings)
    for i, loss in enumerate([0.1, 0.5, 0.7]):
        w.finish(i, f"loss={loss}")
        w.step(settings)
    w.step(settings)
    # trials 0..2 recorded; 0 is the best, 2 the newest: only 1 goes
    assert w.deleted == ["s-1"]


def test_a_trials_duration_and_curve_outlive_its_job():
    """The Job is the only place that knows how long a trial ran: the duration goes into
    status.history with the result, and stays there through later passes' rebuilds after
    the Job was pruned (so does the curve, for the report)."""
    w = World(parallelism=1, maxTrials=3)
    settings = Settings(keep_finished_jobs=0)
    w.step(settings)
    w.finish(0, "step=1 loss=0.9\nstep=2 loss=0.5\n")
    w.step(settings)
    assert w.trials()[0]["duration"] == 9.0 and "s-0" in w.jobs  # recorded, then pruned
    w.finish(1, "loss=0.3")  # the new best: its Job is kept, trial 0's pruned
    w.step(settings)
    w.step(settings)
    assert w.deleted == ["s-0"]
    assert [(t["duration"], t["history"]) for t in w.trials().values()] == \
        [(9.0, [[1.0, 0.9], [2.0, 0.5]]), (9.0, [[1.0, 0.3]])]


def test_the_status_remembers_the_spec_it_started_with():
    w = World()
    w.step()
    assert w.status["specHashes"] == spec_hashes(w.sweep["spec"])
