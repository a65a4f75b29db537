"""Bayes with constraints: log-EI of the objective plus log probability of feasibility.

Each constraint's violation (metric minus bound; <= 0 is feasible) gets its own GP on
the trials that reported it, and the acquisition is

    log EI(x; best feasible loss) + Σ_j log P(violation_j(x) <= 0)

i.e. EI × probability of feasibility (Gardner et al. 2014; what BoTorch's constrained EI
and Optuna's GP sampler with `constraints_func` do). Until some trial is feasible, EI
has no incumbent to improve on, so the search maximises the probability of feasibility
alone. Infeasible trials still inform the objective's GP: their loss was measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

from kubesweep.space import Params
from kubesweep.strategies.acquisition import log_ei, log_ei_with_grad
from kubesweep.strategies.base import Observation
from kubesweep.strategies.bayes import BayesStrategy, _as_loss, chunked
from kubesweep.strategies.gp import GP, fit_hyper
from kubesweep.strategies.warping import transform_losses

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
#: Violations beyond ± this are treated as this (see ConstraintModel).
CLIP = 1e150


def spread(rows: np.ndarray, cap: int, always: np.ndarray | None = None) -> np.ndarray:
    """At most `cap` of `rows` (sorted indices), evenly spaced (the newest always kept);
    with `always`, those rows (up to `cap`) plus an even spread of the others."""
    if len(rows) <= cap:
        return rows
    if always is None or not len(always):
        return rows[np.unique(np.linspace(0, len(rows) - 1, cap).round().astype(int))]
    always = np.asarray(always, dtype=int)[:cap]
    rest = np.setdiff1d(rows, always)
    picked = spread(rest, cap - len(always)) if cap > len(always) else rest[:0]
    return np.sort(np.concatenate([always, picked]))


def violation_matrix(finished: Sequence[Observation], kept: list[int]) -> np.ndarray:
    """The constraint violations of the observations `kept`, one row each and one column
    per constraint (NaN where not reported)."""
    width = max((len(o.violations) for o in finished), default=0)
    violations = np.full((len(kept), width), np.nan)
    for row, i in enumerate(kept):
        v = finished[i].violations
        violations[row, :len(v)] = v
    return violations


class ConstraintModel:
    """GPs of the constraint violations; log P(feasible) at any point.

    Like the objective's GP, the hyperparameters are fit on at most `fit_points` trials
    and the posterior conditions on at most `max_points` (an even spread), so a long
    sweep's suggestion time stays bounded.
    """

    def __init__(self, xn: np.ndarray, xc: np.ndarray, violations: np.ndarray,
                 fit_points: int = 64, max_points: int = 300) -> None:
        self.models: list[tuple[GP, float]] = []
        for j in range(violations.shape[1]):
            # clipped so squares cannot overflow (a trial printed 1e308); the sign, which
            # is all feasibility asks, stays
            v = np.clip(violations[:, j], -CLIP, CLIP)
            seen = np.flatnonzero(np.isfinite(v))
            if len(seen) < 2:
                continue  # nothing to learn yet: this constraint does not steer
            mean = float(np.mean(v[seen]))
            std = float(np.std(v[seen])) or 1.0
            y = (v - mean) / std
            fit = spread(seen, fit_points)
            hyper = fit_hyper(xn[fit], xc[fit], y[fit])
            keep = spread(seen, max_points)
            # feasible means violation <= 0, i.e. standardised y <= -mean/std
            self.models.append((GP(xn[keep], xc[keep], y[keep], hyper), -mean / std))

    def with_fantasies(self, zn: np.ndarray, zc: np.ndarray) -> ConstraintModel:
        """Kriging believer for pending trials, as for the objective."""
        out = ConstraintModel.__new__(ConstraintModel)
        out.models = [(gp.condition_on_fantasies(zn, zc), t) for gp, t in self.models]
        return out

    def log_pof(self, zn: np.ndarray, zc: np.ndarray) -> np.ndarray:
        """log P(every modelled constraint holds) at z."""
        total = np.zeros(len(zn))
        for gp, threshold in self.models:
            mean, var = gp.predict(zn, zc)
            total += special.log_ndtr((threshold - mean) / np.sqrt(var))
        return total

    def log_pof_with_grad(self, zn: np.ndarray, zc: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """log P(feasible) and its gradient w.r.t. the numeric coordinates."""
        total = np.zeros(len(zn))
        grad = np.zeros_like(zn)
        for gp, threshold in self.models:
            mean, var, dmean, dvar = gp.predict_with_grad(zn, zc)
            sd = np.sqrt(var)
            z = (threshold - mean) / sd
            log_cdf = special.log_ndtr(z)
            ratio = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - log_cdf)  # φ/Φ
            dz = -dmean / sd[:, None] - (z / (2.0 * var))[:, None] * dvar
            total += log_cdf
            grad += ratio[:, None] * dz
        return total, grad


class ConstrainedBayesStrategy(BayesStrategy):
    """BayesStrategy whose acquisition is EI × probability of feasibility."""

    def _suggest(self, finished: Sequence[Observation], pending: Sequence[Params],
                 rng: np.random.Generator) -> Params | None:
        pending_enc, _ = self._encode_all(pending, canonical=True)
        finished_enc, kept = self._encode_all([o.params for o in finished], canonical=False)
        losses = np.array([_as_loss(finished[i].loss) for i in kept])
        violations = violation_matrix(finished, kept)
        candidates = self._free_grid(np.vstack([finished_enc, pending_enc]))
        if candidates is not None and not len(candidates):
            return None  # every point of the finite space was tried
        usable = np.isfinite(losses)
        if len(finished) + len(pending) < self.n_initial or usable.sum() < 2 or \
                self.n_dims == 0:
            choice = self._space_filling(np.vstack([finished_enc, pending_enc]), candidates, rng)
        else:
            choice = self._constrained_pick(finished_enc, losses, violations, pending_enc,
                                            candidates, rng)
        return self.space.decode(choice)

    def _constrained_pick(self, finished_enc: np.ndarray, losses: np.ndarray,
                          violations: np.ndarray, pending_enc: np.ndarray,
                          candidates: np.ndarray | None,
                          rng: np.random.Generator) -> np.ndarray:
        hyper = self._hyper(finished_enc, losses)
        xn, xc, y = self._training_set(finished_enc, losses, self.max_points)
        observed = GP(xn, xc, y, hyper)
        pn, pc = self._features(pending_enc)
        gp = observed.condition_on_fantasies(pn, pc)
        fn_all, fc_all = self._features(finished_enc)
        constraints = ConstraintModel(fn_all, fc_all, violations, self.fit_points,
                                      self.max_points).with_fantasies(pn, pc)
        feasible = np.isfinite(losses) & np.all(violations <= 0, axis=1)
        # the same transform the GP's targets went through, so `best` is on their scale
        all_y = transform_losses(losses, self.prior_quantile)
        best = float(np.min(all_y[feasible])) if feasible.any() else None

        def score(zn: np.ndarray, zc: np.ndarray) -> np.ndarray:
            out = constraints.log_pof(zn, zc)
            if best is not None:
                out = out + log_ei(*gp.predict(zn, zc), best)
            return out

        taken = {self._key(e) for e in pending_enc}
        done = {self._key(e) for e in finished_enc}
        if candidates is not None:
            cn, cc = self._features(candidates)
            return candidates[int(np.argmax(score(cn, cc)))]
        cn, cc = self._candidates(observed, rng)
        scores = chunked(score, cn, cc)
        order = np.argsort(-scores, kind="stable")
        top = order[: self.n_local]
        sn = self._polish(gp, constraints, best, cn[top], cc[top])
        pool = self._encoding(np.vstack([sn, cn[order[: 4 * self.n_local]]]),
                              np.vstack([cc[top], cc[order[: 4 * self.n_local]]]))
        return self._best_free(pool, score, taken, done, rng)

    @staticmethod
    def _polish(gp: GP, constraints: ConstraintModel, best: float | None,
                starts_n: np.ndarray, starts_c: np.ndarray) -> np.ndarray:
        """L-BFGS-B on the numeric coordinates of each start (as `local_search`)."""
        k, p = starts_n.shape
        if p == 0 or k == 0:
            return starts_n

        def value_grad(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            value, grad = constraints.log_pof_with_grad(z, starts_c)
            if best is not None:
                ei, ei_grad = log_ei_with_grad(gp, z, starts_c, best)
                value, grad = value + ei, grad + ei_grad
            return value, grad

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = value_grad(flat.reshape(k, p))
            return -float(np.sum(value)), -grad.ravel()

        result = optimize.minimize(objective, starts_n.ravel(), jac=True, method="L-BFGS-B",
                                   bounds=[(0.0, 1.0)] * (k * p), options={"maxiter": 50})
        polished = np.clip(result.x.reshape(k, p), 0.0, 1.0)
        before, _ = value_grad(starts_n)
        after, _ = value_grad(polished)
        return np.where((after >= before)[:, None], polished, starts_n)
