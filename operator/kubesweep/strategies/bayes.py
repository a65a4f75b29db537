"""Bayesian optimisation: a GP on the unit-cube encoding, log-EI, kriging-believer batches.

Pipeline of one `suggest`:
1. Trials so far (finished + pending) fewer than `n_initial`, or fewer than two usable
   results: a space-filling pick (of scrambled-Sobol candidates drawn from the rng, the
   one farthest from every trial and from the box's faces). The per-trial rng differs
   from trial to trial, so "point k of one Sobol sequence" is not available; farthest-
   point picking gives the same coverage and also accounts for pending and hand-added
   trials.
2. Otherwise fit a GP to the finished trials (failed ones imputed with the worst value),
   pretend each pending trial returned the GP's own mean there (kriging believer: it
   removes the uncertainty that made the point attractive, so the next pick goes
   elsewhere), and maximise log-EI: scrambled Sobol candidates + perturbations of the
   best trials, the top ones polished by L-BFGS-B and categorical coordinate moves.
3. Snap the winners to valid parameter values and return the best one that no pending
   trial has (and, where possible, no finished trial either).
4. With pending trials (the 2nd..nth trial of a batch) and a long history (>= `pool_from`
   finished trials), steps 2-3 run once per finished history instead: their candidates
   become a cached pool (`batch_pool`), and each further pick is the pool point with
   the best log-EI under the closed-form kriging believer. Same rule, a small solve
   per pick: `ask(64)` no longer costs 64 searches.
5. In a large space (>= `ts_min_dims` parameters) with many trials pending
   (>= `ts_from_pending`), the kriging believer degenerates: the later picks of a wide
   batch scatter over a box too big to cover. Those picks are instead Thompson samples in
   a trust region around the best trial (`trust_region`): the minimiser of one posterior
   sample over candidates that perturb some of the best trial's coordinates, under a GP
   with one length scale per parameter (the box follows them).

Wide spaces where most parameters barely matter need no option: from 12 parameters on
the GP learns one length scale per parameter once it has one trial per parameter (the
tie of a small history, `tie_until`, is tuned for ~6 parameters and kept 25-D fits
isotropic for good), and wide batches use step 5; a sparsity-seeking (SAAS-like) prior
is available as an option and measured worse.

Small discrete spaces are scored exhaustively instead of by candidate search.

Determinism: everything is a function of (finished, pending, rng). Hyperparameters are
refit from a fixed start on a prefix of the history chosen by its length alone, so the
cache of fits only saves time and never changes an answer.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import qmc
from threadpoolctl import ThreadpoolController

from kubesweep.space import Params, Space, params_key
from kubesweep.strategies.acquisition import categorical_moves, local_search, log_ei
from kubesweep.strategies.base import Observation, Strategy
from kubesweep.strategies.batch_pool import POOLS, POOLS_LOCK, Pool
from kubesweep.strategies.gp import GP, Hyper, fit_hyper
from kubesweep.strategies.trust_region import (
    SAMPLE_POOLS,
    SAMPLE_POOLS_LOCK,
    SamplePool,
    TrustRegion,
    box,
    perturbations,
)
from kubesweep.strategies.warping import transform_losses

#: Fitted hyperparameters by (space layout, history prefix). Shared by every instance, so
#: the operator, which rebuilds its tuner on each reconcile, still refits only when the
#: history has grown past a refit point. It only saves time: a fit is a pure function of
#: its key.
_FITS: OrderedDict[bytes, Hyper] = OrderedDict()
_FITS_LOCK = threading.Lock()

#: Encoded parameter sets by (space signature, canonical?, exact values); time only.
_ENCODED: dict[tuple[bytes, bool, tuple[Any, ...]], np.ndarray] = {}
_ENCODED_LOCK = threading.Lock()

#: Enumerate and score every point of discrete spaces up to this size.
_MAX_ENUMERATED = 4096


class BayesStrategy(Strategy):
    """GP-based Bayesian optimisation (see the module docstring).

    Options (defaults chosen on `benchmarks/quality.py`):
    `n_initial` space-filling trials before the model (min(max(5, d + 1), 10) for d
    searchable parameters); `n_candidates` Sobol candidates per suggestion; `n_local`
    of them polished by L-BFGS-B; `max_points` trials the GP conditions on (the best half
    plus an even spread of the rest beyond that); `fit_points` trials the hyperparameter
    fit sees; `refit_every_until` history length up to which hyperparameters are refit on
    every trial (then every ~6% of growth); `init_pool` candidates the space-filling
    pick chooses from and `init_edge` how strongly it keeps off the box's faces (0: plain
    maximin, which piles points into corners); `fit_starts` fixed starts of the
    hyperparameter fit; `local_share` of candidates drawn around the best trials;
    `prior_quantile` of results the GP's prior mean sits at (None: the mean);
    `tie_until`: with at least `tie_min_numeric` numeric parameters, the fit shares one
    length scale across them while it has fewer than `tie_until` points per numeric
    parameter (ARD after that; 0 disables). Measured: Hartmann6 (6 floats) median best
    at 15 trials -2.37 → -2.54 over seeds 0–39; on mlp-digits (4 numeric + 1 categorical)
    tying from 3 numeric parameters cost ~0.0017 at 15 trials, hence 5. With more than
    `tie_max_dims` searchable parameters the fit ties only while it has fewer than
    `tie_until_wide` points per numeric parameter: on Hartmann6 hidden in 25 parameters
    (seeds 0-9 unless said), median best tied (to 75 trials) against ARD from the first
    fit was -2.85 against -3.15 after 40 sequential trials (10 of 10 seeds better),
    -3.15 against -3.25 after 64 in batches of 8 (8 of 10), -2.16 against -2.43 after 64
    in batches of 32 (seeds 0-19); but after 32 trials in batches of 8, fit on 8-24
    points, -2.76 against -2.70 (seeds 100-109: -2.90 against -2.60), hence tied below
    one point per parameter.
    `sparse_from`: with at least this many searchable parameters, the fit uses the
    half-Cauchy(0, `sparse_tau`) length-scale prior (and never ties). Off (None): on
    Hartmann6 hidden in 25 parameters, batches of 8, 64 trials, seeds 0-4, the median
    best was -1.59 (τ = 0.1) and -2.30 (τ = 1) against -2.99 with the default prior and
    tied scales: a MAP fit of a sparsity prior picks a few coordinates from too few
    points and then ignores the ones that matter. `pool_size`: raw
    candidates kept in a batch's pool besides the polished ones, used from `pool_from`
    finished trials on (0: never; below, each pick of a batch is a fresh search with the
    pending trials as kriging-believer fantasies). Below 64 a fresh search is cheap and
    was better in 2-D: Branin best at 32 trials in batches of 8, 10 seeds, 0.41 against
    0.52 from the pool (Hartmann6 a tie, -3.00 against -3.01).
    Thompson sampling in a trust region (`trust_region`; None `ts_min_dims`: never):
    with at least `ts_min_dims` searchable parameters and `ts_from_pending` trials
    pending, a pick minimises one posterior sample over `ts_candidates` perturbations of
    the best trial, each moving about `ts_perturbed` of its coordinates, in a box of
    `trust_region`'s rules; `ts_ard`: that GP has one length scale per parameter even in a
    small history. Chosen on Hartmann6 in 25 parameters, batches of 32, 64 trials, seeds
    0-19 (median best; kriging believer -2.16): Thompson from the 2nd pick with a tied
    length scale -2.12 (3 coordinates) to -2.16 (all 25), with ARD -2.31 (3), -2.33 (5),
    -2.37 (10), -2.46 (15), -2.26 (25); box side 0.4 -2.05, 1.6 -2.33 (10 coordinates),
    against 0.8. From the 8th pending trial on (15 coordinates): -2.44. In batches of 8
    Thompson from the 2nd pick was worse at 32 trials (-2.38 against -2.76, seeds 0-9),
    hence only from 8 pending trials: batches of up to 8 pick as before.
    """

    def __init__(
        self,
        space: Space,
        n_initial: int | None = None,
        n_candidates: int = 1024,
        n_local: int = 5,
        max_points: int = 300,
        fit_points: int = 64,
        refit_every_until: int = 64,
        init_pool: int = 64,
        init_edge: float = 1.0,
        fit_starts: int = 1,
        local_share: float = 0.25,
        prior_quantile: float | None = 0.75,
        tie_until: float = 3.0,
        tie_min_numeric: int = 5,
        tie_max_dims: int | None = 11,
        tie_until_wide: float = 1.0,
        sparse_from: int | None = None,
        sparse_tau: float = 0.1,
        pool_size: int = 512,
        pool_from: int = 64,
        ts_min_dims: int | None = 12,
        ts_from_pending: int = 8,
        ts_candidates: int = 1000,
        ts_perturbed: float = 15.0,
        ts_ard: bool = True,
        trust_region: TrustRegion | None = None,
    ) -> None:
        super().__init__(space)
        self.num_cols = np.asarray(space.numeric_columns, dtype=int)
        self.cat_blocks = space.categorical_blocks
        self.n_categories = [b.stop - b.start for b in self.cat_blocks]
        self.n_dims = len(self.num_cols) + len(self.cat_blocks)
        self.n_initial = n_initial if n_initial is not None else min(max(5, self.n_dims + 1), 10)
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.max_points = max_points
        self.fit_points = fit_points
        self.refit_every_until = refit_every_until
        self.init_pool = init_pool
        self.init_edge = init_edge
        self.fit_starts = fit_starts
        self.local_share = local_share
        self.prior_quantile = prior_quantile
        self.tie_until = tie_until
        self.tie_min_numeric = tie_min_numeric
        self.tie_max_dims = tie_max_dims
        self.tie_until_wide = tie_until_wide
        self.sparse_from = sparse_from
        self.sparse_tau = sparse_tau
        self.pool_size = pool_size
        self.pool_from = pool_from
        self.ts_min_dims = ts_min_dims
        self.ts_from_pending = ts_from_pending
        self.ts_candidates = ts_candidates
        self.ts_perturbed = ts_perturbed
        self.ts_ard = ts_ard
        self.trust_region = trust_region or TrustRegion()
        #: time only: the last encoded lists (see `_encode_all`)
        self._memo: dict[bool, tuple[list[Params], list[Params], list[np.ndarray],
                                     list[int]]] = {}
        self._grid = self._enumerate()
        #: identifies the space's encoding across rebuilt instances (for the caches)
        self._signature = hashlib.blake2b(repr(
            [(d.name, d.param.model_dump_json()) for d in space.dimensions]).encode(),
            digest_size=16).digest()

    # -- features: numeric coordinates + category indices --------------------------------

    def _features(self, enc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xn = enc[:, self.num_cols] if len(self.num_cols) else np.zeros((len(enc), 0))
        xc = np.zeros((len(enc), len(self.cat_blocks)), dtype=int)
        for j, block in enumerate(self.cat_blocks):
            xc[:, j] = np.argmax(enc[:, block], axis=1)
        return xn, xc

    def _encoding(self, xn: np.ndarray, xc: np.ndarray) -> np.ndarray:
        enc = np.zeros((len(xn), self.space.width))
        if len(self.num_cols):
            enc[:, self.num_cols] = xn
        for j, block in enumerate(self.cat_blocks):
            enc[np.arange(len(xc)), block.start + xc[:, j]] = 1.0
        return enc

    def _enumerate(self) -> np.ndarray | None:
        """Encoded points of a small fully discrete space, else None."""
        try:
            if self.space.grid_size() > _MAX_ENUMERATED:
                return None
            points = list(self.space.grid())
        except (ValueError, TypeError, OverflowError):
            return None
        return self.space.encode_many(points)

    def _encode_all(self, params_list: Sequence[Params], canonical: bool
                    ) -> tuple[np.ndarray, list[int]]:
        """Encodings of the parameter sets that fit the space, and which ones those were.

        A trial recorded before the spec was edited (a removed choice, a missing name)
        cannot be placed in the space; it is left out rather than failing the sweep.
        """
        # The tuner passes the same trial dicts on every call of a batch: reuse the
        # previous call's rows for an unchanged prefix of the list (checked by identity
        # and by value, so a dict edited in place is encoded again).
        memo = self._memo.get(canonical)
        start, rows, kept = 0, [], []
        if memo is not None:
            objs, snaps, m_rows, m_kept = memo
            same = 0
            for a, b, snap in zip(params_list, objs, snaps, strict=False):
                if a is not b or a != snap:
                    break
                same += 1
            start = same
            rows = [r for r, i in zip(m_rows, m_kept, strict=True) if i < same]
            kept = [i for i in m_kept if i < same]
        for i in range(start, len(params_list)):
            try:
                rows.append(self._encode_cached(params_list[i], canonical))
            except (KeyError, ValueError, TypeError):
                continue
            kept.append(i)
        self._memo[canonical] = (list(params_list), [dict(p) for p in params_list],
                                 rows, kept)
        enc = np.array(rows, dtype=float).reshape(len(rows), self.space.width)
        return enc, kept

    def _encode_cached(self, params: Params, canonical: bool) -> np.ndarray:
        """`space.encode` (or `canonical`), memoised by the parameters' exact values.

        Encoding is pure Python per value and dominated suggestion time at 1000 trials.
        The key holds each value with its type (so 1, 1.0 and True stay apart), in the
        dict's order: equal keys encode equally, and a different order only misses. It
        is built once per trial per suggestion, so it must be cheap (a sorted repr cost
        more than the rest of a batch suggestion at 500 trials).
        """
        try:
            key = (self._signature, canonical, tuple(params.items()),
                   tuple(map(type, params.values())))
            hash(key)
        except TypeError:  # an unhashable value: fall back to its repr
            key = (self._signature, canonical, params_key(params))
        with _ENCODED_LOCK:
            hit = _ENCODED.get(key)
        if hit is not None:
            return hit
        enc = self.space.canonical(params) if canonical else self.space.encode(params)
        with _ENCODED_LOCK:
            if len(_ENCODED) >= 100_000:
                _ENCODED.clear()
            _ENCODED[key] = enc
        return enc

    @staticmethod
    def _key(enc: np.ndarray) -> bytes:
        return np.round(enc, 9).tobytes()

    # -- the strategy --------------------------------------------------------------------

    def _free_grid(self, taken_enc: np.ndarray) -> np.ndarray | None:
        """The points of a finite space no trial has taken (empty when all were); None
        when the space is not finite (candidates are then searched for)."""
        if self._grid is None:
            return None
        taken = {self._key(e) for e in taken_enc}
        return self._grid[[i for i, e in enumerate(self._grid) if self._key(e) not in taken]]

    def suggest(
        self,
        finished: Sequence[Observation],
        pending: Sequence[Params],
        rng: np.random.Generator,
    ) -> Params | None:
        """The next parameter set (see the module docstring for the method)."""
        # Small matrices: BLAS threads only contend (10x slower on a busy 2-core box).
        with _blas_controller().limit(limits=1, user_api="blas"):
            return self._suggest(finished, pending, rng)

    def _suggest(
        self,
        finished: Sequence[Observation],
        pending: Sequence[Params],
        rng: np.random.Generator,
    ) -> Params | None:
        pending_enc, _ = self._encode_all(pending, canonical=True)
        finished_enc, kept = self._encode_all([o.params for o in finished], canonical=False)
        losses = np.array([_as_loss(finished[i].loss) for i in kept])
        usable = np.isfinite(losses)

        candidates = self._free_grid(np.vstack([finished_enc, pending_enc]))
        if candidates is not None and not len(candidates):
            return None  # every point of the finite space was tried

        n_taken = len(finished) + len(pending)
        if n_taken < self.n_initial or usable.sum() < 2 or self.n_dims == 0:
            choice = self._space_filling(np.vstack([finished_enc, pending_enc]), candidates, rng)
        else:
            choice = self._model_pick(finished_enc, losses, pending_enc, candidates, rng)
        return self.space.decode(choice)

    def _space_filling(self, taken: np.ndarray, candidates: np.ndarray | None,
                       rng: np.random.Generator) -> np.ndarray:
        """The candidate farthest from every trial so far (quasi-random when none)."""
        if candidates is None:
            n = self.init_pool if len(taken) else 1
            candidates = self._sobol(n, rng)
        else:  # a random subset, so the first trial of a discrete space is random too
            candidates = candidates[rng.permutation(len(candidates))[:256]]
        if not len(taken):
            return candidates[0]
        cn, cc = self._features(candidates)
        tn, tc = self._features(taken)
        d = ((cn[:, None, :] - tn[None, :, :]) ** 2).sum(axis=2)
        d += (cc[:, None, :] != tc[None, :, :]).sum(axis=2)
        score = d.min(axis=1)
        if self.init_edge and cn.shape[1]:
            edge = (2.0 * np.minimum(cn, 1.0 - cn).min(axis=1)) ** 2
            score = np.minimum(score, edge / self.init_edge)
        return candidates[int(np.argmax(score))]

    def _sobol(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n scrambled-Sobol points, as encodings (categories drawn uniformly)."""
        if self.n_dims == 0:
            return np.zeros((n, self.space.width))
        u = qmc.Sobol(self.n_dims, scramble=True, seed=rng).random(n)
        p = len(self.num_cols)
        xc = np.stack([np.minimum((u[:, p + j] * k).astype(int), k - 1)
                       for j, k in enumerate(self.n_categories)], axis=1) \
            if self.cat_blocks else np.zeros((n, 0), dtype=int)
        return self._encoding(u[:, :p], xc)

    # -- model ---------------------------------------------------------------------------

    def _training_set(self, enc: np.ndarray, losses: np.ndarray, cap: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features and transformed targets of at most `cap` trials."""
        y = transform_losses(losses, self.prior_quantile)
        keep = np.arange(len(y))
        if len(y) > cap:
            # the best half (where EI looks) plus an even spread of the rest (global shape)
            order = np.argsort(y, kind="stable")
            best = order[: cap // 2]
            rest = np.sort(order[cap // 2:])
            spread = rest[np.linspace(0, len(rest) - 1, cap - len(best)).astype(int)]
            keep = np.sort(np.concatenate([best, spread]))
        xn, xc = self._features(enc[keep])
        return xn, xc, y[keep]

    def _hyper(self, enc: np.ndarray, losses: np.ndarray, ard: bool = False) -> Hyper:
        """MAP hyperparameters fit on a prefix of the history whose length depends only on
        the history's length (every trial while small, then every ~6%), cached by content.
        `ard`: one length scale per parameter even in a small history (never tied)."""
        n = len(losses)
        step = 1 if n <= self.refit_every_until else max(1, n // 16)
        cut = n - n % step
        enc, losses = enc[:cut], losses[:cut]
        # decided before the cache lookup, so a fit asked for with `ard` that would not
        # have tied anyway is the same cached fit
        p = len(self.num_cols)
        n_fit = min(len(losses), self.fit_points)
        sparse = self.sparse_from is not None and self.n_dims >= self.sparse_from
        wide = self.tie_max_dims is not None and self.n_dims > self.tie_max_dims
        until = self.tie_until_wide if wide else self.tie_until
        tie = (not sparse and not ard and p >= self.tie_min_numeric
               and n_fit < until * p)
        digest = hashlib.blake2b(digest_size=16)
        for part in (self.num_cols, np.asarray(self.n_categories), enc, losses):
            digest.update(np.ascontiguousarray(part).tobytes())
            digest.update(b"|")
        digest.update(f"{self.fit_points},{self.fit_starts},{self.prior_quantile},"
                      f"{tie},{sparse},{self.sparse_tau}".encode())

        def fit() -> Hyper:
            xn, xc, y = self._training_set(enc, losses, self.fit_points)
            return fit_hyper(xn, xc, y, starts=self.fit_starts, tie_numeric=tie,
                             sparse_tau=self.sparse_tau if sparse else None)

        return cached_fit(digest.digest(), fit)

    def _model_pick(self, finished_enc: np.ndarray, losses: np.ndarray,
                    pending_enc: np.ndarray, candidates: np.ndarray | None,
                    rng: np.random.Generator) -> np.ndarray:
        if (candidates is None and self.ts_min_dims is not None
                and self.n_dims >= self.ts_min_dims
                and len(pending_enc) >= max(1, self.ts_from_pending)):
            pick = self._thompson_pick(finished_enc, losses, pending_enc, rng)
            if pick is not None:
                return pick
        if (len(pending_enc) and candidates is None and self.pool_size
                and len(finished_enc) >= self.pool_from):
            pick = self._pool_pick(finished_enc, losses, pending_enc)
            if pick is not None:
                return pick
        hyper = self._hyper(finished_enc, losses)
        xn, xc, y = self._training_set(finished_enc, losses, self.max_points)
        observed = GP(xn, xc, y, hyper)
        pn, pc = self._features(pending_enc)
        gp = observed.condition_on_fantasies(pn, pc)
        best = float(np.min(gp.y))
        taken = {self._key(e) for e in pending_enc}
        done = {self._key(e) for e in finished_enc}

        if candidates is not None:
            cn, cc = self._features(candidates)
            scores = log_ei(*gp.predict(cn, cc), best)
            return candidates[int(np.argmax(scores))]  # already free of taken points

        cn, cc = self._candidates(observed, rng)
        scores = _chunked_log_ei(gp, cn, cc, best)
        top = np.argsort(-scores, kind="stable")[: self.n_local]
        sc = cc[top]
        sn = local_search(gp, best, cn[top], sc)
        if self.cat_blocks:
            sc = categorical_moves(gp, best, sn, sc, self.n_categories)
            sn = local_search(gp, best, sn, sc)
        # snap the polished starts and the next-best raw candidates, then rank again
        extra = np.argsort(-scores, kind="stable")[: 4 * self.n_local]
        pool = self._encoding(np.vstack([sn, cn[extra]]), np.vstack([sc, cc[extra]]))
        return self._best_free(pool, lambda zn, zc: log_ei(*gp.predict(zn, zc), best),
                               taken, done, rng)

    def _best_free(self, pool: np.ndarray,
                   score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   taken: set[bytes], done: set[bytes], rng: np.random.Generator
                   ) -> np.ndarray:
        """The best of `pool` (encodings) once snapped to valid values and scored again
        that no pending trial has (`taken`) and, where possible, no finished one (`done`);
        when every one is pending, a fresh random draw."""
        snapped = np.array([self.space.snap(e) for e in pool])
        order = np.argsort(-score(*self._features(snapped)), kind="stable")
        fresh = [i for i in order if self._key(snapped[i]) not in taken]
        new = [i for i in fresh if self._key(snapped[i]) not in done]
        if new or fresh:
            return snapped[(new or fresh)[0]]
        for _ in range(100):  # every good point is pending: fall back to a fresh draw
            enc = self.space.canonical(self.space.sample(rng))
            if self._key(enc) not in taken:
                return enc
        return snapped[order[0]]

    def _pool_pick(self, finished_enc: np.ndarray, losses: np.ndarray,
                   pending_enc: np.ndarray) -> np.ndarray | None:
        """The best pool point, pending trials believed at their means (see batch_pool);
        None when every pool point is taken."""
        pool = self._pool(finished_enc, losses)
        pn, pc = self._features(pending_enc)
        keys = [self._key(e) for e in pending_enc]
        scores = pool.scores(pn, pc, keys)
        taken = set(keys)
        for i in np.argsort(-scores, kind="stable"):
            if pool.keys[i] not in taken and pool.keys[i] not in pool.done:
                return pool.enc[i]
        return None

    def _pool(self, finished_enc: np.ndarray, losses: np.ndarray) -> Pool:
        """The candidate pool of this finished history (built once, then cached)."""
        digest = hashlib.blake2b(self._signature, digest_size=16)
        for part in (finished_enc, losses):
            digest.update(np.ascontiguousarray(part).tobytes())
            digest.update(b"|")
        digest.update(repr([self.n_candidates, self.n_local, self.max_points, self.pool_size,
                            self.local_share, self.prior_quantile, self.fit_points,
                            self.sparse_from, self.sparse_tau]).encode())
        key = digest.digest()
        with POOLS_LOCK:
            if key in POOLS:
                POOLS.move_to_end(key)
                return POOLS[key]
        hyper = self._hyper(finished_enc, losses)
        gp = GP(*self._training_set(finished_enc, losses, self.max_points), hyper)
        # seeded by the history, not the trial: every trial of a batch sees one pool
        rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
        cn, cc = self._candidates(gp, rng)
        best = float(np.min(gp.y))
        scores = _chunked_log_ei(gp, cn, cc, best)
        order = np.argsort(-scores, kind="stable")
        # a batch's later picks cannot be polished one by one, so polish more starts
        # once: local maxima of several basins (Branin @32 in batches of 8: with only
        # n_local polished, 0.52 against 0.41 for a fresh search per pick)
        top = order[: 4 * self.n_local]
        sc = cc[top]
        sn = local_search(gp, best, cn[top], sc)
        if self.cat_blocks:
            sc = categorical_moves(gp, best, sn, sc, self.n_categories)
            sn = local_search(gp, best, sn, sc)
        raw = order[: self.pool_size]
        penc = self._snapped_unique(self._encoding(np.vstack([sn, cn[raw]]),
                                                   np.vstack([sc, cc[raw]])))
        pool = Pool.build(gp, penc, *self._features(penc))
        pool.keys = [self._key(e) for e in penc]
        pool.done = {self._key(e) for e in finished_enc}
        with POOLS_LOCK:
            POOLS[key] = pool
            while len(POOLS) > 8:
                POOLS.popitem(last=False)
        return pool

    def _snapped_unique(self, encoded: np.ndarray) -> np.ndarray:
        """`encoded` points snapped to the space's canonical values (grid steps, integers,
        categories), first occurrence of each kept: the candidates a pool may propose."""
        snapped, seen = [], set()
        for e in encoded:
            s = self.space.snap(e)
            k = self._key(s)
            if k not in seen:
                seen.add(k)
                snapped.append(s)
        return np.array(snapped)

    def _thompson_pick(self, finished_enc: np.ndarray, losses: np.ndarray,
                       pending_enc: np.ndarray, rng: np.random.Generator
                       ) -> np.ndarray | None:
        """A pick of a wide batch in a large space: the minimiser of one posterior sample
        over the trust region's candidates (see trust_region); None when all are taken."""
        pool = self._sample_pool(finished_enc, losses)
        return pool.pick({self._key(e) for e in pending_enc}, rng)

    def _sample_pool(self, finished_enc: np.ndarray, losses: np.ndarray) -> SamplePool:
        """The trust region's candidates and joint posterior for this finished history."""
        digest = hashlib.blake2b(self._signature, digest_size=16)
        for part in (finished_enc, losses):
            digest.update(np.ascontiguousarray(part).tobytes())
            digest.update(b"|")
        digest.update(repr(["ts", self.ts_candidates, self.ts_perturbed, self.ts_ard,
                            self.trust_region,
                            self.n_initial, self.max_points, self.prior_quantile,
                            self.fit_points, self.sparse_from, self.sparse_tau]).encode())
        key = digest.digest()
        with SAMPLE_POOLS_LOCK:
            if key in SAMPLE_POOLS:
                SAMPLE_POOLS.move_to_end(key)
                return SAMPLE_POOLS[key]
        hyper = self._hyper(finished_enc, losses, ard=self.ts_ard)
        gp = GP(*self._training_set(finished_enc, losses, self.max_points), hyper)
        rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
        # the best finished trial (failed ones never): the box's center
        finite = np.where(np.isfinite(losses), losses, np.inf)
        cn, cc = self._features(finished_enc[[int(np.argmin(finite))]])
        side = self.trust_region.side(losses, min(self.n_initial, len(losses)), self.n_dims)
        p = len(self.num_cols)
        lower, upper = box(cn[0], side, hyper.inv_sq_lengthscales[:p])
        perturb = min(1.0, self.ts_perturbed / max(1, self.n_dims))
        xn, xc = perturbations(cn[0], cc[0], lower, upper, self.n_categories,
                               self.ts_candidates, perturb, rng)
        penc = self._snapped_unique(self._encoding(xn, xc))
        pool = SamplePool.build(gp, penc, *self._features(penc))
        pool.keys = [self._key(e) for e in penc]
        pool.done = {self._key(e) for e in finished_enc}
        with SAMPLE_POOLS_LOCK:
            SAMPLE_POOLS[key] = pool
            while len(SAMPLE_POOLS) > 4:
                SAMPLE_POOLS.popitem(last=False)
        return pool

    def _candidates(self, gp: GP, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sobol points over the whole box plus perturbations of the best finished trials
        (`gp` without fantasies: a pending point's believed value is no evidence)."""
        best = np.argsort(gp.y, kind="stable")[:5]
        return self._sobol_and_near(gp.xn[best], gp.xc[best], self.local_share, rng)

    def _sobol_and_near(self, xn: np.ndarray, xc: np.ndarray, share: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`n_candidates` Sobol points plus `share` as many perturbations of the trials
        (xn, xc): numeric coordinates moved by 2-15% of their range, each category
        re-drawn with probability 0.2."""
        sn, sc = self._features(self._sobol(self.n_candidates, rng))
        if not len(xn):
            return sn, sc
        per = max(1, int(self.n_candidates * share) // len(xn))
        ln = np.repeat(xn, per, axis=0)
        lc = np.repeat(xc, per, axis=0)
        if ln.shape[1]:
            scale = rng.choice([0.02, 0.05, 0.15], size=(len(ln), 1))
            ln = np.clip(ln + scale * rng.standard_normal(ln.shape), 0.0, 1.0)
        for j, k in enumerate(self.n_categories):
            flip = rng.random(len(lc)) < 0.2
            lc[flip, j] = rng.integers(0, k, size=int(flip.sum()))
        return np.vstack([sn, ln]), np.vstack([sc, lc])


def cached_fit(key: bytes, fit: Callable[[], Hyper]) -> Hyper:
    """`fit()`, or what it returned before for `key` (a digest of everything it reads)."""
    with _FITS_LOCK:
        if key in _FITS:
            _FITS.move_to_end(key)
            return _FITS[key]
    hyper = fit()
    with _FITS_LOCK:
        _FITS[key] = hyper
        while len(_FITS) > 64:
            _FITS.popitem(last=False)
    return hyper


def _as_loss(loss: object) -> float:
    """The loss as a float; NaN (a failed trial) when missing or not a number."""
    try:
        return float(loss)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """One controller per process: building it inspects every loaded library (slow)."""
    return ThreadpoolController()


def chunked(score: Callable[[np.ndarray, np.ndarray], np.ndarray], zn: np.ndarray,
            zc: np.ndarray, chunk: int = 512) -> np.ndarray:
    """`score` of many points (features zn, zc), `chunk` at a time, so no huge distance
    tensor is ever built."""
    return np.concatenate([score(zn[i:i + chunk], zc[i:i + chunk])
                           for i in range(0, len(zn), chunk)])


def _chunked_log_ei(gp: GP, zn: np.ndarray, zc: np.ndarray, best: float) -> np.ndarray:
    """log EI over many points (see `chunked`)."""
    return chunked(lambda an, ac: log_ei(*gp.predict(an, ac), best), zn, zc)
