"""What `kubesweep run` shows: a live progress view on a terminal, plain lines otherwise,
and a table of trials with the best one at the end."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from kubesweep.local.runner import LocalRunner
    from kubesweep.spec import SweepSpec
    from kubesweep.tuner import Trial, Tuner

#: Finished trials listed under the progress bar of the live view.
LIVE_FINISHED_ROWS = 6
#: Rows of the final table before it shows only the best ones.
MAX_TABLE_ROWS = 40
_REDRAW_SECONDS = 0.25
#: Metric columns of the table of a sweep without a `metric` (it records all of them).
MAX_METRIC_COLUMNS = 6


def short_value(value: Any) -> str:
    """A metric or parameter value for display (6 significant digits); commands get the
    exact text of `template.format_value`."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_params(params: dict[str, Any]) -> str:
    """`a=1 b=0.01` for a parameter set."""
    return " ".join(f"{k}={short_value(v)}" for k, v in params.items())


def trial_table(tuner: Tuner, trials: list[Trial], best: Trial | None) -> list[str]:
    """Rows of an aligned table of `trials`; the best one (with several objectives: every
    Pareto-optimal one) is marked with *, an infeasible one with !."""
    names = tuner.space.names
    constrained = [c.metric for c in tuner.constraints]
    if len(tuner.objectives) > 1 or (constrained and tuner.spec.metric is None):
        return _metrics_table(tuner, trials, [m.name for m in tuner.objectives] + constrained)
    if tuner.spec.metric is not None:
        metrics = [tuner.spec.metric.name]
        header = ["", "trial", "state", *metrics, *names]
    else:
        # no objective: show what the trials reported (the first few metrics by name)
        metrics = sorted({m for t in trials for m in t.metrics})[:MAX_METRIC_COLUMNS]
        header = ["", "trial", "state", *metrics, *names]
    rows = [header]
    for t in trials:
        if tuner.spec.metric is not None:
            values = ["" if t.value is None else short_value(t.value)]
            values += [short_value(t.metrics[m]) if m in t.metrics else "" for m in constrained]
        else:
            values = [short_value(t.metrics[m]) if m in t.metrics else "" for m in metrics]
        rows.append([_mark(tuner, t, [best] if best is not None else []), t.name, t.state,
                     *values, *[short_value(t.params.get(n, "")) for n in names]])
    return _aligned(rows)


def _mark(tuner: Tuner, trial: Trial, chosen: list[Trial]) -> str:
    if any(trial is c for c in chosen):
        return "*"
    if trial.state == "succeeded" and not tuner.feasible(trial):
        return "!"
    return ""


def _metrics_table(tuner: Tuner, trials: list[Trial], metrics: list[str]) -> list[str]:
    """The table of a sweep with several objectives or constraints: one column per
    objective and constrained metric; Pareto-optimal trials marked *."""
    names = tuner.space.names
    front = tuner.pareto_front
    rows = [["", "trial", "state", *metrics, *names]]
    for t in trials:
        rows.append([_mark(tuner, t, front), t.name, t.state,
                     *[short_value(t.metrics[m]) if m in t.metrics else "" for m in metrics],
                     *[short_value(t.params.get(n, "")) for n in names]])
    return _aligned(rows)


def _aligned(rows: list[list[str]]) -> list[str]:
    header = rows[0]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _goal(spec: SweepSpec) -> str:
    if not spec.objectives:
        goal = "no metric (every reported metric is recorded)"
    elif spec.multi_objective:
        goal = ", ".join(f"{m.goal.value} {m.name}" for m in spec.objectives) + \
            " (Pareto front)"
    else:
        goal = f"{spec.metric.goal.value} {spec.metric.name}"
    if spec.constraints:
        goal += " subject to " + ", ".join(_bound(c) for c in spec.constraints)
    return goal


def _bound(c: Any) -> str:
    if c.min is not None and c.max is not None:
        return f"{c.min:g} <= {c.metric} <= {c.max:g}"
    return f"{c.metric} <= {c.max:g}" if c.max is not None else f"{c.metric} >= {c.min:g}"


