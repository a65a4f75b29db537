"""Wide batches in large spaces: the trust region's rules, its candidates, Thompson
sampling over them, and what a wide batch in a large space looks like end to end."""

from __future__ import annotations

import numpy as np
import pytest

import kubesweep
from kubesweep.space import Space
from kubesweep.spec import Parameter
from kubesweep.strategies import Observation, trust_region
from kubesweep.strategies import bayes as bayes_module
from kubesweep.strategies.gp import GP, fit_hyper
from kubesweep.strategies.trust_region import SamplePool, TrustRegion, box, perturbations
from tests.helpers import make_spec


def space_of(params: dict) -> Space:
    return Space({k: Parameter.model_validate(v) for k, v in params.items()})


def clear_caches() -> None:
    bayes_module._FITS.clear()
    bayes_module._ENCODED.clear()
    trust_region.SAMPLE_POOLS.clear()


# -- the side of the box ------------------------------------------------------------------

def test_side_starts_at_its_initial_value_and_ignores_the_initial_design():
    rules = TrustRegion()
    losses = np.array([5.0, 4.0, 3.0, 2.0, 1.0])  # improvements, but all in the design
    assert rules.side(losses, start=5, n_dims=20) == rules.initial_side


def test_side_doubles_after_the_success_tolerance_and_stops_at_the_maximum():
    rules = TrustRegion(initial_side=0.8, max_side=1.6, success_tolerance=3)
    design = [10.0, 9.0]
    assert rules.side(np.array(design + [8.0, 7.0]), 2, 20) == 0.8  # two wins: not yet
    assert rules.side(np.array(design + [8.0, 7.0, 6.0]), 2, 20) == 1.6
    assert rules.side(np.array(design + [8.0, 7.0, 6.0, 5, 4, 3]), 2, 20) == 1.6
    # a miss in between resets the count
    assert rules.side(np.array(design + [8.0, 7.0, 9.5, 6.0]), 2, 20) == 0.8


def test_side_halves_after_the_failure_tolerance_and_restarts_below_the_minimum():
    rules = TrustRegion(initial_side=0.8, min_side=0.15, failure_tolerance=4)
    design = [1.0, 2.0]
    assert rules.side(np.array(design + [3.0] * 3), 2, 20) == 0.8
    assert rules.side(np.array(design + [3.0] * 4), 2, 20) == 0.4
    assert rules.side(np.array(design + [3.0] * 8), 2, 20) == 0.2
    # 0.1 < min_side: start again at the initial side
    assert rules.side(np.array(design + [3.0] * 12), 2, 20) == 0.8
    # failed trials (NaN) count as misses; a tiny gain (< 0.1%) is no success
    assert rules.side(np.array(design + [np.nan, 0.9995, np.nan, 3.0]), 2, 20) == 0.4


def test_failure_tolerance_defaults_to_the_number_of_parameters_with_at_least_four():
    rules = TrustRegion(initial_side=0.8)
    assert rules.side(np.array([1.0] + [2.0] * 19), 1, 20) == 0.8
    assert rules.side(np.array([1.0] + [2.0] * 20), 1, 20) == 0.4
    assert rules.side(np.array([1.0] + [2.0] * 4), 1, 2) == 0.4


# -- the box and its candidates -----------------------------------------------------------

def test_box_is_centred_clipped_to_the_cube_and_long_where_the_model_is_flat():
    lam = np.array([4.0, 1.0, 0.25])  # length scales 0.5, 1, 2 (geometric mean 1)
    lower, upper = box(np.array([0.5, 0.5, 0.95]), 0.4, lam)
    np.testing.assert_allclose(upper[:2] - lower[:2], [0.2, 0.4])
    np.testing.assert_allclose((upper[:2] + lower[:2]) / 2, [0.5, 0.5])
    assert lower[2] == pytest.approx(0.55) and upper[2] == 1.0  # clipped at the face


