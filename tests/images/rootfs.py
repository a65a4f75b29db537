"""Run a command from a built image archive the way a container runtime would, without one.

`unpack(archive, dest)` lays the image's layers (docker-archive, as written by
scripts/build-images.sh) into a root filesystem; `run_in_image(...)` runs a command in it
under the pod securityContext the chart uses: chroot to a read-only bind mount of that
root, a writable /tmp (the chart's emptyDir), a numeric uid/gid, and exactly the image's
environment (no USER, no HOME from the host: a container gets neither). This takes seconds,
so the image's start-up is checked on every run, not only on the real node.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.paths import cache_dir


def images_dir() -> Path:
    """Where scripts/build-images.sh writes the image archives."""
    return cache_dir() / "images"


class MissingImageError(RuntimeError):
    """An image archive has not been built yet."""


def archive(name: str) -> Path:
    """The built archive of image `name` (operator, trial-sklearn), or an error that says
    how to build it."""
    path = images_dir() / f"{name}.tar"
    if not path.is_file():
        raise MissingImageError(f"{path} is missing: run scripts/build-images.sh")
    return path


# Our own images, extracted as they are (Pythons before 3.11.4 have no filter argument
# and extract that way anyway).
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}


def require_images(*names: str) -> None:
    """Fail the calling test, saying how to build them, when image archives are missing
    (the real node would only report ErrImageNeverPull / ImagePullBackOff)."""
    import pytest

    for name in names:
        try:
            archive(name)
        except MissingImageError as e:
            pytest.fail(str(e), pytrace=False)


@dataclass
class ImageConfig:
    """What a runtime takes from the image config."""

    repo_tags: list[str]
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]
    user: str
    workdir: str


def unpack(path: Path, dest: Path) -> ImageConfig:
    """Unpack the docker-archive `path` into `dest` (layers in order, OCI whiteouts
    applied); returns the image config."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        (entry,) = manifest
        config = json.load(outer.extractfile(entry["Config"]))  # type: ignore[arg-type]
        for layer in entry["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as tar:
                members = []
                for m in tar.getmembers():
                    parent, base = os.path.split(m.name)
                    if base == ".wh..wh..opq":
                        target = dest / parent
                        if target.is_dir():
                            for child in target.iterdir():
                                _remove(child)
                    elif base.startswith(".wh."):
                        _remove(dest / parent / base[len(".wh."):])
                    else:
                        members.append(m)
                # Device nodes cannot be created everywhere and /dev is bind-mounted.
                members = [m for m in members if not (m.ischr() or m.isblk())]
                # Our own images: owners by number (the host's names mean nothing here).
                tar.extractall(dest, members=members, numeric_owner=True, **_TRUSTED)
    dest.chmod(0o755)  # an image's root, not a private temporary directory
    c = config.get("config") or {}
    return ImageConfig(repo_tags=entry.get("RepoTags") or [],
                       entrypoint=c.get("Entrypoint") or [], cmd=c.get("Cmd") or [],
                       env=c.get("Env") or [], user=c.get("User") or "",
                       workdir=c.get("WorkingDir") or "/")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def run_in_image(rootfs: Path, config: ImageConfig, argv: list[str], *, uid: int,
                 gid: int, tmp: Path, env: dict[str, str] | None = None,
                 timeout: float = 120, background: bool = False
                 ) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """Run `argv` in the image as uid:gid with a read-only root and `tmp` as /tmp.

    The environment is the image's Env plus `env` (as a pod's env adds to it); the
    working directory is the image's WORKDIR. Needs root (mount namespace, chroot)."""
    tmp.chmod(0o1777)  # as an emptyDir: writable for any uid
    variables = [*config.env, *(f"{k}={v}" for k, v in (env or {}).items())]
    inner = " ".join(shlex.quote(a) for a in [
        "chroot", f"--userspec={uid}:{gid}", str(rootfs),
        "/usr/bin/env", "-i", *variables, "/bin/sh", "-c",
        'cd "$0" && exec "$@"', config.workdir, *argv])
    r = shlex.quote(str(rootfs))
    # A private mount namespace: the mounts vanish with the process, nothing to clean.
    script = (f"mount --bind {r} {r} && mount -o remount,bind,ro {r} && "
              f"mount --rbind /dev {r}/dev && mount -t proc proc {r}/proc && "
              f"mount --bind {shlex.quote(str(tmp))} {r}/tmp && exec {inner}")
    cmd = ["unshare", "--mount", "--propagation", "private", "--fork", "--", "sh", "-c",
           script]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
