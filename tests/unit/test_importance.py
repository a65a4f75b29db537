"""Parameter importance (fANOVA on a random forest) on objectives whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from kubesweep.importance import importances
from kubesweep.space import Space
from kubesweep.spec import parse_spec
from tests.helpers import make_spec


def _space(parameters: dict) -> Space:
    return Space(parse_spec(make_spec(parameters)).parameters)


def _sample(space: Space, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_an_ignored_parameter_gets_about_zero():
    space = _space({"x": {"min": 0.0, "max": 1.0}, "noise": {"min": 0.0, "max": 1.0}})
    params = _sample(space, 200)
    result = importances(space, params, [(p["x"] - 0.3) ** 2 for p in params])
    assert list(result) == ["x", "noise"]
    assert result["x"] > 0.95 and result["noise"] < 0.05
    assert sum(result.values()) == pytest.approx(1.0)


def test_additive_objective_splits_by_variance():
    # f = a + 2b on uniform [0,1]^2: Var(a)=1/12, Var(2b)=4/12, so 0.2 and 0.8
    space = _space({"a": {"min": 0.0, "max": 1.0}, "b": {"min": 0.0, "max": 1.0},
                    "c": {"min": 0.0, "max": 1.0}})
    params = _sample(space, 400, seed=1)
    result = importances(space, params, [p["a"] + 2 * p["b"] for p in params])
    assert result["b"] == pytest.approx(0.8, abs=0.06)
    assert result["a"] == pytest.approx(0.2, abs=0.06)
    assert result["c"] < 0.03


def test_log_scale_and_categorical_parameters():
    space = _space({"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
                    "act": {"values": ["relu", "tanh", "gelu"]},
                    "unused": {"values": [1, 2, 3, 4]}})
    params = _sample(space, 300, seed=2)
    offset = {"relu": 0.0, "tanh": 3.0, "gelu": 6.0}
    values = [offset[p["act"]] + 0.01 * np.log10(p["lr"]) for p in params]
    result = importances(space, params, values)
    assert result["act"] > 0.95
    assert result["unused"] < 0.03


def test_deterministic_for_a_seed():
    space = _space({"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}})
    params = _sample(space, 50)
    values = [np.sin(6 * p["x"]) + p["y"] for p in params]
    assert importances(space, params, values) == importances(space, params, values)


def test_too_few_or_constant_trials_give_nothing():
    space = _space({"x": {"min": 0.0, "max": 1.0}})
    params = _sample(space, 10)
    assert importances(space, params[:3], [1.0, 2.0, 3.0]) == {}
    assert importances(space, params, [1.0] * 10) == {}
    # trials without a usable value or outside the space are skipped
    assert importances(space, [*params, {"x": "bad"}], [*range(10), float("nan")]) != {}


def test_many_trials_use_a_subset_and_keep_the_answer():
    space = _space({f"p{i}": {"min": 0.0, "max": 1.0} for i in range(4)})
    params = _sample(space, 3000, seed=3)
    result = importances(space, params, [p["p0"] + 0.5 * p["p1"] ** 2 for p in params])
    # Var(p0) = 1/12, Var(0.5 p1^2) = 1/45: shares 0.79 / 0.21, p2 and p3 ignored
    assert result["p0"] == pytest.approx(0.79, abs=0.05)
    assert result["p1"] == pytest.approx(0.21, abs=0.05)
    assert result["p2"] < 0.01 and result["p3"] < 0.01
