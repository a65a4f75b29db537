"""Grid and random search through the Tuner."""

from __future__ import annotations

import kubesweep
from tests.helpers import make_spec


def test_grid_visits_every_point_once_in_order_then_ends():
    tuner = kubesweep.Tuner(make_spec({"a": {"values": ["x", "y"]}, "b": {"min": 1, "max": 3}},
                                      method="grid"))
    seen = []
    while (trial := tuner.ask()) is not None:
        seen.append((trial.params["a"], trial.params["b"]))
        tuner.tell(trial, 1.0)
    assert seen == [("x", 1), ("x", 2), ("x", 3), ("y", 1), ("y", 2), ("y", 3)]
    assert tuner.done and tuner.outcome.reason == "BudgetReached"


def test_grid_exhaustion_ends_the_sweep_even_with_a_larger_budget():
    tuner = kubesweep.Tuner(make_spec({"a": {"values": [1, 2]}}, method="grid", maxTrials=10))
    batch = tuner.ask(5)
    assert [t.params["a"] for t in batch] == [1, 2]
    assert tuner.ask() is None
    for t in batch:
        tuner.tell(t, 0.5)
    assert tuner.outcome.reason == "GridExhausted"


def test_grid_with_parallel_pending_never_repeats():
    tuner = kubesweep.Tuner(make_spec({"a": {"min": 1, "max": 5}}, method="grid"))
    first = tuner.ask(2)
    tuner.tell(first[0], 1.0)
    rest = tuner.ask(5)
    assert sorted(t.params["a"] for t in first + rest) == [1, 2, 3, 4, 5]


def test_random_is_reproducible_by_seed():
    spec = make_spec({"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
                      "opt": {"values": ["adam", "sgd"]}}, maxTrials=8)

    def params(seed: int) -> list[dict]:
        return [t.params for t in kubesweep.Tuner(spec, seed=seed).ask(8)]

    assert params(1) == params(1)
    assert params(1) != params(2)


def test_random_seed_comes_from_spec_by_default():
    spec = make_spec({"x": {"min": 0.0, "max": 1.0}}, seed=5)
    assert kubesweep.Tuner(spec).ask().params == kubesweep.Tuner(spec, seed=5).ask().params
