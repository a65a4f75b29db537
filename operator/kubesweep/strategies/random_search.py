"""Random search: independent draws from each parameter's distribution."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubesweep.space import Params
from kubesweep.strategies.base import Observation, Strategy


class RandomStrategy(Strategy):
    """Draws every parameter independently; ignores the history."""

    def suggest(
        self,
        finished: Sequence[Observation],
        pending: Sequence[Params],
        rng: np.random.Generator,
    ) -> Params | None:
        """One independent draw from the space."""
        return self.space.sample(rng)
