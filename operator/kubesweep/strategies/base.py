"""The strategy interface: history in, the next parameter set out.

A strategy is a pure function of (space, finished trials, pending trials, seeded RNG).
It keeps no state that changes its answers, so a tuner rebuilt from recorded trials asks
exactly what the uninterrupted one would have (caches that only save time are fine).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubesweep.space import Params, Space


@dataclass(frozen=True)
class Observation:
    """A finished trial as a strategy sees it.

    `loss` is the trial's value oriented so that lower is better (the tuner negates it
    for `goal: maximize`); None when the trial failed or reported NaN. `violations` has
    one entry per constraint of the sweep: how far the trial's metric is outside the
    bound (<= 0: within it; NaN: not reported); empty when the sweep has no constraints.
    `losses`: with two objectives, each one's loss (lower is better; NaN when the trial
    failed or did not report it), and `loss` is None; empty otherwise.
    """

    params: Params
    loss: float | None
    violations: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()


class Strategy(ABC):
    """Proposes parameter sets for one sweep."""

    def __init__(self, space: Space) -> None:
        self.space = space

    @abstractmethod
    def suggest(
        self,
        finished: Sequence[Observation],
        pending: Sequence[Params],
        rng: np.random.Generator,
    ) -> Params | None:
        """The next parameter set to try, or None when the space is exhausted.

        `finished` is in trial order; `pending` holds trials proposed but not finished,
        which must not be proposed again.
        """
