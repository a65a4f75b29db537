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
