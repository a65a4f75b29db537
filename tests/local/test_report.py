"""The HTML report opened in a real headless Chromium: every plot is drawn, no script
error, the screenshot is not blank, and a 10,000-trial report stays small."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kubesweep.local.results import ResultsWriter
from kubesweep.spec import parse_spec
from kubesweep.tuner import Trial
from tests.browser import dump_dom, ink, screenshot
from tests.helpers import make_spec

MB = 1_000_000


def write_results(directory: Path, trials: int, params: int = 3, metrics: int = 2,
                  curves: bool = True, seed: int = 0) -> Path:
    """A local results directory as `kubesweep run` writes it: a log-scale, an integer
    and a categorical parameter (then uniform ones), every state, curves, metrics."""
    space: dict = {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
                   "layers": {"min": 1, "max": 8},
                   "act": {"values": ["relu", "tanh", "gelu"]}}
    for i in range(params - 3):
        space[f"p{i}"] = {"min": 0.0, "max": 1.0}
    spec = parse_spec(make_spec(space, maxTrials=trials))
    rng = np.random.default_rng(seed)
    writer = ResultsWriter(directory / "trials.jsonl", append=False)
    writer.header("demo", spec.model_dump(mode="json", exclude_none=True), seed)
    for i in range(trials):
        p = {"lr": float(f"{10 ** rng.uniform(-5, 0):.6g}"), "layers": int(rng.integers(1, 9)),
             "act": ["relu", "tanh", "gelu"][i % 3]}
        p.update({f"p{j}": float(f"{rng.random():.6g}") for j in range(params - 3)})
        value = (np.log10(p["lr"]) + 3) ** 2 + 0.1 * p["layers"] + rng.normal(0, 0.05)
        state = "failed" if i % 17 == 5 else "stopped" if i % 7 == 3 else "succeeded"
        history = [(s, float(value + 1 / s)) for s in range(1, 4 if state == "stopped" else 9)] \
            if curves else []
        trial = Trial(i, f"demo-{i}", p, state,  # type: ignore[arg-type]
                      None if state == "failed" else float(value),
                      metrics={f"m{k}": float(rng.random()) for k in range(metrics)},
                      history=history,
                      reason="exited with code 1 </script>" if state == "failed" else None)
        writer.start(trial)
        writer.end(trial, float(rng.uniform(1, 100)), directory / "logs" / f"{trial.name}.log")
    writer.close()
    return directory


def report(results_dir: Path, out: Path) -> Path:
    """`kubesweep report DIR -o OUT`, as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "kubesweep.cli", "report", str(results_dir),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    return out


def page_state(dom: str) -> tuple[int, list[str]]:
    """(plots the page says it drew, script errors it collected) from the dumped DOM."""
    root = re.search(r"<html([^>]*)>", dom)
    assert root, dom[:2000]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(1)))
    errors = json.loads(html.unescape(attrs.get("data-report-errors", '["no script ran"]')))
    return int(attrs.get("data-plots-rendered", "0")), errors


def plot_divs(dom: str) -> dict[str, str]:
    """id -> the DOM from that plot's start to the next plot's, for every plotly plot."""
    starts = []
    for m in re.finditer(r"<div ([^>]*)>", dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
        if "js-plotly-plot" in attrs.get("class", "").split():
            starts.append((m.end(), attrs["id"]))
    ends = [start for start, _ in starts[1:]] + [dom.index('<div id="table">')]
    return {name: dom[start:end] for (start, name), end in zip(starts, ends, strict=True)}


@pytest.fixture(scope="module")
def small_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_results(tmp_path_factory.mktemp("results"), 60)
    return report(directory, directory / "report.html")


def timings(dom: str) -> list[int]:
    """When the page showed its table, drew its first plot, drew every plot (ms)."""
    return [int(re.search(rf'{name}="(\d+)"', dom).group(1))  # type: ignore[union-attr]
            for name in ("data-table-ms", "data-first-plot-ms", "data-plots-ms")]


def test_every_plot_is_drawn_without_script_errors(small_report: Path):
    dom = dump_dom(small_report)
    drawn, errors = page_state(dom)
    assert errors == []
    # the table comes first, then the plots one by one (benchmarks/report.py reads these)
    table_ms, first_ms, every_ms = timings(dom)
    assert table_ms <= first_ms <= every_ms
    plots = plot_divs(dom)
    # history, parallel coordinates, importance, one slice per parameter (3), curves
    assert set(plots) == {"history", "parallel", "importance", "slice-0", "slice-1",
                          "slice-2", "curves"}
    assert drawn == len(plots)
    for name, inner in plots.items():
        assert 'class="main-svg"' in inner, f"{name} has no plot drawn"
    assert "<canvas" in plots["parallel"]  # parcoords draws its lines with WebGL
    assert plots["history"].count('class="point"') >= 50  # a marker per scored trial
    assert plots["importance"].count('class="point"') == 3  # a bar per parameter
    # the table: a row per trial, the best one highlighted
    table = dom[dom.index('<div id="table">'):dom.index("</table>")]
    assert table.count("<tr") == 61
    assert "exited with code 1 &lt;/script&gt;" in table  # shown as text, not markup
    assert table.count("<tr class=\"best\">") == 1


def test_the_screenshot_is_not_blank(small_report: Path, tmp_path: Path):
    shot = screenshot(small_report, tmp_path / "report.png", size=(1000, 1600))
    share, colours = ink(shot)
    assert share > 0.03 and colours > 30, (share, colours)


def test_a_script_error_is_reported(small_report: Path, tmp_path: Path):
    """The check above can fail: a page whose script throws is caught."""
    broken = tmp_path / "broken.html"
    broken.write_text(small_report.read_text().replace(
        'var D = JSON.parse(', 'undefinedFunction(); var D = JSON.parse('))
    drawn, errors = page_state(dump_dom(broken))
    assert drawn == 0
    assert any("undefinedFunction" in e for e in errors), errors


def test_a_plot_that_fails_is_reported_and_the_others_are_drawn(small_report: Path,
                                                                 tmp_path: Path):
    broken = tmp_path / "broken-plot.html"
    broken.write_text(small_report.read_text().replace(
        "queue.push(function () { return Plotly.newPlot(",
        "queue.push(function () { if (id === 'importance') brokenPlot(); "
        "return Plotly.newPlot(", 1))
    dom = dump_dom(broken)
    drawn, errors = page_state(dom)
    assert any("brokenPlot" in e for e in errors), errors
    plots = plot_divs(dom)
    assert "importance" not in plots and drawn == len(plots) == 6  # the others still drew


def test_ten_thousand_trials_stay_small_and_render(tmp_path: Path):
    directory = write_results(tmp_path / "big", 10_000, params=10, metrics=4)
    out = report(directory, tmp_path / "big.html")
    size = out.stat().st_size
    print(f"10,000-trial report: {size / MB:.1f} MB")
    assert size < 10 * MB, size
    dom = dump_dom(out, budget_ms=60_000, timeout=300)
    drawn, errors = page_state(dom)
    assert errors == []
    assert drawn == 3 + 10 + 1
    table = dom[dom.index('<div id="table">'):dom.index("</table>")]
    assert table.count("<tr") == 201  # 200 a page + the header
