"""Search strategies behind one interface (see `base.Strategy`)."""

from __future__ import annotations

from typing import Any

from kubesweep.space import Space
from kubesweep.strategies.base import Observation, Strategy
from kubesweep.strategies.grid import GridStrategy
from kubesweep.strategies.random_search import RandomStrategy


def make_strategy(method: str, space: Space, **options: Any) -> Strategy:
    """The strategy for a sweep's `method`; `options` are its constructor's keyword
    arguments (a TypeError names any the strategy does not take). `constrained=True`:
    bayes models the probability that a trial meets the sweep's constraints.
    `objectives=2`: bayes maximises the expected hypervolume improvement of the two
    objectives' Pareto front (`Observation.losses`)."""
    objectives = options.pop("objectives", 1)
    if method != "bayes":
        options.pop("constrained", None)  # grid/random ignore results, constraints too
    if method == "grid":
        return GridStrategy(space, **options)
    if method == "random":
        return RandomStrategy(space, **options)
    if method == "bayes":
        if objectives == 2:
            from kubesweep.strategies.ehvi import EhviBayesStrategy

            options.pop("constrained", None)  # it models constraints itself
            return EhviBayesStrategy(space, **options)
        if options.pop("constrained", False):
            from kubesweep.strategies.feasibility import ConstrainedBayesStrategy

            return ConstrainedBayesStrategy(space, **options)
        from kubesweep.strategies.bayes import BayesStrategy

        return BayesStrategy(space, **options)
    raise ValueError(f"method: unknown {method!r}; valid: grid, random, bayes")


__all__ = ["Observation", "Strategy", "make_strategy"]