def test_perturbations_move_some_coordinates_within_the_box_and_at_least_one():
    rng = np.random.default_rng(0)
    center_n, center_c = np.full(20, 0.5), np.array([0, 1])
    lower, upper = np.full(20, 0.4), np.full(20, 0.7)
    xn, xc = perturbations(center_n, center_c, lower, upper, [3, 2], 2000, 0.1, rng)
    moved = np.hstack([xn != center_n, xc != center_c])
    assert np.all(xn >= lower) and np.all(xn <= upper)
    assert set(np.unique(xc[:, 0])) <= {0, 1, 2} and set(np.unique(xc[:, 1])) <= {0, 1}
    # numeric moves are continuous draws: a moved coordinate always differs
    assert np.all(moved[:, :20].sum(axis=1) + (xc != center_c).sum(axis=1) >= 1)
    assert 0.07 < moved[:, :20].mean() < 0.13  # about the asked share


# -- Thompson sampling --------------------------------------------------------------------

def test_a_posterior_sample_prefers_where_the_model_is_good_and_skips_taken_points():
    rng = np.random.default_rng(3)
    xn = rng.random((25, 2))
    y = (xn[:, 0] - 0.2) ** 2 + (xn[:, 1] - 0.8) ** 2
    y = (y - y.mean()) / y.std()
    xc = np.zeros((25, 0), dtype=int)
    gp = GP(xn, xc, y, fit_hyper(xn, xc, y))
    cand = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    pool = SamplePool.build(gp, cand, cand, np.zeros((3, 0), dtype=int))
    pool.keys = [b"good", b"bad", b"middle"]
    picks = [tuple(pool.pick(set(), np.random.default_rng(i))) for i in range(50)]
    assert picks.count((0.2, 0.8)) >= 45
    assert tuple(pool.pick({b"good"}, np.random.default_rng(0))) == (0.5, 0.5)
    assert pool.pick({b"good", b"bad", b"middle"}, np.random.default_rng(0)) is None


def test_samples_of_close_candidates_move_together():
    """The sample is joint, not per-candidate: near-duplicates get near-equal values."""
    rng = np.random.default_rng(5)
    xn = rng.random((10, 1))
    y = np.sin(6 * xn[:, 0])
    y = (y - y.mean()) / y.std()
    gp = GP(xn, np.zeros((10, 0), dtype=int), y, fit_hyper(xn, np.zeros((10, 0), dtype=int), y))
    cand = np.array([[0.5], [0.5 + 1e-6], [0.05]])
    pool = SamplePool.build(gp, cand, cand, np.zeros((3, 0), dtype=int))
    draws = np.array([pool.mean + pool.chol @ np.random.default_rng(i).standard_normal(3)
                      for i in range(200)])
    assert np.max(np.abs(draws[:, 0] - draws[:, 1])) < 1e-2
    assert np.std(draws[:, 0] - draws[:, 2]) > 10 * np.max(np.abs(draws[:, 0] - draws[:, 1]))


# -- a wide batch in a large space, end to end --------------------------------------------

def wide_space() -> Space:
    params = {f"x{i:02d}": {"min": 0.0, "max": 1.0} for i in range(14)}
    params["n"] = {"min": 1, "max": 5}
    params["c"] = {"values": ["a", "b", "c"]}
    return space_of(params)


def wide_objective(p: dict) -> float:
    return (p["x03"] - 0.3) ** 2 + (p["x07"] - 0.6) ** 2 + 0.01 * p["n"] + (p["c"] != "b")


def test_a_wide_batch_in_a_large_space_is_valid_distinct_and_from_the_trust_region():
    space = wide_space()
    strategy = bayes_module.BayesStrategy(space)
    rng = np.random.default_rng(0)
    finished = [Observation(p, wide_objective(p)) for p in
                (space.sample(rng) for _ in range(30))]
    clear_caches()
    pending: list[dict] = []
    for i in range(32):
        pending.append(strategy.suggest(finished, pending, np.random.default_rng([0, i])))
    for p in pending:  # valid values of the space (ints whole, choices from the list)
        assert set(p) == set(space.names)
        assert all(0.0 <= p[f"x{i:02d}"] <= 1.0 for i in range(14))
        assert p["n"] in range(1, 6) and p["c"] in ("a", "b", "c")
    keys = [tuple(space.canonical(p)) for p in pending]
    done = {tuple(space.canonical(o.params)) for o in finished}
    assert len(set(keys)) == 32 and not set(keys) & done
    # from the 9th pick on (8 pending), each is a perturbation of the best trial inside
    # the trust region whose side the history gives
    assert trust_region.SAMPLE_POOLS
    best = min(finished, key=lambda o: o.loss)
    enc = space.encode_many([o.params for o in finished])
    losses = np.array([o.loss for o in finished])
    hyper = strategy._hyper(enc, losses, ard=True)
    cols = space.numeric_columns  # 14 floats and the int
    center = space.encode(best.params)[cols]
    side = strategy.trust_region.side(losses, strategy.n_initial, strategy.n_dims)
    lower, upper = box(center, side, hyper.inv_sq_lengthscales[:len(cols)])
    # the int is snapped to the middle of its bin (5 bins): up to half a bin outside
    names = np.array([d.name for d in space.dimensions if d.kind == "numeric"])
    slack = np.where(names == "n", 0.1, 1e-9)
    for p in pending[8:]:
        x = space.encode(p)[cols]
        assert np.all(x >= lower - slack) and np.all(x <= upper + slack)


