"""Wide batches: one candidate pool per finished history, kriging believer in closed form.

When trials are pending, the next suggestion is a pick from a pool of candidates that
depends on the finished trials only (Sobol points, perturbations of the best trials and
log-EI maxima polished by L-BFGS-B, all snapped to valid values). The pool and the
observed GP's predictions on it are computed once and cached, so the 2nd..64th trial of
a batch costs one small linear solve each instead of a fresh candidate search.

Kriging believer on a fixed pool needs no refit: a pending point z "observed" at the
GP's own mean leaves the posterior mean unchanged everywhere and lowers the variance by

    var'(x) = var(x) - c(x, Z) (C(Z, Z) + σ² I)⁻¹ c(Z, x)

with c the observed posterior covariance. Each pending point's column c(pool, z) is
cached too, so a batch of m costs O(m·n·P) in total for P pool points and n trials.

Determinism: the pool's rng is seeded from a digest of the finished trials, so a pick
is a pure function of (finished, pending): a rebuilt tuner picks the same.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from kubesweep.strategies.acquisition import log_ei
from kubesweep.strategies.gp import GP


@dataclass
class Pool:
    """Snapped candidates with the observed GP's predictions and solves cached."""

    gp: GP
    enc: np.ndarray
    xn: np.ndarray
    xc: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    #: L⁻¹ k(X, pool), shape (n, P): the part of c(pool, z) shared by every z
    v: np.ndarray
    #: per pending point (by encoding key): its posterior mean, L⁻¹ k(X, z), c(pool, z)
    columns: dict[bytes, tuple[float, np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: identity of each pool point, and of every finished trial (never proposed again)
    keys: list[bytes] = field(default_factory=list)
    done: set[bytes] = field(default_factory=set)

    @classmethod
    def build(cls, gp: GP, enc: np.ndarray, xn: np.ndarray, xc: np.ndarray) -> Pool:
        """Predictions of `gp` at the pool points (features `xn`, `xc`)."""
        kx, _ = gp._cov(xn, xc)
        v = linalg.solve_triangular(gp.chol, kx.T, lower=True, check_finite=False)
        mean = kx @ gp.alpha
        var = np.maximum(gp.hyper.scale - np.sum(v * v, axis=0), 1e-12)
        return cls(gp, enc, xn, xc, mean, var, v)

    def _column(self, key: bytes, zn: np.ndarray, zc: np.ndarray
                ) -> tuple[float, np.ndarray, np.ndarray]:
        hit = self.columns.get(key)
        if hit is None:
            kz, _ = self.gp._cov(zn[None, :], zc[None, :])
            vz = linalg.solve_triangular(self.gp.chol, kz[0], lower=True, check_finite=False)
            kpz, _ = self.gp._cov_to(self.xn, self.xc, zn[None, :], zc[None, :])
            hit = (float(kz[0] @ self.gp.alpha), vz, kpz[:, 0] - self.v.T @ vz)
            self.columns[key] = hit
        return hit

    def scores(self, zn: np.ndarray, zc: np.ndarray, keys: list[bytes]) -> np.ndarray:
        """log-EI of every pool point with the pending points z believed at their means."""
        best = float(np.min(self.gp.y))
        if not len(keys):
            return log_ei(self.mean, self.var, best)
        cols = [self._column(k, zn[i], zc[i]) for i, k in enumerate(keys)]
        mz = np.array([c[0] for c in cols])
        vz = np.stack([c[1] for c in cols], axis=1)  # (n, m)
        c = np.stack([c[2] for c in cols], axis=1)  # (P, m)
        kzz, _ = self.gp._cov_to(zn, zc, zn, zc)
        s = kzz - vz.T @ vz + self.gp.hyper.noise * np.eye(len(keys))
        factor = _cho_factor(s)
        var = self.var - np.sum(c * linalg.cho_solve(factor, c.T, check_finite=False).T,
                                axis=1)
        return log_ei(self.mean, np.maximum(var, 1e-12), min(best, float(np.min(mz))))


def _cho_factor(s: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cholesky of a covariance that may be singular (two pending points alike)."""
    jitter = 0.0
    for _ in range(8):
        try:
            return linalg.cho_factor(s + jitter * np.eye(len(s)), lower=True,
                                     check_finite=False)
        except linalg.LinAlgError:
            jitter = max(10.0 * jitter, 1e-8)
    return linalg.cho_factor(s + np.eye(len(s)), lower=True, check_finite=False)


#: Pools by digest of (space, settings, finished trials); time only, never an answer.
POOLS: OrderedDict[bytes, Pool] = OrderedDict()
POOLS_LOCK = threading.Lock()
