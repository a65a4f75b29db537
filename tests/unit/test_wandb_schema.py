"""Every config W&B's own schema accepts either runs as a Sweep or is refused with a message
naming the field or the W&B feature (issue 12 item 1, issue 14): configs generated from
`sweeps/config/schema.json` (tests/wandb_corpus), beyond the corpus' hand-collected ones.

The generator reads the schema's definitions (each parameter form, metric, hyperband), so a
form W&B adds shows up here once the schema file is updated. It found three tracebacks:
exponent bounds whose e^x no float holds, a q too small for its range, and log-normals
whose draws overflow.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesweep.space import Space
from kubesweep.spec import Distribution, SpecError, parse_spec, parse_sweep
from kubesweep.template import local_command
from kubesweep.tuner import Tuner
from kubesweep.wandb_config import (
    EARLY_TERMINATE_KEYS,
    EXPONENT_FORMS,
    IGNORED_KEYS,
    METRIC_KEYS,
    READ_KEYS,
    UNSUPPORTED_KEYS,
    WandbConfigError,
    to_sweep,
)
from tests.helpers import make_spec

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "wandb_corpus" /
                     "wandb-sweep-config-schema.json").read_text())
DEFS = SCHEMA["definitions"]
#: W&B's form of `categorical` with probabilities; everything else is a Distribution name.
RENAMED = {"categorical_w_probabilities"}
#: The W&B features kubesweep refuses by name; the generator leaves them to the corpus.
REFUSED_KEYS = set(UNSUPPORTED_KEYS)
MAX_NESTING = 2

PROPERTY = settings(max_examples=250, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    # the format checks W&B's engine registers: "float" and "integer" by Python type
    checker = jsonschema.FormatChecker()
    checker.checks("float")(lambda v: isinstance(v, float))
    checker.checks("integer")(lambda v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.Draft7Validator(SCHEMA, format_checker=checker)


# -- a generator of configs, read from the schema -------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6)


def _number(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Numbers the property allows: mostly everyday sizes, sometimes extreme ones."""
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    exclusive = "exclusiveMinimum" in prop

    def ints(top: int) -> st.SearchStrategy[int]:
        bottom = -top if low is None else math.floor(low) + (1 if exclusive else 0)
        return st.integers(min_value=bottom, max_value=max(top, bottom))

    def floats(top: float) -> st.SearchStrategy[float]:
        return st.floats(min_value=-top if low is None else low, max_value=top,
                         exclude_min=exclusive, allow_nan=False, allow_infinity=False)

    if prop.get("type") == "integer":
        small, large = ints(100), ints(10**6)
    elif prop.get("format") == "float":  # W&B's check that YAML wrote a float (1.0, not 1)
        small, large = floats(100.0), floats(1e300)
    else:
        small, large = floats(100.0) | ints(100), floats(1e300) | ints(10**6)
    return st.one_of(small, small, small, large)


