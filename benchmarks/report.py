"""How long the HTML report takes to make and to open, and how big it is, by trial count.

    python -m benchmarks.report              # 100, 1,000 and 10,000 trials
    python -m benchmarks.report --trials 500

"make" is `kubesweep report DIR` (reading the results, parameter importance, writing
the file). The opening times are the page's own (`performance.now()`, from navigation
start, in headless Chromium): the trial table shown, the first plot drawn, every plot
drawn (the page draws one plot per task, so it shows up before the slowest plot is done).
Headless Chromium here draws WebGL (parallel coordinates; scatter plots above 2,000
trials) on the SwiftShader software rasteriser, far slower than a browser on a GPU: the
times are upper bounds. Needs Debian's chromium (scripts/install-chromium.sh). Prints a
table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.browser import dump_dom
from tests.local.test_report import write_results

#: the `kubesweep` the subprocess runs is this checkout's
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "operator")}


def _page_ms(dom: str, name: str) -> float | None:
    found = re.search(rf'{name}="(\d+)"', dom)
    return int(found.group(1)) / 1000 if found else None


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="*", default=[100, 1000, 10_000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.trials:
            directory = write_results(Path(tmp) / f"r{n}", n, params=10, metrics=4)
            out = Path(tmp) / f"r{n}.html"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kubesweep.cli", "report", str(directory),
                            "-o", str(out)], check=True, capture_output=True, env=ENV)
            make = time.perf_counter() - started
            dom = dump_dom(out, budget_ms=120_000, timeout=600)
            drawn = re.search(r'data-plots-rendered="(\d+)"', dom)
            rows.append((n, out.stat().st_size / 1e6, make,
                         *(_page_ms(dom, a) for a in ("data-table-ms", "data-first-plot-ms",
                                                      "data-plots-ms")),
                         drawn.group(1) if drawn else "none"))
    print("| trials (10 params, 4 metrics) | size (MB) | make (s) | table shown (s) | "
          "first plot (s) | every plot (s) | plots drawn |")
    print("|---|---|---|---|---|---|---|")
    for n, size, make, table, first, every, drawn in rows:
        cells = " | ".join("-" if v is None else f"{v:.1f}" for v in (table, first, every))
        print(f"| {n:,} | {size:.1f} | {make:.1f} | {cells} | {drawn} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
