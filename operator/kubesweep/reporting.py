"""The trial-side helper: `kubesweep.report(val_acc=0.93, step=3)` from training code."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

#: Kubernetes reads at most this many bytes of a termination message.
_TERMINATION_MESSAGE_LIMIT = 4096
_latest: dict[str, float] = {}


def _termination_message_path() -> str | None:
    path = os.environ.get("KUBESWEEP_TERMINATION_MESSAGE_PATH")
    if path:
        return path
    # only inside a pod: on a laptop /dev/termination-log is not ours to create
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists("/dev/termination-log"):
        return "/dev/termination-log"
    return None


def _number(name: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"kubesweep.report: {name}={value!r} is not a number") from None
    return value


def report(step: int | None = None, **metrics: float) -> None:
    """Report metrics of this trial (one JSON line on stdout); `step` marks an intermediate value.

    Inside a Kubernetes pod the latest values also go to the termination message, so the
    operator gets the final metrics even if the pod's logs are gone.
    """
    if not metrics:
        raise TypeError("kubesweep.report needs at least one metric, e.g. report(val_acc=0.9)")
    line: dict[str, Any] = {}
    if step is not None:
        line["step"] = int(step)
    for name, value in metrics.items():
        number = _number(name, value)
        # JSON has no NaN; a string keeps the line parseable and the trial marked failed
        line[name] = number if math.isfinite(number) else str(float(number))
    _latest.update(line)
    if all(isinstance(v, (int, float)) for v in line.values()):
        print(json.dumps(line), flush=True)
    else:
        print(" ".join(f"{k}={v}" for k, v in line.items()), flush=True)
    _write_termination_message()


def _write_termination_message() -> None:
    path = _termination_message_path()
    if not path:
        return
    text = json.dumps({k: v for k, v in _latest.items()})[:_TERMINATION_MESSAGE_LIMIT]
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        print(f"kubesweep.report: cannot write termination message {path}: {exc}",
              file=sys.stderr)
