"""The HTML report of a sweep: one self-contained file, no network needed to open it.

plotly.js is embedded (plotly's `get_plotlyjs()`, ~4.7 MB) and the trials are embedded
once, as compact JSON; a small script builds every plot from them in the browser. That
keeps a 10,000-trial report near 6 MB, where serialising one figure per plot would repeat
every trial's data in each (slice plots, parallel coordinates, history, table).

Plots: optimization history (every trial + best so far), parallel coordinates of the
parameters vs the value, parameter importance (fANOVA), one slice plot per parameter,
intermediate values per trial (early-stopped ones marked), and a sortable trial table.
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib.resources import files
from typing import Any

from kubesweep.views.model import SweepResults
from kubesweep.views.table import fmt

#: Intermediate-value curves drawn (the newest ones; plotting 10,000 lines helps nobody).
MAX_CURVES = 300


def _num(value: Any) -> Any:
    """Floats to 6 significant digits (what a plot can show), NaN/inf to null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    return value


def report_data(results: SweepResults, importance: dict[str, float]) -> dict[str, Any]:
    """Everything the page's script needs, as JSON-ready data (columns, not rows)."""
    space = results.space
    kinds: dict[str, dict[str, Any]] = {}
    for name in results.param_names:
        dim = next((d for d in space.dimensions if d.name == name), None) if space else None
        dist = dim.param.distribution.value if dim is not None else ""
        kind: dict[str, Any] = {"log": "log" in dist}
        values = [t.params.get(name) for t in results.trials]
        if dim is not None and dim.kind == "categorical" or any(
                isinstance(v, (str, bool)) for v in values if v is not None):
            choices: list[Any] = []
            for v in (getattr(dim, "values", None) or []) + values:
                if v is not None and v not in choices:
                    choices.append(v)
            kind["choices"] = [str(c) for c in choices]
        kinds[name] = kind
    curves = [t for t in results.trials if t.curve][-MAX_CURVES:]
    best = results.best
    return {
        "name": results.name,
        "metric": results.metric,
        "maximize": results.maximize,
        "params": results.param_names,
        "kinds": kinds,
        "metrics": results.metric_names,
        "best": best.index if best else None,
        "importance": [[k, round(v, 4)] for k, v in importance.items()],
        "trials": {
            "index": [t.index for t in results.trials],
            "state": [t.state for t in results.trials],
            "value": [_num(t.value) for t in results.trials],
            "duration": [None if t.duration is None else round(t.duration, 1)
                         for t in results.trials],
            "params": {n: [_cell(t.params.get(n), kinds[n]) for t in results.trials]
                       for n in results.param_names},
            "metrics": {n: [_num(t.metrics.get(n)) for t in results.trials]
                        for n in results.metric_names},
            "reason": {str(t.index): t.reason for t in results.trials if t.reason},
        },
        "curves": [[t.index, t.state, [[_num(s), _num(v)] for s, v in t.curve]]
                   for t in curves],
    }


def _cell(value: Any, kind: dict[str, Any]) -> Any:
    if value is None:
        return None
    if "choices" in kind:
        return kind["choices"].index(str(value)) if str(value) in kind["choices"] else None
    return _num(value) if isinstance(value, (int, float)) else None


def render_report(results: SweepResults, importance: dict[str, float]) -> str:
    """The report as one HTML document."""
    from plotly.offline import get_plotlyjs

    data = json.dumps(report_data(results, importance), separators=(",", ":"),
                      allow_nan=False)
    # a JSON string inside <script> must not close the element
    data = data.replace("</", "<\\/")
    counts: dict[str, int] = {}
    for t in results.trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    best = results.best
    best_text = (f"best: trial {best.index}, {results.metric} = {fmt(best.value)} "
                 f"({', '.join(f'{k}={fmt(v)}' for k, v in best.params.items())})"
                 if best else "no succeeded trial yet")
    template = files("kubesweep.views").joinpath("report.html").read_text(encoding="utf-8")
    goal = "maximize" if results.maximize else "minimize"
    parts = {
        "title": html.escape(f"kubesweep: {results.name}"),
        "summary": html.escape(
            f"{results.source} · {goal} {results.metric} · {len(results.trials)} trials ("
            + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")"
            + (f" · phase {results.phase}" if results.phase else "")),
        "best": html.escape(best_text),
        # plotly.js as it can sit inside a <script> element
        "plotly": get_plotlyjs().replace("</script", "<\\/script"),
        "data": data,
    }
    # one pass over the template only: nothing inserted is scanned for markers again
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)
