"""Pydantic models of a Sweep: the single source of truth for validation, the CRD and errors.

Parameter keys follow W&B Sweeps (`values`, `distribution`, `min`, `max`, `q`, `mu`,
`sigma`, `a`, `b`, `probabilities`) so an existing W&B sweep config can be pasted in.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from kubesweep.settings import DEFAULT_GPU_RESOURCE

API_GROUP = "kubesweep.io"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "Sweep"

#: Largest grid a sweep may enumerate; beyond it use random or bayes.
MAX_GRID_POINTS = 100_000
#: Largest trial budget: the status keeps every trial and a Kubernetes object has to fit
#: in etcd's 1.5 MiB; 10,000 trials is the size the tests store on a real API server.
MAX_TRIALS = 10_000
#: Most trials running at once (Jobs in flight per Sweep).
MAX_PARALLELISM = 10_000
#: Largest seed. The CRD's `maximum` is a float64 on the API server: 2**63 - 1 rounds to
#: 2**63, overflows int64 and refused every seed; 2**53 - 1 is exact.
MAX_SEED = 2**53 - 1
#: Sum of `probabilities` may differ from 1 by this much (rounding in YAML).
PROBABILITY_TOLERANCE = 1e-6

#: `${...}` in a trial template; `$${...}` is an escape for a literal `${...}`.
PLACEHOLDER = re.compile(r"(?<!\$)\$\{([^}]*)\}")
#: Placeholders other than `${params.NAME}` that a trial template may use.
TRIAL_PLACEHOLDERS = ("trial.name", "trial.index", "sweep.name")
#: W&B agent macros that expand to several command items (each must be an item of its own).
ARGS_PLACEHOLDERS = ("args", "args_no_equals", "args_no_hyphens", "args_no_boolean_flags",
                     "args_json", "args_json_file", "args_append_hydra", "args_override_hydra")
#: `${envvar:NAME}`: the value of an environment variable (W&B's agent macro).
ENVVAR = re.compile(r"envvar:([A-Z0-9_]*)")

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
#: Parameter names: as W&B Sweeps allows them (its config schema's pattern).
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"
#: How deep `parameters:` may nest inside a parameter (W&B has no limit; nobody needs more).
MAX_NESTING = 8


class Distribution(str, Enum):
    """Distributions a parameter can be drawn from (W&B Sweeps names)."""

    constant = "constant"
    categorical = "categorical"
    int_uniform = "int_uniform"
    uniform = "uniform"
    q_uniform = "q_uniform"
    log_uniform_values = "log_uniform_values"
    q_log_uniform_values = "q_log_uniform_values"
    inv_log_uniform_values = "inv_log_uniform_values"
    normal = "normal"
    q_normal = "q_normal"
    log_normal = "log_normal"
    q_log_normal = "q_log_normal"
    beta = "beta"
    q_beta = "q_beta"


#: W&B's exponent-style distributions, deprecated upstream; we refuse them with the fix.
DEPRECATED_DISTRIBUTIONS = {
    "log_uniform": "log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
}

BOUNDED = {
    Distribution.int_uniform,
    Distribution.uniform,
    Distribution.q_uniform,
    Distribution.log_uniform_values,
    Distribution.q_log_uniform_values,
    Distribution.inv_log_uniform_values,
}
LOG_BOUNDED = {
    Distribution.log_uniform_values,
    Distribution.q_log_uniform_values,
    Distribution.inv_log_uniform_values,
}
GAUSSIAN = {Distribution.normal, Distribution.q_normal, Distribution.log_normal,
            Distribution.q_log_normal}
#: Most multiples of q a bounded q_* range may span: 2**53, where floats stop telling
#: neighbouring integers apart.
MAX_Q_STEPS = 2.0**53
#: Gaussian parameters must keep mu ± GAUSSIAN_REACH·sigma (a 1e-23 tail) inside what a
#: float holds: below MAX_EXPONENT for log-normals (e^709 is the largest float), below
#: MAX_GAUSSIAN for normals.
GAUSSIAN_REACH = 10
MAX_EXPONENT = 700.0
MAX_GAUSSIAN = 1e300
QUANTIZED = {Distribution.q_uniform, Distribution.q_log_uniform_values, Distribution.q_normal,
             Distribution.q_log_normal, Distribution.q_beta}
#: Distributions a grid sweep can enumerate.
GRIDDABLE = {Distribution.constant, Distribution.categorical, Distribution.int_uniform,
             Distribution.q_uniform, Distribution.q_log_uniform_values}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Parameter(_Model):
    """One hyperparameter and the distribution its values are drawn from."""

    distribution: Distribution | None = Field(
        None,
        description="Distribution to draw from. Inferred when omitted: `values` → categorical, "
        "`value` → constant, integer `min`/`max` → int_uniform, float `min`/`max` → uniform, "
        "`mu`/`sigma` → normal.",
    )
    values: list[Any] | None = Field(
        None, description="Categorical choices: any JSON values (strings, numbers, booleans, "
        "null, lists such as layer sizes `[64, 64]`, or objects).", min_length=1
    )
    probabilities: list[float] | None = Field(
        None, description="Probability of each entry of `values` for random/bayes; sums to 1."
    )
    value: Any = Field(None, description="A constant value (any JSON value) passed to every "
                       "trial.")
    # StrictInt first so `min: 1` stays an int: that is how int_uniform is inferred.
    min: StrictInt | float | None = Field(
        None, description="Lower bound (a value, not an exponent)."
    )
    max: StrictInt | float | None = Field(
        None, description="Upper bound (a value, not an exponent)."
    )
    q: float | None = Field(None, description="Quantization step of q_* distributions (default 1).",
                            gt=0)
    mu: float | None = Field(None, description="Mean of (log-)normal distributions (default 0).")
    sigma: float | None = Field(
        None, description="Standard deviation of (log-)normal distributions (default 1).", gt=0
    )
    a: float | None = Field(None, description="Beta distribution α (default 1).", gt=0)
    b: float | None = Field(None, description="Beta distribution β (default 1).", gt=0)
    parameters: dict[str, Parameter] | None = Field(
        None, description="Nested parameters (as W&B): the trial receives this parameter as an "
        "object of the nested values; `${params.NAME.SUB}` names one of them.",
    )

    @model_serializer(mode="wrap")
    def _keep_null_constant(self, handler: SerializerFunctionWrapHandler,
                            info: SerializationInfo) -> Any:
        # `value: null` is a valid constant (W&B allows any JSON value); dumping with
        # exclude_none must not turn it into a parameter with no distribution.
        data = handler(self)
        if isinstance(data, dict) and self.distribution is Distribution.constant:
            data.setdefault("value", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _refuse_deprecated(cls, data: Any) -> Any:
        if isinstance(data, dict):
            dist = data.get("distribution")
            if isinstance(dist, str) and dist in DEPRECATED_DISTRIBUTIONS:
                new = DEPRECATED_DISTRIBUTIONS[dist]
                raise ValueError(
                    f"distribution {dist!r} (min/max as exponents) is not supported; use "
                    f"{new!r} with min and max given as the actual values, e.g. "
                    f"min: 0.0001, max: 0.1"
                )
            if dist is not None and isinstance(dist, str) and dist not in Distribution.__members__:
                valid = ", ".join(Distribution.__members__)
                raise ValueError(f"unknown distribution {dist!r}; valid: {valid}")
            if "parameters" in data:
                others = sorted(k for k in data if k != "parameters")
                if others:
                    raise ValueError(
                        f"a parameter with nested `parameters` takes no other keys (got "
                        f"{', '.join(others)}); put them on the nested parameters"
                    )
        return data

    @field_validator("values", "value", "min", "max")
    @classmethod
    def _refuse_unpassable(cls, value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            # a NUL byte cannot be in a command line or environment variable: the trial
            # would never start (its pod stuck in ContainerCreating)
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(f"{item!r} contains a NUL byte (\\x00), which a command "
                                 "line or environment variable cannot carry; remove it")
            # nan/inf cannot be stored as JSON (status, results file); in `values` the
            # model check names the entry (values[i]) instead
            if isinstance(item, float) and not math.isfinite(item) and \
                    not isinstance(value, list):
                raise ValueError(f"{item} is not a finite number; use a finite value")
        return value

    @model_validator(mode="after")
    def _infer_and_check(self) -> Parameter:
        if self.parameters is not None:
            _check_names(self.parameters)
            if not self.parameters:
                raise ValueError("nested `parameters` must name at least one parameter")
            return self
        if self.values is not None:
            for i, choice in enumerate(self.values):
                problem = _json_problem(choice)
                if problem:
                    raise ValueError(f"values[{i}]: {problem}")
        if self.distribution is None:
            self.distribution = self._inferred_distribution()
        dist = self.distribution
        if dist is Distribution.categorical:
            self._check_categorical()
        elif dist is Distribution.constant:
            # no `value` means null: Kubernetes drops a null from a nested parameter, so
            # `distribution: constant` alone is how a null constant survives the API server
            problem = _json_problem(self.value)
            if problem:
                raise ValueError(f"value: {problem}")
        elif dist in BOUNDED:
            self._check_bounds(dist)
        elif dist in GAUSSIAN:
            self._check_gaussian(dist)
        if dist is not Distribution.categorical and self.probabilities is not None:
            raise ValueError("`probabilities` only applies to `values` (categorical)")
        return self

    def _inferred_distribution(self) -> Distribution:
        if self.values is not None:
            return Distribution.categorical
        if "value" in self.model_fields_set:
            return Distribution.constant
        if self.min is not None and self.max is not None:
            if _is_integral(self.min) and _is_integral(self.max):
                return Distribution.int_uniform
            return Distribution.uniform
        if self.mu is not None or self.sigma is not None:
            return Distribution.normal
        raise ValueError(
            "cannot infer the distribution: give `values: [...]`, `value: X`, `min` and `max`, "
            "or set `distribution` explicitly"
        )

    def _check_categorical(self) -> None:
        if not self.values:
            raise ValueError("`values` must list at least one choice")
        if self.probabilities is not None:
            if len(self.probabilities) != len(self.values):
                raise ValueError(
                    f"`probabilities` has {len(self.probabilities)} entries but `values` has "
                    f"{len(self.values)}; give one probability per value"
                )
            if any(p < 0 for p in self.probabilities):
                raise ValueError("`probabilities` must be non-negative")
            total = sum(self.probabilities)
            if abs(total - 1.0) > PROBABILITY_TOLERANCE:
                raise ValueError(f"`probabilities` sum to {total:g}; they must sum to 1")

    def _check_gaussian(self, dist: Distribution) -> None:
        mu = self.mu if self.mu is not None else 0.0
        sigma = self.sigma if self.sigma is not None else 1.0
        reach = abs(mu) + GAUSSIAN_REACH * sigma
        log = dist in (Distribution.log_normal, Distribution.q_log_normal)
        limit = MAX_EXPONENT if log else MAX_GAUSSIAN
        if not reach < limit:
            what = f"exp(|mu| + {GAUSSIAN_REACH}·sigma)" if log else \
                f"|mu| + {GAUSSIAN_REACH}·sigma"
            raise ValueError(
                f"mu={mu:g}, sigma={sigma:g}: {dist.value} would draw values no float holds "
                f"({what} overflows); keep |mu| + {GAUSSIAN_REACH}·sigma below {limit:g}"
            )

    def _check_bounds(self, dist: Distribution) -> None:
        if self.min is None or self.max is None:
            raise ValueError(f"distribution {dist.value!r} needs both `min` and `max`")
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("`min` and `max` must be finite numbers")
        if self.min >= self.max:
            raise ValueError(
                f"min ({self.min:g}) must be less than max ({self.max:g}); swap them or widen "
                "the range"
            )
        if dist in LOG_BOUNDED and self.min <= 0:
            raise ValueError(
                f"{dist.value} needs min > 0 (got min={self.min:g}) because it samples in log "
                "space; use a positive lower bound such as 1e-5"
            )
        if dist is Distribution.int_uniform and not (
            float(self.min).is_integer() and float(self.max).is_integer()
        ):
            raise ValueError(
                f"int_uniform needs integer min and max (got {self.min:g}, {self.max:g}); use "
                "'uniform' for real numbers"
            )
        if dist in (Distribution.q_uniform, Distribution.q_log_uniform_values):
            q = self.q if self.q is not None else 1.0
            largest = max(abs(self.min), abs(self.max))
            plain = "uniform" if dist is Distribution.q_uniform else "log_uniform_values"
            if largest / q > MAX_Q_STEPS:
                # past 2**53 steps floats cannot tell neighbouring multiples of q apart (and
                # min/q, max/q overflow for the tiniest q): the step would mean nothing
                raise ValueError(
                    f"q={q:g} is too small for bounds up to {largest:g}: floats cannot tell "
                    f"its multiples apart there; use q >= {largest / MAX_Q_STEPS:.3g} or "
                    f"distribution {plain}"
                )
            if math.floor(self.max / q + 1e-9) < math.ceil(self.min / q - 1e-9):
                raise ValueError(
                    f"no multiple of q={q:g} lies between min {self.min:g} and max "
                    f"{self.max:g}, and {dist.value} only takes such multiples; widen the "
                    "range or use a smaller q"
                )


def _is_integral(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_problem(value: Any, depth: int = 0) -> str | None:
    """Why `value` is not a JSON value a trial can receive, or None when it is."""
    if depth > 32:
        return "nested too deeply"
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, list):
        return next((p for p in (_json_problem(v, depth + 1) for v in value) if p), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "object keys must be strings"
        return next((p for p in (_json_problem(v, depth + 1) for v in value.values()) if p),
                    None)
    return f"{type(value).__name__} is not a JSON value"


def _check_names(params: dict[str, Any]) -> None:
    for name in params:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(
                f"parameter name {name!r} must start with a letter or _ and contain only "
                "letters, digits, _, . and -"
            )


def flatten_parameters(params: dict[str, Parameter], prefix: str = "",
                       depth: int = 0) -> dict[str, Parameter]:
    """Every leaf parameter by its full name: nested ones as `outer.inner` (W&B's nesting)."""
    if depth > MAX_NESTING:
        raise ValueError(f"parameters nest deeper than {MAX_NESTING} levels")
    flat: dict[str, Parameter] = {}
    for name, param in params.items():
        full = f"{prefix}{name}"
        if param.parameters is not None:
            flat.update(flatten_parameters(param.parameters, f"{full}.", depth + 1))
        else:
            flat[full] = param
    return flat


def nest_params(values: dict[str, Any], params: dict[str, Parameter],
                prefix: str = "") -> dict[str, Any]:
    """A trial's flat `outer.inner` values as the nested objects its `parameters` declare."""
    out: dict[str, Any] = {}
    for name, param in params.items():
        full = f"{prefix}{name}"
        if param.parameters is not None:
            out[name] = nest_params(values, param.parameters, f"{full}.")
        elif full in values:
            out[name] = values[full]
    return out


class Goal(str, Enum):
    """Direction of optimisation."""

    maximize = "maximize"
    minimize = "minimize"


class Metric(_Model):
    """The metric to optimise, as printed by the trial (`name=value` or JSON lines)."""

    name: str = Field(..., min_length=1, description="Name of the metric the trial reports.")
    goal: Goal = Field(Goal.minimize, description="`maximize` or `minimize` (default).")
    target: float | None = Field(
        None, description="Stop the sweep once a trial reaches this value (≥ for maximize)."
    )
    summary: Literal["last", "best"] = Field(
        "last", description="Trial value: the `last` (default) or `best` value it reported."
    )
    impute: Literal["worst", "best", "latest"] = Field(
        "worst", description="Value bayes assumes for a failed trial (as W&B): `worst` (default: "
        "the worst value of any trial), `best` or `latest` (the best or last value the failed "
        "trial reported before it failed; the worst value when it reported none).",
    )
    imputeWhileRunning: Literal["false", "worst", "best", "latest"] = Field(
        "false", validation_alias=AliasChoices("imputeWhileRunning", "impute_while_running"),
        description="bayes: also model running trials, at this value of what they reported "
        "so far (`false`, the default, treats them as pending).",
    )

    @field_validator("imputeWhileRunning", mode="before")
    @classmethod
    def _false_as_string(cls, value: Any) -> Any:
        # W&B's schema spells it "false"; YAML reads a bare `false` as a boolean
        return "false" if value is False else value


class Constraint(_Model):
    """A bound on a metric the trials report: a trial outside it is infeasible."""

    metric: str = Field(..., min_length=1,
                        description="Name of the metric the trial reports, e.g. gpu_mem_gb.")
    max: float | None = Field(None, description="Largest feasible value (inclusive).")
    min: float | None = Field(None, description="Smallest feasible value (inclusive).")

    @model_validator(mode="after")
    def _check(self) -> Constraint:
        if self.max is None and self.min is None:
            raise ValueError(f"constraint on {self.metric!r} needs `max`, `min` or both")
        for key in ("max", "min"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"constraint on {self.metric!r}: {key} must be a finite "
                                 f"number (got {value})")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"constraint on {self.metric!r}: min ({self.min:g}) must not "
                             f"exceed max ({self.max:g})")
        return self

    def violation(self, value: float | None) -> float:
        """How far `value` is outside the bounds (<= 0: feasible; NaN: not reported)."""
        if value is None or not math.isfinite(value):
            return math.nan
        worst = -math.inf
        if self.max is not None:
            worst = max(worst, value - self.max)
        if self.min is not None:
            worst = max(worst, self.min - value)
        return worst


