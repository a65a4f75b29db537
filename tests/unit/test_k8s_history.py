"""The compact trial history in the Sweep status: exact round trips and its size."""

from __future__ import annotations

import json
import math

import numpy as np

from kubesweep.k8s import history
from kubesweep.k8s.status import build_status, spec_hashes
from kubesweep.spec import parse_spec
from kubesweep.tuner import Trial, Tuner
from tests.helpers import make_spec

MIB = 1024 * 1024


def _round6(x: float) -> float:
    return float(f"{x:.6g}")


def test_round_trip_keeps_every_type_exactly():
    spec = parse_spec(make_spec({
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
        "layers": {"min": 1, "max": 8},
        "act": {"values": ["relu", "tanh", 3, True]},
        "const": {"value": "x"},
        "big": {"min": 0, "max": 2**40},
    }))
    rng = np.random.default_rng(1)
    trials = []
    for i in range(50):
        params = {"lr": _round6(10 ** rng.uniform(-5, 0)), "layers": int(rng.integers(1, 9)),
                  "act": ["relu", "tanh", 3, True][i % 4], "const": "x",
                  "big": int(rng.integers(0, 2**40))}
        state = ("succeeded", "failed", "stopped")[i % 3]
        value = None if state == "failed" else float(rng.normal())
        trials.append(Trial(i * 2, f"s-{i * 2}", params, state, value,
                            reason=None if state == "succeeded" else f"why {i}"))
    trials.append(Trial(101, "s-101", {"lr": 0.1}, "pending"))  # unfinished: not recorded
    packed = history.encode(trials, spec.parameters)
    assert packed["params"]["lr"]["type"] == "f4"
    assert packed["params"]["layers"]["type"] == "i4"
    assert packed["params"]["act"]["type"] == "c1"
    assert packed["params"]["big"]["type"] == "i8"  # beyond int32: still exact
    records = history.decode(json.loads(json.dumps(packed)), lambda i: f"s-{i}")
    assert len(records) == 50
    for trial, record in zip(trials, records, strict=False):
        assert record["index"] == trial.index and record["name"] == trial.name
        assert record["params"] == trial.params
        assert {k: type(v) for k, v in record["params"].items()} == \
            {k: type(v) for k, v in trial.params.items()}
        assert record["state"] == trial.state
        assert record["value"] == trial.value
        assert record["reason"] == trial.reason


def test_every_reason_is_kept_and_a_budget_drops_the_oldest_first():
    # a sweep whose trials fail the same few ways: every reason fits
    same = [Trial(i, f"a-{i}", {"x": 0.1}, "failed", None,
                  reason=f"exited with code {1 + i % 3}: ValueError: bad batch size")
            for i in range(5000)]
    packed = history.encode(same, {})
    assert len(packed["reasonsPacked"]) <= history.MAX_REASON_BYTES
    assert [r["reason"] for r in history.decode(packed, str)] == [t.reason for t in same]
    # thousands of distinct, incompressible reasons: the newest that fit
    rng = np.random.default_rng(0)
    odd = [Trial(i, f"a-{i}", {"x": 0.1}, "stopped", None,
                 reason=f"early termination: {rng.bytes(40).hex()}") for i in range(5000)]
    packed = history.encode(odd, {})
    assert len(packed["reasonsPacked"]) <= history.MAX_REASON_BYTES
    kept = [r["index"] for r in history.decode(packed, str) if r["reason"] is not None]
    assert 100 < len(kept) < 5000 and kept == list(range(5000 - len(kept), 5000))
    assert all(r["reason"] == odd[r["index"]].reason
               for r in history.decode(packed, str) if r["reason"])


def test_a_history_written_before_reasons_were_packed_still_reads():
    trials = [Trial(0, "a-0", {"x": 0.1}, "failed", None, reason="why 0"),
              Trial(1, "a-1", {"x": 0.2}, "succeeded", 1.0)]
    packed = history.encode(trials, {})
    del packed["reasonsPacked"]
    packed["reasons"] = {"0": "why 0"}  # the earlier format: newest 50, plain
    assert [r["reason"] for r in history.decode(packed, str)] == ["why 0", None]


def test_values_keep_full_precision_and_nan_means_none():
    trials = [Trial(0, "a-0", {"x": 0.1}, "succeeded", 1 / 3),
              Trial(1, "a-1", {"x": 0.2}, "stopped", None)]
    records = history.decode(history.encode(trials, {}), str)
    assert records[0]["value"] == 1 / 3
    assert records[1]["value"] is None


def test_curves_are_kept_for_early_termination_and_the_report():
    trials = [Trial(0, "a-0", {"x": 0.5}, "stopped", 0.3, history=[(1, 0.9), (2, 0.3)])]
    packed = history.encode(trials, {})
    assert history.decode(packed, str)[0]["history"] == [[1.0, 0.9], [2.0, 0.3]]
    # a sweep without early termination keeps them too: the report plots them
    spec = parse_spec(make_spec({"x": {"min": 0.0, "max": 1.0}}))
    assert spec.earlyTerminate is None
    tuner = Tuner(spec, name="a")
    tuner.trials = trials
    status = build_status({}, tuner, spec, running=set(), unschedulable=0, generation=1,
                          outcome=None, hashes=spec_hashes(make_spec({})))
    assert history.decode(status["history"], str)[0]["history"] == [[1.0, 0.9], [2.0, 0.3]]


