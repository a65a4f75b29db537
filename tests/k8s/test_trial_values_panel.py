"""The Grafana "Trial values" panel shows every finished trial, also when several finish
between two scrapes: a real operator, a real Prometheus, the panel's own query."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.chart.chart import panel_queries, substitute
from tests.chart.prometheus import Prometheus
from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    OperatorProcess,
    apply,
    crd_fixture,
    jobs,
    sweep_manifest,
    trial_records,
    wait_phase,
)

pytestmark = pytest.mark.k8s
#: long enough that no trial finishes before the test stops the operator
COMMAND = "import time; x=${params.x}; time.sleep(3); print(f'loss={x}')"


def test_trials_finishing_in_one_pass_each_get_a_point(cluster: ClusterHandle,
                                                       namespace: str, crd: Path,
                                                       tmp_path: Path):
    op = OperatorProcess(cluster, namespace, tmp_path, ["--poll-interval", "2"])
    prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{op.metrics_port}"])
    prometheus.workdir.mkdir()
    prometheus.start()
    try:
        op.start()
        started = time.time()
        apply(cluster, namespace, sweep_manifest("burst", COMMAND,
                                                 maxTrials=4, parallelism=4))
        wait_for(lambda: len(jobs(cluster, namespace, "burst")) == 4, 60, "4 trial Jobs",
                 op.hint())
        # with the operator down, all four finish: the next pass records them together,
        # between two scrapes (one gauge per sweep kept only the last of them)
        op.kill9()
        wait_for(lambda: all(any(c["type"] == "Complete" and c["status"] == "True"
                                 for c in (j.get("status") or {}).get("conditions") or [])
                             for j in jobs(cluster, namespace, "burst")), 60,
                 "the four Jobs to complete", cluster.log_hint())
        op.start()
        final = wait_phase(cluster, op, namespace, "burst", timeout=60)
        values = {str(r["index"]): {r["value"]} for r in trial_records(final)}
        expr = substitute(dict(panel_queries())["Trial values [A]"])

        def panel_points() -> dict[str, set[float]]:
            body = prometheus.query_range(expr, started, time.time())
            assert body.get("status") == "success", body
            points: dict[str, set[float]] = {}
            for series in body["data"]["result"]:
                if series["metric"].get("sweep") == "burst":
                    points.setdefault(series["metric"]["trial"], set()).update(
                        float(v) for _, v in series["values"] if not math.isnan(float(v)))
            return points

        # a point per trial, each at its own value
        wait_for(lambda: panel_points() == values, 30, f"the panel to show {values}",
                 f"panel: {panel_points()}\n{prometheus.log_path.read_text()}")
    finally:
        op.stop()
        prometheus.stop()
