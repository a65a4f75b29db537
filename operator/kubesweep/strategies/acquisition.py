"""Log expected improvement and its optimisation over a mixed numeric/categorical box.

Minimisation convention: improvement is `best - f(x)`. The log form keeps the acquisition
informative far from the incumbent, where plain EI underflows to exactly zero (Ament et
al., "Unexpected improvements to expected improvement", 2023).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from kubesweep.strategies.gp import GP

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(z Φ(z) + φ(z)) and Φ(z) / (z Φ(z) + φ(z)), stable for very negative z."""
    z = np.asarray(z, dtype=float)
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    # z > -1: direct. Below, the Mills-ratio form h = φ (1 + z R) with
    # R = Φ/φ = sqrt(π/2) erfcx(-z/√2) avoids the underflow of zΦ + φ.
    near = z > -1.0
    zn = np.where(near, z, -1.0)
    cdf = special.ndtr(zn)
    h_near = zn * cdf + np.exp(-0.5 * zn * zn - _LOG_SQRT_2PI)
    zf = np.where(near, -2.0, z)
    ratio = _SQRT_HALF_PI * special.erfcx(-zf / math.sqrt(2.0))
    one_plus = np.maximum(1.0 + zf * ratio, 1e-300)
    far = zf < -1e4  # 1 + zR cancels to 0 there; use the asymptote h ≈ φ / z²
    log_far = np.where(far, log_phi - 2.0 * np.log(np.abs(zf)), log_phi + np.log(one_plus))
    log_value = np.where(near, np.log(h_near), log_far)
    dlog = np.where(near, cdf / h_near,
                    np.where(far, -1.0 / zf, ratio / one_plus))
    return log_value, dlog


def log_ei(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log EI for minimisation at points with posterior mean/variance."""
    sd = np.sqrt(var)
    value, _ = log_h((best - mean) / sd)
    return value + np.log(sd)


def log_ei_with_grad(gp: GP, zn: np.ndarray, zc: np.ndarray, best: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """log EI at z and its gradient w.r.t. the numeric coordinates."""
    mean, var, dmean, dvar = gp.predict_with_grad(zn, zc)
    sd = np.sqrt(var)
    z = (best - mean) / sd
    value, dlog = log_h(z)
    # d/dμ = -R'/σ ; d/dσ = 1/σ - R' z / σ, with R' = Φ/h
    d_mean = -dlog / sd
    d_sd = (1.0 - dlog * z) / sd
    grad = d_mean[:, None] * dmean + (d_sd / (2.0 * sd))[:, None] * dvar
    return value + np.log(sd), grad


def local_search(gp: GP, best: float, starts_n: np.ndarray, starts_c: np.ndarray,
                 max_iter: int = 50) -> np.ndarray:
    """Polish the numeric coordinates of several starts at once with L-BFGS-B.

    The starts are independent, so optimising the sum of their objectives moves each one
    by its own gradient; one scipy call keeps the Python overhead per start low.
    """
    k, p = starts_n.shape
    if p == 0 or k == 0:
        return starts_n

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = log_ei_with_grad(gp, flat.reshape(k, p), starts_c, best)
        return -float(np.sum(value)), -grad.ravel()

    result = optimize.minimize(objective, starts_n.ravel(), jac=True, method="L-BFGS-B",
                               bounds=[(0.0, 1.0)] * (k * p), options={"maxiter": max_iter})
    polished = np.clip(result.x.reshape(k, p), 0.0, 1.0)
    # keep a start where the joint line search made it worse
    before = log_ei(*gp.predict(starts_n, starts_c), best)
    after = log_ei(*gp.predict(polished, starts_c), best)
    return np.where((after >= before)[:, None], polished, starts_n)


def categorical_moves(gp: GP, best: float, zn: np.ndarray, zc: np.ndarray,
                      n_categories: list[int]) -> np.ndarray:
    """For each point, greedily set each categorical dimension to its best category."""
    zc = zc.copy()
    for j, n_cat in enumerate(n_categories):
        trial_c = np.repeat(zc, n_cat, axis=0)
        trial_c[:, j] = np.tile(np.arange(n_cat), len(zc))
        scores = log_ei(*gp.predict(np.repeat(zn, n_cat, axis=0), trial_c), best)
        zc[:, j] = np.argmax(scores.reshape(len(zc), n_cat), axis=1)
    return zc
