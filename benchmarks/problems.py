"""Benchmark objectives and their search spaces, in one neutral form every peer can read.

A problem is a name, a list of `Param`s and an objective (lower is better). The spaces are
translated to kubesweep's spec, Optuna's `suggest_*` calls and W&B sweeps' config by the
drivers in `peers.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Param:
    """One hyperparameter: `float` (optionally log), `int`, or `cat` with `choices`."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Problem:
    """An objective to minimise over `params`; `optimum` is the known minimum if any."""

    name: str
    params: list[Param]
    objective: Callable[[dict[str, Any]], float]
    optimum: float | None = None
    notes: str = field(default="")


def branin(p: dict[str, Any]) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 at three points."""
    x1, x2 = float(p["x1"]), float(p["x2"])
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    """Hartmann-6 on [0, 1]^6; minimum -3.32237."""
    x = np.array([float(p[f"x{i}"]) for i in range(1, 7)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(train_test_split(x / 16.0, y, test_size=0.4, random_state=0, stratify=y))


@lru_cache(maxsize=8192)
def _mlp_loss(hidden: int, alpha: float, lr: float, epochs: int, activation: str) -> float:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    x_tr, x_va, y_tr, y_va = _digits()
    model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, learning_rate_init=lr,
                          max_iter=epochs, activation=activation, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_tr, y_tr)
    return float(log_loss(y_va, model.predict_proba(x_va), labels=model.classes_))


def mlp_digits(p: dict[str, Any]) -> float:
    """Validation cross-entropy of a one-hidden-layer MLP on scikit-learn's digits.

    Cross-entropy rather than accuracy: accuracy on 719 validation images moves in steps
    of 0.14% and most methods tie on it, which says nothing about the search.
    """
    return _mlp_loss(int(p["hidden"]), float(p["alpha"]), float(p["learning_rate"]),
                     int(p["epochs"]), str(p["activation"]))


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", [Param("x1", "float", -5, 10), Param("x2", "float", 0, 15)],
                      branin, 0.397887),
    "hartmann6": Problem("hartmann6", [Param(f"x{i}", "float", 0, 1) for i in range(1, 7)],
                         hartmann6, -3.32237),
    "mlp-digits": Problem(
        "mlp-digits",
        [Param("hidden", "int", 8, 128), Param("alpha", "float", 1e-6, 1e-1, log=True),
         Param("learning_rate", "float", 1e-4, 3e-1, log=True),
         Param("epochs", "int", 3, 40),
         Param("activation", "cat", choices=("relu", "tanh", "logistic"))],
        mlp_digits, None, "validation cross-entropy",
    ),
}


# -- large spaces: a few parameters matter, the rest barely -------------------------------

#: how much all the "barely matter" parameters of a wide problem can add together (the
#: relevant part spans ~3 for Hartmann6 and ~300 for Branin); small but not zero, as in
#: real sweeps where most knobs nudge the result a little
_NUISANCE = 0.05


def _nuisance(p: dict[str, Any], names: list[str], seed: int) -> float:
    """A small smooth effect of the irrelevant parameters, zero at a fixed random point."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, len(names))
    weights = rng.dirichlet(np.ones(len(names)))
    total = 0.0
    for name, c, w in zip(names, centres, weights, strict=True):
        v = p[name]
        x = {"a": 0.0, "b": 0.5, "c": 1.0}[v] if isinstance(v, str) else float(v)
        if name.startswith("n"):  # ints 0..10 on the same unit scale
            x /= 10.0
        total += w * (x - c) ** 2
    return _NUISANCE * total / 0.36  # (x - c)² < 0.64; typical ≈ 0.1-0.2


_H25_RELEVANT = [f"x{i:02d}" for i in (2, 5, 9, 13, 17, 22)]
_H25_OTHER = [f"x{i:02d}" for i in range(25) if f"x{i:02d}" not in _H25_RELEVANT]


def hartmann6_25d(p: dict[str, Any]) -> float:
    """Hartmann-6 on 6 of 25 floats; the other 19 add a small smooth effect (≤ 0.05)."""
    return hartmann6({f"x{k + 1}": p[n] for k, n in enumerate(_H25_RELEVANT)}) \
        + _nuisance(p, _H25_OTHER, 25)


_B20_OTHER = [f"x{i:02d}" for i in range(2, 14)] + [f"n{i}" for i in range(4)] \
    + [f"c{i}" for i in range(4)]


def branin_20d(p: dict[str, Any]) -> float:
    """Branin on 2 of 20 parameters (12 floats, 4 ints, 4 categoricals barely matter)."""
    x1 = -5.0 + 15.0 * float(p["x00"])
    x2 = 15.0 * float(p["x01"])
    return branin({"x1": x1, "x2": x2}) + _nuisance(p, _B20_OTHER, 20)


WIDE_PROBLEMS: dict[str, Problem] = {
    "hartmann6-25d": Problem(
        "hartmann6-25d", [Param(f"x{i:02d}", "float", 0, 1) for i in range(25)],
        hartmann6_25d, -3.32237, "Hartmann6 on 6 of 25 floats"),
    "branin-20d": Problem(
        "branin-20d",
        [Param(f"x{i:02d}", "float", 0, 1) for i in range(14)]
        + [Param(f"n{i}", "int", 0, 10) for i in range(4)]
        + [Param(f"c{i}", "cat", choices=("a", "b", "c")) for i in range(4)],
        branin_20d, 0.397887, "Branin on 2 of 22 mixed parameters"),
}
