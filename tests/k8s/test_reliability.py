"""Hostile inputs and unlucky operations on the real control plane (docs/reliability.md).

Each test is the regression test of one row of the table in docs/reliability.md: a
non-finite metric, a corrupt hand-edited status, a Job deleted by hand, `$(VAR)` in a
parameter value, an operator started while the API server is down, a 100 MB trial log,
a NUL byte in a value.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import kubernetes
import pytest
import yaml

from tests.cluster.fixtures import ClusterHandle
from tests.cluster.processes import free_port
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixtures crd, operator)
    GROUP,
    PLURAL,
    VERSION,
    OperatorProcess,
    apply,
    crd_fixture,
    custom,
    events,
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

#: The trial's index, from the trial name kubesweep puts in its environment.
INDEX = "int(__import__('os').environ['KUBESWEEP_TRIAL'].rsplit('-', 1)[1])"


def _conditions(sweep: dict) -> dict[str, dict]:
    return {c["type"]: c for c in sweep["status"].get("conditions") or []}


def _reasons(cluster: ClusterHandle, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(cluster, namespace, name)]


def test_non_finite_metrics_fail_the_trial_and_the_sweep_goes_on(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    # huge=1e39 is finite, but float32 (the history's metric columns) cannot hold it
    command = ("v = '${params.v}'.replace('big', '1e309')\n"
               "print('acc=nan other=inf huge=1e39')\n"
               "print(f'loss={v}')\n")
    apply(cluster, namespace, sweep_manifest(
        "nonfinite", command, method="grid", parallelism=5,
        parameters={"v": {"values": ["nan", "inf", "-inf", "big", "0.5"]}}))
    sweep = wait_phase(cluster, operator, namespace, "nonfinite")
    assert sweep["status"]["phase"] == "Succeeded"
    by_value = {r["params"]["v"]: r for r in trial_records(sweep)}
    for bad in ("nan", "inf", "-inf", "big"):
        assert by_value[bad]["state"] == "failed" and by_value[bad]["value"] is None
        assert by_value[bad]["reason"].startswith("reported loss=")
    assert by_value["0.5"]["state"] == "succeeded" and by_value["0.5"]["value"] == 0.5
    # the other metrics' non-finite values are dropped, not stored; 1e39 is kept exactly
    listed = {t["params"]["v"]: t for t in sweep["status"]["recentTrials"]}
    assert listed["0.5"]["metrics"] == {"loss": 0.5, "huge": 1e39}
    assert by_value["0.5"]["metrics"] == {"loss": 0.5, "huge": 1e39}
    assert "TrialFailed" in _reasons(cluster, namespace, "nonfinite")
    values = [line.split()[-1] for line in operator.metrics().splitlines()
              if line.startswith(("kubesweep_trial_value{", "kubesweep_sweep_best_value{"))
              and 'sweep="nonfinite"' in line]
    assert values and all(float(v) == 0.5 for v in values), values


def test_a_corrupt_status_is_reported_and_recovered_from_the_jobs(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    # trial 2 runs for a while, so the sweep is still running when the status is edited
    command = f"import time\nif {INDEX} == 2: time.sleep(8)\nprint('loss=${{params.x}}')\n"
    apply(cluster, namespace, sweep_manifest("corrupt", command, maxTrials=4, parallelism=1))
    wait_until(lambda: len(trial_records(get_sweep(cluster, namespace, "corrupt"))) >= 2,
               60, "two recorded trials", operator)
    custom(cluster).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "corrupt",
        {"status": {"history": {"indices": "xxx"}}})
    wait_until(lambda: "CorruptStatus" in _reasons(cluster, namespace, "corrupt"), 60,
               "a CorruptStatus event", operator)
    [event] = [e for e in events(cluster, namespace, "corrupt")
               if e["reason"] == "CorruptStatus"]
    assert event["type"] == "Warning"
    assert event["message"].startswith("status.history.indices: ")
    sweep = wait_phase(cluster, operator, namespace, "corrupt", timeout=120)
    assert sweep["status"]["phase"] == "Succeeded"
    cond = _conditions(sweep)["StatusRecovered"]
    assert cond["reason"] == "CorruptStatus" and "status.history.indices" in cond["message"]
    records = trial_records(sweep)
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]
    assert all(r["state"] == "succeeded" for r in records)
    assert len(jobs(cluster, namespace, "corrupt")) == 4  # nothing ran twice


def test_a_status_edit_wakes_a_pass_and_a_non_finite_number_in_it_is_recovered(
        cluster: ClusterHandle, namespace: str, crd: Path, tmp_path: Path):
    """With no poll for 600 s and no Job changing, only the edit itself can wake the
    pass that reports it. The edit puts infinity in status.history.values, which would
    otherwise go out in every later status write (refused by the API server)."""
    op = OperatorProcess(cluster, namespace, tmp_path,
                         ["--poll-interval", "600", "--trial-start-timeout", "600"])
    op.start()
    try:
        command = f"import time\nif {INDEX} == 1: time.sleep(600)\nprint('loss=0.5')\n"
        apply(cluster, namespace, sweep_manifest("woken", command, maxTrials=2))

        def settled() -> bool:
            sweep = get_sweep(cluster, namespace, "woken")
            return (sweep.get("status") or {}).get("trials", {}).get("running") == 1 and \
                len(trial_records(sweep)) == 1

        wait_until(settled, 90, "trial 0 recorded, trial 1 running", op)
        time.sleep(3)  # the Job and pod updates of trial 1's start have been handled
        inf = base64.b64encode(zlib.compress(struct.pack("<d", math.inf))).decode()
        custom(cluster).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "woken", {"status": {"history": {"values": inf}}})
        wait_until(lambda: "CorruptStatus" in _reasons(cluster, namespace, "woken"), 60,
                   "a CorruptStatus event (the status edit woke a pass)", op)
        [event] = [e for e in events(cluster, namespace, "woken")
                   if e["reason"] == "CorruptStatus"]
        assert event["message"].startswith("status.history.values: holds a non-finite number")
        sweep = get_sweep(cluster, namespace, "woken")
        assert _conditions(sweep)["StatusRecovered"]["reason"] == "CorruptStatus"
        (record,) = trial_records(sweep)  # read back from Job woken-0
        assert record["index"] == 0 and record["value"] == 0.5
        assert sweep["status"]["trials"]["running"] == 1
        assert len(jobs(cluster, namespace, "woken")) == 2  # nothing started again
    finally:
        op.stop()


def test_a_job_deleted_by_hand_is_recorded_once_within_the_budget(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    # trial 1 runs until its Job is deleted; the others finish at once
    command = f"import time\nif {INDEX} == 1: time.sleep(600)\nprint('loss=${{params.x}}')\n"
    apply(cluster, namespace, sweep_manifest("victim", command, maxTrials=4, parallelism=2))
    wait_until(lambda: any(j["metadata"]["name"] == "victim-1"
                           for j in jobs(cluster, namespace, "victim")), 60, "Job victim-1",
               operator)
    cluster.kubectl("delete", "job", "-n", namespace, "victim-1", "--wait=true")
    sweep = wait_phase(cluster, operator, namespace, "victim", timeout=120)
    assert sweep["status"]["phase"] == "Succeeded"
    by_index = {r["index"]: r for r in trial_records(sweep)}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert by_index[1]["state"] == "stopped"
    assert by_index[1]["reason"].startswith("Job deleted: victim-1 was deleted")
    assert sweep["status"]["trials"]["created"] == 4
    posted = wait_events(cluster, operator, namespace, "victim", {"TrialCreated", "TrialStopped"})
    created = [e for e in posted if e["reason"] == "TrialCreated"]
    assert len(created) == 4  # no fifth Job for a budget of 4
    stopped = [e for e in posted if e["reason"] == "TrialStopped"]
    assert len(stopped) == 1


def test_dollar_references_in_values_arrive_verbatim(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    cluster.core().create_namespaced_secret(namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="token"),
        string_data={"token": "hunter2"}))
    # loss 0 when argv, env and KUBESWEEP_PARAMS all hold the value as written (the
    # check builds "$(" itself: a literal in the command would be the user's reference)
    check = ("import json, os, sys\n"
             "v, e = sys.argv[1], os.environ['V']\n"
             "p = json.loads(os.environ['KUBESWEEP_PARAMS'])['v']\n"
             "ok = v == e == p and v.startswith(chr(36) + '(') and 'hunter2' not in v\n"
             "print(f'loss={0 if ok else 1}')\n")
    manifest = sweep_manifest("dollars", check, method="grid", parallelism=3, parameters={
        "v": {"values": ["$(HOSTNAME)", "$(SECRET_TOKEN)", "$(V) $$ end"]}})
    container = manifest["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["command"].append("${params.v}")
    container["env"] = [
        {"name": "SECRET_TOKEN", "valueFrom": {"secretKeyRef": {"name": "token",
                                                                "key": "token"}}},
        {"name": "V", "value": "${params.v}"},
    ]
    apply(cluster, namespace, manifest)
    sweep = wait_phase(cluster, operator, namespace, "dollars")
    records = trial_records(sweep)
    assert len(records) == 3
    assert all(r["state"] == "succeeded" and r["value"] == 0 for r in records), records


def test_a_secret_the_trial_prints_stays_in_its_log(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    """A trial reads a Secret and prints it amid its output (as careless code does): the
    value is in that trial's own log, and nowhere the operator writes (status, events,
    its log, metric labels), which keep only `name=value` metric lines."""
    secret = "s3cr3t-8d1f0c"
    cluster.core().create_namespaced_secret(namespace, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="apikey"), string_data={"key": secret}))
    trial = ("import os\n"
             "print('connecting with', os.environ['API_KEY'])\n"
             "print(f'token={os.environ[\"API_KEY\"]}')\n"   # not a number: no metric
             "print('loss=0.25')\n"
             "print('done')\n")
    manifest = sweep_manifest("secretive", trial, maxTrials=2, parallelism=2)
    container = manifest["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {
        "name": "apikey", "key": "key"}}}]
    apply(cluster, namespace, manifest)
    sweep = wait_phase(cluster, operator, namespace, "secretive")
    assert sweep["status"]["phase"] == "Succeeded"
    # the trial printed it: its own log has it (kubectl logs shows what the code printed)
    pod = cluster.core().list_namespaced_pod(
        namespace, label_selector="kubesweep.io/sweep=secretive").items[0]
    assert secret in cluster.core().read_namespaced_pod_log(pod.metadata.name, namespace)
    # the operator copied it nowhere
    assert secret not in json.dumps(sweep)
    assert secret not in json.dumps(events(cluster, namespace, "secretive"))
    assert secret not in operator.metrics()
    assert operator.log_path.exists() and secret not in operator.log_path.read_text()


def test_a_nul_byte_in_a_value_is_refused_at_validation(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    manifest = sweep_manifest("nul", "print('loss=1')", method="grid",
                              parameters={"v": {"values": ["ok", "a\x00b"]}})
    custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    sweep = wait_phase(cluster, operator, namespace, "nul", phases=("Failed",), timeout=60)
    cond = _conditions(sweep)["Failed"]
    assert cond["reason"] == "InvalidSpec"
    assert "spec.parameters.v.values" in cond["message"] and "NUL byte" in cond["message"]
    assert not jobs(cluster, namespace, "nul")


class _Gate:
    """A TCP forwarder to the API server that refuses connections until opened: the API
    server as an operator starting before it sees it (down, then up)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.open = threading.Event()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    def start_listening(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()


def _probe(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_an_operator_started_while_the_api_server_is_down_waits_and_recovers(
        cluster: ClusterHandle, namespace: str, crd: Path, tmp_path: Path):
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    gate = _Gate((host, int(port)))
    config["clusters"][0]["cluster"]["server"] = f"https://{host}:{gate.port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    op = OperatorProcess(cluster, namespace, tmp_path,
                         ["--poll-interval", "5", "--metrics-address", "127.0.0.1",
                          "--liveness-address", "127.0.0.1"], kubeconfig=kubeconfig)
    try:
        op.start(ready=False)  # /healthz answers while the API server is unreachable
        down_since = time.monotonic()
        while time.monotonic() - down_since < 30:  # kopf alone gave up after ~19 s
            assert op.proc is not None and op.proc.poll() is None, op.hint()
            assert _probe(op.liveness_port, "/healthz") == 200
            assert _probe(op.liveness_port, "/readyz") == 503
            time.sleep(1)
        gate.start_listening()  # the API server is back
        wait_until(lambda: _probe(op.liveness_port, "/readyz") == 200, 90, "/readyz 200", op)
        apply(cluster, namespace, sweep_manifest("late", "print('loss=0.5')", maxTrials=2))
        sweep = wait_phase(cluster, op, namespace, "late")
        assert sweep["status"]["phase"] == "Succeeded"
        assert "API server unreachable" in op.log_path.read_text()
    finally:
        op.stop()
        gate.close()


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_100_mb_trial_log_is_read_in_bounded_memory(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    """The operator reads a trial's log as a stream and keeps only metric lines: its peak
    memory grows by far less than the log's size."""
    command = ("import sys\n"
               "line = 'x' * 99 + '\\n'\n"
               "for i in range(1_000_000):\n"
               "    sys.stdout.write(line if i % 100_000 else f'step={i} loss={1 / (i + 1)}\\n')\n"
               "print('loss=0.5')\n")
    assert operator.proc is not None
    before = _peak_rss_kib(operator.proc.pid)
    apply(cluster, namespace, sweep_manifest("loud", command, maxTrials=1))
    sweep = wait_phase(cluster, operator, namespace, "loud", timeout=300)
    after = _peak_rss_kib(operator.proc.pid)
    (record,) = trial_records(sweep)
    assert record["state"] == "succeeded" and record["value"] == 0.5, record
    grown_mib = (after - before) / 1024
    print(f"operator peak RSS {before / 1024:.0f} MiB -> {after / 1024:.0f} MiB "
          f"for a 100 MB log")
    assert grown_mib < 50, f"peak RSS grew by {grown_mib:.0f} MiB reading a 100 MB log"