class WarmStart(_Model):
    """Finished trials of earlier sweeps that seed the model (never counted as this
    sweep's trials: no budget, no best)."""

    sweeps: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="Earlier sweeps by name: Sweeps in the same namespace on a cluster; "
        "locally the results of `kubesweep run` for that name (kubesweep-results/NAME/).",
    )
    results: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="Local only: results files (trials.jsonl) or their directories, "
        "relative to the working directory. The operator refuses it (it cannot read your "
        "files); use `sweeps` on a cluster.",
    )

    @model_validator(mode="after")
    def _check(self) -> WarmStart:
        if not self.sweeps and not self.results:
            raise ValueError("warmStart needs `sweeps: [NAME, ...]` or `results: [PATH, ...]`")
        return self


class EarlyTerminate(_Model):
    """Stop trials early when their intermediate values are poor."""

    type: Literal["hyperband", "median"] = Field(..., description="`hyperband` or `median`.")
    minIter: int | None = Field(
        None, ge=1, validation_alias=AliasChoices("minIter", "min_iter"),
        description="hyperband: first bracket at this step. median: steps before any stop.",
    )
    maxIter: int | None = Field(
        None, ge=1, validation_alias=AliasChoices("maxIter", "max_iter"),
        description="hyperband: the last step a trial can run (brackets are derived from it).",
    )
    eta: float = Field(3.0, gt=1, description="hyperband: keep the best 1/eta at each bracket.")
    s: int | None = Field(None, ge=1, description="hyperband with maxIter: number of brackets.")
    strict: bool = Field(
        True, description="hyperband: compare the value at the bracket (default, as W&B) "
        "instead of the trial's best value so far."
    )
    minTrials: int = Field(
        5, ge=1, validation_alias=AliasChoices("minTrials", "min_trials"),
        description="median: finished trials needed before any trial is stopped.",
    )

    @model_validator(mode="after")
    def _check(self) -> EarlyTerminate:
        if self.type == "hyperband":
            if self.minIter is None and self.maxIter is None:
                raise ValueError("hyperband needs `minIter` (or `maxIter` with `s`)")
            if self.minIter is None and self.s is None:
                raise ValueError("hyperband with `maxIter` also needs `s` (number of brackets)")
            if self.minIter is not None and self.maxIter is not None and \
                    self.minIter >= self.maxIter:
                raise ValueError(
                    f"minIter ({self.minIter}) must be less than maxIter ({self.maxIter})"
                )
        return self