def format_front(tuner: Tuner) -> list[str]:
    """One line per Pareto-optimal trial: its objectives and parameters."""
    return [f"  {t.name}  " + " ".join(f"{m.name}={short_value(t.metrics.get(m.name))}"
                                       for m in tuner.objectives)
            + f"  {format_params(t.params)}" for t in tuner.pareto_front]


class View:
    """Progress output; live (redrawn in place) when the stream is a terminal."""

    def __init__(self, stream: TextIO, live: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.quiet = quiet
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._started_at = time.monotonic()

    def _print(self, text: str) -> None:
        self._erase()
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, runner: LocalRunner) -> None:
        """The sweep begins."""
        spec = runner.spec
        done = sum(1 for t in runner.tuner.trials if t.finished)
        resumed = f", resuming after {done} finished trials" if done else ""
        self._print(
            f"sweep {runner.name}: {spec.method} search over {len(spec.leaf_parameters)} "
            "parameters, "
            f"{runner.tuner.budget} trials, {spec.parallelism} at a time, "
            f"{_goal(spec)}{resumed}"
        )
        if runner.spec.warmStart is not None:
            used, read = len(runner.tuner.prior), len(runner.warm_read)
            self._print(f"warm start: {used} of {read} earlier trials seed the model (the "
                        "others failed, lack an objective or do not fit this space)"
                        if used < read else f"warm start: {used} earlier trials seed the model")
        self._print(f"results: {runner.results_path}  logs: {runner.log_dir}/")

    def note(self, text: str) -> None:
        """A message for the user."""
        self._print(text)

    def started(self, runner: LocalRunner, trial: Trial) -> None:
        """A trial was launched."""
        if not self.live and not self.quiet:
            self._print(f"started   {trial.name}  {format_params(trial.params)}")

    def finished(self, runner: LocalRunner, trial: Trial) -> None:
        """A trial ended."""
        if self.live or self.quiet:
            self.refresh(runner, force=True)
            return
        if runner.spec.metric is None or runner.tuner.constraints:
            value = format_params(trial.metrics)
        else:
            value = "" if trial.value is None else \
                f"{runner.spec.metric.name}={trial.value:.6g}"
        reason = f"  ({trial.reason})" if trial.reason else ""
        if not reason and trial.state == "succeeded":
            why = runner.tuner.infeasibility(trial)
            reason = f"  (infeasible: {why})" if why else ""
        self._print(f"{trial.state:<10}{trial.name}  {value}{reason}")

    def _erase(self) -> None:
        if self._drawn_lines:
            self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")
            self._drawn_lines = 0

    def refresh(self, runner: LocalRunner, force: bool = False) -> None:
        """Redraw the live view (at most a few times a second)."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < _REDRAW_SECONDS:
            return
        self._last_draw = now
        lines = self._live_lines(runner)
        self._erase()
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn_lines = len(lines)

    def _live_lines(self, runner: LocalRunner) -> list[str]:
        tuner = runner.tuner
        finished = [t for t in tuner.trials if t.finished]
        width = max(20, min(50, shutil.get_terminal_size((80, 24)).columns - 40))
        filled = int(width * len(finished) / max(1, tuner.budget))
        bar = "#" * filled + "-" * (width - filled)
        best = tuner.best
        if len(tuner.objectives) > 1:
            best_text = f"Pareto front {len(tuner.pareto_front)} trials"
        elif tuner.spec.metric is None:
            best_text = "no metric to optimise"
        elif best is not None and best.value is not None:
            best_text = f"best {tuner.spec.metric.name}={best.value:.6g} ({best.name})"
        else:
            best_text = "no result yet"
        elapsed = time.monotonic() - self._started_at
        lines = [f"[{bar}] {len(finished)}/{tuner.budget}  running {len(runner.running)}  "
                 f"{best_text}  {elapsed:,.0f}s"]
        for run in runner.running.values():
            last = run.log.history[-1] if run.log.history else None
            progress = f"step {last[0]}: {last[1]:.6g}" if last else "starting"
            lines.append(f"  running  {run.trial.name}  {format_params(run.trial.params)}  "
                         f"{progress}")
        for t in finished[-LIVE_FINISHED_ROWS:]:
            value = "" if t.value is None else f"{t.value:.6g}"
            if len(tuner.objectives) > 1:
                value = " ".join(f"{m.name}={short_value(t.metrics[m.name])}"
                                 for m in tuner.objectives if m.name in t.metrics)
            lines.append(f"  {t.state:<10}{t.name}  {value}  {format_params(t.params)}")
        columns = shutil.get_terminal_size((120, 24)).columns
        return [line[:columns - 1] for line in lines]

    def finish(self, runner: LocalRunner) -> None:
        """The sweep ended: the table of trials and the best one."""
        self._erase()
        tuner = runner.tuner
        best = tuner.best
        trials = list(tuner.trials)
        if len(trials) > MAX_TABLE_ROWS and len(tuner.objectives) > 1:
            front = {t.index for t in tuner.pareto_front}
            keep = {t.index for t in trials[-MAX_TABLE_ROWS:]} | front
            trials = [t for t in trials if t.index in keep]
            self.stream.write(f"\nthe Pareto front and the last trials, {len(trials)} of "
                              f"{len(tuner.trials)}:\n")
        elif len(trials) > MAX_TABLE_ROWS and tuner.spec.metric is None:
            trials = trials[-MAX_TABLE_ROWS:]
            self.stream.write(f"\nlast {len(trials)} of {len(tuner.trials)} trials:\n")
        elif len(trials) > MAX_TABLE_ROWS:
            ranked = sorted((t for t in trials if t.value is not None),
                            key=lambda t: t.value, reverse=tuner.maximize)
            trials = sorted(ranked[:MAX_TABLE_ROWS], key=lambda t: t.index)
            self.stream.write(f"\nbest {len(trials)} of {len(tuner.trials)} trials:\n")
        else:
            self.stream.write("\n")
        self.stream.write("\n".join(trial_table(tuner, trials, best)) + "\n\n")
        counts = ", ".join(f"{tuner.count(s)} {s}" for s in
                           ("succeeded", "failed", "stopped", "pending") if tuner.count(s))
        outcome = tuner.outcome
        ending = f"{outcome.phase} ({outcome.reason}): {outcome.message}" if outcome \
            else "not finished"
        self.stream.write(f"sweep {runner.name}: {ending}; trials: {counts or 'none'}\n")
        for t in tuner.trials:
            if t.state == "failed" and t.reason and not self.quiet:
                self.stream.write(f"  {t.name} failed: {t.reason}\n")
        if len(tuner.objectives) > 1:
            front = format_front(tuner)
            self.stream.write(f"Pareto front ({len(front)} trial{'s' if len(front) != 1 else ''}, "
                              "marked *):\n" +
                              "".join(line + "\n" for line in front))
        if best is not None and tuner.spec.metric is not None:
            self.stream.write(
                f"best trial: {best.name}  {tuner.spec.metric.name}={best.value:.6g}  "
                f"{format_params(best.params)}\n"
            )
        line = importance_summary(tuner)
        if line:
            self.stream.write(line + "\n")
        self.stream.write(f"results: {runner.results_path}\n")
        self.stream.flush()


def importance_summary(tuner: Tuner) -> str | None:
    """`parameter importance (fANOVA): lr 0.71, ...` for a sweep of 2+ parameters with
    enough succeeded trials, else None."""
    from kubesweep.importance import importances
    from kubesweep.views.table import importance_line

    if sum(1 for d in tuner.space.dimensions if d.width) < 2:
        return None
    done = [t for t in tuner.trials if t.state == "succeeded" and t.value is not None]
    scores = importances(tuner.space, [t.params for t in done],
                         [t.value for t in done], seed=tuner.seed)  # type: ignore[misc]
    return importance_line(scores) if scores else None
