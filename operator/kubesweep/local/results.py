"""The results file of a local sweep: JSON lines, appended as trials start and end.

Every line is flushed as it is written, so a sweep killed at any instant keeps every
finished trial, and `--resume` re-runs the ones that were running.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kubesweep.tuner import Trial


class ResultsError(ValueError):
    """A results file that cannot be resumed."""


@dataclass
class Recorded:
    """What a results file says: finished trials, and trials that started but never ended."""

    header: dict[str, Any] | None = None
    finished: list[Trial] = field(default_factory=list)
    interrupted: list[Trial] = field(default_factory=list)


def read_results(path: Path) -> Recorded:
    """Parse a results file; a torn last line (the process died mid-write) is skipped."""
    recorded = Recorded()
    started: dict[int, Trial] = {}
    ended: dict[int, Trial] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                break
            raise ResultsError(f"{path}:{number}: not a JSON line; the file is damaged") from None
        event = record.pop("event", None)
        if event == "sweep":
            recorded.header = record
        elif event == "start":
            started[int(record["index"])] = Trial.from_dict({**record, "state": "pending"})
        elif event == "end":
            ended[int(record["index"])] = Trial.from_dict(record)
    recorded.finished = [ended[i] for i in sorted(ended)]
    recorded.interrupted = [started[i] for i in sorted(started) if i not in ended]
    return recorded


class ResultsWriter:
    """Appends start/end records to the results file."""

    def __init__(self, path: Path, append: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: TextIO = path.open("a" if append else "w", encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()

    def header(self, sweep_name: str, spec: dict[str, Any], seed: int) -> None:
        """The first line: which sweep this file belongs to."""
        self._write({"event": "sweep", "name": sweep_name, "spec": spec, "seed": seed,
                     "time": time.time()})

    def start(self, trial: Trial) -> None:
        """A trial was launched."""
        self._write({"event": "start", "index": trial.index, "name": trial.name,
                     "params": trial.params, "time": time.time()})

    def end(self, trial: Trial, duration: float, log_path: Path) -> None:
        """A trial finished (succeeded, failed or stopped)."""
        self._write({"event": "end", **trial.to_dict(), "duration": round(duration, 3),
                     "log": str(log_path), "time": time.time()})

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()