def test_curves_keep_the_newest_trials_within_the_budget():
    trials = [Trial(i, f"a-{i}", {"x": 0.5}, "succeeded", 0.3,
                    history=[(s, float(np.sin(i * s))) for s in range(200)])
              for i in range(200)]
    packed = history.encode(trials, {})
    kept = sorted(int(i) for i in packed["curves"])
    assert sum(len(v) for v in packed["curves"].values()) <= history.MAX_CURVE_BYTES
    assert 0 < len(kept) < 200 and kept == list(range(200 - len(kept), 200))


def test_durations_survive_for_every_trial():
    """A trial's run time is known from its Job, which the operator prunes: the history
    keeps it (float32 seconds; None where it was not known)."""
    trials = [Trial(0, "a-0", {"x": 0.1}, "succeeded", 1.0, duration=65.0),
              Trial(1, "a-1", {"x": 0.2}, "failed", None, duration=3601.5),
              Trial(2, "a-2", {"x": 0.3}, "stopped", None)]
    packed = json.loads(json.dumps(history.encode(trials, {})))
    assert [r["duration"] for r in history.decode(packed, str)] == [65.0, 3601.5, None]
    rebuilt = [Trial.from_dict(r) for r in history.decode(packed, str)]
    assert [t.duration for t in rebuilt] == [65.0, 3601.5, None]
    # a history written before durations were kept reads as "not known"
    del packed["durations"]
    assert [r["duration"] for r in history.decode(packed, str)] == [None, None, None]
    assert "durations" not in history.encode(trials[2:], {})


def test_every_trials_metrics_are_kept_as_float32():
    trials = [Trial(0, "a-0", {"x": 0.1}, "succeeded", 1 / 3,
                    metrics={"loss": 1 / 3, "acc": 0.91, "step": 30.0}),
              Trial(1, "a-1", {"x": 0.2}, "failed", None, metrics={"loss": 2.5}),
              Trial(2, "a-2", {"x": 0.3}, "stopped", None)]
    records = history.decode(json.loads(json.dumps(history.encode(trials, {}))), str)
    assert [r["metrics"] for r in records] == [
        {"loss": 0.3333333, "acc": 0.91, "step": 30.0}, {"loss": 2.5}, {}]
    assert records[0]["value"] == 1 / 3  # the objective itself keeps full precision


def test_metrics_are_bounded_to_the_most_reported_names():
    trials = [Trial(i, f"a-{i}", {"x": 0.1}, "succeeded", 1.0,
                    metrics={f"m{j}": float(j) for j in range(i % 12 + 1)})
              for i in range(24)]
    packed = history.encode(trials, {})
    kept = history.metric_names(trials)
    assert len(packed["metrics"]) == history.MAX_METRICS
    assert set(packed["metrics"]) == set(kept) == {f"m{j}" for j in range(8)}
    records = history.decode(packed, str)
    assert records[11]["metrics"] == {f"m{j}": float(j) for j in range(8)}


def test_a_history_without_metrics_decodes_to_empty_metrics():
    packed = history.encode([Trial(0, "a-0", {"x": 0.1}, "succeeded", 1.0)], {})
    assert "metrics" not in packed
    assert history.decode(packed, str)[0]["metrics"] == {}


