"""Grid search: the Cartesian product of every parameter's values, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubesweep.space import Params, params_key
from kubesweep.strategies.base import Observation, Strategy


class GridStrategy(Strategy):
    """Visits each distinct grid point once, first parameter slowest; then None."""

    def suggest(
        self,
        finished: Sequence[Observation],
        pending: Sequence[Params],
        rng: np.random.Generator,
    ) -> Params | None:
        """The first grid point no trial has taken yet."""
        taken = {params_key(o.params) for o in finished}
        taken.update(params_key(p) for p in pending)
        for point in self.space.grid():
            if params_key(point) not in taken:
                return point
        return None
