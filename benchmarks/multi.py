"""Several objectives, constraints and warm starts: kubesweep side by side with Optuna.

    OMP_NUM_THREADS=1 nice python -m benchmarks.multi mo [--seeds 10 --first-seed 100]
    OMP_NUM_THREADS=1 nice python -m benchmarks.multi constrained [...]
    OMP_NUM_THREADS=1 nice python -m benchmarks.multi warm [...]

`mo`: hypervolume of the Pareto front after 30 and 60 trials (higher is better; each
problem's fixed reference point below; Optuna's `compute_hypervolume`) on ZDT1, ZDT2
(6 variables), DTLZ2 (6 variables, 3 objectives) and a random forest on digits
(validation error vs model size). `constrained`: best feasible value after 15 and 30
trials on Gramacy's toy problem and Hartmann6 with ||x||_1 <= 3 (both with known
feasible optima); a run that found nothing feasible scores the worst value. `warm`:
best value after 10 trials of a shifted Hartmann6/Branin, with and without the 30 trials
of an earlier sweep on the unshifted function as a warm start.
Prints markdown tables: median [IQR] over seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from benchmarks.peers import _TEMPLATE, parameters_block
from benchmarks.problems import Param, branin, hartmann6

Objective = Callable[[dict[str, Any]], list[float]]


# -- multi-objective problems -------------------------------------------------------------

def _xs(p: dict[str, Any], d: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(d)], dtype=float)


def zdt1(p: dict[str, Any]) -> list[float]:
    x = _xs(p, 6)
    g = 1 + 9 * x[1:].sum() / 5
    return [float(x[0]), float(g * (1 - math.sqrt(x[0] / g)))]


def zdt2(p: dict[str, Any]) -> list[float]:
    x = _xs(p, 6)
    g = 1 + 9 * x[1:].sum() / 5
    return [float(x[0]), float(g * (1 - (x[0] / g) ** 2))]


def dtlz2(p: dict[str, Any]) -> list[float]:
    x = _xs(p, 6)
    g = float(((x[2:] - 0.5) ** 2).sum())
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return [(1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b),
            (1 + g) * math.sin(a)]


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(train_test_split(x / 16.0, y, test_size=0.3, random_state=0))


def forest_digits(p: dict[str, Any]) -> list[float]:
    """Validation error and log10(total tree nodes) of a random forest on digits."""
    from sklearn.ensemble import RandomForestClassifier

    xtr, xva, ytr, yva = _digits()
    model = RandomForestClassifier(n_estimators=int(p["n_estimators"]),
                                   max_depth=int(p["max_depth"]),
                                   max_features=float(p["max_features"]),
                                   min_samples_leaf=int(p["min_samples_leaf"]),
                                   random_state=0, n_jobs=1).fit(xtr, ytr)
    nodes = sum(t.tree_.node_count for t in model.estimators_)
    return [1.0 - float(model.score(xva, yva)), math.log10(nodes)]


_UNIT6 = [Param(f"x{i}", "float", 0, 1) for i in range(6)]
MO_PROBLEMS: dict[str, tuple[list[Param], Objective, list[float]]] = {
    "zdt1": (_UNIT6, zdt1, [1.1, 11.0]),
    "zdt2": (_UNIT6, zdt2, [1.1, 11.0]),
    "dtlz2": (_UNIT6, dtlz2, [2.2, 2.2, 2.2]),
    "forest-digits": ([Param("n_estimators", "int", 1, 100),
                       Param("max_depth", "int", 1, 20),
                       Param("max_features", "float", 0.05, 1.0),
                       Param("min_samples_leaf", "int", 1, 20)],
                      forest_digits, [1.0, 5.0]),
}


def _spec(params: list[Param], method: str, budget: int, **extra: Any) -> dict[str, Any]:
    return {"method": method, "parameters": parameters_block(params), "maxTrials": budget,
            "trialTemplate": _TEMPLATE, **extra}


def kubesweep_mo(method: str) -> Callable[..., list[list[float]]]:
    def run(params: list[Param], objective: Objective, k: int, n: int, seed: int
            ) -> list[list[float]]:
        import kubesweep

        metrics = [{"name": f"f{i}", "goal": "minimize"} for i in range(k)]
        tuner = kubesweep.Tuner(_spec(params, method, n, metric=metrics), seed=seed)
        out = []
        for _ in range(n):
            trial = tuner.ask()
            values = objective(trial.params)
            tuner.tell(trial, None, metrics={f"f{i}": v for i, v in enumerate(values)})
            out.append(values)
        return out
    return run


def _optuna_dists(params: list[Param]) -> dict[str, Any]:
    from optuna import distributions as d

    return {p.name: d.IntDistribution(int(p.low), int(p.high)) if p.kind == "int"
            else d.FloatDistribution(p.low, p.high, log=p.log) for p in params}


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def optuna_mo(sampler: str) -> Callable[..., list[list[float]]]:
    def run(params: list[Param], objective: Objective, k: int, n: int, seed: int
            ) -> list[list[float]]:
        optuna = _quiet_optuna()
        samplers = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
                    "gp": optuna.samplers.GPSampler}
        study = optuna.create_study(directions=["minimize"] * k,
                                    sampler=samplers[sampler](seed=seed))
        dists = _optuna_dists(params)
        out = []
        for _ in range(n):
            trial = study.ask(dists)
            values = objective(trial.params)
            study.tell(trial, values)
            out.append(values)
        return out
    return run


def ax_mo(params: list[Param], objective: Objective, k: int, n: int, seed: int
          ) -> list[list[float]]:
    """Ax's `Client`, every objective minimised, its default generation strategy (a Sobol
    start, then BoTorch's qLogNEHVI with an inferred reference point), one trial at a
    time."""
    from ax import Client

    from benchmarks.peers import _ax_parameters, _quiet_ax

    _quiet_ax()
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=_ax_parameters(params))
    client.configure_optimization(objective=", ".join(f"-f{i}" for i in range(k)))
    out = []
    for _ in range(n):
        (index, chosen), = client.get_next_trials(max_trials=1).items()
        values = objective(dict(chosen))
        client.complete_trial(trial_index=index,
                              raw_data={f"f{i}": v for i, v in enumerate(values)})
        out.append(values)
    return out


def hypervolume(points: list[list[float]], ref: list[float]) -> float:
    from optuna._hypervolume import compute_hypervolume

    pts = np.array([p for p in points if all(a < r for a, r in zip(p, ref, strict=True))])
    if not len(pts):
        return 0.0
    return float(compute_hypervolume(pts, np.array(ref), assume_pareto=False))


# -- constrained problems -----------------------------------------------------------------

def gramacy(p: dict[str, Any]) -> tuple[float, dict[str, float]]:
    x1, x2 = p["x0"], p["x1"]
    c1 = 1.5 - x1 - 2 * x2 - 0.5 * math.sin(2 * math.pi * (x1 ** 2 - 2 * x2))
    c2 = x1 ** 2 + x2 ** 2 - 1.5
    return x1 + x2, {"c1": c1, "c2": c2}


def hartmann6_l1(p: dict[str, Any]) -> tuple[float, dict[str, float]]:
    q = {f"x{i}": p[f"x{i - 1}"] for i in range(1, 7)}
    return hartmann6(q), {"l1": sum(p[f"x{i}"] for i in range(6))}


#: name -> (params, objective, constraints (metric, max), feasible optimum, worst value)
CONSTRAINED: dict[str, tuple[list[Param], Callable[..., Any], list[tuple[str, float]],
                             float, float]] = {
    "gramacy": ([Param("x0", "float", 0, 1), Param("x1", "float", 0, 1)], gramacy,
                [("c1", 0.0), ("c2", 0.0)], 0.5998, 2.0),
    "hartmann6-l1": (_UNIT6, hartmann6_l1, [("l1", 3.0)], -3.32237, 0.0),
}


def kubesweep_constrained(method: str) -> Callable[..., list[float]]:
    def run(problem: str, n: int, seed: int) -> list[float]:
        import kubesweep

        params, objective, cons, _, worst = CONSTRAINED[problem]
        spec = _spec(params, method, n, metric={"name": "loss"},
                     constraints=[{"metric": m, "max": b} for m, b in cons])
        tuner = kubesweep.Tuner(spec, seed=seed)
        best = []
        for _ in range(n):
            trial = tuner.ask()
            value, extra = objective(trial.params)
            tuner.tell(trial, value, metrics={"loss": value, **extra})
            best.append(tuner.best.value if tuner.best is not None else worst)
        return best
    return run


def optuna_constrained(sampler: str) -> Callable[..., list[float]]:
    def run(problem: str, n: int, seed: int) -> list[float]:
        optuna = _quiet_optuna()
        params, objective, cons, _, worst = CONSTRAINED[problem]

        def constraints_func(t: Any) -> list[float]:
            return t.user_attrs["c"]

        cls = optuna.samplers.GPSampler if sampler == "gp" else optuna.samplers.TPESampler
        study = optuna.create_study(sampler=cls(seed=seed, constraints_func=constraints_func))
        dists = _optuna_dists(params)
        best, incumbent = [], worst
        for _ in range(n):
            trial = study.ask(dists)
            value, extra = objective(trial.params)
            c = [extra[m] - b for m, b in cons]
            trial.set_user_attr("c", c)
            study.tell(trial, value)
            if all(v <= 0 for v in c):
                incumbent = min(incumbent, value)
            best.append(incumbent)
        return best
    return run


def ax_constrained(problem: str, n: int, seed: int) -> list[float]:
    """Ax's `Client` minimising the objective with one outcome constraint `metric <=
    bound` per constraint (its default: BoTorch's log-EI × probability of feasibility),
    one trial at a time; the best feasible value after each trial."""
    from ax import Client

    from benchmarks.peers import _ax_parameters, _quiet_ax

    _quiet_ax()
    params, objective, cons, _, worst = CONSTRAINED[problem]
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=_ax_parameters(params))
    client.configure_optimization(objective="-loss",
                                  outcome_constraints=[f"{m} <= {b}" for m, b in cons])
    best, incumbent = [], worst
    for _ in range(n):
        (index, chosen), = client.get_next_trials(max_trials=1).items()
        value, extra = objective(dict(chosen))
        client.complete_trial(trial_index=index, raw_data={"loss": value, **extra})
        if all(extra[m] <= b for m, b in cons):
            incumbent = min(incumbent, value)
        best.append(incumbent)
    return best


# -- warm start ---------------------------------------------------------------------------

def _shift(p: dict[str, Any], names: list[str], delta: float, lows: list[float],
           highs: list[float]) -> dict[str, Any]:
    out = dict(p)
    for n, lo, hi in zip(names, lows, highs, strict=True):
        out[n] = float(np.clip(p[n] + delta * (hi - lo), lo, hi))
    return out


def _hartmann(p: dict[str, Any]) -> float:
    return hartmann6({f"x{i}": p[f"x{i}"] for i in range(1, 7)})


WARM: dict[str, tuple[list[Param], Callable[[dict[str, Any]], float]]] = {
    "hartmann6": ([Param(f"x{i}", "float", 0, 1) for i in range(1, 7)], _hartmann),
    "branin": ([Param("x1", "float", -5, 10), Param("x2", "float", 0, 15)], branin),
}


def warm_run(problem: str, n: int, seed: int, warm: bool, delta: float = 0.05) -> float:
    """Best of n trials on the shifted function, optionally warm-started."""
    import kubesweep

    params, f = WARM[problem]
    names = [p.name for p in params]
    lows, highs = [p.low for p in params], [p.high for p in params]
    prior: list[Any] = []
    if warm:  # the earlier sweep: 30 trials of bayes on the unshifted function
        old = kubesweep.Tuner(_spec(params, "bayes", 30, metric={"name": "loss"}),
                              seed=10_000 + seed)
        for _ in range(30):
            t = old.ask()
            v = f(t.params)
            old.tell(t, v, metrics={"loss": v})
        prior = old.trials
    tuner = kubesweep.Tuner(_spec(params, "bayes", n, metric={"name": "loss"}), seed=seed,
                            prior=prior)
    best = math.inf
    for _ in range(n):
        t = tuner.ask()
        v = f(_shift(t.params, names, delta, lows, highs))
        tuner.tell(t, v)
        best = min(best, v)
    return best


# -- tables -------------------------------------------------------------------------------

def _cell(values: list[float]) -> str:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.4g} [{q1:.4g}, {q3:.4g}]"


def _subset(methods: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    """The methods named in `wanted` (comma-separated; None: all), in their usual order."""
    if wanted is None:
        return methods
    names = wanted.split(",")
    unknown = [n for n in names if n not in methods]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; valid: {', '.join(methods)}")
    return {k: v for k, v in methods.items() if k in names}


def _torch_ok() -> bool:
    try:
        import torch  # noqa: F401
    except Exception as exc:  # a broken CUDA wheel raises ValueError/OSError, not ImportError
        print(f"# Optuna GPSampler skipped: torch does not import ({exc})", file=sys.stderr)
        return False
    return True


def _ax_ok() -> bool:
    try:
        import ax  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure just leaves Ax out
        print(f"# Ax skipped: it does not import ({exc}); pip install -e '.[bench]'",
              file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run one benchmark and print its tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("which", choices=["mo", "constrained", "warm"])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--problems", default=None)
    ap.add_argument("--methods", default=None,
                    help="comma-separated subset of the methods (default: all that run)")
    ap.add_argument("--trials", type=int, default=60, choices=[30, 60],
                    help="mo: run 30 or 60 trials per seed (60 also reports 30)")
    args = ap.parse_args(argv)
    budgets = [30] if args.trials == 30 else [30, 60]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    gp = _torch_ok()
    if args.which == "mo":
        methods = {"kubesweep-bayes": kubesweep_mo("bayes"),
                   "kubesweep-random": kubesweep_mo("random"),
                   "optuna-tpe": optuna_mo("tpe"), "optuna-nsga2": optuna_mo("nsga2")}
        if gp:
            methods["optuna-gp"] = optuna_mo("gp")
        if _ax_ok():
            methods["ax"] = ax_mo
        methods = _subset(methods, args.methods)
        names = args.problems.split(",") if args.problems else list(MO_PROBLEMS)
        table: dict[str, dict[str, dict[int, list[float]]]] = {}
        for name in names:
            params, objective, ref = MO_PROBLEMS[name]
            for method, run in methods.items():
                hv: dict[int, list[float]] = {b: [] for b in budgets}
                for seed in seeds:
                    points = run(params, objective, len(ref), budgets[-1], seed)
                    for b in hv:
                        hv[b].append(hypervolume(points[:b], ref))
                table.setdefault(name, {})[method] = hv
                print(f"# {name} {method} " + " ".join(
                    f"@{b}: {np.median(v):.4g}" for b, v in hv.items()), file=sys.stderr,
                    flush=True)
        for b in budgets:
            print(f"\n### Hypervolume after {b} trials (median [IQR], seeds "
                  f"{seeds.start}-{seeds.stop - 1}, higher is better)\n")
            print("| problem | " + " | ".join(methods) + " |")
            print("|---" * (len(methods) + 1) + "|")
            for name in names:
                print(f"| {name} | " + " | ".join(_cell(table[name][m][b]) for m in methods)
                      + " |")
    elif args.which == "constrained":
        methods_c = {"kubesweep-bayes": kubesweep_constrained("bayes"),
                     "kubesweep-random": kubesweep_constrained("random"),
                     "optuna-tpe": optuna_constrained("tpe")}
        if gp:
            methods_c["optuna-gp"] = optuna_constrained("gp")
        if _ax_ok():
            methods_c["ax"] = ax_constrained
        methods_c = _subset(methods_c, args.methods)
        names = args.problems.split(",") if args.problems else list(CONSTRAINED)
        res: dict[str, dict[str, dict[int, list[float]]]] = {}
        for name in names:
            for method, run in methods_c.items():
                best: dict[int, list[float]] = {15: [], 30: []}
                for seed in seeds:
                    curve = run(name, 30, seed)
                    for b in best:
                        best[b].append(curve[b - 1])
                res.setdefault(name, {})[method] = best
                print(f"# {name} {method} " + " ".join(
                    f"@{b}: {np.median(v):.4g}" for b, v in best.items()), file=sys.stderr,
                    flush=True)
        for b in (15, 30):
            print(f"\n### Best feasible value after {b} trials (median [IQR], seeds "
                  f"{seeds.start}-{seeds.stop - 1}, lower is better)\n")
            print("| problem (optimum) | " + " | ".join(methods_c) + " |")
            print("|---" * (len(methods_c) + 1) + "|")
            for name in names:
                print(f"| {name} ({CONSTRAINED[name][3]:g}) | "
                      + " | ".join(_cell(res[name][m][b]) for m in methods_c) + " |")
    else:
        names = args.problems.split(",") if args.problems else list(WARM)
        print(f"\n### Best value after 10 trials of the shifted function (median [IQR], "
              f"seeds {seeds.start}-{seeds.stop - 1}, lower is better)\n")
        print("| problem | bayes, cold | bayes, warm start (30 earlier trials) |")
        print("|---|---|---|")
        for name in names:
            cold = [warm_run(name, 10, s, False) for s in seeds]
            hot = [warm_run(name, 10, s, True) for s in seeds]
            print(f"| {name} | {_cell(cold)} | {_cell(hot)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
