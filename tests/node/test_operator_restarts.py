"""The operator SIGKILLed at any point of a sweep on the real node (containerd, kubelet):
trials in containers keep running and finishing while it is down; when it comes back it
records each of them once and creates no Job twice."""

from __future__ import annotations

import math
import random
import time

import pytest

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixtures crd, operator)
    OperatorProcess,
    apply,
    crd_fixture,
    get_sweep,
    jobs,
    operator_fixture,
    sweep_manifest,
    trial_records,
    wait_phase,
    wait_until,
)

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]

# prints loss = (x - 0.3)^2 for a float parameter x
QUADRATIC = "x=${params.x}; print(f'loss={(x - 0.3) ** 2}')"


def test_operator_killed_at_any_point_loses_and_duplicates_nothing(
        cluster: ClusterHandle, namespace: str, operator: OperatorProcess):
    """SIGKILL the operator at several points of a running sweep (right after the first
    Jobs appear, while trials run, just as results are recorded) and restart it: the
    sweep ends with exactly maxTrials trials, one Job each, every value matching its
    parameters (loss = (x - 0.3)^2, computed by the trial itself)."""
    command = "import time; time.sleep(0.7); " + QUADRATIC
    TOTAL = 20  # noqa: N806
    apply(cluster, namespace, sweep_manifest("restarts", command, maxTrials=TOTAL,
                                             parallelism=2, seed=7))

    def created() -> int:
        return len(jobs(cluster, namespace, "restarts"))

    def recorded() -> int:
        status = get_sweep(cluster, namespace, "restarts").get("status") or {}
        return int((status.get("history") or {}).get("count") or 0)

    kill_points = [
        ("first Jobs created", lambda: created() >= 1),
        ("trials running, some recorded", lambda: recorded() >= 3),
        ("mid-sweep", lambda: created() >= 9),
        ("late", lambda: recorded() >= 11),
    ]
    for what, ready in kill_points:
        wait_until(ready, 120, what, operator, interval=0.05)
        operator.kill9()
        time.sleep(0.5)  # trials keep finishing while the operator is down
        operator.start()
    # and at arbitrary instants (whatever the operator is doing then)
    pause = random.Random(3)
    while recorded() < TOTAL - 2 and operator.starts < 10:
        time.sleep(pause.uniform(0.1, 1.0))
        operator.kill9()
        operator.start()
    sweep = wait_phase(cluster, operator, namespace, "restarts", timeout=120)
    assert operator.starts >= 7, operator.starts
    status = sweep["status"]
    assert status["phase"] == "Succeeded"
    records = trial_records(sweep)
    assert sorted(r["index"] for r in records) == list(range(TOTAL))
    assert all(r["state"] == "succeeded" for r in records)
    for r in records:
        assert math.isclose(r["value"], (r["params"]["x"] - 0.3) ** 2, rel_tol=1e-9)
    names = [j["metadata"]["name"] for j in jobs(cluster, namespace, "restarts")]
    assert sorted(names) == sorted(f"restarts-{i}" for i in range(TOTAL))
    # the same seed without interruptions suggests the same parameters: rebuilt tuners
    # ask exactly what an uninterrupted one would have (random strategy)
    from kubesweep.spec import parse_spec
    from kubesweep.tuner import Tuner

    tuner = Tuner(parse_spec(sweep["spec"]))
    expected = [t.params for t in tuner.ask(TOTAL)]
    assert [r["params"] for r in sorted(records, key=lambda r: r["index"])] == expected
