"""Every distribution: samples lie in its support, follow its shape, and map to/from [0, 1]."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kubesweep.space import Space, round_significant
from kubesweep.spec import Parameter, parse_spec
from tests.helpers import make_spec

N = 4000


def space_of(**parameters: dict) -> Space:
    return Space(parse_spec(make_spec(parameters)).parameters)


def draws(param: dict, n: int = N, seed: int = 0) -> np.ndarray:
    space = space_of(x=param)
    rng = np.random.default_rng(seed)
    return np.array([space.sample(rng)["x"] for _ in range(n)], dtype=object)


def test_constant():
    values = draws({"value": "adam"}, n=20)
    assert set(values) == {"adam"}


def test_categorical_uniform_and_weighted():
    values = draws({"values": ["a", "b", "c"]})
    counts = {v: (values == v).mean() for v in "abc"}
    assert all(abs(c - 1 / 3) < 0.04 for c in counts.values())
    weighted = draws({"values": ["a", "b"], "probabilities": [0.9, 0.1]})
    assert abs((weighted == "a").mean() - 0.9) < 0.03


def test_categorical_keeps_types():
    values = draws({"values": [1, "1", True, 2.5]}, n=400).tolist()
    assert {type(v) for v in values} == {int, str, bool, float}


def test_int_uniform_covers_both_ends_evenly():
    values = draws({"min": 1, "max": 4}).astype(int)
    assert set(values) == {1, 2, 3, 4}
    assert all(abs((values == k).mean() - 0.25) < 0.04 for k in range(1, 5))
    assert all(isinstance(v, int) for v in draws({"min": 1, "max": 4}, n=10))


def test_uniform():
    values = draws({"min": -2.0, "max": 3.0}).astype(float)
    assert values.min() >= -2 and values.max() <= 3
    assert abs(values.mean() - 0.5) < 0.1


def test_q_uniform_is_on_the_lattice():
    values = draws({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}).astype(float)
    assert set(values) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    ints = draws({"distribution": "q_uniform", "min": 0, "max": 100, "q": 10}, n=50)
    assert all(isinstance(v, int) and v % 10 == 0 for v in ints)


@pytest.mark.parametrize("dist", ["log_uniform_values", "inv_log_uniform_values"])
def test_log_uniform_is_uniform_in_log_space(dist):
    values = draws({"distribution": dist, "min": 1e-4, "max": 1.0}).astype(float)
    assert values.min() >= 1e-4 and values.max() <= 1.0
    logs = np.log10(values)
    # each decade gets a quarter of the draws
    for decade in range(-4, 0):
        share = ((logs >= decade) & (logs < decade + 1)).mean()
        assert abs(share - 0.25) < 0.04


def test_q_log_uniform_values():
    values = draws({"distribution": "q_log_uniform_values", "min": 1, "max": 1024, "q": 1})
    assert all(isinstance(v, int) and 1 <= v <= 1024 for v in values)
    assert (values.astype(int) < 32).mean() == pytest.approx(0.5, abs=0.05)


def test_normal_and_q_normal():
    values = draws({"distribution": "normal", "mu": 3, "sigma": 2}).astype(float)
    assert abs(values.mean() - 3) < 0.15 and abs(values.std() - 2) < 0.15
    q = draws({"distribution": "q_normal", "mu": 0, "sigma": 5, "q": 2}, n=200)
    assert all(int(v) % 2 == 0 for v in q)


def test_log_normal_and_q_log_normal():
    values = draws({"distribution": "log_normal", "mu": 0, "sigma": 1}).astype(float)
    assert (values > 0).all() and abs(np.median(values) - 1) < 0.1
    q = draws({"distribution": "q_log_normal", "mu": 2, "sigma": 0.5, "q": 1}, n=200)
    assert all(isinstance(v, int) for v in q)


def test_beta():
    values = draws({"distribution": "beta", "a": 2, "b": 5}).astype(float)
    assert values.min() > 0 and values.max() < 1
    assert abs(values.mean() - 2 / 7) < 0.02


def test_same_seed_same_draws():
    param = {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0}
    assert (draws(param, n=50, seed=3) == draws(param, n=50, seed=3)).all()
    assert not (draws(param, n=50, seed=3) == draws(param, n=50, seed=4)).all()


def test_encode_decode_round_trip_for_every_distribution():
    space = space_of(
        c={"value": 1}, cat={"values": ["x", "y", "z"]}, i={"min": 0, "max": 9},
        u={"min": 0.0, "max": 1.0}, qu={"distribution": "q_uniform", "min": 0, "max": 1,
                                        "q": 0.1},
        lu={"distribution": "log_uniform_values", "min": 1e-3, "max": 10},
        n={"distribution": "normal", "mu": 0, "sigma": 1},
        b={"distribution": "beta", "a": 2, "b": 2},
    )
    rng = np.random.default_rng(1)
    for _ in range(200):
        params = space.sample(rng)
        coords = space.encode(params)
        assert coords.shape == (space.width,)
        assert ((coords >= 0) & (coords <= 1)).all()
        back = space.decode(coords)
        assert back["c"] == 1 and back["cat"] == params["cat"] and back["i"] == params["i"]
        assert back["qu"] == params["qu"]
        for key in ("u", "lu", "n", "b"):
            assert back[key] == pytest.approx(params[key], rel=1e-5, abs=1e-9)


def test_categorical_is_one_hot_not_ordered():
    space = space_of(cat={"values": ["a", "b", "c"]}, x={"min": 0.0, "max": 1.0})
    assert space.width == 4 and space.categorical_blocks == [slice(0, 3)]
    assert space.encode({"cat": "c", "x": 0.5}).tolist() == [0, 0, 1, 0.5]
    assert space.numeric_columns == [3]


def test_integers_get_equal_width_bins():
    space = space_of(i={"min": 1, "max": 3})
    decoded = [space.decode(np.array([u]))["i"] for u in np.linspace(0, 1, 301)]
    assert [decoded.count(k) for k in (1, 2, 3)] == [100, 100, 101]


def test_grid_enumerates_in_stable_order_without_duplicates():
    space = Space(parse_spec(make_spec({
        "a": {"values": [1, 2, 1]}, "b": {"distribution": "q_uniform", "min": 0, "max": 1,
                                        "q": 0.5},
    }, method="grid")).parameters)
    points = list(space.grid())
    assert points == [{"a": 1, "b": 0}, {"a": 1, "b": 0.5}, {"a": 1, "b": 1},
                      {"a": 2, "b": 0}, {"a": 2, "b": 0.5}, {"a": 2, "b": 1}]
    assert space.grid_size() == 6


def test_round_significant():
    assert round_significant(0.123456789) == 0.123457
    assert round_significant(0.0) == 0.0
    assert math.isnan(round_significant(float("nan")))


def test_q_values_stay_inside_bounds_that_are_not_multiples_of_q():
    # W&B's round(x / q) * q gives 0 here, which the range excludes
    space = Space({"a": Parameter.model_validate(
        {"distribution": "q_uniform", "min": 1, "max": 6, "q": 5})})
    rng = np.random.default_rng(0)
    assert {space.sample(rng)["a"] for _ in range(200)} == {5}
    assert space.decode(np.array([0.0])) == {"a": 5}
    log = Space({"b": Parameter.model_validate(
        {"distribution": "q_log_uniform_values", "min": 3, "max": 100, "q": 4})})
    values = {log.sample(rng)["b"] for _ in range(300)}
    assert min(values) >= 4 and max(values) <= 100 and all(v % 4 == 0 for v in values)


def test_a_q_range_without_a_multiple_of_q_is_refused():
    with pytest.raises(ValueError, match="no multiple of q=5 lies between min 1 and max 3"):
        Parameter.model_validate({"distribution": "q_uniform", "min": 1, "max": 3, "q": 5})


def test_decoded_values_are_fixed_points_so_snap_equals_canonical():
    """`Space.snap` (one decode + one encode) stands in for `canonical(decode(...))` in the
    candidate pools; that is only right if decoding what was encoded from a decoded value
    gives that value back, for every distribution, at the box's edges too."""
    space = space_of(
        u={"distribution": "uniform", "min": -3.7, "max": 12.2},
        tiny={"distribution": "uniform", "min": 1e-7, "max": 3e-7},
        qu={"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.125},
        qu2={"distribution": "q_uniform", "min": -10, "max": 7.3, "q": 2.341},
        i={"distribution": "int_uniform", "min": -5, "max": 300},
        lu={"distribution": "log_uniform_values", "min": 1e-6, "max": 0.3},
        qlu={"distribution": "q_log_uniform_values", "min": 1, "max": 1024, "q": 1},
        ilu={"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 10},
        n={"distribution": "normal", "mu": 3, "sigma": 2},
        qn={"distribution": "q_normal", "mu": 0, "sigma": 5, "q": 0.5},
        ln={"distribution": "log_normal", "mu": 0, "sigma": 1},
        qln={"distribution": "q_log_normal", "mu": 1, "sigma": 1, "q": 1},
        b={"distribution": "beta", "a": 2, "b": 5},
        qb={"distribution": "q_beta", "a": 0.5, "b": 0.5, "q": 0.05},
        c={"values": ["a", "b", 3, 4.5]},
    )
    rng = np.random.default_rng(7)
    for k in range(3000):
        coords = rng.uniform(size=space.width)
        if k % 3 == 0:  # the faces of the box, where clipping and quantizing meet
            coords[rng.uniform(size=space.width) < 0.4] = rng.choice([0.0, 1.0])
        values = space.decode(coords)
        assert space.decode(space.encode(values)) == values
        assert space.snap(coords).tobytes() == space.canonical(values).tobytes()
