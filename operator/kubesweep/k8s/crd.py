"""The Sweep CustomResourceDefinition, generated from the pydantic spec models.

The spec models are the single source of truth: this module turns their JSON schema into
a *structural* OpenAPI v3 schema the apiserver accepts (every node typed, `$ref`s inlined,
optional fields without the `null` branch), and adds what JSON schema cannot say: CEL
rules (`x-kubernetes-validations`) for the cross-field checks, printer columns, the short
name and the status subresource. `kubesweep crd` prints the result; `crds/` holds a copy
that a unit test keeps in sync.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from kubesweep.k8s.status import PARETO_LISTED
from kubesweep.rules import MUTABLE_FIELDS
from kubesweep.spec import API_GROUP, KIND, LOG_BOUNDED, Distribution, SweepSpec

PLURAL = "sweeps"
SINGULAR = "sweep"
SHORT_NAMES = ["sw"]
VERSION = "v1alpha1"
CRD_NAME = f"{PLURAL}.{API_GROUP}"

#: Keys of a pydantic JSON schema node that carry over to OpenAPI v3 unchanged.
_KEEP = ("type", "description", "enum", "minimum", "maximum", "minLength", "maxLength",
         "pattern", "format", "minItems", "maxItems", "minProperties", "maxProperties")

_LOG = ", ".join(f"'{d.value}'" for d in sorted(LOG_BOUNDED, key=lambda d: d.value))
_BOUNDED_NAMES = ("int_uniform", "uniform", "q_uniform", "log_uniform_values",
                  "q_log_uniform_values", "inv_log_uniform_values")
_BOUNDED = ", ".join(f"'{d}'" for d in _BOUNDED_NAMES)


def _rule(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


#: Cross-field checks of each model, as CEL. They mirror the model validators in
#: kubesweep.spec (same wording) so `kubectl apply` refuses what `kubesweep validate` does.
RULES: dict[str, list[dict[str, str]]] = {
    "Parameter": [
        _rule("!has(self.min) || !has(self.max) || self.min < self.max",
              "min must be less than max; swap them or widen the range", ".min"),
        _rule(f"!has(self.distribution) || !(self.distribution in [{_LOG}]) || "
              "(has(self.min) && self.min > 0.0)",
              "log distributions need min > 0 because they sample in log space; use a "
              "positive lower bound such as 1e-5", ".min"),
        _rule(f"!has(self.distribution) || !(self.distribution in [{_BOUNDED}]) || "
              "(has(self.min) && has(self.max))",
              "this distribution needs both min and max"),
        _rule("!has(self.distribution) || self.distribution != 'int_uniform' || "
              "!has(self.min) || !has(self.max) || "
              "(self.min == double(int(self.min)) && self.max == double(int(self.max)))",
              "int_uniform needs integer min and max; use 'uniform' for real numbers"),
        _rule("!has(self.probabilities) || (self.probabilities.sum() > 0.999999 && "
              "self.probabilities.sum() < 1.000001)",
              "probabilities must sum to 1", ".probabilities"),
        _rule("!has(self.probabilities) || self.probabilities.all(p, p >= 0.0)",
              "probabilities must be non-negative", ".probabilities"),
        # (`values` and `value` are untyped, so CEL cannot see them: the operator checks)
        _rule("!has(self.parameters) || (!has(self.distribution) && "
              "!has(self.min) && !has(self.max) && !has(self.q) && !has(self.mu) && "
              "!has(self.sigma) && !has(self.a) && !has(self.b) && !has(self.probabilities))",
              "a parameter with nested `parameters` takes no other keys; put them on the "
              "nested parameters"),
    ],
    "Constraint": [
        _rule("has(self.max) || has(self.min)", "a constraint needs `max`, `min` or both"),
        _rule("!has(self.max) || !has(self.min) || self.min <= self.max",
              "min must not exceed max", ".min"),
    ],
    "WarmStart": [
        _rule("(has(self.sweeps) && size(self.sweeps) > 0) || "
              "(has(self.results) && size(self.results) > 0)",
              "warmStart needs `sweeps: [NAME, ...]` or `results: [PATH, ...]`"),
    ],
    "EarlyTerminate": [
        _rule("self.type != 'hyperband' || has(self.minIter) || has(self.maxIter)",
              "hyperband needs `minIter` (or `maxIter` with `s`)"),
        _rule("self.type != 'hyperband' || has(self.minIter) || !has(self.maxIter) || "
              "has(self.s)", "hyperband with `maxIter` also needs `s` (number of brackets)"),
        _rule("!has(self.minIter) || !has(self.maxIter) || self.minIter < self.maxIter",
              "minIter must be less than maxIter", ".minIter"),
    ],
    "SweepSpec": [
        _rule("self.method == 'grid' || has(self.maxTrials)",
              "maxTrials is required for method random and bayes (the trial budget, e.g. "
              "maxTrials: 30)", ".maxTrials"),
        _rule("self.method != 'bayes' || has(self.metric) || has(self.metrics)",
              "metric is required for method bayes (the metric it models); grid and random "
              "may omit it", ".metric"),
        _rule("!has(self.earlyTerminate) || has(self.metric)",
              "metric is required by earlyTerminate (it compares trials by the metric; "
              "earlyTerminate needs a single metric, not `metrics`)", ".metric"),
        _rule("!has(self.metric) || !has(self.metrics)",
              "give either `metric` (one objective) or `metrics` (several), not both",
              ".metrics"),
        _rule("!has(self.metrics) || self.metrics.all(m, !has(m.target))",
              "a target needs a single metric (with several there is no single best trial "
              "to compare)", ".metrics"),
        _rule("!has(self.metrics) || self.metrics.all(m, !has(m.summary) || "
              "m.summary == 'last')", "only `summary: last` with several metrics",
              ".metrics"),
        _rule("!has(self.metrics) || self.metrics.all(m, (!has(m.impute) || "
              "m.impute == 'worst') && (!has(m.imputeWhileRunning) || "
              "m.imputeWhileRunning == 'false'))",
              "impute and imputeWhileRunning need a single metric", ".metrics"),
        _rule("!has(self.warmStart) || self.method == 'bayes'",
              "only method bayes learns from earlier trials; remove warmStart or use bayes",
              ".warmStart"),
        _rule("!has(self.warmStart) || !has(self.warmStart.results)",
              "warmStart.results names local files, which the operator cannot read; name "
              "earlier Sweeps of this namespace in warmStart.sweeps instead",
              ".warmStart.results"),
        _rule("self.method != 'grid' || self.parameters.all(k, "
              "!has(self.parameters[k].probabilities))",
              "probabilities have no meaning in a grid search (it visits every value once; "
              "W&B refuses it too); remove them, or use method random/bayes", ".parameters"),
        _rule("self.parameters.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_.-]*$'))",
              "parameter names must start with a letter or _ and contain only letters, "
              "digits, _, . and -", ".parameters"),
        # generated from rules.MUTABLE_FIELDS (see immutability_rule)
    ],
}

def immutability_rule() -> dict[str, str]:
    """The CEL rule refusing a change to any spec field but `rules.MUTABLE_FIELDS`.

    The recorded trials were suggested for the old spec and would no longer mean
    anything. A field with a default compares equal whether it is written or not.
    """
    parts = []
    for name, info in SweepSpec.model_fields.items():
        if name in MUTABLE_FIELDS:
            continue
        if info.is_required():
            parts.append(f"self.{name} == oldSelf.{name}")
        elif isinstance(info.default, (int, str)) and not isinstance(info.default, bool):
            default = repr(info.default) if isinstance(info.default, str) else info.default
            parts.append(f"(has(self.{name}) ? self.{name} : {default}) == "
                         f"(has(oldSelf.{name}) ? oldSelf.{name} : {default})")
        else:
            parts.append(f"has(self.{name}) == has(oldSelf.{name}) && "
                         f"(!has(self.{name}) || self.{name} == oldSelf.{name})")
    return _rule(" && ".join(parts),
                 f"only {', '.join(MUTABLE_FIELDS)} may change once a Sweep is created; "
                 "to change the search, create a new Sweep")


RULES["SweepSpec"].append(immutability_rule())

#: trialTemplate is a whole batch/v1 Job template: keep it free-form (the Job API
#: validates it when the Job is created) but require the containers a trial needs.
_OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
TRIAL_TEMPLATE_SCHEMA: dict[str, Any] = {
    **_OPEN,
    "required": ["spec"],
    "properties": {"spec": {
        **_OPEN,
        "description": "The Job spec (batch/v1 JobSpec).",
        "required": ["template"],
        "properties": {"template": {
            **_OPEN,
            "required": ["spec"],
            "properties": {"spec": {
                **_OPEN,
                "required": ["containers"],
                "properties": {"containers": {
                    "type": "array",
                    "minItems": 1,
                    "description": "The pod's containers; the primary one runs the trial.",
                    "items": {**_OPEN, "required": ["name"]},
                }},
            }},
        }},
    }},
}

#: A parameter value: any JSON value. OpenAPI has no such union, so the node is untyped
#: (the apiserver then hides it from CEL too: rules cannot look at `values` or `value`;
#: the operator's own validation reports those mistakes in the status).
SCALAR_SCHEMA: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
#: The same for the spec's values, where null is a valid choice (W&B allows any JSON value).
ANY_SCHEMA: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True, "nullable": True}

#: Size limits the apiserver needs to bound the cost of CEL rules (JSON schema paths
#: below spec). Far above anything a sweep uses; the grid's own limit is stricter.
LIMITS: dict[tuple[str, ...], dict[str, int]] = {
    ("parameters",): {"maxProperties": 100},
    ("parameters", "*", "values"): {"maxItems": 10000},
    ("parameters", "*", "probabilities"): {"maxItems": 10000},
    ("metrics",): {"maxItems": 16},
    ("constraints",): {"maxItems": 64},
    ("warmStart", "sweeps"): {"maxItems": 64},
    ("warmStart", "results"): {"maxItems": 64},
}
#: Longest string any spec field takes (a bound for the CEL cost estimate).
MAX_STRING = 1024


def _status_schema() -> dict[str, Any]:
    num = {"type": "number"}
    integer = {"type": "integer"}
    text = {"type": "string"}
    params = {**_OPEN, "description": "Parameter values by name."}
    trial = {
        "type": "object",
        "properties": {
            "name": {**text, "description": "Trial (and Job) name."},
            "index": {**integer, "description": "Trial number, from 0."},
            "state": {**text, "description": "pending, running, succeeded, failed or stopped."},
            "value": {**num, "description": "The trial's value of the objective metric."},
            "params": params,
            "metrics": {"type": "object", "additionalProperties": num,
                        "description": "Latest value of every metric the trial reported."},
            "reason": {**text, "description": "Why the trial failed or was stopped."},
        },
    }
    counts = {"type": "object", "description": "Trials by state.", "properties": {
        s: {**integer} for s in ("created", "pending", "running", "succeeded", "failed",
                                 "stopped", "unschedulable")}}
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": text, "status": {**text, "enum": ["True", "False", "Unknown"]},
            "reason": text, "message": text, "observedGeneration": integer,
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "type": "object",
        "description": "Observed state of the sweep, written by the operator.",
        "properties": {
            "phase": {**text, "enum": ["Pending", "Running", "Succeeded", "Failed"],
                      "description": "Pending, Running, Succeeded or Failed."},
            "observedGeneration": {**integer,
                                   "description": "metadata.generation the status reflects."},
            "progress": {**text, "description": "Finished trials / trial budget, e.g. 7/20."},
            "trials": counts,
            "bestValue": {**num, "description": "Best value of the objective so far."},
            "bestTrial": {**trial, "description": "The succeeded trial with the best value."},
            "recentTrials": {"type": "array", "items": trial,
                             "description": "The most recent trials, newest last."},
            "history": {
                "type": "object",
                "description": "Every finished trial's parameters, state and value, in a "
                "compact columnar form (see docs/operator.md; `kubesweep.k8s.history`).",
                "properties": {
                    "format": {**text, "description": "Encoding version."},
                    "count": {**integer, "description": "Trials recorded."},
                    "indices": {**text, "description": "Trial numbers (zlib-compressed, base64 "
                                "uint32)."},
                    "states": {**text, "description": "One letter per trial: s(ucceeded), "
                               "f(ailed), x (stopped)."},
                    "values": {**text, "description": "Objective values (zlib-compressed, "
                               "base64 float64, "
                               "NaN when none)."},
                    "params": {"type": "object", "additionalProperties": {
                        "type": "object", "properties": {
                            "type": {**text, "description": "f4, f8, i4, i8, json, or "
                                     "c1/c2/c4 (index into choices)."},
                            "choices": {"type": "array", "items": SCALAR_SCHEMA},
                            "data": {**text, "description": "zlib-compressed, base64 "
                                     "little-endian array (JSON text for type json)."},
                        }}},
                    "reasons": {"type": "object", "additionalProperties": text,
                                "description": "Why each of the 50 newest failed or stopped "
                                "trials ended, by trial index (written by earlier versions; "
                                "now reasonsPacked)."},
                    "reasonsPacked": {**text, "description": "Why each failed or stopped "
                                      "trial ended: zlib-compressed, base64 JSON list of "
                                      "[index, reason], the newest trials' within 32 KiB."},
                    "curves": {"type": "object", "additionalProperties": text,
                               "description": "Intermediate (step, value) reports by trial "
                               "index, the newest trials' within a size budget, for early "
                               "termination and the report (zlib-compressed, base64 "
                               "little-endian float64 (step, value) pairs)."},
                    "durations": {**text, "description": "Seconds each trial ran "
                                  "(zlib-compressed, base64 float32, NaN when unknown)."},
                    "metrics": {"type": "object", "additionalProperties": text,
                                "description": "Last value of each trial's other metrics, "
                                "by metric name (up to 8 names, plus every objective and "
                                "constrained metric; zlib-compressed, base64 little-endian "
                                "float32, NaN when a trial did not report it; float64 "
                                "prefixed `f8:` when float32 cannot hold a value)."},
                },
            },
            "paretoFront": {
                "type": "object",
                "description": "With several objectives: the succeeded, feasible trials no "
                "other trial beats on every objective.",
                "properties": {
                    "size": {**integer, "description": "Trials on the front."},
                    "indices": {"type": "array", "items": integer,
                                "description": "Their trial numbers, ascending."},
                    "trials": {"type": "array", "items": trial,
                               "description": f"The first {PARETO_LISTED} of them with their "
                               "metrics and parameters."},
                },
            },
            "warmStart": {
                "type": "object",
                "description": "Trials of the Sweeps named in spec.warmStart.sweeps that "
                "seed the model.",
                "properties": {
                    "trials": {**integer, "description": "Earlier trials the model uses "
                               "(succeeded, fit this space, report every objective)."},
                    "read": {**integer, "description": "Finished trials read from them."},
                    "missing": {"type": "array", "items": text,
                                "description": "Named Sweeps not found in the namespace."},
                },
            },
            "specHashes": {"type": "object", "additionalProperties": text,
                           "description": "Hash of each spec field that may not change."},
            "startTime": {"type": "string", "format": "date-time"},
            "completionTime": {"type": "string", "format": "date-time"},
            "conditions": {
                "type": "array", "items": condition,
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "description": "Running, Succeeded, Failed, SpecAccepted, StatusRecovered (a "
                "corrupt status was rebuilt from the Jobs): standard conditions.",
            },
        },
    }


def _convert(node: dict[str, Any], defs: dict[str, Any], name: str | None = None,
             within: tuple[str, ...] = ()) -> dict:
    """One pydantic JSON schema node as a structural OpenAPI v3 schema node.

    `within` holds the models being converted: a structural schema cannot recurse, so a
    model nested in itself (a Parameter's nested `parameters`) is typed one level deep and
    open below; the operator's own validation checks the deeper levels.
    """
    if "$ref" in node:
        ref = node["$ref"].rsplit("/", 1)[-1]
        if ref in within:
            out = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            if node.get("description"):
                out["description"] = node["description"]
            return out
        out = _convert(defs[ref], defs, ref, within + (ref,))
        if node.get("description"):
            out["description"] = node["description"]
        return out
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        types = {b.get("type") for b in branches}
        if len(branches) == 1:
            out = _convert(branches[0], defs, within=within)
        elif types <= {"integer", "number"}:
            out = {"type": "number"}
        else:
            out = copy.deepcopy(SCALAR_SCHEMA)
        if node.get("description"):
            out["description"] = node["description"]
        return out
    out: dict[str, Any] = {k: copy.deepcopy(node[k]) for k in _KEEP if k in node}
    if out.get("type") == "string" and "maxLength" not in out:
        out["maxLength"] = max((len(str(v)) for v in out.get("enum", [])), default=MAX_STRING)
    if "const" in node:
        out["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:  # JSON schema 2020 → OpenAPI v3 boolean form
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    if out.get("type") == "object":
        if "properties" in node:
            out["properties"] = {k: _convert(v, defs, within=within)
                                 for k, v in node["properties"].items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, defs, within=within)
        elif "properties" not in node:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "array" and "items" in node:
        out["items"] = _convert(node["items"], defs, within=within)
    if not out.get("type") and not any(k in node for k in ("properties", "items")):
        # `Any` (a constant or a categorical choice: any JSON value) has no OpenAPI type
        out.update(copy.deepcopy(ANY_SCHEMA))
    if name in RULES:
        out["x-kubernetes-validations"] = copy.deepcopy(RULES[name])
    return out


def spec_schema() -> dict[str, Any]:
    """The OpenAPI v3 schema of `spec`, from the SweepSpec model."""
    raw = SweepSpec.model_json_schema(mode="validation")
    defs = raw.get("$defs", {})
    schema = _convert(raw, defs, "SweepSpec")
    schema["properties"]["trialTemplate"] = {
        **copy.deepcopy(TRIAL_TEMPLATE_SCHEMA),
        "description": raw["properties"]["trialTemplate"]["description"],
    }
    dist = schema["properties"]["parameters"]["additionalProperties"]["properties"]
    dist["distribution"]["enum"] = [d.value for d in Distribution]
    for path, limits in LIMITS.items():
        node = schema
        for part in path:
            node = node["additionalProperties"] if part == "*" else node["properties"][part]
        node.update(limits)
    return schema


def sweep_schema() -> dict[str, Any]:
    """The OpenAPI v3 schema of a whole Sweep object."""
    return {
        "type": "object",
        "description": "A hyperparameter sweep: a search space, a strategy, a metric, a "
        "budget and a trial Job template. The operator runs one Job per trial.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": _status_schema(),
        },
    }


PRINTER_COLUMNS = [
    {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Trials", "type": "string", "jsonPath": ".status.progress",
     "description": "Finished trials / budget"},
    {"name": "Running", "type": "integer", "jsonPath": ".status.trials.running"},
    {"name": "Best", "type": "number", "jsonPath": ".status.bestValue"},
    {"name": "Pareto", "type": "integer", "jsonPath": ".status.paretoFront.size",
     "description": "Trials on the Pareto front (several objectives)"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    """The Sweep CustomResourceDefinition as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": API_GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                      "singular": SINGULAR, "shortNames": list(SHORT_NAMES)},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": sweep_schema()},
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
            }],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block-style YAML without aliases (kubectl and reviewers read it)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def crd_yaml() -> str:
    """The CRD as YAML, exactly as committed in crds/sweeps.kubesweep.io.yaml."""
    header = ("# Generated by `kubesweep crd` from operator/kubesweep/spec.py; do not edit.\n"
              "# Regenerate: kubesweep crd > crds/sweeps.kubesweep.io.yaml\n")
    return header + yaml.dump(crd(), Dumper=_Dumper, sort_keys=False, width=100,
                              allow_unicode=True)
