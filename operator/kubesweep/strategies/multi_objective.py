"""Several objectives: the Pareto front and ParEGO's random scalarisations.

Bayes optimises several metrics by modelling, at each suggestion, one augmented
Chebyshev scalarisation of them with weights drawn uniformly from the simplex (Knowles,
"ParEGO", 2006): every weight vector points the search at a different part of the front,
and the single-objective GP, log-EI and batch machinery apply unchanged. Losses are
normalised per objective so that the current Pareto front spans [0, 1] (trials behind it
score above 1), so metrics on different scales (accuracy in [0, 1], latency in ms) weigh
alike and bad early trials do not squeeze the front.
"""

from __future__ import annotations

import numpy as np

#: Weight of the sum term in the augmented Chebyshev scalarisation (ParEGO's rho): it
#: breaks ties of the max term, so weakly dominated points score worse.
RHO = 0.05


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """Which rows of `losses` (n, k; lower is better; no NaN) no other row dominates.

    Duplicated rows are all kept (neither dominates the other).
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(losses[i] <= losses, axis=1) & np.any(losses[i] < losses, axis=1)
        keep &= ~dominated
    return keep


def scalarise(losses: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Augmented Chebyshev scalarisation of normalised losses (NaN rows stay NaN).

    `losses` is (n, k), lower is better, NaN where a trial failed; `weights` sums to 1.
    """
    losses = np.asarray(losses, dtype=float)
    out = np.full(len(losses), np.nan)
    usable = np.all(np.isfinite(losses), axis=1)
    if not usable.any():
        return out
    ok = losses[usable]
    lo = ok.min(axis=0)
    # the front's range, not all trials': early random trials are often far worse on one
    # objective (ZDT's g up to 10), and scaling by them squeezes the front into a corner
    # where every weight vector picks the same point (measured: benchmarks/README.md)
    span = ok[pareto_mask(ok)].max(axis=0) - lo
    span = np.where(span > 0, span, ok.max(axis=0) - lo)
    span[span <= 0] = 1.0
    z = (ok - lo) / span * weights
    out[usable] = z.max(axis=1) + RHO * z.sum(axis=1)
    return out


def random_weights(k: int, rng: np.random.Generator) -> np.ndarray:
    """A weight vector drawn uniformly from the (k-1)-simplex."""
    return rng.dirichlet(np.ones(k))
