"""Property-based tests (hypothesis): the manifest loader never raises on any YAML
structure, the space's encoding round-trips inside the unit cube, every strategy's
suggestions lie inside the space, and grid search never proposes a point twice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesweep.cli import EXIT_INVALID, main
from kubesweep.space import Space, params_key
from kubesweep.spec import Parameter, SpecError, parse_spec
from kubesweep.strategies import make_strategy
from kubesweep.strategies.base import Observation

FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- arbitrary documents ------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=25)
SPEC_KEYS = ["method", "metric", "parameters", "maxTrials", "parallelism", "seed",
             "earlyTerminate", "trialTemplate", "trialResources", "maxFailedTrials",
             "primaryContainer", "trialRetries"]
spec_like = st.dictionaries(st.sampled_from(SPEC_KEYS), json_like, max_size=8)
documents = st.one_of(
    json_like,
    st.builds(lambda spec: {"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
                            "metadata": {"name": "s"}, "spec": spec}, spec_like),
    st.builds(lambda meta, spec: {"kind": "Sweep", "metadata": meta, "spec": spec},
              json_like, json_like),
)


@FAST
@given(documents)
def test_validate_never_raises_on_any_document(tmp_path: Path, doc: Any):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    assert main(["validate", str(path)]) in (0, EXIT_INVALID)


@FAST
@given(spec_like)
def test_parse_spec_raises_only_spec_error(spec: dict[str, Any]):
    try:
        parse_spec(spec)
    except SpecError as exc:
        assert exc.problems and all(isinstance(m, str) and m for _, m in exc.problems)


# -- valid parameters -------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
widths = st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def parameters(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["uniform", "int_uniform", "log", "q_uniform", "categorical",
                                 "normal", "beta", "constant"]))
    if kind == "uniform":
        low = draw(finite)
        return {"distribution": "uniform", "min": low, "max": low + draw(widths)}
    if kind == "int_uniform":
        low = draw(st.integers(-1000, 1000))
        return {"min": low, "max": low + draw(st.integers(1, 1000))}
    if kind == "log":
        low = draw(st.floats(1e-8, 1e3))
        return {"distribution": "log_uniform_values", "min": low,
                "max": low * draw(st.floats(1.01, 1e6))}
    if kind == "q_uniform":
        low = draw(st.integers(-100, 100))
        q = draw(st.sampled_from([0.1, 0.25, 0.5, 1, 2, 5]))
        return {"distribution": "q_uniform", "min": low, "max": low + q * draw(st.integers(1, 50)),
                "q": q}
    if kind == "categorical":
        values = draw(st.lists(st.one_of(st.integers(-50, 50), st.text(min_size=1, max_size=6),
                                         st.booleans()), min_size=1, max_size=6,
                               unique_by=lambda v: (type(v).__name__, v)))
        return {"values": values}
    if kind == "normal":
        return {"mu": draw(finite), "sigma": draw(st.floats(1e-3, 1e3))}
    if kind == "beta":
        return {"distribution": "beta", "a": draw(st.floats(0.1, 10)),
                "b": draw(st.floats(0.1, 10))}
    return {"value": draw(st.one_of(st.integers(), st.text(max_size=5)))}


spaces = st.dictionaries(st.sampled_from(["a", "b", "c", "lr", "depth"]), parameters(),
                         min_size=1, max_size=4)


def in_space(space: Space, raw: dict[str, dict[str, Any]], params: dict[str, Any]) -> None:
    """Fail unless every value of `params` is one `raw` allows."""
    assert set(params) == set(raw)
    for name, spec in raw.items():
        value = params[name]
        param = Parameter.model_validate(spec)
        dist = param.distribution.value
        if "values" in spec:
            assert any(value == v and type(value) is type(v) for v in spec["values"]), value
        elif "value" in spec:
            assert value == spec["value"]
        elif dist == "beta":
            assert 0.0 <= value <= 1.0
        elif "min" in spec:
            assert spec["min"] <= value <= spec["max"], (name, spec, value)
            if dist == "int_uniform":
                assert isinstance(value, int)
            if dist == "q_uniform":
                # multiples of q, as W&B samples them
                steps = value / spec["q"]
                assert math.isclose(steps, round(steps), abs_tol=1e-6), (spec, value)
        else:
            assert math.isfinite(value)


@FAST
@given(spaces, st.integers(0, 2**32 - 1))
def test_samples_lie_in_the_space_and_round_trip_through_the_unit_cube(
        raw: dict[str, dict[str, Any]], seed: int):
    space = Space({k: Parameter.model_validate(v) for k, v in raw.items()})
    rng = np.random.default_rng(seed)
    for _ in range(5):
        params = space.sample(rng)
        in_space(space, raw, params)
        coords = space.encode(params)
        assert coords.shape == (space.width,)
        assert np.all((coords >= 0.0) & (coords <= 1.0)), coords
        again = space.decode(coords)
        in_space(space, raw, again)
        assert np.allclose(space.encode(again), coords, atol=1e-6), (params, again)


@st.composite
def discrete_spaces(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    raw = draw(st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(
            st.builds(lambda lo, n: {"min": lo, "max": lo + n}, st.integers(-5, 5),
                      st.integers(1, 4)),
            st.builds(lambda v: {"values": v},
                      st.lists(st.integers(0, 9), min_size=1, max_size=4, unique=True)),
            st.builds(lambda n, q: {"distribution": "q_uniform", "min": 0, "max": n * q,
                                    "q": q}, st.integers(1, 4), st.sampled_from([0.5, 1, 3])),
        ),
        min_size=1, max_size=3))
    return raw


@FAST
@given(discrete_spaces(), st.integers(0, 100), st.integers(0, 2**16))
def test_grid_never_repeats_a_point_finished_or_pending(raw: dict[str, dict[str, Any]],
                                                         n_pending: int, seed: int):
    space = Space({k: Parameter.model_validate(v) for k, v in raw.items()})
    grid = make_strategy("grid", space)
    rng = np.random.default_rng(seed)
    finished: list[Observation] = []
    pending: list[dict[str, Any]] = []
    seen: set[Any] = set()
    while True:
        point = grid.suggest(finished, pending, rng)
        if point is None:
            break
        key = params_key(point)
        assert key not in seen, f"grid proposed {point} twice"
        seen.add(key)
        in_space(space, raw, point)
        # some trials stay pending, the others finish
        if len(pending) < n_pending % 5:
            pending.append(point)
        else:
            finished.append(Observation(point, float(rng.random())))
    assert len(seen) == len({params_key(p) for p in space.grid()})


@pytest.mark.parametrize("method", ["random", "bayes"])
@settings(max_examples=12, deadline=None, derandomize=True)
@given(raw=spaces, seed=st.integers(0, 2**16), n_finished=st.integers(0, 8))
def test_random_and_bayes_suggest_inside_the_space(method: str, raw: dict[str, Any],
                                                   seed: int, n_finished: int):
    space = Space({k: Parameter.model_validate(v) for k, v in raw.items()})
    strategy = make_strategy(method, space)
    rng = np.random.default_rng(seed)
    finished = [Observation(space.sample(rng), float(rng.normal()) if i % 3 else None)
                for i in range(n_finished)]
    pending = [space.sample(rng) for _ in range(seed % 3)]
    for _ in range(2):
        point = strategy.suggest(finished, pending, rng)
        assert point is not None
        in_space(space, raw, point)
        pending.append(point)
