"""Search strategies behind one interface (see `base.Strategy`)."""

from __future__ import annotations

from typing import Any

from kubesweep.space import Space
from kubesweep.strategies.base import Observation, Strategy
from kubesweep.strategies.grid import GridStrategy
from kubesweep.strategies.random_search import RandomStrategy


def make_strategy(method: str, space: Space, **options: Any) -> Strategy:
    """The strategy for a sweep's `method`; `options` are its constructor's keyword
    arguments (a TypeError names any the strategy does not take)."""
    if method == "grid":
        return GridStrategy(space, **options)
    if method == "random":
        return RandomStrategy(space, **options)
    if method == "bayes":
        from kubesweep.strategies.bayes import BayesStrategy

        return BayesStrategy(space, **options)
    raise ValueError(f"method: unknown {method!r}; valid: grid, random, bayes")


__all__ = ["Observation", "Strategy", "make_strategy"]
