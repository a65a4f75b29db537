"""The trials table (`kubectl sweep trials`) and the best parameters (`... best`)."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from typing import Any

import yaml

from kubesweep.template import PARAMS_ENV
from kubesweep.views.model import SweepResults, TrialRow

OUTPUTS = ("table", "wide", "json", "csv")
BEST_OUTPUTS = ("json", "env", "yaml")


def fmt(value: Any) -> str:
    """A cell: floats short, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    """`42s`, `3m07s`, `2h05m`."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def select(results: SweepResults, state: str | None = None,
           sort: str | None = None) -> list[TrialRow]:
    """The trials to show: only `state` ones, sorted by `sort` ("index", "value" best first,
    "duration", or a parameter / metric name)."""
    rows = [t for t in results.trials if state is None or t.state == state]
    if sort in (None, "index"):
        return rows
    if sort == "value":
        def key(t: TrialRow) -> tuple[int, float]:
            if t.value is None or not math.isfinite(t.value):
                return (1, 0.0)
            return (0, -t.value if results.maximize else t.value)
        return sorted(rows, key=key)
    if sort == "duration":
        return sorted(rows, key=lambda t: (t.duration is None, t.duration or 0.0))
    if sort in results.param_names or sort in results.metric_names:
        def by(t: TrialRow) -> tuple[int, str, float]:
            v = t.params.get(sort, t.metrics.get(sort))  # type: ignore[arg-type]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return (0, "", float(v))
            return (v is None, str(v), 0.0)
        return sorted(rows, key=by)
    valid = ", ".join(["index", "value", "duration", *results.param_names,
                       *results.metric_names])
    raise ValueError(f"--sort {sort!r}: not a column; valid: {valid}")


def _columns(results: SweepResults, wide: bool) -> list[tuple[str, Any]]:
    cols: list[tuple[str, Any]] = [
        ("TRIAL", lambda t: str(t.index)), ("STATE", lambda t: t.state),
        (results.metric.upper(), lambda t: fmt(t.value))]
    cols += [(n.upper(), lambda t, n=n: fmt(t.params.get(n))) for n in results.param_names]
    if wide:
        cols += [(n.upper(), lambda t, n=n: fmt(t.metrics.get(n)))
                 for n in results.metric_names]
    cols.append(("DURATION", lambda t: fmt_duration(t.duration)))
    cols.append(("REASON", lambda t: (t.reason or "") if wide else _short(t.reason)))
    return cols


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[:width - 3] + "..."


def render_table(results: SweepResults, rows: list[TrialRow], wide: bool = False,
                 importance: dict[str, float] | None = None) -> str:
    """An aligned table like kubectl's; the best trial is marked with *."""
    cols = _columns(results, wide)
    best = results.best
    grid = [[name for name, _ in cols]]
    for t in rows:
        cells = [get(t) for _, get in cols]
        if best is not None and t.index == best.index:
            cells[0] += "*"
        grid.append(cells)
    widths = [max(len(r[i]) for r in grid) for i in range(len(cols))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in grid]
    out = "\n".join(lines) + "\n"
    if not rows:
        out = "No trials" + (" match" if results.trials else " yet") + ".\n"
    if wide:
        out += "\n" + summary(results, importance)
    return out


def summary(results: SweepResults, importance: dict[str, float] | None) -> str:
    """The footer of `-o wide`: counts, best trial, parameter importance."""
    counts: dict[str, int] = {}
    for t in results.trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    lines = [f"{results.source}: {len(results.trials)} trials (" +
             ", ".join(f"{n} {s}" for s, n in counts.items()) + ")" +
             (f", phase {results.phase}" if results.phase else "")]
    best = results.best
    if best is not None:
        lines.append(f"best: trial {best.index}  {results.metric}={fmt(best.value)}  " +
                     " ".join(f"{k}={fmt(v)}" for k, v in best.params.items()))
    lines.append(importance_line(importance))
    return "\n".join(lines) + "\n"


def importance_line(importance: dict[str, float] | None) -> str:
    """`parameter importance (fANOVA): lr 0.71, layers 0.22, ...`."""
    if not importance:
        return "parameter importance: needs at least 4 succeeded trials with varying values"
    return "parameter importance (fANOVA): " + ", ".join(
        f"{k} {v:.2f}" for k, v in importance.items())


def render_json(rows: list[TrialRow]) -> str:
    """Every trial as a JSON list."""
    return json.dumps([t.to_dict() for t in rows], indent=2) + "\n"


def render_csv(results: SweepResults, rows: list[TrialRow]) -> str:
    """One CSV row per trial: index, name, state, value, params, metrics, duration, reason."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    params, metrics = results.param_names, results.metric_names
    writer.writerow(["index", "name", "state", results.metric, *params, *metrics,
                     "duration", "reason"])
    for t in rows:
        writer.writerow([t.index, t.name, t.state, "" if t.value is None else repr(t.value),
                         *[_csv(t.params.get(n)) for n in params],
                         *[_csv(t.metrics.get(n)) for n in metrics],
                         "" if t.duration is None else t.duration, t.reason or ""])
    return buf.getvalue()


def _csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value if isinstance(value, str) else json.dumps(value)


def render_best(results: SweepResults, output: str) -> str:
    """The best trial's parameters, ready to paste into a training run."""
    best = results.best
    if best is None:
        raise LookupError(f"{results.source}: no succeeded trial with a value yet")
    if output == "json":
        return json.dumps(best.params, indent=2) + "\n"
    if output == "yaml":
        return yaml.safe_dump(best.params, sort_keys=False)
    if output == "env":
        # one variable per parameter, and the JSON the operator gives every trial
        # (KUBESWEEP_PARAMS, which a trial script may read instead of its arguments)
        lines = [f"{_env_name(k)}={shlex.quote(_env_value(v))}" for k, v in best.params.items()]
        lines.append(f"{PARAMS_ENV}={shlex.quote(json.dumps(best.params, sort_keys=True))}")
        return "\n".join(lines) + "\n"
    raise ValueError(f"-o {output!r}: valid: {', '.join(BEST_OUTPUTS)}")


def _env_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if not isinstance(value, float) else repr(value)
