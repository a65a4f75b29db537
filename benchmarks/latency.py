"""Suggestion latency: one suggestion after N finished trials (and with 8 pending).

    OMP_NUM_THREADS=1 nice python -m benchmarks.latency [--sizes 50,200,1000] [--repeats 3]
        [--problem hartmann6]

Every peer gets the same history (random points of the problem, with their values), and
the time of exactly one suggestion is measured, through the API users call: kubesweep's
`Tuner.ask()` (a fresh tuner rebuilt from the history, as the operator does on every
reconcile, so no fit is cached), Optuna's `study.ask()` and W&B's `sweeps.next_run`.
Prints the median over repeats in milliseconds. kubesweep's GP hyperparameters are refit
every trial up to 64 trials and then every ~6% of growth, and cached in-process; "(cold)"
is a suggestion with empty caches (a refit, or a fresh process), the other column the
time between refits.

`--batch-sizes 8,64 --batch-history 500` also times a whole batch: `Tuner.ask(q)` after
500 finished trials (Optuna: q `study.ask()` in a row, TPE with `constant_liar`; W&B: q
`next_run` calls, each earlier run `running`). `--batch-sizes ''` skips it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from benchmarks import peers
from benchmarks.peers import history, time_ax, time_kubesweep, time_optuna, time_wandb
from benchmarks.problems import PROBLEMS, WIDE_PROBLEMS

PEERS: dict[str, Callable] = {
    "kubesweep-bayes": lambda p, d, q: time_kubesweep("bayes", p, d, q, cold=False),
    "kubesweep-bayes (cold)": lambda p, d, q: time_kubesweep("bayes", p, d, q, cold=True),
    "kubesweep-random": lambda p, d, q: time_kubesweep("random", p, d, q),
    "optuna-gp": lambda p, d, q: time_optuna("gp", p, d, q),
    "optuna-tpe": lambda p, d, q: time_optuna("tpe", p, d, q),
    "wandb-bayes": time_wandb,
    "ax": time_ax,
}


BATCH_PEERS: dict[str, Callable] = {
    "kubesweep-bayes": lambda p, d, q: time_kubesweep("bayes", p, d, [], cold=False, q=q),
    "kubesweep-bayes (cold)": lambda p, d, q: time_kubesweep("bayes", p, d, [], q=q),
    "optuna-tpe (constant liar)": lambda p, d, q: time_optuna("tpe", p, d, [], q=q),
    "wandb-bayes": lambda p, d, q: time_wandb(p, d, [], q=q),
    "ax": lambda p, d, q: time_ax(p, d, [], q=q),
}


def batch_table(problem, args: argparse.Namespace) -> None:
    """Time one batch of q suggestions after `--batch-history` finished trials."""
    methods = args.batch_methods.split(",")
    n = args.batch_history
    done = history(problem, n, seed=n)
    cells: dict[int, dict[str, float]] = {}
    for q in (int(b) for b in args.batch_sizes.split(",")):
        cells[q] = {}
        for m in methods:
            BATCH_PEERS[m](problem, done, q)  # warm-up
            times = [BATCH_PEERS[m](problem, done, q) for _ in range(args.repeats)]
            cells[q][m] = statistics.median(times)
            print(f"# ask({q}) after {n}  {m:26s} {cells[q][m]:8.3f} s", file=sys.stderr,
                  flush=True)
    clock = "CPU s" if peers.CLOCK is time.process_time else "s"
    print(f"\n### One batch of q suggestions after {n} finished trials, {clock} (median of "
          f"{args.repeats}; {problem.name}, {len(problem.params)} parameters)\n")
    print("| batch | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for q, row in cells.items():
        print(f"| ask({q}) | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |")


def main(argv: list[str] | None = None) -> int:
    """Time each peer at each history size and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="50,200,1000")
    ap.add_argument("--pending", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--problem", default="hartmann6",
                    help="a problem of problems.py, wide ones too (hartmann6-25d)")
    ap.add_argument("--methods", default=",".join(PEERS))
    ap.add_argument("--batch-sizes", default="8,64")
    ap.add_argument("--batch-history", type=int, default=500)
    ap.add_argument("--batch-methods", default=",".join(BATCH_PEERS))
    ap.add_argument("--skip-single", action="store_true", help="only the batch table")
    ap.add_argument("--cpu", action="store_true",
                    help="CPU time of this process instead of wall time (busy machines)")
    args = ap.parse_args(argv)
    if args.cpu:
        peers.CLOCK = time.process_time
    problem = {**PROBLEMS, **WIDE_PROBLEMS}[args.problem]
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")

    rows: list[tuple[str, dict[str, float]]] = []
    for n in [] if args.skip_single else sizes:
        for n_pending in (0, args.pending):
            recorded = history(problem, n + n_pending, seed=n)
            done = recorded[:n]
            pending = [params for params, _ in recorded[n:]]
            cells = {}
            for m in methods:
                PEERS[m](problem, done, pending)  # warm-up: imports, caches
                times = [PEERS[m](problem, done, pending) for _ in range(args.repeats)]
                cells[m] = 1000 * statistics.median(times)
                print(f"# {n} finished + {n_pending} pending  {m:18s} {cells[m]:9.1f} ms",
                      file=sys.stderr, flush=True)
            rows.append((f"{n} finished" + (f" + {n_pending} pending" if n_pending else ""),
                         cells))

    if args.batch_sizes:
        batch_table(problem, args)
    if args.skip_single:
        return 0
    print(f"\n### One suggestion, ms (median of {args.repeats}; {problem.name}, "
          f"{len(problem.params)} parameters)\n")
    print("| history | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(f"{cells[m]:.1f}" for m in methods) + " |")
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {time.strftime('%Y-%m-%d')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
