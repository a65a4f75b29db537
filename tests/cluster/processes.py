"""Start and stop the cluster's processes: one process group each, logs to files."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Every process the harness starts (and every pod the node agent runs) carries this
# variable set to the run's id, so teardown can find stragglers even after a crash.
RUN_ID_ENV = "KUBESWEEP_CLUSTER_RUN_ID"

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork


def _death_signal(sig: int) -> Callable[[], None]:
    # Runs in the child before exec: when the process that started it dies (a pytest
    # run killed with SIGKILL), the kernel sends `sig`, so no component outlives it.
    def preexec() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, sig)

    return preexec


def start(
    argv: Sequence[str | Path],
    log_path: Path,
    *,
    env: dict[str, str],
    death_signal: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so its process group can be signalled as one),
    stdout+stderr appended to `log_path`; `death_signal` is sent to it when this
    process dies."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_death_signal(death_signal) if death_signal else None,
        )


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it if still there after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def processes_with_run_id(run_id: str) -> list[int]:
    """PIDs of live processes whose environment carries RUN_ID_ENV=run_id."""
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]


def kill_run(run_id: str) -> list[int]:
    """SIGKILL every process left over from run `run_id`; returns the PIDs killed."""
    pids = processes_with_run_id(run_id)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
