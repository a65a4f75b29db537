"""How long the HTML report takes to make and to open, and how big it is, by trial count.

    python -m benchmarks.report              # 100, 1,000 and 10,000 trials
    python -m benchmarks.report --trials 500

"make" is `kubesweep report DIR` (reading the results, parameter importance, writing
the file); "open" is headless Chromium loading the file until every plot is drawn
(wall clock of `chromium --dump-dom`, minus the same for an empty page: the browser's own
start-up). Needs Debian's chromium (scripts/install-chromium.sh). Prints a table.
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


def _open_seconds(page: Path) -> tuple[float, str]:
    started = time.perf_counter()
    dom = dump_dom(page, budget_ms=120_000, timeout=600)
    return time.perf_counter() - started, dom


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="*", default=[100, 1000, 10_000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        blank = Path(tmp) / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body>empty</body></html>")
        baseline = min(_open_seconds(blank)[0] for _ in range(3))
        for n in args.trials:
            directory = write_results(Path(tmp) / f"r{n}", n, params=10, metrics=4)
            out = Path(tmp) / f"r{n}.html"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kubesweep.cli", "report", str(directory),
                            "-o", str(out)], check=True, capture_output=True, env=ENV)
            make = time.perf_counter() - started
            seconds, dom = _open_seconds(out)
            drawn = re.search(r'data-plots-rendered="(\d+)"', dom)
            rows.append((n, out.stat().st_size / 1e6, make, seconds - baseline,
                         drawn.group(1) if drawn else "none"))
    print(f"browser start-up (empty page): {baseline:.2f} s, subtracted below\n")
    print("| trials (10 params, 4 metrics) | size (MB) | make (s) | open (s) | plots drawn |")
    print("|---|---|---|---|---|")
    for n, size, make, seconds, drawn in rows:
        print(f"| {n:,} | {size:.1f} | {make:.1f} | {seconds:.1f} | {drawn} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