def _of(prop: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in prop:
        return _definition(prop["$ref"].rsplit("/", 1)[1], depth)
    if prop.get("type") == "object" and "properties" in prop:
        return _object(prop, depth)
    if "anyOf" in prop or "oneOf" in prop:
        return st.one_of([_of(p, depth) for p in prop.get("anyOf", prop.get("oneOf"))])
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    kind = prop.get("type")
    if kind in ("number", "integer"):
        return _number(prop)
    if kind == "string":
        return st.text(min_size=1, max_size=8)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = _of(prop["items"], depth) if "items" in prop else json_values
        return st.lists(items, min_size=prop.get("minItems", 0), max_size=4)
    return json_values  # W&B's `value`: any JSON value


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if schema.get("anyOf"):  # hyperband: `max_iter` and `s`, or `min_iter`
        return st.one_of([_object({**schema, "anyOf": None,
                                   "required": [*schema["required"], *alt["required"]]}, depth)
                          for alt in schema["anyOf"]])
    required = set(schema.get("required", ()))
    props = schema["properties"]
    return st.fixed_dictionaries(
        {k: _of(props[k], depth) for k in sorted(required)},
        optional={k: _of(v, depth) for k, v in props.items() if k not in required})


def _definition(name: str, depth: int) -> st.SearchStrategy[Any]:
    if name == "parameters":
        names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
        return st.dictionaries(names, _definition("parameter", depth), min_size=1, max_size=3)
    if name == "parameter":
        forms = [p["$ref"].rsplit("/", 1)[1] for p in DEFS["parameter"]["anyOf"]]
        if depth >= MAX_NESTING:
            forms.remove("param_dict")
        return st.one_of([_definition(f, depth + (f == "param_dict")) for f in forms])
    return _of(DEFS[name], depth)


commands = st.lists(st.sampled_from([
    "${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}",
    "${args_json_file}", "${args_no_boolean_flags}", "${args_no_equals}",
    "${args_append_hydra}", "${args_override_hydra}", "${envvar:HOME}", "--flag",
    "--bs=${batch_size}"]), min_size=1, max_size=5)


def _ordered(params: dict[str, Any]) -> dict[str, Any]:
    """The same parameters with each min/max pair in order (W&B refuses min > max)."""
    out = {}
    for name, param in params.items():
        param = dict(param)
        if "parameters" in param:
            param["parameters"] = _ordered(param["parameters"])
        elif isinstance(param.get("min"), (int, float)) and isinstance(param.get("max"),
                                                                        (int, float)):
            low, high = sorted((param["min"], param["max"]))
            param["min"], param["max"] = low, high
        out[name] = param
    return out


raw_configs = st.fixed_dictionaries(
    {"method": st.sampled_from(sorted(set(SCHEMA["properties"]["method"]["enum"]) - {"custom"})),
     "parameters": _definition("parameters", 0), "program": st.just("train.py")},
    optional={"metric": _definition("metric", 0),
              "early_terminate": _definition("hyperband_stopping", 0),
              "run_cap": st.integers(1, 6), "name": st.text(max_size=20),
              "description": st.text(max_size=20), "command": commands,
              "entity": st.text(max_size=5), "project": st.text(max_size=5),
              "controller": st.just({"type": "local"})})


def _tidy(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its bounds in order and no early_terminate: fewer refusals (W&B
    refuses min > max too), so more of the generated configs get as far as running."""
    config = {k: v for k, v in config.items() if k != "early_terminate"}
    ordered = {**config, "parameters": _ordered(config["parameters"])}
    # ordering can break a schema bound (log_uniform_values min > 0): keep those as drawn
    return ordered if _validator().is_valid(ordered) else config


configs = st.one_of(raw_configs, raw_configs.map(_tidy))


# -- the schema's keys are all read, ignored on purpose or refused by name --------------------

def test_every_key_of_the_schema_is_handled():
    assert set(SCHEMA["properties"]) == READ_KEYS | IGNORED_KEYS | REFUSED_KEYS
    assert set(DEFS["metric"]["properties"]) == set(METRIC_KEYS)
    assert set(DEFS["hyperband_stopping"]["properties"]) == set(EARLY_TERMINATE_KEYS)
    forms = {e for d in DEFS.values() for e in
             d.get("properties", {}).get("distribution", {}).get("enum", ())}
    forms |= {e for alt in DEFS["param_uniform"]["anyOf"]
              for e in alt["properties"]["distribution"]["enum"]}
    ours = {d.value for d in Distribution} | set(EXPONENT_FORMS) | RENAMED
    assert forms and forms <= ours, forms - ours


@PROPERTY
@given(configs)
def test_generated_configs_are_valid_for_wandbs_schema(config: dict[str, Any]):
    errors = [e.message for e in _validator().iter_errors(config)]
    assert not errors, errors


# -- each one runs, or is refused naming what is wrong ------------------------------------

@PROPERTY
@given(configs)
def test_every_schema_valid_config_runs_or_is_refused_naming_the_field(config: dict[str, Any]):
    try:
        sweep = parse_sweep(to_sweep(config, name="x", max_trials=3))
    except WandbConfigError as exc:
        # the message names a key of the config (`parameters.lr: ...`) or the feature
        assert any(str(exc).startswith(k) for k in config) or "W&B feature" in str(exc), exc
        return
    except SpecError as exc:
        assert exc.problems and all(path for path, _ in exc.problems), exc.problems
        return
    tuner = Tuner(sweep.spec, name="t")
    leaves = set(sweep.spec.leaf_parameters)
    while (trial := tuner.ask()) is not None:
        assert set(trial.params) == leaves
        argv, env = local_command(sweep.spec, trial.params, trial.name, trial.index, "s",
                                  environ={})
        assert argv and json.loads(env["KUBESWEEP_PARAMS"]).keys() == set(config["parameters"])
        for value in trial.params.values():  # JSON-safe: no inf or nan reaches a trial
            json.dumps(value, allow_nan=False)
        tuner.tell(trial, float(trial.index))
    assert tuner.trials


# -- the tracebacks the generator found, now refusals naming the field ------------------------

@pytest.mark.parametrize("dist", sorted(EXPONENT_FORMS))
def test_exponent_bounds_beyond_floats_are_refused(dist: str):
    config = {"method": "random", "program": "train.py", "run_cap": 2,
              "parameters": {"lr": {"distribution": dist, "min": -9.0, "max": 800.0}}}
    with pytest.raises(WandbConfigError, match=r"^parameters\.lr: .*exponents between -745 "
                                               r"and 709"):
        to_sweep(config, name="x")
    config["parameters"]["lr"].update(min=-800.0, max=-1.0)
    with pytest.raises(WandbConfigError, match=r"^parameters\.lr: "):
        to_sweep(config, name="x")
    config["parameters"]["lr"].update(min=-700.0, max=700.0)
    assert math.isfinite(to_sweep(config, name="x")["spec"]["parameters"]["lr"]["max"])


def _problem(param: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(make_spec({"x": param}))
    [(path, msg)] = info.value.problems
    assert path == "spec.parameters.x"
    return msg


def test_q_too_small_for_its_range_is_refused():
    msg = _problem({"distribution": "q_uniform", "min": 0, "max": 1e300, "q": 1e-300})
    assert "q=1e-300 is too small" in msg and "use q >=" in msg
    assert "too small" in _problem({"distribution": "q_log_uniform_values", "min": 1e-3,
                                    "max": 1e6, "q": 1e-12})
    spec = parse_spec(make_spec({"x": {"distribution": "q_uniform", "min": 0, "max": 1,
                                       "q": 1e-15}}))
    assert 0 <= Space(spec.parameters).sample(np.random.default_rng(0))["x"] <= 1


def test_q_below_float_resolution_leaves_unbounded_draws_as_they_are():
    spec = parse_spec(make_spec({"b": {"distribution": "q_beta", "q": 5e-324},
                                 "n": {"distribution": "q_normal", "mu": 1e6, "q": 1e-300}}))
    space = Space(spec.parameters)
    for i in range(10):
        point = space.sample(np.random.default_rng(i))
        assert 0 <= point["b"] <= 1 and math.isfinite(point["n"])


@pytest.mark.parametrize(("dist", "mu", "sigma"), [("log_normal", 0, 80),
                                                   ("q_log_normal", -1314, 20266),
                                                   ("normal", 0, 1e300)])
def test_gaussians_that_overflow_floats_are_refused(dist: str, mu: float, sigma: float):
    msg = _problem({"distribution": dist, "mu": mu, "sigma": sigma})
    assert "would draw values no float holds" in msg and "10·sigma below" in msg


def test_wide_log_normal_still_samples_finite_values():
    spec = parse_spec(make_spec({"x": {"distribution": "log_normal", "mu": 0, "sigma": 69}}))
    space = Space(spec.parameters)
    values = [space.sample(np.random.default_rng(i))["x"] for i in range(50)]
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert math.isfinite(space.decode(np.array([1.0]))["x"])
    assert yaml.safe_dump(values)


def test_method_custom_in_a_sweep_names_the_wandb_feature():
    with pytest.raises(SpecError) as info:
        parse_spec(make_spec({"x": {"values": [1, 2]}}, method="custom"))
    [(path, msg)] = info.value.problems
    assert path == "spec.method" and "W&B feature kubesweep does not support" in msg
    with pytest.raises(SpecError) as info:
        parse_spec(make_spec({"x": {"values": [1, 2]}}, method="hyperband"))
    assert "Input should be 'grid', 'random' or 'bayes'" in info.value.problems[0][1]
