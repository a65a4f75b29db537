"""A trial that prints a huge finite value (1e308, -1e308) must not poison the model:
before, the single-objective targets all became NaN (squares overflowed) and bayes went
on suggesting from a broken GP for the rest of the sweep, silently."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kubesweep.strategies.ehvi import standardised
from kubesweep.strategies.warping import transform_losses
from kubesweep.tuner import Tuner
from tests.unit.test_multi_objective import TWO, spec

WILD = [1e308, -1e308, 1e308, 5.0, 1e-300, 3.0, 2.0, 1.0, 7.0, 0.5]


def test_targets_stay_finite_and_keep_the_order():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow anywhere fails the test
        y = transform_losses(np.array(WILD))
        z = standardised(np.array([WILD, WILD[::-1]]).T)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(z))
    order = np.argsort(WILD, kind="stable")
    assert np.all(np.diff(y[order]) >= 0)
    assert np.all(np.diff(z[order, 0]) >= 0)


def test_ordinary_values_keep_their_scale():
    """Only values too large for z-scores are ranked: everything else is as before."""
    losses = np.array([3.0, 1.0, 2.0, 10.0, 4.0, 2.5])
    y = transform_losses(losses)
    assert not np.allclose(np.sort(y), np.sort(transform_losses(np.argsort(losses) * 1.0)))
    z = standardised(np.array([losses, losses]).T)
    np.testing.assert_allclose(z[:, 0], (losses - losses.mean()) / losses.std())


def test_one_wild_objective_value_does_not_flatten_the_others():
    col = np.array([1.0, 2.0, 3.0, 4.0, 1e12])
    z = standardised(np.array([col, col]).T)[:, 0]
    assert z[1] - z[0] > 0.3  # ranked: the ordinary values stay apart


@pytest.mark.parametrize("metric", [{"name": "loss"}, TWO], ids=["one", "two"])
def test_bayes_keeps_suggesting_after_huge_values_and_constraints(metric):
    tuner = Tuner(spec(metric=metric, maxTrials=30,
                       constraints=[{"metric": "mem", "max": 4.0}]), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, value in enumerate(WILD + WILD):
            trial = tuner.ask()
            tuner.tell(trial, value if metric is not TWO else None,
                       metrics={"loss": value, "acc": value, "latency": -value,
                                "mem": WILD[(i + 3) % len(WILD)]})
        batch = tuner.ask(3)
    assert len(batch) == 3
    assert all(0.0 <= v <= 1.0 for t in batch for v in t.params.values())
