"""Pure parts of the node agent: env/argv construction, log files and queries, GPU
allocation. (No cluster needed; the agent as a whole is tested in test_cluster.py.)"""

from __future__ import annotations

import base64
import datetime
import subprocess
import sys
import threading

import pytest

from tests.cluster.container_env import (
    ContainerConfigError,
    container_argv,
    container_env,
    expand,
)
from tests.cluster.container_logs import ContainerLog, LogQuery, parse_time, pump, read
from tests.cluster.log_server import parse_query
from tests.cluster.pod_runner import DeviceAllocator, gpu_request

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
       "spec": {"nodeName": "n"}}


def test_expand_follows_kubernetes_rules():
    env = {"A": "1"}
    assert expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_container_env_order_and_sources():
    data = {("ConfigMap", "ns", "cm"): {"K": "v"},
            ("Secret", "ns", "s"): {"S": base64.b64encode(b"secret").decode()}}

    def lookup(kind, ns, name):
        return data.get((kind, ns, name))

    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                 "env": [{"name": "X", "value": "$(BASE)/x"},
                         {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "APP", "valueFrom": {"fieldRef": {
                             "fieldPath": "metadata.labels['app']"}}},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "S"}}},
                         {"name": "OPT", "valueFrom": {"configMapKeyRef": {
                             "name": "missing", "key": "k", "optional": True}}}]}
    env = container_env(POD, container, {"BASE": "/b"}, lookup)
    assert env == {"BASE": "/b", "CM_K": "v", "X": "/b/x", "POD": "p", "APP": "x",
                   "PW": "secret"}
    bad = {"name": "c", "env": [{"name": "Y", "valueFrom": {"configMapKeyRef": {
        "name": "missing", "key": "k"}}}]}
    with pytest.raises(ContainerConfigError, match="missing"):
        container_env(POD, bad, {}, lookup)


def test_container_without_command_cannot_run():
    with pytest.raises(ContainerConfigError, match="ignores the image"):
        container_argv({"name": "c", "args": ["x"]}, {})
    assert container_argv({"name": "c", "command": ["echo"], "args": ["$(A)"]},
                          {"A": "1"}) == ["echo", "1"]


def test_parse_time_accepts_nanoseconds_and_offsets():
    utc = datetime.timezone.utc
    assert parse_time("2026-01-02T03:04:05.123456789Z") == datetime.datetime(
        2026, 1, 2, 3, 4, 5, 123456, tzinfo=utc)
    assert parse_time("2026-01-02T03:04:05Z").tzinfo is not None
    q = parse_query("follow=true&tailLines=3&timestamps=1&sinceSeconds=10&limitBytes=5")
    assert q.follow and q.tail_lines == 3 and q.timestamps and q.limit_bytes == 5
    assert q.since is not None


def test_log_follow_tail_limit_and_previous(tmp_path):
    log = ContainerLog(tmp_path / "c")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c",
         "import time\nfor i in range(4):\n print(i); time.sleep(0.05)\nprint('end', end='')"],
        stdout=subprocess.PIPE)
    log.path().touch()

    def run():
        pump(proc.stdout, log.path())
        proc.wait()
        log.finished.set()

    threading.Thread(target=run).start()
    assert b"".join(read(log, LogQuery(follow=True))) == b"0\n1\n2\n3\nend\n"
    assert b"".join(read(log, LogQuery(tail_lines=2))) == b"3\nend\n"
    assert b"".join(read(log, LogQuery(limit_bytes=3))) == b"0\n1"
    assert b"".join(read(log, LogQuery(tail_lines=0))) == b""
    with pytest.raises(FileNotFoundError):
        list(read(log, LogQuery(previous=True)))
    log.attempt = 1
    assert b"".join(read(log, LogQuery(previous=True))) == b"0\n1\n2\n3\nend\n"


def test_device_allocator_and_gpu_requests():
    devices = DeviceAllocator(3)
    a, b = devices.allocate(2), devices.allocate(1)
    assert a == [0, 1] and b == [2]
    assert devices.allocate(1) is None
    devices.release(a)
    assert devices.allocate(2) == [0, 1]
    assert gpu_request({"resources": {"limits": {"nvidia.com/gpu": "2"}}}) == 2
    assert gpu_request({"resources": {"requests": {"nvidia.com/gpu": 1}}}) == 1
    assert gpu_request({}) == 0