def test_the_thompson_rule_is_used_only_for_wide_batches_of_large_spaces(monkeypatch):
    calls: list[int] = []
    original = bayes_module.BayesStrategy._thompson_pick

    def spy(self, finished_enc, losses, pending_enc, rng):
        calls.append(len(pending_enc))
        return original(self, finished_enc, losses, pending_enc, rng)

    monkeypatch.setattr(bayes_module.BayesStrategy, "_thompson_pick", spy)
    narrow = space_of({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(6)})
    for space, expected in ((wide_space(), list(range(8, 12))), (narrow, [])):
        calls.clear()
        clear_caches()
        strategy = bayes_module.BayesStrategy(space)
        rng = np.random.default_rng(1)
        finished = [Observation(p, float(sum(v for v in p.values() if isinstance(v, float))))
                    for p in (space.sample(rng) for _ in range(20))]
        pending: list[dict] = []
        for i in range(12):
            pending.append(strategy.suggest(finished, pending, np.random.default_rng([1, i])))
        assert calls == expected


def test_rebuilt_tuner_finishes_a_wide_batch_of_a_large_space_exactly_as_the_live_one():
    params = {f"x{i:02d}": {"min": 0.0, "max": 1.0} for i in range(14)}
    params["c"] = {"values": ["a", "b"]}
    spec = make_spec(params, method="bayes", maxTrials=80, parallelism=24)

    def objective(p: dict) -> float:
        return (p["x00"] - 0.2) ** 2 + (p["x01"] - 0.7) ** 2 + 0.01 * p["x05"] + (p["c"] == "b")

    live = kubesweep.Tuner(spec, seed=4)
    for t in live.ask(24):
        live.tell(t, objective(t.params))
    clear_caches()
    first = live.ask(12)
    assert trust_region.SAMPLE_POOLS  # the Thompson path ran
    rest = live.ask(12)
    clear_caches()
    rebuilt = kubesweep.Tuner(spec, seed=4, history=[t.to_dict() for t in live.trials[:36]])
    assert [t.params for t in rebuilt.ask(12)] == [t.params for t in rest]
    clear_caches()
    again = kubesweep.Tuner(spec, seed=4, history=[t.to_dict() for t in live.trials[:24]])
    assert [t.params for t in again.ask(24)] == [t.params for t in first + rest]


def test_length_scales_are_tied_in_a_small_history_of_a_mid_size_space_only(monkeypatch):
    """6 parameters: tied below 3 trials per parameter; 14: below 1 trial per parameter."""
    from kubesweep.strategies.gp import fit_hyper as real_fit

    for n_params, n_trials, expected in ((6, 15, [True]), (14, 15, [False]),
                                         (14, 12, [True])):
        space = space_of({f"x{i:02d}": {"min": 0.0, "max": 1.0} for i in range(n_params)})
        rng = np.random.default_rng(2)
        finished = [Observation(p, (p["x00"] - 0.4) ** 2) for p in
                    (space.sample(rng) for _ in range(n_trials))]
        calls: list[bool] = []

        def spy(*args, calls=calls, **kwargs):
            calls.append(kwargs.get("tie_numeric"))
            return real_fit(*args, **kwargs)

        clear_caches()
        monkeypatch.setattr(bayes_module, "fit_hyper", spy)
        bayes_module.BayesStrategy(space).suggest(finished, [], np.random.default_rng(0))
        assert calls == expected
