"""The built images (scripts/build-images.sh) run under the chart's securityContext.

Each image archive is unpacked and its programs run chrooted on a read-only root, as a
numeric uid, with only the image's environment: no USER and no HOME from the host, as in
a container. That is what made the operator crash-loop on a real kubelet (kopf's
identity called getpass.getuser() for a uid without a passwd entry). The operator is then
started from the image against the real test API server and must answer /healthz,
both as the image's uid and as a uid the image does not know (the operator itself must
not depend on the passwd entry). On the real node the chart runs the same image
(tests/node/test_chart_install.py).
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.fixtures import ClusterHandle, wait_for
from tests.cluster.processes import free_port
from tests.images.rootfs import ImageConfig, MissingImageError, archive, run_in_image, unpack
from tests.k8s.operator_fixtures import CRD_FILE, install_crd

# They need the images scripts/build-images.sh builds in the full run, not in the quick loop.
pytestmark = pytest.mark.k8s

# The chart's runAsUser (values.yaml podSecurityContext) and the image's USER.
IMAGE_UID = 65532
# A uid with no passwd entry in any image: what a cluster's runAsUser may pick.
UNKNOWN_UID = 40123


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("running an image without a container runtime needs root "
                    "(mount namespace, chroot): run the tests as root", pytrace=False)


def _unpacked(name: str, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, ImageConfig]:
    _require_root()
    try:
        path = archive(name)
    except MissingImageError as e:
        pytest.fail(str(e), pytrace=False)
    rootfs = tmp_path_factory.mktemp(f"{name}-rootfs")
    return rootfs, unpack(path, rootfs)


@pytest.fixture(scope="module")
def operator_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImageConfig]:
    """The operator image's root filesystem and config."""
    return _unpacked("operator", tmp_path_factory)


@pytest.fixture(scope="module")
def trial_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImageConfig]:
    """The example trial image's root filesystem and config."""
    return _unpacked("trial-sklearn", tmp_path_factory)


def _check(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str]
           ) -> subprocess.CompletedProcess[str]:
    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def test_images_are_tagged_as_the_chart_and_the_examples_reference_them(
        operator_image: tuple[Path, ImageConfig], trial_image: tuple[Path, ImageConfig]):
    import yaml

    from tests.chart.chart import CHART
    from tests.cluster.paths import REPO_ROOT

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    tag = values["image"]["tag"] or chart["appVersion"]
    assert operator_image[1].repo_tags == [f"{values['image']['repository']}:{tag}"]
    example = yaml.safe_load((REPO_ROOT / "examples" / "digits-mlp.yaml").read_text())
    container = example["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert trial_image[1].repo_tags == [container["image"]]


def test_operator_entrypoint_runs_as_the_chart_runs_it(
        operator_image: tuple[Path, ImageConfig], tmp_path: Path):
    rootfs, config = operator_image
    assert config.user == f"{IMAGE_UID}:{IMAGE_UID}"
    proc = _check(run_in_image(rootfs, config, [*config.entrypoint, "--help"],
                               uid=IMAGE_UID, gid=IMAGE_UID, tmp=tmp_path))
    assert "--metrics-port" in proc.stdout
    # the read-only root holds: nothing was written next to the code
    assert not list((rootfs / "opt" / "kubesweep").rglob("__pycache__/*.cpython-*.pyc.*"))


@pytest.mark.parametrize("uid", [IMAGE_UID, UNKNOWN_UID])
def test_operator_identity_needs_no_user_variable(
        operator_image: tuple[Path, ImageConfig], tmp_path: Path, uid: int):
    """kopf names this operator without asking the user database; the image's own uid
    also resolves (other libraries call getpass.getuser())."""
    rootfs, config = operator_image
    code = ("import getpass, os\n"
            "from kubesweep.k8s.main import operator_identity\n"
            "assert 'USER' not in os.environ and 'LOGNAME' not in os.environ\n"
            "print(operator_identity())\n"
            "try:\n"
            "    print(getpass.getuser())\n"
            "except KeyError:\n"
            "    print('no passwd entry')\n")
    proc = _check(run_in_image(rootfs, config, ["python", "-c", code], uid=uid, gid=uid,
                               tmp=tmp_path))
    identity, user = proc.stdout.splitlines()
    assert identity.startswith("kubesweep@") and len(identity) > len("kubesweep@")
    assert user == ("kubesweep" if uid == IMAGE_UID else "no passwd entry")


@pytest.mark.parametrize("uid", [IMAGE_UID, UNKNOWN_UID])
def test_operator_from_the_image_starts_against_the_api_server(
        operator_image: tuple[Path, ImageConfig], cluster: ClusterHandle, namespace: str,
        tmp_path: Path, uid: int):
    """The image's entrypoint, read-only root, no USER: kopf starts watching and /readyz
    answers (before the fix kopf died in its peering identity with KeyError: getpwuid(),
    so its watches never started)."""
    rootfs, config = operator_image
    install_crd(cluster)
    assert CRD_FILE.exists()
    # /tmp is the chart's emptyDir: the kubeconfig goes there, readable by the uid
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubectl("config", "view", "--flatten", "--minify",
                                          "--raw").stdout)
    os.chmod(kubeconfig, 0o644)
    liveness, metrics = free_port(), free_port()
    proc = run_in_image(
        rootfs, config, [*config.entrypoint, "--namespace", namespace,
                         "--liveness-port", str(liveness), "--metrics-port", str(metrics)],
        uid=uid, gid=uid, tmp=tmp_path, env={"KUBECONFIG": "/tmp/kubeconfig"},
        background=True)
    assert isinstance(proc, subprocess.Popen)

    def healthy() -> bool:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the operator exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/readyz",
                                        timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, 90, "the operator's /readyz from the image")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


def test_trial_image_runs_the_example_and_reports_through_kubesweep(
        trial_image: tuple[Path, ImageConfig], tmp_path: Path):
    rootfs, config = trial_image
    proc = _check(run_in_image(rootfs, config, [*config.cmd, "--epochs=2"],
                               uid=IMAGE_UID, gid=IMAGE_UID, tmp=tmp_path))
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and '"val_acc"' in lines[-1], proc.stdout
    # `import kubesweep` works in the trial image (trials may call kubesweep.report)
    proc = _check(run_in_image(rootfs, config, [
        "python", "-c", "import kubesweep; kubesweep.report(loss=0.5)"],
        uid=UNKNOWN_UID, gid=UNKNOWN_UID, tmp=tmp_path))
    assert "0.5" in proc.stdout
