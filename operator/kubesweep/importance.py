"""Parameter importance: how much of the objective's variance each parameter explains.

The method is Optuna's default evaluator (`FanovaImportanceEvaluator`): fit a random forest
to (parameters → value) of the succeeded trials, and for each tree compute the functional
ANOVA decomposition (Hutter et al., 2014) — the variance of the tree's marginal prediction
along one parameter, divided by the tree's total variance over the search space. The
importances are averaged over the trees and normalised to sum to 1.

Parameters live in the search space's unit-cube encoding (`Space.encode`: log scales are
already linear there, a categorical is a one-hot block whose columns' importances are
summed), so the "uniform measure over the space" fANOVA integrates over is the one the
sweep searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kubesweep.space import Space

#: Forest settings of Optuna's fANOVA evaluator.
N_TREES = 64
MAX_DEPTH = 64
#: Fewer usable trials than this and importance is not computed (it would be noise).
MIN_TRIALS = 4
#: At most this many trials (a seeded random subset) are fitted: the forest and the
#: decomposition grow with n (10,000 trials take ~30 s on one core, 1,000 take ~2 s) and
#: the shares they estimate do not change visibly beyond a few hundred trials.
MAX_TRIALS = 1000


def importances(space: Space, params: Sequence[Mapping[str, Any]],
                values: Sequence[float], seed: int = 0) -> dict[str, float]:
    """Importance of each parameter of `space` (sums to 1, largest first).

    `params[i]` produced `values[i]`. Trials whose parameters fall outside the space (an
    edited manifest) or whose value is not finite are skipped. Empty when fewer than
    `MIN_TRIALS` remain, when the values do not vary, or when no parameter varies.
    Beyond `MAX_TRIALS` trials a seeded random subset of that size is used.
    """
    from sklearn.ensemble import RandomForestRegressor

    dims = [d for d in space.dimensions if d.width > 0]
    rows, ys = [], []
    for p, y in zip(params, values, strict=True):
        if y is None or not np.isfinite(y):
            continue
        try:
            rows.append(space.encode(p))
        except (KeyError, ValueError, TypeError):
            continue
        ys.append(float(y))
    if len(ys) < MIN_TRIALS or not dims or float(np.ptp(ys)) == 0.0:
        return {}
    x = np.clip(np.vstack(rows), 0.0, 1.0)
    y = np.asarray(ys)
    if len(y) > MAX_TRIALS:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), MAX_TRIALS, replace=False))
        x, y = x[keep], y[keep]
    forest = RandomForestRegressor(n_estimators=N_TREES, max_depth=MAX_DEPTH,
                                   min_samples_split=2, min_samples_leaf=1,
                                   random_state=seed, n_jobs=1)
    forest.fit(x, y)
    per_column = np.zeros(x.shape[1])
    used = 0
    for tree in forest.estimators_:
        column_share = tree_variance_shares(tree.tree_, x.shape[1])
        if column_share is not None:
            per_column += column_share
            used += 1
    if not used:
        return {}
    per_column /= used
    scores = {d.name: float(per_column[space.slices[d.name]].sum()) for d in dims}
    total = sum(scores.values())
    if total <= 0.0:
        return {}
    return dict(sorted(((k, v / total) for k, v in scores.items()),
                       key=lambda kv: (-kv[1], kv[0])))


def _leaves(tree: Any, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each leaf's box in the unit cube (lower, upper; shape (leaves, features)) and value."""
    left, right = tree.children_left, tree.children_right
    feature, threshold = tree.feature, tree.threshold
    values = tree.value.reshape(tree.node_count, -1)[:, 0]
    lows, highs, leaf_values = [], [], []
    stack = [(0, np.zeros(n_features), np.ones(n_features))]
    while stack:
        node, low, high = stack.pop()
        if left[node] == -1:
            lows.append(low)
            highs.append(high)
            leaf_values.append(values[node])
            continue
        f, t = feature[node], min(max(threshold[node], low[feature[node]]),
                                  high[feature[node]])
        left_high = high.copy()
        left_high[f] = t
        right_low = low.copy()
        right_low[f] = t
        stack.append((left[node], low, left_high))
        stack.append((right[node], right_low, high))
    return np.asarray(lows), np.asarray(highs), np.asarray(leaf_values)


def tree_variance_shares(tree: Any, n_features: int) -> np.ndarray | None:
    """Per feature: variance of the tree's marginal along it / the tree's total variance
    (uniform measure on the unit cube). None for a tree that predicts a constant."""
    low, high, value = _leaves(tree, n_features)
    widths = np.clip(high - low, 0.0, None)
    volume = widths.prod(axis=1)
    mean = float((volume * value).sum())
    total = float((volume * (value - mean) ** 2).sum())
    if total <= 1e-300:
        return None
    shares = np.zeros(n_features)
    for f in range(n_features):
        # the marginal along f is piecewise constant between the tree's cuts on f
        cuts = np.unique(np.concatenate([[0.0, 1.0], low[:, f], high[:, f]]))
        segment = np.diff(cuts)
        with np.errstate(divide="ignore", invalid="ignore"):
            other = np.where(widths[:, f] > 0, volume / widths[:, f], 0.0)
        start = np.searchsorted(cuts, low[:, f])
        stop = np.searchsorted(cuts, high[:, f])
        # add each leaf's (value × volume outside f) to the segments its box spans
        delta = np.zeros(len(cuts))
        np.add.at(delta, start, value * other)
        np.add.at(delta, stop, -value * other)
        marginal = np.cumsum(delta)[:-1]
        shares[f] = float((segment * (marginal - mean) ** 2).sum()) / total
    return shares
