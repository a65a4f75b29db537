"""What a trial's Job and pods say: start state, stuck reasons, metrics, durations."""

from __future__ import annotations

import datetime

from kubesweep.k8s import objects

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _pod(phase="Pending", created="2026-01-01T11:59:00Z", conditions=(), statuses=()):
    return {"metadata": {"name": "p", "creationTimestamp": created,
                         "labels": {"kubesweep.io/trial": "3"}},
            "status": {"phase": phase, "conditions": list(conditions),
                       "containerStatuses": list(statuses)}}


JOB = {"metadata": {"name": "s-3", "creationTimestamp": "2026-01-01T11:58:00Z",
                    "labels": {"kubesweep.io/trial": "3"},
                    "annotations": {"kubesweep.io/params": '{"x": 0.5}'}}}


def test_params_and_index_from_the_job():
    assert objects.trial_index(JOB) == 3
    assert objects.job_params(JOB) == {"x": 0.5}
    assert objects.job_params({"metadata": {"annotations": {"kubesweep.io/params": "{"}}}) \
        is None


def test_unschedulable_pod_is_stuck_with_the_schedulers_message():
    pod = _pod(conditions=[{"type": "PodScheduled", "status": "False",
                            "reason": "Unschedulable",
                            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}])
    state = objects.pending_state(JOB, [pod], NOW)
    assert not state.started and state.unschedulable
    assert state.stuck == "unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert state.waiting_seconds == 60  # since the newest pod was created


def test_image_pull_errors_are_stuck():
    pod = _pod(statuses=[{"name": "train", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}}])
    assert objects.stuck_reason(pod) == \
        'container train cannot start: ImagePullBackOff: Back-off pulling image "nope"'
    assert objects.stuck_reason(_pod(statuses=[{"name": "t", "state": {
        "waiting": {"reason": "ContainerCreating"}}}])) is None


def test_a_pod_that_already_ended_counts_as_started():
    pod = _pod(phase="Succeeded", statuses=[{"name": "t", "state": {"terminated": {
        "exitCode": 0}}}])
    assert objects.pending_state(JOB, [pod], NOW).started


def test_no_pod_yet_waits_since_the_job_was_created():
    state = objects.pending_state(JOB, [], NOW)
    assert not state.started and state.stuck is None and state.waiting_seconds == 120


def test_metrics_from_log_then_termination_message():
    log = objects.read_metrics("step=1 loss=0.9\nstep=2 loss=0.4\n", '{"loss": 0.4, "acc": 0.8}',
                               "loss")
    assert log.history == [(1, 0.9), (2, 0.4)]
    assert log.latest == {"step": 2.0, "loss": 0.4, "acc": 0.8}
    only_message = objects.read_metrics(None, '{"loss": 0.125}', "loss")
    assert only_message.final_value() == 0.125
    assert not objects.read_metrics("", "Traceback ...\nValueError: boom", "loss").has_objective


def test_a_result_without_the_log_only_from_a_successful_exit_with_the_objective():
    def ended(exit_code, message):
        term = {"exitCode": exit_code, "reason": "Completed"}
        if message is not None:
            term["message"] = message
        return _pod("Succeeded", statuses=[{"name": "trial", "state": {"terminated": term}}])

    assert objects.result_without_log(ended(0, "loss=0.25"), "trial", "loss")
    assert objects.result_without_log(ended(0, '{"loss": 0.25}'), None, "loss")
    # no objective in the message: the log is needed, the read is retried
    assert not objects.result_without_log(ended(0, "accuracy=0.9"), "trial", "loss")
    assert not objects.result_without_log(ended(0, None), "trial", "loss")
    # a failed container is judged with its log (the reason quotes it)
    assert not objects.result_without_log(ended(1, "loss=0.25"), "trial", "loss")
    # a sweep without a metric, a container still running
    assert not objects.result_without_log(ended(0, "loss=0.25"), "trial", None)
    running = _pod("Running", statuses=[{"name": "trial", "state": {"running": {}}}])
    assert not objects.result_without_log(running, "trial", "loss")


def test_job_failure_message_and_duration():
    job = {"status": {"startTime": "2026-01-01T11:00:00Z",
                      "completionTime": "2026-01-01T11:00:42Z",
                      "conditions": [{"type": "Failed", "status": "True",
                                      "reason": "BackoffLimitExceeded",
                                      "message": "Job has reached the specified backoff limit"}]}}
    assert objects.job_finished(job) == "Failed"
    assert objects.job_failure_message(job) == \
        "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert objects.duration_seconds(job, NOW) == 42


def test_disruptions_count_pods_and_the_annotation():
    evicted = _pod(phase="Failed", conditions=[{"type": "DisruptionTarget", "status": "True"}])
    job = {"metadata": {"annotations": {"kubesweep.io/disruptions": "2"}}}
    assert objects.disruptions(job, [evicted]) == 2
    assert objects.disruptions({"metadata": {}}, [evicted, evicted]) == 2
