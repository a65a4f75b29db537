"""Drivers that run one search method on a `Problem`, or time one suggestion.

Every driver runs the method as its users do: kubesweep through `kubesweep.Tuner`,
Optuna through a study with the sampler's default settings, W&B through `sweeps.next_run`
with `SweepRun` records (W&B's engine draws from numpy's global RNG, so it is seeded there).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.problems import Param, Problem

#: what the timing functions below read: wall time, or (`latency.py --cpu`) the CPU time of
#: this process, which a machine shared with other work inflates far less
CLOCK: Callable[[], float] = time.perf_counter

_TEMPLATE = {"spec": {"template": {"spec": {
    "containers": [{"name": "trial", "image": "python:3.11", "command": ["true"]}],
    "restartPolicy": "Never"}}}}


# -- kubesweep ---------------------------------------------------------------------------

def parameters_block(params: list[Param]) -> dict[str, Any]:
    """The `parameters` of a benchmark space: kubesweep and W&B share these keys."""
    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "cat":
            out[p.name] = {"values": list(p.choices)}
        elif p.kind == "int":
            out[p.name] = {"distribution": "int_uniform", "min": int(p.low), "max": int(p.high)}
        elif p.log:
            out[p.name] = {"distribution": "log_uniform_values", "min": p.low, "max": p.high}
        else:
            out[p.name] = {"distribution": "uniform", "min": p.low, "max": p.high}
    return out


def kubesweep_spec(params: list[Param], method: str, budget: int) -> dict[str, Any]:
    """The Sweep spec of a benchmark space."""
    return {"method": method, "metric": {"name": "loss", "goal": "minimize"},
            "parameters": parameters_block(params), "maxTrials": budget,
            "trialTemplate": _TEMPLATE}


def run_kubesweep(method: str) -> Callable[[Problem, int, int], list[float]]:
    """A driver for kubesweep's `method` ('bayes' or 'random')."""
    def run(problem: Problem, n_trials: int, seed: int) -> list[float]:
        import kubesweep

        tuner = kubesweep.Tuner(kubesweep_spec(problem.params, method, n_trials), seed=seed)
        values = []
        for _ in range(n_trials):
            trial = tuner.ask()
            value = problem.objective(trial.params)
            tuner.tell(trial, value)
            values.append(value)
        return values
    return run


# -- Optuna ------------------------------------------------------------------------------

