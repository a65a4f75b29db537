"""Large spaces and wide batches: best value after a budget asked in batches of q.

    OMP_NUM_THREADS=1 nice python -m benchmarks.batch [--seeds 10] [--batches 8,32]
        [--trials 96] [--problems hartmann6-25d,branin-20d] [--methods ...] [--json F]

Each method is asked for q trials at once (the trials of a batch run "in parallel": none
of them is told before the whole batch was asked), then all q results are told, as a
sweep with `parallelism: q` does when its trials take similar time. kubesweep through
`Tuner.ask(q)`; Optuna's TPE with `constant_liar=True` and its GPSampler (needs torch;
it scores a batch by qLogEI over the RUNNING trials) through q `study.ask()` calls (the
pending trials are RUNNING); W&B's engine through `sweeps.next_run` with the
batch's earlier runs in state `running`. Prints median [IQR] of the best value found
after half and all of the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.peers import _optuna_distributions, _wandb_params, kubesweep_spec, wandb_config
from benchmarks.problems import WIDE_PROBLEMS, Problem


def batch_kubesweep(method: str, **options: Any) -> Callable[[Problem, int, int, int], list[float]]:
    """kubesweep `method` asked q at a time (`options` reach the strategy; benchmarks only)."""
    def run(problem: Problem, n_trials: int, q: int, seed: int) -> list[float]:
        import kubesweep

        tuner = kubesweep.Tuner(kubesweep_spec(problem.params, method, n_trials), seed=seed)
        for key, value in options.items():
            setattr(tuner.strategy, key, value)
        values: list[float] = []
        while len(values) < n_trials:
            trials = tuner.ask(min(q, n_trials - len(values)))
            results = [problem.objective(t.params) for t in trials]
            for trial, value in zip(trials, results, strict=True):
                tuner.tell(trial, value)
            values += results
        return values
    return run


def batch_optuna(sampler: str) -> Callable[[Problem, int, int, int], list[float]]:
    """Optuna's TPE (constant liar) or GP sampler, q trials RUNNING at once."""
    def run(problem: Problem, n_trials: int, q: int, seed: int) -> list[float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        s = (optuna.samplers.TPESampler(seed=seed, constant_liar=True) if sampler == "tpe"
             else optuna.samplers.GPSampler(seed=seed))
        study = optuna.create_study(sampler=s)
        dists = _optuna_distributions(problem.params)
        values: list[float] = []
        while len(values) < n_trials:
            trials = [study.ask(dists) for _ in range(min(q, n_trials - len(values)))]
            results = [problem.objective(t.params) for t in trials]
            for trial, value in zip(trials, results, strict=True):
                study.tell(trial, value)
            values += results
        return values
    return run


def batch_wandb(problem: Problem, n_trials: int, q: int, seed: int) -> list[float]:
    """W&B's bayes engine; the batch's earlier runs are passed as `running`."""
    import sweeps

    np.random.seed(seed)
    config = wandb_config(problem.params)
    runs: list[Any] = []
    values: list[float] = []
    while len(values) < n_trials:
        batch = []
        for _ in range(min(q, n_trials - len(values))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = sweeps.next_run(config, runs)
            run.state = sweeps.RunState.running
            runs.append(run)
            batch.append(run)
        for run in batch:
            value = problem.objective(_wandb_params(run))
            run.state = sweeps.RunState.finished
            run.summary_metrics = {"loss": value}
            run.history = [{"loss": value}]
            values.append(value)
    return values


METHODS: dict[str, Callable[[Problem, int, int, int], list[float]]] = {
    "kubesweep-bayes": batch_kubesweep("bayes"),
    "kubesweep-random": batch_kubesweep("random"),
    "optuna-tpe-liar": batch_optuna("tpe"),
    "optuna-gp": batch_optuna("gp"),
    "wandb-bayes": batch_wandb,
}


def table(title: str, rows: dict[str, dict[str, list[float]]], methods: list[str]) -> str:
    """A markdown table: median [IQR] per (row, method), the best median in bold."""
    out = [f"\n#### {title}\n", "| problem, batch | " + " | ".join(methods) + " |",
           "|---|" + "---|" * len(methods)]
    for label, cells in rows.items():
        meds = [float(np.median(cells[m])) for m in methods]
        best = int(np.argmin(meds))
        texts = []
        for i, m in enumerate(methods):
            q1, q3 = np.percentile(cells[m], [25, 75])
            text = f"{meds[i]:.4g} [{q1:.4g}, {q3:.4g}]"
            texts.append(f"**{text}**" if i == best else text)
        out.append(f"| {label} | " + " | ".join(texts) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run every (problem, batch size, method, seed) and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=96)
    ap.add_argument("--batches", default="8,32")
    ap.add_argument("--problems", default=",".join(WIDE_PROBLEMS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None, help="also write raw results to this file")
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    budgets = (args.trials // 2, args.trials)

    raw: dict[str, dict[str, list[list[float]]]] = {}
    seconds = {m: 0.0 for m in methods}
    for pname in args.problems.split(","):
        for q in (int(b) for b in args.batches.split(",")):
            label = f"{pname}, q={q}"
            raw[label] = {}
            for m in methods:
                runs = []
                for seed in seeds:
                    start = time.perf_counter()
                    runs.append(METHODS[m](WIDE_PROBLEMS[pname], args.trials, q, seed))
                    seconds[m] += time.perf_counter() - start
                raw[label][m] = runs
                print(f"# {label:24s} {m:18s} " + "  ".join(
                    f"@{b}: {np.median([min(r[:b]) for r in runs]):.4g}" for b in budgets),
                    file=sys.stderr, flush=True)
    for b in budgets:
        rows = {label: {m: [min(r[:b]) for r in runs] for m, runs in cells.items()}
                for label, cells in raw.items()}
        print(table(f"Best value after {b} trials (median [IQR] over {args.seeds} seeds from "
                    f"{args.first_seed}, lower is better)", rows, methods))
    print("\nTotal wall time per method (s, incl. objective): "
          + ", ".join(f"{m} {seconds[m]:.0f}" for m in methods))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
