#!/usr/bin/env python3
"""Make the README's screenshot of the HTML report from a real run of the digits example.

    python scripts/gen-report-screenshot.py            # writes docs/images/report.png

Runs `kubesweep run examples/digits-mlp.yaml` (20 trials, about a minute on 2 cores) in
a temporary directory, `kubesweep report` on its results, and takes the screenshot with
headless Chromium (scripts/install-chromium.sh installs it), the same way the report's
tests open it. The report itself is not committed: it is 5 MB of embedded plotly.js.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "images" / "report.png"


def main() -> int:
    """Run the example, render its report, screenshot the top of it."""
    from tests.browser import ink, screenshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT})")
    parser.add_argument("--size", default="1280,1560", help="window WIDTH,HEIGHT")
    args = parser.parse_args()
    env_path = str(ROOT / "operator")
    with tempfile.TemporaryDirectory(prefix="kubesweep-shot-") as tmp:
        # relative paths, as a user types them (the report shows where it came from)
        results = "kubesweep-results/digits-mlp"
        for command in (["run", str(ROOT / "examples" / "digits-mlp.yaml"), "--quiet",
                         "--out", f"{results}/trials.jsonl"],
                        ["report", results, "-o", "report.html"]):
            subprocess.run([sys.executable, "-m", "kubesweep.cli", *command], check=True,
                           cwd=tmp, env={**os.environ, "PYTHONPATH": env_path})
        width, height = (int(v) for v in args.size.split(","))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(Path(tmp) / "report.html", args.out, size=(width, height))
    share, colours = ink(args.out)
    if share < 0.03 or colours < 30:
        print(f"{args.out}: looks blank ({share:.1%} drawn, {colours} colours)",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
