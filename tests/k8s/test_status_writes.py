"""Status writes never drop a recorded result: every write of the status carries the
resourceVersion its pass read (optimistic concurrency), so a writer working from a stale
read gets 409 Conflict and decides again instead of overwriting newer results.

Worst case tried: two operators WITHOUT leader election reconcile the same sweep at once
(two writers racing on every pass), each deleting a trial's Job as soon as it thinks the
result is recorded (`--keep-finished-jobs 0`), so a result dropped from the status could
not be read again from its Job."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    OperatorProcess,
    apply,
    crd_fixture,
    sweep_manifest,
    trial_records,
    wait_phase,
)

pytestmark = pytest.mark.k8s


def test_two_writers_at_once_lose_no_result(cluster: ClusterHandle, namespace: str,
                                            crd: Path, tmp_path: Path):
    ops = []
    for name in ("w1", "w2"):
        (tmp_path / name).mkdir()
        ops.append(OperatorProcess(cluster, namespace, tmp_path / name,
                                   ["--poll-interval", "1", "--keep-finished-jobs", "0"]))
    try:
        for op in ops:
            op.start()
        command = "import time; time.sleep(0.5); x = ${params.x}; print(f'loss={x}')"
        apply(cluster, namespace, sweep_manifest("race", command, maxTrials=30,
                                                 parallelism=6, seed=3))
        sweep = wait_phase(cluster, ops[0], namespace, "race", timeout=300)
    finally:
        for op in ops:
            op.stop()
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"]
    records = trial_records(sweep)
    assert sorted(r["index"] for r in records) == list(range(30))
    for record in records:
        assert record["value"] == pytest.approx(record["params"]["x"], rel=1e-6)
    assert sweep["status"]["trials"]["succeeded"] == 30


def test_a_write_from_a_stale_read_is_refused_not_applied(cluster: ClusterHandle,
                                                          namespace: str, crd: Path):
    from kubesweep.k8s.api import Api, ApiError

    apply(cluster, namespace, sweep_manifest("stale", "print('loss=1')"))
    api = Api(cluster.api)
    read = api.get_sweep(namespace, "stale")
    assert read is not None
    seen = read["metadata"]["resourceVersion"]
    # a first writer records trial 0 from the version it read
    newer = api.patch_sweep_status(namespace, "stale", {"phase": "Running", "bestValue": 0.5},
                                   seen)
    assert newer and newer != seen
    # a second writer that read the same old version must not overwrite it
    with pytest.raises(ApiError) as refused:
        api.patch_sweep_status(namespace, "stale", {"phase": "Running", "bestValue": 0.9},
                               seen)
    assert refused.value.status == 409
    assert api.get_sweep(namespace, "stale")["status"]["bestValue"] == 0.5
    # from the current version it may write
    assert api.patch_sweep_status(namespace, "stale", {"bestValue": 0.4}, newer)
