"""A small Gaussian-process regressor for Bayesian optimisation. Pure numpy/scipy.

Inputs are *features*: `xn` (n, p) numeric coordinates in [0, 1] and `xc` (n, q) integer
category indices. The kernel is a Matérn-5/2 over one ARD distance

    r² = Σ_j λ_j (xn_j - xn'_j)²  +  Σ_k λ_k [xc_k ≠ xc'_k]

so categoricals enter through a Hamming term with their own weight and are never ordered.
Hyperparameters (λ, signal variance, noise variance) are fit by maximising the marginal
likelihood plus weak priors, with analytic gradients and L-BFGS-B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)

#: Bounds of the log-hyperparameters: λ (inverse squared length scale), signal, noise.
_LOG_LAMBDA_BOUNDS = (math.log(1e-3), math.log(1e4))
_LOG_SCALE_BOUNDS = (math.log(1e-2), math.log(1e2))
_LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))


@dataclass(frozen=True)
class Hyper:
    """Kernel hyperparameters of a fitted GP."""

    inv_sq_lengthscales: np.ndarray
    scale: float
    noise: float

    def to_vector(self) -> np.ndarray:
        """Log-parameters as one vector (the optimiser's coordinates)."""
        return np.concatenate(
            [np.log(self.inv_sq_lengthscales), [math.log(self.scale), math.log(self.noise)]]
        )

    @classmethod
    def from_vector(cls, theta: np.ndarray) -> Hyper:
        """Inverse of `to_vector`."""
        return cls(np.exp(theta[:-2]), float(math.exp(theta[-2])), float(math.exp(theta[-1])))

    @classmethod
    def default(cls, n_dims: int) -> Hyper:
        """A neutral starting point: unit length scales, unit signal, small noise."""
        return cls(np.ones(n_dims), 1.0, 1e-2)


def sq_dists(xn: np.ndarray, xc: np.ndarray, zn: np.ndarray, zc: np.ndarray) -> np.ndarray:
    """Per-dimension distances between two point sets, shape (len(x), len(z), p + q)."""
    num = (xn[:, None, :] - zn[None, :, :]) ** 2
    cat = (xc[:, None, :] != zc[None, :, :]).astype(float)
    return np.concatenate([num, cat], axis=2)


def weighted_sq_dist(xn: np.ndarray, xc: np.ndarray, zn: np.ndarray, zc: np.ndarray,
                     lam: np.ndarray) -> np.ndarray:
    """r² between two point sets, shape (len(x), len(z)), without the 3-d tensor.

    The numeric part expands |a - b|² = a² + b² - 2ab into one matrix product, which is
    what keeps scoring a thousand candidates against hundreds of trials cheap.
    """
    p = xn.shape[1]
    ln = lam[:p]
    xs = xn * ln
    r2 = np.sum(xs * xn, axis=1)[:, None] + np.sum(zn * zn * ln, axis=1)[None, :]
    r2 -= 2.0 * xs @ zn.T
    np.maximum(r2, 0.0, out=r2)
    for k in range(xc.shape[1]):
        r2 += lam[p + k] * (xc[:, k][:, None] != zc[:, k][None, :])
    return r2


def matern52(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 correlation and its derivative with respect to r² (not r)."""
    s = np.sqrt(5.0 * r2)
    e = np.exp(-s)
    return e * (1.0 + s + (5.0 / 3.0) * r2), (-5.0 / 6.0) * (1.0 + s) * e


def _log_prior(theta: np.ndarray, sparse_tau: float | None = None
               ) -> tuple[float, np.ndarray]:
    """Weak priors (value and gradient in log coordinates).

    Length scales: a soft well around λ = 1 that penalises both very short and very long
    scales; signal variance Gamma(2, 1) (y is standardised); noise Gamma(1.1, 30), which
    says "probably nearly noise-free" without pinning it.

    `sparse_tau`: instead, a half-Cauchy(0, τ) on each λ (as SAAS, Eriksson & Jankowiak
    2021, does for its inverse squared length scales), taken as a density in λ itself, so
    its mode is λ = 0: a parameter the data does not need drifts to a flat direction, and
    the heavy tail still lets the few that matter get short scales. In wide spaces where
    most parameters barely matter this is what stops the fit spreading its attention
    over all of them.
    """
    lam = np.exp(theta[:-2])
    scale, noise = math.exp(theta[-2]), math.exp(theta[-1])
    grad = np.empty_like(theta)
    if sparse_tau is None:
        value = -float(np.sum(0.1 / lam + 0.1 * lam))
        grad[:-2] = 0.1 / lam - 0.1 * lam
    else:
        r = (lam / sparse_tau) ** 2
        value = -float(np.sum(np.log1p(r)))
        grad[:-2] = -2.0 * r / (1.0 + r)
    value += math.log(scale) - scale
    value += 0.1 * math.log(noise) - 30.0 * noise
    grad[-2] = 1.0 - scale
    grad[-1] = 0.1 - 30.0 * noise
    return value, grad


def _neg_log_posterior(theta: np.ndarray, dists: np.ndarray, y: np.ndarray,
                       sparse_tau: float | None = None) -> tuple[float, np.ndarray]:
    """Negative (log marginal likelihood + log prior) and its gradient."""
    n = len(y)
    lam = np.exp(theta[:-2])
    scale, noise = math.exp(theta[-2]), math.exp(theta[-1])
    r2 = dists @ lam
    m, dm = matern52(r2)
    k = scale * m
    k[np.diag_indices(n)] += noise
    try:
        chol = linalg.cholesky(k, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = linalg.cho_solve((chol, True), y, check_finite=False)
    log_lik = -0.5 * float(y @ alpha) - float(np.sum(np.log(np.diag(chol)))) - 0.5 * n * _LOG_2PI
    k_inv = linalg.cho_solve((chol, True), np.eye(n), check_finite=False)
    w = np.outer(alpha, alpha) - k_inv
    grad = np.empty_like(theta)
    grad[:-2] = 0.5 * scale * lam * np.tensordot(w * dm, dists, axes=([0, 1], [0, 1]))
    grad[-2] = 0.5 * scale * float(np.sum(w * m))
    grad[-1] = 0.5 * noise * float(np.trace(w))
    prior, prior_grad = _log_prior(theta, sparse_tau)
    return -(log_lik + prior), -(grad + prior_grad)


def fit_hyper(xn: np.ndarray, xc: np.ndarray, y: np.ndarray, starts: int = 1,
              max_iter: int = 200, tie_numeric: bool = False,
              sparse_tau: float | None = None) -> Hyper:
    """MAP hyperparameters for standardised targets `y` (deterministic given its inputs).

    Fixed starts, never the previous fit: the answer must not depend on what was fit
    before. The second start assumes short length scales, the first long ones, which are
    the two basins the likelihood typically has with few points.

    `tie_numeric`: one length scale shared by every numeric coordinate (categoricals keep
    their own weights). With fewer points than a few per dimension, per-dimension (ARD)
    scales are fit mostly to noise: a few coordinates get spuriously long scales and
    log-EI then searches along directions the data never ruled out.

    `sparse_tau`: the sparsity-seeking length-scale prior of `_log_prior` (wide spaces).
    """
    p, q = xn.shape[1], xc.shape[1]
    n_dims = p + q
    tie = tie_numeric and p > 1
    dists = sq_dists(xn, xc, xn, xc)

    def expand(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([np.full(p, theta[0]), theta[1:]]) if tie else theta

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _neg_log_posterior(expand(theta), dists, y, sparse_tau)
        if tie:
            grad = np.concatenate([[np.sum(grad[:p])], grad[p:]])
        return value, grad

    n_free = 1 + q if tie else n_dims
    bounds = [_LOG_LAMBDA_BOUNDS] * n_free + [_LOG_SCALE_BOUNDS, _LOG_NOISE_BOUNDS]
    best_value, best_theta = math.inf, Hyper.default(n_dims).to_vector()
    for lam in (1.0, 10.0, 100.0)[:starts]:
        theta0 = Hyper(np.full(n_free, lam), 1.0, 1e-2).to_vector()
        result = optimize.minimize(
            objective, theta0, jac=True, method="L-BFGS-B",
            bounds=bounds, options={"maxiter": max_iter},
        )
        if np.all(np.isfinite(result.x)) and result.fun < best_value:
            best_value, best_theta = float(result.fun), expand(result.x)
    return Hyper.from_vector(best_theta)


class GP:
    """Posterior of a GP with fixed hyperparameters, conditioned on (xn, xc, y)."""

    def __init__(self, xn: np.ndarray, xc: np.ndarray, y: np.ndarray, hyper: Hyper) -> None:
        self.hyper = hyper
        self.xn, self.xc, self.y = xn, xc, y
        self.lam_num = hyper.inv_sq_lengthscales[: xn.shape[1]]
        self._factor()

    def _factor(self) -> None:
        n = len(self.y)
        k = self._cov(self.xn, self.xc)[0]
        jitter = self.hyper.noise
        for _ in range(6):
            try:
                self.chol = linalg.cholesky(k + jitter * np.eye(n), lower=True,
                                            check_finite=False)
                break
            except linalg.LinAlgError:
                jitter = max(jitter * 10.0, 1e-6)
        self.alpha = linalg.cho_solve((self.chol, True), self.y, check_finite=False)

    def _cov(self, zn: np.ndarray, zc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross-covariance to the training points and d k / d r² (both (m, n))."""
        return self._cov_to(zn, zc, self.xn, self.xc)

    def _cov_to(self, zn: np.ndarray, zc: np.ndarray, xn: np.ndarray, xc: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Prior covariance between two point sets and d k / d r²."""
        r2 = weighted_sq_dist(zn, zc, xn, xc, self.hyper.inv_sq_lengthscales)
        m, dm = matern52(r2)
        return self.hyper.scale * m, self.hyper.scale * dm

    def condition_on_fantasies(self, zn: np.ndarray, zc: np.ndarray) -> GP:
        """Kriging believer: a GP that also 'observed' its own mean at the points z."""
        if len(zn) == 0:
            return self
        mean, _ = self.predict(zn, zc)
        return GP(np.vstack([self.xn, zn]), np.vstack([self.xc, zc]),
                  np.concatenate([self.y, mean]), self.hyper)

    def predict(self, zn: np.ndarray, zc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at z."""
        kx, _ = self._cov(zn, zc)
        mean = kx @ self.alpha
        v = linalg.solve_triangular(self.chol, kx.T, lower=True, check_finite=False)
        var = np.maximum(self.hyper.scale - np.sum(v * v, axis=0), 1e-12)
        return mean, var

    def predict_with_grad(self, zn: np.ndarray, zc: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance, and their gradients w.r.t. the numeric coordinates (m, p)."""
        kx, dk = self._cov(zn, zc)
        mean = kx @ self.alpha
        beta = linalg.cho_solve((self.chol, True), kx.T, check_finite=False)  # (n, m)
        var = np.maximum(self.hyper.scale - np.sum(kx.T * beta, axis=0), 1e-12)
        # d k(z, x_i) / d z_j = dk_i * 2 λ_j (z_j - x_ij)
        diff = zn[:, None, :] - self.xn[None, :, :]  # (m, n, p)
        grad_k = 2.0 * dk[:, :, None] * diff * self.lam_num  # (m, n, p)
        dmean = np.einsum("mnp,n->mp", grad_k, self.alpha)
        dvar = -2.0 * np.einsum("mnp,nm->mp", grad_k, beta)
        return mean, var, dmean, dvar
