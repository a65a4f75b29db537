"""Wide batches and large spaces: the batch pool, the sparse length-scale prior, and the
determinism contract for batches."""

from __future__ import annotations

import numpy as np
from scipy import optimize

import kubesweep
from kubesweep.space import Space
from kubesweep.spec import Parameter
from kubesweep.strategies import Observation, batch_pool, make_strategy
from kubesweep.strategies import bayes as bayes_module
from kubesweep.strategies.acquisition import log_ei
from kubesweep.strategies.gp import GP, _neg_log_posterior, fit_hyper, sq_dists
from tests.helpers import make_spec


def space_of(params: dict) -> Space:
    return Space({k: Parameter.model_validate(v) for k, v in params.items()})


def clear_caches() -> None:
    bayes_module._FITS.clear()
    bayes_module._ENCODED.clear()
    batch_pool.POOLS.clear()


def test_pool_scores_equal_a_gp_refit_on_the_believed_pending_points():
    rng = np.random.default_rng(0)
    xn, xc = rng.random((20, 3)), rng.integers(0, 2, (20, 1))
    y = np.sin(3 * xn[:, 0]) + xn[:, 1] ** 2 + 0.4 * xc[:, 0]
    y = (y - y.mean()) / y.std()
    gp = GP(xn, xc, y, fit_hyper(xn, xc, y))
    pn, pc = rng.random((40, 3)), rng.integers(0, 2, (40, 1))
    pool = batch_pool.Pool.build(gp, np.zeros((40, 1)), pn, pc)
    zn, zc = rng.random((5, 3)), rng.integers(0, 2, (5, 1))
    keys = [bytes([i]) for i in range(5)]
    # closed form (with columns cached from the 3-point call) == explicit refit
    for m in (3, 5):
        believed = gp.condition_on_fantasies(zn[:m], zc[:m])
        mean, var = believed.predict(pn, pc)
        expected = log_ei(mean, var, float(np.min(believed.y)))
        np.testing.assert_allclose(pool.scores(zn[:m], zc[:m], keys[:m]), expected,
                                   rtol=1e-5, atol=1e-6)
    # the believed points leave the mean alone and only lower the variance
    np.testing.assert_allclose(mean, pool.mean, atol=1e-6)
    assert np.all(var <= pool.var + 1e-9)


def test_a_wide_batch_has_no_duplicates_and_avoids_finished_trials():
    space = space_of({"x": {"min": 0.0, "max": 1.0}, "k": {"min": 1, "max": 4},
                      "c": {"values": ["p", "q"]}})
    strategy = bayes_module.BayesStrategy(space, pool_from=0)
    rng = np.random.default_rng(0)
    finished = [Observation(p, (p["x"] - 0.3) ** 2 + p["k"] / 10) for p in
                (space.sample(rng) for _ in range(12))]
    pending: list[dict] = []
    for i in range(32):
        pending.append(strategy.suggest(finished, pending, np.random.default_rng([0, i])))
    keys = [tuple(space.canonical(p)) for p in pending]
    done = {tuple(space.canonical(o.params)) for o in finished}
    assert len(set(keys)) == 32 and not set(keys) & done


def test_rebuilt_tuner_finishes_a_wide_batch_exactly_as_the_uninterrupted_one():
    params = {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(14)}
    params["c"] = {"values": ["a", "b"]}
    spec = make_spec(params, method="bayes", maxTrials=60, parallelism=16)

    def objective(p: dict) -> float:
        return (p["x0"] - 0.2) ** 2 + (p["x1"] - 0.7) ** 2 + 0.01 * p["x5"] + (p["c"] == "b")

    def tuner(history: list) -> kubesweep.Tuner:
        t = kubesweep.Tuner(spec, seed=3, history=history)
        t.strategy.pool_from = 10  # the pool path at a small history (default: 64)
        return t

    live = tuner([])
    for t in live.ask(16):
        live.tell(t, objective(t.params))
    clear_caches()
    first = live.ask(5)  # a crash after five trials of a batch of sixteen were recorded
    assert batch_pool.POOLS  # the pool path ran
    rest = live.ask(11)
    clear_caches()
    rebuilt = tuner([t.to_dict() for t in live.trials[:21]])
    assert [t.params for t in rebuilt.ask(11)] == [t.params for t in rest]
    # and one rebuilt before the batch started asks the same whole batch
    clear_caches()
    again = tuner([t.to_dict() for t in live.trials[:16]])
    assert [t.params for t in again.ask(16)] == [t.params for t in first + rest]


