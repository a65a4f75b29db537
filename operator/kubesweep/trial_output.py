"""Reading metrics from what a trial prints.

A trial reports by printing lines: `name=value` pairs (several per line allowed, as in
`epoch=3 val_acc=0.91 loss=0.3`) or one JSON object per line (`{"val_acc": 0.98,
"epoch": 3}`). A `step` or `epoch` key marks an intermediate value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

#: Keys that mark a report as an intermediate value at that step.
STEP_KEYS = ("step", "epoch")
#: Characters of a crashed trial's last output line quoted in its failure reason.
LAST_LINE_CHARS = 200

#: Characters of a metric name after its first letter: what W&B users log, such as
#: `val/loss`, `Valid_mAP@0.50`, `metrics/mAP_0.5:0.95`, `top-1`, `acc[0]`, `f1(macro)`, `loss%`.
_NAME_CHARS = r"\w./@:%+\[\]()-"
_PAIR = re.compile(
    rf"(?<![{_NAME_CHARS}])([A-Za-z_][{_NAME_CHARS}]*)\s*=\s*"
    r"([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|nan|NaN|inf|-inf|Infinity))"
    r"(?![\w.])"
)


def parse_line(line: str) -> dict[str, float]:
    """The numeric metrics of one output line; empty when the line reports nothing."""
    text = line.strip()
    if text.startswith("{") and text.endswith("}"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return {
                str(k): float(v) for k, v in obj.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
    return {name: float(value) for name, value in _PAIR.findall(text)}


@dataclass
class Report:
    """One line's worth of metrics; `step` is set when the line carried step/epoch."""

    metrics: dict[str, float]
    step: int | None


@dataclass
class MetricLog:
    """Accumulates a trial's reports of all metrics as lines arrive."""

    #: the metric the sweep optimises; None for a sweep that only explores
    objective: str | None
    reports: list[Report] = field(default_factory=list)
    #: latest value of every metric the trial reported (including the objective)
    latest: dict[str, float] = field(default_factory=dict)
    #: (step, value) of the objective at each report
    history: list[tuple[int, float]] = field(default_factory=list)
    #: the last non-empty line the trial printed (quoted when it crashes)
    last_line: str = ""

    def feed(self, line: str) -> Report | None:
        """Parse one line; returns the report if it carried the objective metric."""
        if line.strip():
            self.last_line = line.strip()[:LAST_LINE_CHARS]
        metrics = parse_line(line)
        if not metrics:
            return None
        step_value = next((metrics[k] for k in STEP_KEYS if k in metrics), None)
        step = int(step_value) if step_value is not None and math.isfinite(step_value) else None
        report = Report(metrics, step)
        self.reports.append(report)
        self.latest.update(metrics)
        if self.objective is None or self.objective not in metrics:
            return None
        value = metrics[self.objective]
        implicit_step = self.history[-1][0] + 1 if self.history else 1
        self.history.append((step if step is not None else implicit_step, value))
        return report

    def feed_text(self, text: str) -> None:
        """Parse every line of `text` (a whole log, say)."""
        for line in text.splitlines():
            self.feed(line)

    @property
    def has_objective(self) -> bool:
        """True once the objective metric was reported at least once."""
        return bool(self.history)

    def final_value(self, summary: str = "last", maximize: bool = False) -> float | None:
        """The trial's value: its last report of the objective, or its best (NaN skipped)."""
        if not self.history:
            return None
        if summary == "last":
            return self.history[-1][1]
        finite = [v for _, v in self.history if math.isfinite(v)]
        if not finite:
            return self.history[-1][1]
        return max(finite) if maximize else min(finite)


def example_line(objective: str) -> str:
    """A line that reports `objective` and parses back (JSON when name=value cannot)."""
    line = f"{objective}=0.93"
    if parse_line(line) == {objective: 0.93}:
        return line
    return json.dumps({objective: 0.93})


def failure_reason(log: MetricLog, exit_code: int | None, objective: str | None) -> str | None:
    """Why a finished trial counts as failed, in words a user can act on; None if it succeeded."""
    if exit_code not in (0, None):
        why = f"killed by signal {-exit_code}" if exit_code < 0 else \
            f"exited with code {exit_code}"
        # the last line is usually the error ("No such file", a Python exception)
        return f"{why}: {log.last_line}" if log.last_line else why
    if objective is None:
        return None
    if not log.has_objective:
        seen = ", ".join(sorted(log.latest)) or "nothing"
        call = f"kubesweep.report({objective}=...)" if objective.isidentifier() else \
            f"kubesweep.report(**{{{objective!r}: ...}})"
        return (
            f"printed no {objective!r} metric (saw: {seen}); print a line like "
            f"'{example_line(objective)}' or call {call}"
        )
    value = log.history[-1][1]
    if not math.isfinite(value):
        return f"reported {objective}={value}"
    return None
