"""Strategy quality: best value found after 15 and 30 trials, over seeds, side by side.

    OMP_NUM_THREADS=1 nice python -m benchmarks.quality [--quick] [--seeds N]
        [--problems branin,hartmann6,svc-digits] [--methods kubesweep-bayes,...]

Prints one markdown table per budget: median best value (lower is better) and its
inter-quartile range over seeds, and each method's mean rank across problems.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks.peers import METHODS
from benchmarks.problems import PROBLEMS

BUDGETS = (15, 30)


def main(argv: list[str] | None = None) -> int:
    """Run every (problem, method, seed) and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5 seeds instead of 12")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds are first-seed .. first-seed + seeds - 1")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None, help="also write raw results to this file")
    args = ap.parse_args(argv)
    n_seeds = args.seeds or (5 if args.quick else 12)
    problems = args.problems.split(",")
    methods = args.methods.split(",")

    best: dict[str, dict[str, dict[int, list[float]]]] = {}
    seconds: dict[str, float] = {m: 0.0 for m in methods}
    for pname in problems:
        problem = PROBLEMS[pname]
        best[pname] = {}
        for method in methods:
            runs = {b: [] for b in BUDGETS}
            for seed in range(args.first_seed, args.first_seed + n_seeds):
                start = time.perf_counter()
                values = METHODS[method](problem, max(BUDGETS), seed)
                seconds[method] += time.perf_counter() - start
                for b in BUDGETS:
                    runs[b].append(float(np.min(values[:b])))
            best[pname][method] = runs
            print(f"# {pname:12s} {method:18s} "
                  + "  ".join(f"@{b}: {np.median(runs[b]):.4g}" for b in BUDGETS),
                  file=sys.stderr, flush=True)

    for b in BUDGETS:
        print(f"\n### Best value after {b} trials (median [IQR] over {n_seeds} seeds "
              f"from {args.first_seed}, lower is better)\n")
        print("| problem | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        ranks = {m: [] for m in methods}
        for pname in problems:
            meds = [float(np.median(best[pname][m][b])) for m in methods]
            order = np.argsort(np.argsort(meds))
            for m, r in zip(methods, order, strict=True):
                ranks[m].append(r + 1)
            cells = []
            for m, med, r in zip(methods, meds, order, strict=True):
                q1, q3 = np.percentile(best[pname][m][b], [25, 75])
                text = f"{med:.4g} [{q1:.4g}, {q3:.4g}]"
                cells.append(f"**{text}**" if r == 0 else text)
            print(f"| {pname} | " + " | ".join(cells) + " |")
        print("| mean rank | " + " | ".join(f"{np.mean(ranks[m]):.2f}" for m in methods) + " |")
    print("\nTotal wall time per method (s, incl. objective): "
          + ", ".join(f"{m} {seconds[m]:.0f}" for m in methods))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(best, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
