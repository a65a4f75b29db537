"""Wide batches in large spaces: Thompson sampling inside a trust region (TuRBO-style).

With many trials pending in a space of 20+ parameters, the kriging believer degenerates:
each believed point removes uncertainty only near itself, so log-EI sends the later
picks of a batch to empty corners of a box too big to cover. TuRBO (Eriksson et al.,
"Scalable global optimization via local Bayesian optimization", 2019) instead keeps the
batch in a box around the best trial and draws each pick as the minimiser of one sample
of the GP posterior over candidates in that box; the samples differ, so the picks do.

Candidates perturb only some coordinates of the best trial (each numeric coordinate with
probability `perturb`, at least one), uniformly within the box's extent along it, as
TuRBO and Ax do in high dimensions: in a space where most parameters barely matter, a
point that moves all 25 at once is mostly noise.

The box's side follows the history, replayed in trial order from the end of the initial
design: it doubles after `success_tolerance` improving trials in a row, halves after
`failure_tolerance` trials without one, and starts again at its initial side when it has
shrunk below `min_side`. It is a pure function of the finished losses, so a rebuilt tuner
sees the same box.

One pool of candidates, their posterior mean and the Cholesky factor of their posterior
covariance is built per finished history (seeded by its digest, cached); each pick then
costs one matrix-vector product: f = mean + L z with z from the trial's own rng.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from kubesweep.strategies.gp import GP


@dataclass(frozen=True)
class TrustRegion:
    """The rules of the box's side (fractions of the unit cube's side)."""

    initial_side: float = 0.8
    min_side: float = 0.5 ** 7
    max_side: float = 1.6
    success_tolerance: int = 3
    #: trials without improvement before the side halves; None: max(4, parameters)
    failure_tolerance: int | None = None

    def side(self, losses: np.ndarray, start: int, n_dims: int) -> float:
        """The side after replaying `losses` (trial order; NaN = failed) from `start`.

        A trial improves when it beats the best so far by 0.1% of its magnitude (as in
        TuRBO); failed trials count as not improving.
        """
        fail_tol = self.failure_tolerance or max(4, n_dims)
        finite = losses[:start][np.isfinite(losses[:start])]
        best = float(np.min(finite)) if len(finite) else math.inf
        side, wins, misses = self.initial_side, 0, 0
        for loss in losses[start:]:
            if np.isfinite(loss) and loss < best - 1e-3 * abs(best):
                wins, misses = wins + 1, 0
            else:
                wins, misses = 0, misses + 1
            if np.isfinite(loss):
                best = min(best, float(loss))
            if wins >= self.success_tolerance:
                side, wins = min(2.0 * side, self.max_side), 0
            elif misses >= fail_tol:
                side, misses = side / 2.0, 0
                if side < self.min_side:
                    side = self.initial_side
        return side


def box(center: np.ndarray, side: float, inv_sq_lengthscales: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners of the trust region around `center` in the unit cube.

    Each coordinate's extent is proportional to its length scale (normalised to a
    geometric mean of 1, as in TuRBO): long along parameters the model finds flat.
    """
    ls = 1.0 / np.sqrt(inv_sq_lengthscales)
    weights = ls / math.exp(float(np.mean(np.log(ls))))
    half = np.clip(0.5 * side * weights, 0.0, 0.5)
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def perturbations(center_n: np.ndarray, center_c: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, n_categories: list[int], n: int, perturb: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n candidates that move a random subset of the center's coordinates within the box.

    Each coordinate (numeric and categorical alike) moves with probability `perturb`
    (a categorical one to another category); a candidate that would move none moves one
    coordinate chosen at random.
    """
    p, q = len(center_n), len(center_c)
    mask = rng.random((n, p + q)) < perturb
    none = ~mask.any(axis=1)
    mask[np.flatnonzero(none), rng.integers(0, p + q, int(none.sum()))] = True
    xn = np.repeat(center_n[None, :], n, axis=0)
    moved = lower + (upper - lower) * rng.random((n, p))
    xn[mask[:, :p]] = moved[mask[:, :p]]
    xc = np.repeat(center_c[None, :], n, axis=0)
    for j, k in enumerate(n_categories):
        flip = mask[:, p + j]
        if k > 1:  # another category: a move that lands where it started moves nothing
            xc[flip, j] = (center_c[j] + rng.integers(1, k, int(flip.sum()))) % k
    return xn, xc


@dataclass
class SamplePool:
    """Candidates with the posterior mean and a factor of the posterior covariance."""

    enc: np.ndarray
    mean: np.ndarray
    chol: np.ndarray
    keys: list[bytes]
    done: set[bytes]

    @classmethod
    def build(cls, gp: GP, enc: np.ndarray, xn: np.ndarray, xc: np.ndarray) -> SamplePool:
        """The joint posterior of `gp` at the candidates (features `xn`, `xc`)."""
        kx, _ = gp._cov(xn, xc)
        v = linalg.solve_triangular(gp.chol, kx.T, lower=True, check_finite=False)
        cov = gp._cov_to(xn, xc, xn, xc)[0] - v.T @ v
        return cls(enc, kx @ gp.alpha, _factor(cov), [], set())

    def pick(self, taken: set[bytes], rng: np.random.Generator) -> np.ndarray | None:
        """The minimiser of one posterior sample among the candidates nobody has taken."""
        sample = self.mean + self.chol @ rng.standard_normal(len(self.mean))
        for i in np.argsort(sample, kind="stable"):
            if self.keys[i] not in taken and self.keys[i] not in self.done:
                return self.enc[i]
        return None


def _factor(cov: np.ndarray) -> np.ndarray:
    """A lower Cholesky factor of a posterior covariance, with growing jitter (nearby
    candidates make it singular to working precision)."""
    scale = max(float(np.mean(np.diag(cov))), 1e-12)
    jitter = 1e-8 * scale
    for _ in range(8):
        try:
            return linalg.cholesky(cov + jitter * np.eye(len(cov)), lower=True,
                                   check_finite=False)
        except linalg.LinAlgError:
            jitter *= 10.0
    # beyond repair: independent marginals (still a valid, if cruder, sample)
    return np.diag(np.sqrt(np.maximum(np.diag(cov), 0.0)))


#: Sample pools by digest of (space, settings, finished trials); time only.
SAMPLE_POOLS: OrderedDict[bytes, SamplePool] = OrderedDict()
SAMPLE_POOLS_LOCK = threading.Lock()
