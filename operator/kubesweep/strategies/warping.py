"""Target transform for the GP: impute failures, tame heavy tails, standardise."""

from __future__ import annotations

import numpy as np


def transform_losses(losses: np.ndarray) -> np.ndarray:
    """Standardised GP targets for losses (lower is better; NaN marks a failed trial).

    Failed trials take the worst observed loss: the model then steers away from where
    they failed without inventing a value worse than anything seen.
    """
    y = np.asarray(losses, dtype=float).copy()
    finite = np.isfinite(y)
    if not finite.any():
        return np.zeros_like(y)
    worst, best = float(np.max(y[finite])), float(np.min(y[finite]))
    y[np.isnan(y) | (y == np.inf)] = worst
    y[y == -np.inf] = best
    std = float(np.std(y))
    if std <= 1e-12 * max(1.0, abs(float(np.mean(y)))):
        return np.zeros_like(y)
    return (y - np.mean(y)) / std