class TrialResources(_Model):
    """Resources requested by each trial's primary container (merged into the template)."""

    gpu: int | None = Field(None, ge=0, description="GPUs per trial.")
    cpu: str | int | float | None = Field(None, description="CPU request, e.g. `2` or `500m`.")
    memory: str | None = Field(None, description="Memory request, e.g. `4Gi`.")
    gpuResourceName: str = Field(
        DEFAULT_GPU_RESOURCE, description="Extended resource name for GPUs (default: the "
        "operator's --gpu-resource-name)."
    )


class SweepSpec(_Model):
    """What to tune, how, against which metric, with which budget, and how to run one trial."""

    method: Literal["grid", "random", "bayes"] = Field(
        ..., description="Search strategy: `grid`, `random` or `bayes` (Bayesian optimisation)."
    )
    metric: Metric | None = Field(
        None, description="The metric to optimise. Required for bayes and earlyTerminate "
        "(unless `metrics` is given); grid and random sweeps without one run their budget "
        "and record every metric. In a file, `metric` may also be a list (it becomes "
        "`metrics`).",
    )
    metrics: list[Metric] | None = Field(
        None, min_length=2, description="Several objectives (instead of `metric`): bayes "
        "improves their Pareto front; the status lists the Pareto-optimal trials. Each "
        "takes `name` and `goal` (`target`, `summary: best` and earlyTerminate need a single "
        "metric).",
    )
    constraints: list[Constraint] | None = Field(
        None, min_length=1, description="Bounds on reported metrics: a trial outside them "
        "(or not reporting the metric) is infeasible and never the best; bayes models the "
        "probability that a trial is feasible.",
    )
    warmStart: WarmStart | None = Field(
        None, validation_alias=AliasChoices("warmStart", "warm_start"),
        description="Seed the model with finished trials of earlier sweeps whose parameters "
        "fit this space (bayes; they count toward neither budget nor best).",
    )
    parameters: dict[str, Parameter] = Field(
        ..., min_length=1, description="Hyperparameters by name, each with its distribution."
    )
    maxTrials: int | None = Field(
        None, ge=1, le=MAX_TRIALS, validation_alias=AliasChoices("maxTrials", "run_cap"),
        description="Trial budget. Required for random and bayes; grid defaults to its size.",
    )
    parallelism: int = Field(1, ge=1, le=MAX_PARALLELISM,
                             description="Trials running at the same time.")
    maxFailedTrials: int | None = Field(
        None, ge=0, le=MAX_TRIALS,
        description="Fail the sweep once more trials than this have failed. Unset: the "
        "sweep fails when its first 5 finished trials all failed (a broken command or image "
        "does not use up the budget); set it to allow more failures."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the strategy's random numbers.")
    earlyTerminate: EarlyTerminate | None = Field(
        None, validation_alias=AliasChoices("earlyTerminate", "early_terminate")
    )
    trialTemplate: dict[str, Any] = Field(
        ..., description="A batch/v1 Job template (`spec.template.spec.containers[...]`) run "
        "once per trial; `${params.NAME}` in command, args and env is replaced by the value.",
    )
    primaryContainer: str | None = Field(
        None, description="Container that runs the trial (default: the first one)."
    )
    trialResources: TrialResources | None = None
    trialRetries: int = Field(
        2, ge=0, description="Re-runs of a trial whose pod was evicted or preempted."
    )

    @model_validator(mode="before")
    @classmethod
    def _metric_list(cls, data: Any) -> Any:
        # `metric: [..]` in a file means several objectives; one entry is just `metric`.
        # The CRD cannot type a field as "object or list", so the cluster form is `metrics`.
        if isinstance(data, dict) and isinstance(data.get("metric"), list):
            data = dict(data)
            items = data.pop("metric")
            if "metrics" in data:
                raise ValueError("metric: give either a list in `metric` or `metrics`, not both")
            if len(items) == 1:
                data["metric"] = items[0]
            else:
                data["metrics"] = items
        return data

    @field_validator("method", mode="before")
    @classmethod
    def _custom_method(cls, method: Any) -> Any:
        # a W&B parameters block pasted with its method: name the W&B feature, not the enum
        if method == "custom":
            raise ValueError(
                "`custom` is W&B's method for its Optuna/Ax schedulers, a W&B feature "
                "kubesweep does not support; use grid, random or bayes"
            )
        return method

    @field_validator("parameters")
    @classmethod
    def _check_names(cls, params: dict[str, Parameter]) -> dict[str, Parameter]:
        _check_names(params)
        flat = flatten_parameters(params)
        # a flat name "a.b" and a nested a: {parameters: {b: ...}} would be one trial value
        if len(flat) != _count_leaves(params):
            clash = sorted({n for n in flat if "." in n})
            raise ValueError(
                f"two parameters have the same full name ({', '.join(clash)}); a name with a "
                "dot collides with a nested parameter of that path: rename one"
            )
        return params

    @property
    def leaf_parameters(self) -> dict[str, Parameter]:
        """Every searched parameter by its full name (nested ones as `outer.inner`)."""
        return flatten_parameters(self.parameters)

    @property
    def objective(self) -> str | None:
        """The name of the metric the sweep optimises, None when it only explores (or
        optimises several: see `objectives`)."""
        return self.metric.name if self.metric is not None else None

    @property
    def objectives(self) -> list[Metric]:
        """Every metric optimised: the `metrics` list, `[metric]`, or [] when exploring."""
        if self.metrics:
            return list(self.metrics)
        return [self.metric] if self.metric is not None else []

    @property
    def multi_objective(self) -> bool:
        """True when the sweep optimises several metrics (a Pareto front, no single best)."""
        return len(self.objectives) > 1

    def _check_objectives(self) -> None:
        if self.metrics is None:
            return
        if self.metric is not None:
            raise ValueError("metrics: give either `metric` (one objective) or `metrics` "
                             "(several), not both")
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metrics: {', '.join(dupes)} listed twice; each objective once")
        for i, m in enumerate(self.metrics):
            if m.target is not None:
                raise ValueError(f"metrics[{i}].target: a target needs a single metric (with "
                                 "several there is no single best trial to compare)")
            if m.summary != "last":
                raise ValueError(f"metrics[{i}].summary: only `last` with several metrics")
            if m.impute != "worst" or m.imputeWhileRunning != "false":
                raise ValueError(f"metrics[{i}]: impute and imputeWhileRunning need a single "
                                 "metric (with several, a failed trial is left out of the "
                                 "front and bayes treats it as worst)")
        if self.earlyTerminate is not None:
            raise ValueError("metrics: earlyTerminate needs a single metric (it ranks trials "
                             "by one curve); remove earlyTerminate or use `metric`")

    @model_validator(mode="after")
    def _check_method_and_template(self) -> SweepSpec:
        self._check_objectives()
        if self.constraints is not None:
            objectives = {m.name for m in self.objectives}
            for i, c in enumerate(self.constraints):
                if c.metric in objectives:
                    raise ValueError(
                        f"constraints[{i}].metric: {c.metric!r} is an objective; constrain "
                        "another metric (or use a target)")
        if self.warmStart is not None and self.method != "bayes":
            raise ValueError(f"warmStart: only method bayes learns from earlier trials "
                             f"(method is {self.method!r}); remove warmStart or use bayes")
        if not self.objectives:
            if self.method == "bayes":
                raise ValueError(
                    "metric: required for method 'bayes' (the metric it models, e.g. "
                    "metric: {name: val_loss, goal: minimize}); grid and random may omit it"
                )
            if self.earlyTerminate is not None:
                raise ValueError(
                    "metric: required by earlyTerminate (it compares trials by the metric)"
                )
        if self.method == "grid":
            self._check_grid()
        elif self.maxTrials is None:
            raise ValueError(
                f"maxTrials: required for method {self.method!r} (the trial budget, e.g. "
                "maxTrials: 30)"
            )
        self._check_template()
        return self

    def _check_grid(self) -> None:
        from kubesweep.space import Space  # local: space depends on this module

        for name, param in self.leaf_parameters.items():
            if param.distribution not in GRIDDABLE:
                raise ValueError(
                    f"parameters.{name}: grid search needs discrete values but "
                    f"{param.distribution.value!r} is continuous; use `values: [...]`, "
                    "int_uniform or q_uniform, or method random/bayes"
                )
            if param.probabilities is not None:
                raise ValueError(
                    f"parameters.{name}: `probabilities` has no meaning in a grid search (it "
                    "visits every value once; W&B refuses it too); remove it, or use method "
                    "random/bayes"
                )
        size = Space(self.parameters).grid_size()
        if size > MAX_GRID_POINTS:
            raise ValueError(
                f"parameters: the grid has {size:,} points, more than the limit of "
                f"{MAX_GRID_POINTS:,}; use fewer values or method random/bayes"
            )
        if self.maxTrials is None and size > MAX_TRIALS:
            raise ValueError(
                f"parameters: the grid has {size:,} points, more than the {MAX_TRIALS:,} trials "
                "one sweep can hold; set maxTrials to run part of it, or use fewer values"
            )

    def _check_template(self) -> None:
        container = self.primary_container()
        _refuse_nul_bytes(container)
        items = [str(x) for key in ("command", "args") for x in container.get(key) or []]
        for text in template_strings(container):
            for ref in PLACEHOLDER.findall(text):
                ref = ref.strip()
                if ref in ARGS_PLACEHOLDERS:
                    if f"${{{ref}}}" not in items:
                        raise ValueError(
                            f"trialTemplate: ${{{ref}}} expands to several arguments, so it "
                            "must be a command or args item of its own (as W&B's agent needs)"
                        )
                    if ref == "args_json_file" and not container.get("command"):
                        raise ValueError(
                            "trialTemplate: ${args_json_file} needs the container's `command` "
                            "(the file is written before it runs)"
                        )
                elif ENVVAR.fullmatch(ref):
                    pass
                elif ref.startswith("params."):
                    name = ref[len("params."):]
                    if name not in self.leaf_parameters and name not in self.parameters:
                        known = ", ".join(sorted(self.leaf_parameters))
                        raise ValueError(
                            f"trialTemplate: placeholder ${{{ref}}} names no parameter; "
                            f"parameters are: {known}"
                        )
                elif ref not in TRIAL_PLACEHOLDERS:
                    raise ValueError(
                        f"trialTemplate: unknown placeholder ${{{ref}}}; use ${{params.NAME}}, "
                        f"${{envvar:NAME}} or one of "
                        f"{', '.join('${' + p + '}' for p in TRIAL_PLACEHOLDERS)}, "
                        f"{', '.join('${' + p + '}' for p in ARGS_PLACEHOLDERS)}"
                    )

    def primary_container(self) -> dict[str, Any]:
        """The container that runs the trial: the named one, else the first."""
        try:
            containers = self.trialTemplate["spec"]["template"]["spec"]["containers"]
        except (KeyError, TypeError):
            raise ValueError(
                "trialTemplate: must be a Job template with spec.template.spec.containers"
            ) from None
        if not isinstance(containers, list) or not containers:
            raise ValueError("trialTemplate.spec.template.spec.containers: must list a container")
        if self.primaryContainer is None:
            return containers[0]
        for container in containers:
            if container.get("name") == self.primaryContainer:
                return container
        names = ", ".join(str(c.get("name")) for c in containers)
        raise ValueError(
            f"primaryContainer: {self.primaryContainer!r} is not in trialTemplate; "
            f"containers are: {names}"
        )

    @property
    def budget(self) -> int:
        """The number of trials the sweep runs at most."""
        if self.maxTrials is not None:
            return self.maxTrials
        from kubesweep.space import Space

        return Space(self.parameters).grid_size()


def _count_leaves(params: dict[str, Parameter]) -> int:
    return sum(_count_leaves(p.parameters) if p.parameters is not None else 1
               for p in params.values())


def _refuse_nul_bytes(container: dict[str, Any]) -> None:
    """A NUL byte cannot reach a program (argv and the environment are C strings): the
    local runner would fail to start the trial and the kubelet to create the container,
    so refuse it here, naming the item."""
    name = container.get("name", "?")
    for key in ("command", "args"):
        for i, item in enumerate(container.get(key) or []):
            if "\0" in str(item):
                raise ValueError(
                    f"trialTemplate: container {name!r} {key}[{i}] contains a NUL byte "
                    f"(\\x00): {str(item)!r}; no program can receive one in its arguments, "
                    "remove it")
    for i, env in enumerate(container.get("env") or []):
        if isinstance(env, dict) and "\0" in str(env.get("value", "")) + str(env.get("name", "")):
            raise ValueError(
                f"trialTemplate: container {name!r} env[{i}] ({env.get('name')!r}) contains "
                "a NUL byte (\\x00); no program can receive one in its environment, remove it")


def template_strings(container: dict[str, Any]) -> list[str]:
    """Every string of a container where placeholders are substituted."""
    texts = [str(x) for x in container.get("command") or []]
    texts += [str(x) for x in container.get("args") or []]
    texts += [str(e.get("value", "")) for e in container.get("env") or [] if "value" in e]
    return texts


class SearchSpec(SweepSpec):
    """A spec for the ask/tell `Tuner` alone: `trialTemplate` (how a trial runs) is a back
    end's concern, so it may be left out here."""

    trialTemplate: dict[str, Any] | None = Field(  # type: ignore[assignment]
        None, description=SweepSpec.model_fields["trialTemplate"].description)

    def _check_template(self) -> None:
        if self.trialTemplate is not None:
            super()._check_template()


#: What Kubernetes accepts as the name of a custom resource (a DNS-1123 subdomain).
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_SUBDOMAIN = 253


class ObjectMeta(BaseModel):
    """The parts of metadata kubesweep reads; the rest passes through."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    namespace: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str | None) -> str | None:
        # the API server refuses other names; refusing them locally too keeps one
        # manifest valid (or not) in both places, and the name is a results directory
        if name is not None and (len(name) > MAX_SUBDOMAIN or not DNS_SUBDOMAIN.fullmatch(name)):
            shown = name if len(name) <= 80 else name[:77] + "..."
            raise ValueError(
                f"{shown!r} is not a valid Kubernetes name: use at most {MAX_SUBDOMAIN} "
                "lowercase letters, digits, '-' and '.', starting and ending with a letter "
                "or digit (e.g. digits-mlp)")
        return name


class Sweep(_Model):
    """A whole Sweep manifest."""

    apiVersion: Literal["kubesweep.io/v1alpha1"] = API_VERSION
    kind: Literal["Sweep"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SweepSpec
    status: dict[str, Any] | None = None


class SpecError(ValueError):
    """A manifest that fails validation; `problems` holds (field path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{path}: {msg}" if path else msg for path, msg in problems))


_FIELD_PREFIX = re.compile(
    r"^((?:parameters|trialTemplate|maxTrials|primaryContainer|metric|metrics|constraints|"
    r"warmStart)[\w.\[\]-]*): (.*)$", re.S
)


def _format_loc(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif isinstance(item, str) and not item.startswith(("function-", "constrained-")) \
                and item not in {"str", "int", "float", "bool"} and not item.startswith("Strict"):
            parts.append(item)
    return ".".join(parts)


def _errors(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _format_loc(loc, prefix)
        msg = err["msg"].removeprefix("Value error, ")
        # model-level checks name their own field as "field.path: message"
        field_in_msg = _FIELD_PREFIX.match(msg)
        if field_in_msg:
            path = ".".join(p for p in (path, field_in_msg.group(1)) if p)
            msg = field_in_msg.group(2)
        if err["type"] == "extra_forbidden":
            path = _format_loc(loc[:-1], prefix) or prefix
            msg = f"unknown field {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in {"value_error", "assertion_error"}:
            msg = f"{msg} (got {err['input']!r})"
        key = f"{path}|{msg}"
        # a Scalar union reports once per member type; keep the first.
        if path in seen and err["type"].endswith("_type"):
            continue
        seen.add(path)
        if key not in {f"{p}|{m}" for p, m in problems}:
            problems.append((path, msg))
    return problems


def parse_spec(data: Any) -> SweepSpec:
    """Validate a Sweep manifest, or just its `spec`, into a SweepSpec (raises SpecError)."""
    if isinstance(data, SweepSpec):
        return data
    if isinstance(data, Sweep):
        return data.spec
    if not isinstance(data, dict):
        raise SpecError([("", f"a Sweep must be a mapping, got {type(data).__name__}")])
    if "spec" in data or "kind" in data or "apiVersion" in data:
        return parse_sweep(data).spec
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_errors(exc, "spec")) from None


def parse_search_spec(data: Any) -> SweepSpec:
    """Validate a spec for the `Tuner`: like `parse_spec`, but `trialTemplate` may be left
    out (a SearchSpec is returned then)."""
    if isinstance(data, SweepSpec):
        return data
    if isinstance(data, dict) and not ("spec" in data or "kind" in data or
                                       "apiVersion" in data) and "trialTemplate" not in data:
        try:
            return SearchSpec.model_validate(data)
        except ValidationError as exc:
            raise SpecError(_errors(exc, "spec")) from None
    return parse_spec(data)


def parse_sweep(data: Any) -> Sweep:
    """Validate a whole Sweep manifest (raises SpecError naming each bad field)."""
    if not isinstance(data, dict):
        raise SpecError([("", f"a Sweep must be a mapping, got {type(data).__name__}")])
    if data.get("kind", KIND) != KIND:
        raise SpecError([("kind", f"expected {KIND!r}, got {data.get('kind')!r}")])
    if data.get("apiVersion", API_VERSION) != API_VERSION:
        raise SpecError(
            [("apiVersion", f"expected {API_VERSION!r}, got {data.get('apiVersion')!r}")]
        )
    try:
        return Sweep.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_errors(exc, "")) from None
