"""Early-termination rules over intermediate metric histories.

Histories are lists of (step, loss) with loss oriented lower-is-better. A rule looks at
one running trial's history beside every other trial's and says whether to stop it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from kubesweep.spec import EarlyTerminate

History = Sequence[tuple[int, float]]


def _best_until(history: History, step: int) -> float | None:
    values = [v for s, v in history if s <= step and math.isfinite(v)]
    return min(values) if values else None


def _value_at(history: History, step: int) -> float | None:
    """The last finite value reported at or before `step`."""
    value = None
    for s, v in history:
        if s > step:
            break
        if math.isfinite(v):
            value = v
    return value


class StoppingRule(ABC):
    """Decides whether a running trial should stop."""

    def __init__(self, config: EarlyTerminate, maximize: bool = False) -> None:
        self.config = config
        #: losses are negated values when maximizing; messages show the user's values
        self.sign = -1.0 if maximize else 1.0

    def show(self, loss: float) -> str:
        """A loss as the value the user's metric reported."""
        return f"{self.sign * loss:.6g}"

    @abstractmethod
    def should_stop(self, history: History, others: Sequence[History]) -> str | None:
        """A reason to stop the trial with `history`, or None to let it run."""


class HyperbandRule(StoppingRule):
    """Hyperband-style brackets (as W&B Sweeps): at each bracket step, a trial must be in the
    best 1/eta of all trials that reached that step.

    Brackets are minIter·eta^k up to maxIter, or with maxIter and s: maxIter/eta^k for
    k = 1..s (truncated to whole steps, as W&B). Strict (the default, as W&B) compares the
    value at the bracket itself, so a trial that got worse is stopped too; non-strict
    compares each trial's best value up to the bracket.
    """

    def __init__(self, config: EarlyTerminate, maximize: bool = False) -> None:
        super().__init__(config, maximize)
        self.eta = config.eta
        self.strict = config.strict
        self.brackets = self._brackets(config)

    def _brackets(self, config: EarlyTerminate) -> list[int]:
        # As W&B's engine: steps are truncated (int), not rounded, so `minIter: 30, eta: 1.5`
        # gives 30, 45, 67, 101, 151; `maxIter` with `s` wins when both forms are given.
        if config.maxIter is not None and config.s is not None:
            steps = []
            step = float(config.maxIter)
            for _ in range(config.s):
                step /= self.eta
                if step < 1:
                    break
                steps.append(int(step))
            return sorted(set(steps))
        assert config.minIter is not None
        steps = []
        step = float(config.minIter)
        limit = config.maxIter if config.maxIter is not None else 10**9
        while step <= limit and len(steps) < 64:
            steps.append(int(step))
            step *= self.eta
        return sorted(set(steps))

    def should_stop(self, history: History, others: Sequence[History]) -> str | None:
        """Stop when the trial misses the top 1/eta at the newest bracket it has reached."""
        if not history:
            return None
        reached = [b for b in self.brackets if history[-1][0] >= b]
        if not reached:
            return None
        bracket = reached[-1]
        pick = _value_at if self.strict else _best_until
        mine = pick(history, bracket)
        if mine is None:
            return None
        peers = [v for h in others if h and h[-1][0] >= bracket
                 for v in [pick(h, bracket)] if v is not None]
        # with fewer than eta peers, "top 1/eta" keeps everyone
        if len(peers) + 1 < self.eta:
            return None
        threshold = float(np.quantile(np.asarray(peers + [mine]), 1.0 / self.eta))
        if mine > threshold:
            return (
                f"hyperband: at step {bracket} its value {self.show(mine)} is outside the best "
                f"1/{self.eta:g} of {len(peers) + 1} trials (threshold {self.show(threshold)})"
            )
        return None


class MedianRule(StoppingRule):
    """Median stopping (as Google Vizier and Optuna's MedianPruner): stop a trial whose best
    value so far is worse than the median of other trials' best values at the same step.
    """

    def __init__(self, config: EarlyTerminate, maximize: bool = False) -> None:
        super().__init__(config, maximize)
        self.warmup = config.minIter or 1
        self.min_trials = config.minTrials

    def should_stop(self, history: History, others: Sequence[History]) -> str | None:
        """Stop when worse than the median of peers at this step (after warm-up)."""
        if not history:
            return None
        step = history[-1][0]
        if step < self.warmup:
            return None
        mine = _best_until(history, step)
        peers = [v for h in others if h and h[-1][0] >= step
                 for v in [_best_until(h, step)] if v is not None]
        if mine is None or len(peers) < self.min_trials:
            return None
        median = float(np.median(peers))
        if mine > median:
            return (
                f"median rule: at step {step} its best {self.show(mine)} is worse than the median "
                f"{self.show(median)} of {len(peers)} other trials"
            )
        return None


def make_rule(config: EarlyTerminate | None, maximize: bool = False) -> StoppingRule | None:
    """The stopping rule a sweep's `earlyTerminate` asks for (None when absent)."""
    if config is None:
        return None
    if config.type == "hyperband":
        return HyperbandRule(config, maximize)
    return MedianRule(config, maximize)
