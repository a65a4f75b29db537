"""`kubectl sweep` against the real control plane: a finished sweep's trials as the
operator recorded them (also after their Jobs were pruned), the best parameters, a
trial's log, the report, and one clear line for every way the cluster can say no."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.cluster.processes import free_port
from tests.k8s.operator_fixtures import (  # noqa: F401 (fixture crd)
    GROUP,
    PLURAL,
    REPO,
    OperatorProcess,
    apply,
    crd_fixture,
    install_crd,
    jobs,
    sweep_manifest,
    trial_records,
    wait_phase,
)

pytestmark = pytest.mark.k8s
COMMAND = ("import sys; x=${params.x}; print(f'step=3 loss={(x - 0.3) ** 2} acc={1 - x}'); "
           "sys.exit(3 if x > 0.85 else 0)")


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """A PATH on which kubectl finds `kubectl-sweep` running this checkout's code (what
    `pip install` puts on PATH runs `kubesweep.plugin:main` the same way)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl-sweep"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m kubesweep.plugin \"$@\"\n")
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def kubectl_sweep(cluster: ClusterHandle, path: str, *args: str,
                  kubeconfig: Path | None = None, cwd: Path | None = None
                  ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=path, KUBECONFIG=str(kubeconfig or cluster.kubeconfig))
    return subprocess.run([cluster.kubectl_path, "sweep", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_trials_equal_what_the_operator_recorded(cluster: ClusterHandle, namespace: str,
                                                 crd: Path, tmp_path: Path,
                                                 plugin_path: str):
    op = OperatorProcess(cluster, namespace, tmp_path, ["--keep-finished-jobs", "2"])
    op.start()
    try:
        apply(cluster, namespace, sweep_manifest("look", COMMAND, maxTrials=8, parallelism=3))
        final = wait_phase(cluster, op, namespace, "look", timeout=180)
    finally:
        op.stop()
    recorded = trial_records(final)
    assert len(recorded) == 8
    assert len(jobs(cluster, namespace, "look")) < 8  # some were pruned: history only

    done = kubectl_sweep(cluster, plugin_path, "trials", "look", "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [(t["index"], t["name"], t["state"], t["value"], t["params"], t["reason"])
            for t in listed] == \
        [(r["index"], r["name"], r["state"], r["value"], r["params"], r["reason"])
         for r in recorded]
    # every trial's metrics, curve and run time survived, pruned Job or not
    assert all(t["metrics"].get("acc") == pytest.approx(1 - t["params"]["x"], rel=1e-6) and
               t["metrics"].get("step") == 3.0 for t in listed), json.dumps(listed, indent=1)
    assert all(t["duration"] == r["duration"] and t["duration"] is not None
               for t, r in zip(listed, recorded, strict=True)), json.dumps(listed, indent=1)
    assert all(r["history"] == [[3.0, r["value"]]] for r in recorded if r["value"] is not None)

    table = kubectl_sweep(cluster, plugin_path, "trials", "look", "-n", namespace,
                          "-o", "wide", "--sort", "value")
    assert table.returncode == 0, table.stderr
    best = final["status"]["bestTrial"]
    assert table.stdout.splitlines()[1].startswith(f"{best['index']}*")
    assert "parameter importance (fANOVA): x 1.00" in table.stdout

    env = kubectl_sweep(cluster, plugin_path, "best", "look", "-n", namespace, "-o", "env")
    assert env.stdout.splitlines()[0] == f"X={best['params']['x']!r}"

    newest = max(r["index"] for r in recorded)  # its Job is kept, so its pod log is there
    logs = kubectl_sweep(cluster, plugin_path, "logs", "look", str(newest), "-n", namespace)
    assert logs.returncode == 0, logs.stderr
    assert "loss=" in logs.stdout
    pruned = kubectl_sweep(cluster, plugin_path, "logs", "look", "0", "-n", namespace)
    assert pruned.returncode == 1 and "has no pod left" in pruned.stderr

    report = kubectl_sweep(cluster, plugin_path, "report", "look", "-n", namespace,
                           cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "look-report.html").stat().st_size > 1_000_000


def test_trials_in_flight_come_from_their_jobs(cluster: ClusterHandle, namespace: str,
                                              crd: Path, tmp_path: Path, plugin_path: str):
    """Trials the operator has not recorded yet are listed from their Jobs: here they
    finish while the operator is down, so they wait, done but unrecorded, as `finishing`."""
    op = OperatorProcess(cluster, namespace, tmp_path)
    op.start()
    try:
        apply(cluster, namespace, sweep_manifest(
            "fly", "import time; x=${params.x}; time.sleep(2); print(f'loss={x}')",
            maxTrials=2, parallelism=2))
        wait_for(lambda: len(jobs(cluster, namespace, "fly")) == 2, 60, "2 trial Jobs",
                 op.hint())
        op.kill9()
        wait_for(lambda: all(any(c["type"] == "Complete" and c["status"] == "True"
                                 for c in (j.get("status") or {}).get("conditions") or [])
                             for j in jobs(cluster, namespace, "fly")), 60,
                 "the two Jobs to complete", cluster.log_hint())
        made = {int(j["metadata"]["labels"]["kubesweep.io/trial"]):
                json.loads(j["metadata"]["annotations"]["kubesweep.io/params"])
                for j in jobs(cluster, namespace, "fly")}
        shown = kubectl_sweep(cluster, plugin_path, "trials", "fly", "-n", namespace,
                              "-o", "json")
        assert shown.returncode == 0, shown.stderr
        listed = json.loads(shown.stdout)
        assert [(t["index"], t["state"], t["params"], t["value"]) for t in listed] == \
            [(i, "finishing", made[i], None) for i in sorted(made)]
        assert all(t["duration"] is not None for t in listed)
        only = kubectl_sweep(cluster, plugin_path, "trials", "fly", "-n", namespace,
                             "--state", "succeeded")
        assert only.stdout == "No trials match.\n"

        op.start()
        wait_phase(cluster, op, namespace, "fly", timeout=60)
    finally:
        op.stop()
    done = json.loads(kubectl_sweep(cluster, plugin_path, "trials", "fly", "-n", namespace,
                                    "-o", "json").stdout)
    assert [(t["state"], t["value"]) for t in done] == \
        [("succeeded", pytest.approx(made[i]["x"])) for i in sorted(made)]


def _kubeconfig(cluster: ClusterHandle, path: Path, *, token: str | None = None,
                server: str | None = None, namespace: str | None = None) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    if token is not None:
        config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    if namespace is not None:
        for context in config["contexts"]:
            context["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    return path


def test_context_and_namespace_come_from_the_kubeconfig(cluster: ClusterHandle,
                                                        namespace: str, crd: Path,
                                                        tmp_path: Path, plugin_path: str):
    apply(cluster, namespace, sweep_manifest("idle", "print('loss=1')"))
    config = _kubeconfig(cluster, tmp_path / "kc", namespace=namespace)
    context = yaml.safe_load(config.read_text())["current-context"]
    done = kubectl_sweep(cluster, plugin_path, "trials", "idle", "--context", context,
                         kubeconfig=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "No trials yet.\n"
    wrong = kubectl_sweep(cluster, plugin_path, "trials", "idle", "--context", "nope",
                          kubeconfig=config)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: context 'nope' not found in the kubeconfig")


def test_every_refusal_is_one_clear_line(cluster: ClusterHandle, namespace: str, crd: Path,
                                         tmp_path: Path, plugin_path: str):
    missing = kubectl_sweep(cluster, plugin_path, "trials", "ghost", "-n", namespace)
    assert missing.returncode == 1
    assert missing.stderr == (f"error: Sweep 'ghost' not found in namespace '{namespace}' "
                              "(kubectl get sweeps -A lists them; -n NAMESPACE picks "
                              "another)\n")

    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace,
                            "--duration=1h").stdout.strip()
    denied = kubectl_sweep(cluster, plugin_path, "trials", "ghost", "-n", namespace,
                           kubeconfig=_kubeconfig(cluster, tmp_path / "nobody", token=token))
    assert denied.returncode == 1
    assert denied.stderr.startswith(f"error: get sweep ghost in namespace {namespace}: no "
                                    "permission (403)")
    assert "cannot get resource" in denied.stderr and "Traceback" not in denied.stderr

    port = free_port()  # nothing listens there
    down = kubectl_sweep(cluster, plugin_path, "best", "ghost", "-n", namespace,
                         kubeconfig=_kubeconfig(cluster, tmp_path / "down",
                                                server=f"https://127.0.0.1:{port}"))
    assert down.returncode == 1
    assert down.stderr.startswith(f"error: cannot reach the cluster at "
                                  f"https://127.0.0.1:{port}")
    assert "Connection refused" in down.stderr and "Traceback" not in down.stderr


def test_a_cluster_without_kubesweep_says_to_install_it(cluster: ClusterHandle,
                                                         namespace: str, crd: Path,
                                                         plugin_path: str):
    """The Sweep CRD is removed for this test (deleting every Sweep, none of which another
    test still needs: tests run one at a time) and installed again before it ends."""
    if cluster.local is None:
        pytest.skip("deletes the Sweep CRD: only on the session's own control plane, never "
                    "on $KUBESWEEP_TEST_KUBECONFIG's cluster")
    cluster.kubectl("delete", "crd", f"{PLURAL}.{GROUP}", "--wait=true", "--timeout=120s")
    try:
        gone = kubectl_sweep(cluster, plugin_path, "trials", "look", "-n", namespace)
        assert gone.returncode == 1
        assert gone.stderr == (f"error: the cluster has no Sweep resource type ({PLURAL}."
                               f"{GROUP}); install kubesweep (helm install kubesweep "
                               "charts/kubesweep)\n")
    finally:
        install_crd(cluster)