def test_ten_thousand_trials_with_ten_parameters_fit_in_one_mib():
    """The issue's bound: a 10,000-trial sweep with 10 parameters and 4 metrics per trial
    keeps the whole Sweep object (spec + status, as JSON) under 1 MiB, also with every
    trial's duration, 30-step curve and distinct failure reason (the newest within their
    budgets)."""
    params = {f"lr{i}": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1.0}
              for i in range(7)}
    params["layers"] = {"min": 1, "max": 64}
    params["act"] = {"values": ["relu", "tanh", "gelu", "silu"]}
    params["dropout"] = {"min": 0.0, "max": 0.9}
    raw_spec = make_spec(params, maxTrials=10_000, parallelism=50)
    spec = parse_spec(raw_spec)
    rng = np.random.default_rng(0)
    trials = []
    for i in range(10_000):
        p = {f"lr{j}": _round6(10 ** rng.uniform(-6, 0)) for j in range(7)}
        p.update(layers=int(rng.integers(1, 65)), act=str(rng.choice(["relu", "tanh", "gelu",
                                                                       "silu"])),
                 dropout=_round6(rng.uniform(0, 0.9)))
        state = "failed" if i % 10 == 0 else "succeeded"
        value = None if state == "failed" else float(rng.normal())
        trials.append(Trial(i, f"a-long-sweep-name-{i}", p, state, value,
                            metrics={"loss": float(rng.random()), "val_acc": float(rng.random()),
                                     "lr_now": float(rng.random()), "epoch": 30.0},
                            # distinct reasons: the most room they can take
                            reason=f"exited with code 1: loss nan at {rng.bytes(24).hex()}"
                            if state == "failed" else None,
                            duration=float(rng.integers(10, 3600)),
                            history=[(s, float(rng.random())) for s in range(1, 31)]))
    tuner = Tuner(spec, name="a-long-sweep-name")
    tuner.trials = trials  # skip re-validating 10k records: the size is the point here
    status = build_status({}, tuner, spec, running=set(), unschedulable=0, generation=1,
                          outcome=tuner.outcome, hashes=spec_hashes(raw_spec))
    sweep = {"apiVersion": "kubesweep.io/v1alpha1", "kind": "Sweep",
             "metadata": {"name": "a-long-sweep-name", "namespace": "default"},
             "spec": raw_spec, "status": status}
    size = len(json.dumps(sweep, separators=(",", ":")))
    print(f"Sweep object with 10,000 trials x 10 parameters x 4 metrics: "
          f"{size / 1024:.0f} KiB")
    assert size < MIB, f"{size} bytes"
    # and it is a faithful record
    records = history.decode(status["history"], lambda i: f"a-long-sweep-name-{i}")
    assert len(records) == 10_000
    assert all(r["params"] == t.params and r["value"] == t.value and r["state"] == t.state
               for r, t in zip(records, trials, strict=True))
    assert all(r["metrics"] == {k: float(f"{np.float32(v):.7g}") for k, v in t.metrics.items()}
               for r, t in zip(records, trials, strict=True))
    assert not any(math.isnan(r["value"]) for r in records if r["value"] is not None)
    assert [r["duration"] for r in records] == [t.duration for t in trials]
    assert all(r["reason"] in (None, t.reason) for r, t in zip(records, trials, strict=True))
    assert records[-10]["reason"] == trials[-10].reason  # the newest are kept


def test_metrics_float32_cannot_hold_are_kept_as_float64():
    """`acc=1e39` is finite, but float32 would record it as infinity, which no status
    write can carry (the sweep froze on its next pass); 1e-50 would become 0."""
    trials = [Trial(0, "a-0", {"x": 0.1}, "succeeded", 1.0,
                    metrics={"loss": 1.0, "acc": 1e39, "tiny": 1e-50, "neg": -3e300}),
              Trial(1, "a-1", {"x": 0.2}, "succeeded", 2.0, metrics={"loss": 2.0})]
    packed = history.encode(trials, {})
    assert not packed["metrics"]["loss"].startswith(history.F8_PREFIX)  # float32 suffices
    assert all(packed["metrics"][m].startswith(history.F8_PREFIX)
               for m in ("acc", "tiny", "neg"))
    records = history.decode(json.loads(json.dumps(packed, allow_nan=False)), str)
    assert records[0]["metrics"] == {"loss": 1.0, "acc": 1e39, "tiny": 1e-50, "neg": -3e300}
    assert records[1]["metrics"] == {"loss": 2.0}


def _packed() -> dict:
    trials = [Trial(0, "a-0", {"x": 0.25, "k": "a"}, "succeeded", 1.0, metrics={"acc": 0.5})]
    return json.loads(json.dumps(history.encode(trials, {})))


def test_a_hand_edited_non_finite_number_is_refused_naming_the_field():
    """A status edited to hold NaN or an infinity where a number is read back would put it
    in the next status write, which the API server refuses: decoding names the field."""
    from kubesweep.k8s.recovery import history_problem, readable_indices

    inf64 = history._pack(np.array([np.inf]))
    nan32 = history._pack(np.array([np.nan], dtype="<f4"))
    edits = {
        "values": lambda h: h.__setitem__("values", inf64),
        "metrics.acc": lambda h: h["metrics"].__setitem__(
            "acc", history._pack(np.array([np.inf], dtype="<f4"))),
        "params.x": lambda h: h["params"].__setitem__("x", {"type": "f4", "data": nan32}),
        "params.k": lambda h: h["params"].__setitem__("k", {"type": "json",
                                                            "data": "[1e400]"}),
    }
    for field, edit in edits.items():
        hist = _packed()
        edit(hist)
        try:
            history.decode(hist, str)
        except ValueError as exc:
            assert f"status.history.{field}" in str(exc), (field, exc)
        else:
            raise AssertionError(f"{field}: a non-finite number was read back")
        problem = history_problem(hist)
        assert problem is not None and problem.startswith(f"status.history.{field}:"), problem
        # the indices still decode, but no trial counts as recorded: the pass reads every
        # Job's pods and log to rebuild them (else trial 0 came back without its value)
        assert readable_indices(hist) is None
    assert readable_indices(_packed()) == {0}
    hist = _packed()
    hist["params"]["k"] = {"type": "json", "data": "[NaN]"}
    assert history_problem(hist).startswith("status.history.params.k:")


def test_any_undecodable_history_is_a_value_error():
    """Callers (warm start, the views) catch ValueError: a zlib or index error in a
    hand-edited history must not escape as something else."""
    for edit in ({"indices": "AAAA"}, {"metrics": {"acc": history._pack(np.array([], "<f4"))}}):
        hist = {**_packed(), **edit}
        try:
            history.decode(hist, str)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{edit} decoded")