def test_sparse_prior_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    xn, xc = rng.random((15, 3)), rng.integers(0, 3, (15, 1))
    y = np.sin(4 * xn[:, 0]) + xc[:, 0] * 0.3
    y = (y - y.mean()) / y.std()
    dists = sq_dists(xn, xc, xn, xc)
    theta = np.array([0.3, -2.5, 1.0, -1.0, 0.1, -3.0])
    _, grad = _neg_log_posterior(theta, dists, y, sparse_tau=0.1)
    numeric = optimize.approx_fprime(
        theta, lambda t: _neg_log_posterior(t, dists, y, sparse_tau=0.1)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3)


def test_sparse_prior_keeps_the_parameters_that_matter_and_flattens_the_rest():
    rng = np.random.default_rng(4)
    xn = rng.random((30, 16))
    y = np.sin(5 * xn[:, 3]) + (xn[:, 11] - 0.5) ** 2 * 4 + 0.01 * xn[:, 0]
    y = (y - y.mean()) / y.std()
    xc = np.zeros((30, 0), dtype=int)
    sparse = fit_hyper(xn, xc, y, sparse_tau=0.1).inv_sq_lengthscales
    weak = fit_hyper(xn, xc, y).inv_sq_lengthscales
    others = np.delete(np.arange(16), [3, 11])
    assert min(sparse[3], sparse[11]) > 20 * np.max(sparse[others])
    # the default prior keeps the irrelevant ones near λ = 1 (it penalises long scales)
    assert np.median(sparse[others]) < 0.5 * np.median(weak[others])


def test_the_sparse_prior_is_used_from_sparse_from_parameters_and_off_by_default(monkeypatch):
    wide = space_of({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(12)})
    narrow = space_of({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(6)})
    for space, options, expected in ((wide, {}, None), (wide, {"sparse_from": 12}, 0.1),
                                     (narrow, {"sparse_from": 12}, None)):
        rng = np.random.default_rng(1)
        finished = [Observation(p, (p["x0"] - 0.5) ** 2) for p in
                    (space.sample(rng) for _ in range(40))]
        strategy = bayes_module.BayesStrategy(space, **options)
        calls: list[object] = []

        def spy(*args, calls=calls, **kwargs):
            calls.append(kwargs.get("sparse_tau"))
            return fit_hyper(*args, **kwargs)

        clear_caches()
        monkeypatch.setattr(bayes_module, "fit_hyper", spy)
        strategy.suggest(finished, [], np.random.default_rng(0))
        assert calls == [expected]


def test_encoding_memo_reuses_an_unchanged_prefix_and_sees_edits():
    space = space_of({"x": {"min": 0.0, "max": 1.0}, "c": {"values": ["a", "b"]}})
    strategy = make_strategy("bayes", space)
    params = [{"x": 0.1, "c": "a"}, {"x": 0.5, "c": "b"}]
    first, _ = strategy._encode_all(params, canonical=False)
    params.append({"x": 0.9, "c": "a"})
    grown, kept = strategy._encode_all(params, canonical=False)
    np.testing.assert_array_equal(grown[:2], first)
    assert kept == [0, 1, 2]
    params[0]["x"] = 0.7  # edited in place: must be encoded again
    edited, _ = strategy._encode_all(params, canonical=False)
    np.testing.assert_array_equal(edited, space.encode_many(params))