def _optuna_sampler(name: str, seed: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _optuna_distributions(params: list[Param]) -> dict[str, Any]:
    from optuna import distributions as d

    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "cat":
            out[p.name] = d.CategoricalDistribution(list(p.choices))
        elif p.kind == "int":
            out[p.name] = d.IntDistribution(int(p.low), int(p.high))
        else:
            out[p.name] = d.FloatDistribution(p.low, p.high, log=p.log)
    return out


def run_optuna(sampler: str) -> Callable[[Problem, int, int], list[float]]:
    """A driver for Optuna's 'tpe' or 'gp' sampler with default settings."""
    def run(problem: Problem, n_trials: int, seed: int) -> list[float]:
        import optuna

        study = optuna.create_study(sampler=_optuna_sampler(sampler, seed))
        dists = _optuna_distributions(problem.params)
        values = []
        for _ in range(n_trials):
            trial = study.ask(dists)
            value = problem.objective(trial.params)
            study.tell(trial, value)
            values.append(value)
        return values
    return run


# -- W&B sweeps --------------------------------------------------------------------------

def wandb_config(params: list[Param]) -> dict[str, Any]:
    """W&B sweep config of a benchmark space (bayes method)."""
    return {"method": "bayes", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": parameters_block(params)}


def _wandb_params(run: Any) -> dict[str, Any]:
    return {k: v["value"] for k, v in run.config.items()}


def run_wandb(problem: Problem, n_trials: int, seed: int) -> list[float]:
    """W&B sweeps' bayes engine (`sweeps.next_run`)."""
    import sweeps

    np.random.seed(seed)
    config = wandb_config(problem.params)
    runs: list[Any] = []
    values = []
    for _ in range(n_trials):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = sweeps.next_run(config, runs)
        value = problem.objective(_wandb_params(run))
        run.state = sweeps.RunState.finished
        run.summary_metrics = {"loss": value}
        run.history = [{"loss": value}]
        runs.append(run)
        values.append(value)
    return values


# -- Ax (Meta's BoTorch-based platform) --------------------------------------------------

def _ax_parameters(params: list[Param]) -> list[Any]:
    from ax import ChoiceParameterConfig, RangeParameterConfig

    out: list[Any] = []
    for p in params:
        if p.kind == "cat":
            out.append(ChoiceParameterConfig(name=p.name, values=list(p.choices),
                                             parameter_type="str"))
        elif p.kind == "int":
            out.append(RangeParameterConfig(name=p.name, bounds=(int(p.low), int(p.high)),
                                            parameter_type="int"))
        else:
            out.append(RangeParameterConfig(name=p.name, bounds=(p.low, p.high),
                                            parameter_type="float",
                                            scaling="log" if p.log else "linear"))
    return out


def _quiet_ax() -> None:
    import logging

    warnings.filterwarnings("ignore")
    for name in ("ax", "botorch", "gpytorch", "linear_operator"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _ax_client(problem: Problem, seed: int) -> Any:
    """An Ax `Client` over the problem's space, minimising `loss`."""
    _quiet_ax()
    from ax import Client

    client = Client(random_seed=seed)
    client.configure_experiment(parameters=_ax_parameters(problem.params))
    client.configure_optimization(objective="-loss")
    return client


def run_ax(problem: Problem, n_trials: int, seed: int) -> list[float]:
    """Ax's `Client` with its default generation strategy (Sobol start, then BoTorch's
    modular GP with log-EI), one trial at a time, as its tutorials run it."""
    client = _ax_client(problem, seed)
    values = []
    for _ in range(n_trials):
        (index, params), = client.get_next_trials(max_trials=1).items()
        value = problem.objective(dict(params))
        client.complete_trial(trial_index=index, raw_data={"loss": value})
        values.append(value)
    return values


METHODS: dict[str, Callable[[Problem, int, int], list[float]]] = {
    "kubesweep-bayes": run_kubesweep("bayes"),
    "kubesweep-random": run_kubesweep("random"),
    "optuna-tpe": run_optuna("tpe"),
    "optuna-gp": run_optuna("gp"),
    "wandb-bayes": run_wandb,
    "ax": run_ax,
}


# -- latency: one suggestion after a recorded history ------------------------------------

def history(problem: Problem, n: int, seed: int) -> list[tuple[dict[str, Any], float]]:
    """n random (params, value) pairs of a problem, the same for every peer."""
    import kubesweep

    tuner = kubesweep.Tuner(kubesweep_spec(problem.params, "random", n + 100), seed=seed)
    out = []
    for _ in range(n):
        trial = tuner.ask()
        out.append((trial.params, problem.objective(trial.params)))
    return out


def time_kubesweep(method: str, problem: Problem, done: list, pending: list,
                   cold: bool = True, q: int | None = None) -> float:
    """Seconds for one `Tuner.ask()` (or `ask(q)`: a batch of q) after `done` finished and
    `pending` running trials.

    `cold` empties kubesweep's caches first (GP fits, encoded trials): the first
    suggestion of a fresh process, or the first after the history reached a refit point.
    Otherwise the fit for this history is cached (the steady state between refit points).
    """
    import kubesweep
    from kubesweep.strategies import batch_pool, bayes, trust_region

    if cold:
        bayes._FITS.clear()
        bayes._ENCODED.clear()
        batch_pool.POOLS.clear()
        trust_region.SAMPLE_POOLS.clear()
    tuner = kubesweep.Tuner(kubesweep_spec(problem.params, method, 10_000), seed=0)
    for params, value in done:
        tuner.add(params, value)
    for params in pending:
        tuner.add(params, state="pending")
    start = CLOCK()
    tuner.ask(q)
    return CLOCK() - start


def time_optuna(sampler: str, problem: Problem, done: list, pending: list,
                q: int | None = None) -> float:
    """Seconds for one `study.ask()` (which samples every parameter) after a history, or
    for q of them in a row (each earlier one RUNNING; TPE with `constant_liar`)."""
    import optuna

    sampler_ = (optuna.samplers.TPESampler(seed=0, constant_liar=True)
                if q is not None and sampler == "tpe" else _optuna_sampler(sampler, 0))
    study = optuna.create_study(sampler=sampler_)
    dists = _optuna_distributions(problem.params)
    study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=v)
                      for p, v in done])
    for params in pending:
        study.enqueue_trial(params)
        study.ask(dists)  # fixed params: no sampling, becomes a RUNNING trial
    start = CLOCK()
    for _ in range(q or 1):
        study.ask(dists)
    return CLOCK() - start


def time_wandb(problem: Problem, done: list, pending: list, q: int | None = None) -> float:
    """Seconds for one `sweeps.next_run` after a history (or q in a row, each earlier one
    running)."""
    import sweeps

    np.random.seed(0)
    config = wandb_config(problem.params)
    runs = []
    for params, value in done:
        runs.append(sweeps.SweepRun(
            config={k: {"value": v} for k, v in params.items()},
            state=sweeps.RunState.finished, summary_metrics={"loss": value},
            history=[{"loss": value}]))
    for params in pending:
        runs.append(sweeps.SweepRun(config={k: {"value": v} for k, v in params.items()},
                                    state=sweeps.RunState.running))
    start = CLOCK()
    for _ in range(q or 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = sweeps.next_run(config, runs)
        run.state = sweeps.RunState.running
        runs.append(run)
    return CLOCK() - start


def time_ax(problem: Problem, done: list, pending: list, q: int | None = None) -> float:
    """Seconds for one `Client.get_next_trials` after a history attached as completed
    trials (pending ones attached and left running), or for one batch of q."""
    client = _ax_client(problem, 0)
    for params, value in done:
        client.complete_trial(trial_index=client.attach_trial(params),
                              raw_data={"loss": value})
    for params in pending:
        client.attach_trial(params)
    # the first trial Ax generates is always from its Sobol start-up node, attached trials
    # or not: generate it, drop it, and time what its model (BoTorch) suggests next
    for index in client.get_next_trials(max_trials=1):
        client.mark_trial_abandoned(trial_index=index)
    start = CLOCK()
    client.get_next_trials(max_trials=q or 1)
    return CLOCK() - start

