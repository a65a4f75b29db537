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

from kubesweep.rules import summarize

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
    """Accumulates a trial's reports of all metrics as lines arrive.

    Non-finite values (nan, inf, 1e309) are never kept in `latest` or `history`: they
    cannot travel as JSON. A non-finite objective is remembered in `last_objective`,
    which fails the trial (`rules.failure_reason`).
    """

    #: the metric the sweep optimises; None for a sweep that only explores
    objective: str | None
    reports: list[Report] = field(default_factory=list)
    #: latest finite value of every metric the trial reported (including the objective)
    latest: dict[str, float] = field(default_factory=dict)
    #: (step, value) of each finite report of the objective
    history: list[tuple[int, float]] = field(default_factory=list)
    #: the objective's most recent report, finite or not (None before the first)
    last_objective: float | None = None
    #: the last non-empty line the trial printed (quoted when it crashes)
    last_line: str = ""
    _step: int = 0

    def feed(self, line: str) -> Report | None:
        """Parse one line; returns the report if it carried a finite objective value."""
        if line.strip():
            self.last_line = line.strip()[:LAST_LINE_CHARS]
        metrics = parse_line(line)
        if not metrics:
            return None
        step_value = next((metrics[k] for k in STEP_KEYS if k in metrics), None)
        step = int(step_value) if step_value is not None and math.isfinite(step_value) else None
        report = Report(metrics, step)
        self.reports.append(report)
        self.latest.update({k: v for k, v in metrics.items() if math.isfinite(v)})
        if self.objective is None or self.objective not in metrics:
            return None
        value = metrics[self.objective]
        self._step = step if step is not None else self._step + 1
        self.last_objective = value
        if not math.isfinite(value):
            return None
        self.history.append((self._step, value))
        return report

    def feed_text(self, text: str) -> None:
        """Parse every line of `text` (a whole log, say)."""
        for line in text.splitlines():
            self.feed(line)

    @property
    def has_objective(self) -> bool:
        """True once the objective metric was reported at least once."""
        return self.last_objective is not None

    def final_value(self, summary: str = "last", maximize: bool = False) -> float | None:
        """The trial's value: its last report of the objective, or its best (NaN skipped)."""
        if self.last_objective is None:
            return None
        if summary == "last" or not self.history:
            return self.last_objective
        return summarize([v for _, v in self.history], summary, maximize)


def example_line(objective: str) -> str:
    """A line that reports `objective` and parses back (JSON when name=value cannot)."""
    line = f"{objective}=0.93"
    if parse_line(line) == {objective: 0.93}:
        return line
    return json.dumps({objective: 0.93})
