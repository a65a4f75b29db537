"""Status pieces: conditions, merge patches, immutable-field detection, the work queue."""

from __future__ import annotations

import threading
import time

from kubesweep.k8s.status import (
    build_status,
    changed_fields,
    set_condition,
    spec_hashes,
    status_patch,
)
from kubesweep.k8s.workqueue import WorkQueue
from kubesweep.spec import parse_spec
from kubesweep.tuner import Tuner
from tests.helpers import make_spec


def test_condition_transition_time_only_moves_on_flips():
    conds = set_condition([], "Running", True, "A", "m", 1)
    first = conds[0]["lastTransitionTime"]
    conds[0]["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    same = set_condition(conds, "Running", True, "B", "m2", 2)
    assert same[0]["lastTransitionTime"] == "2000-01-01T00:00:00Z"
    assert same[0]["observedGeneration"] == 2 and same[0]["reason"] == "B"
    flipped = set_condition(same, "Running", False, "C", "m3", 2)
    assert flipped[0]["lastTransitionTime"] >= first


def test_merge_patch_removes_stale_keys_and_skips_equal_ones():
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": 3}
    new = {"a": 1, "b": {"x": 1, "z": 3}, "c": [1, 2]}
    assert status_patch(old, new) == {"b": {"y": None, "z": 3}, "c": [1, 2], "gone": None}
    assert status_patch(new, new) == {}


def test_only_mutable_fields_may_change():
    raw = make_spec({"x": {"min": 0.0, "max": 1.0}})
    hashes = spec_hashes(raw)
    assert changed_fields(dict(raw, parallelism=5, maxTrials=99), hashes) == []
    assert changed_fields(dict(raw, seed=3), hashes) == ["seed"]
    assert changed_fields(dict(raw, method="bayes"), hashes) == ["method"]
    assert changed_fields(raw, None) == []


def test_status_counts_best_and_conditions():
    raw = make_spec({"x": {"min": 0.0, "max": 1.0}}, maxTrials=4)
    spec = parse_spec(raw)
    tuner = Tuner(spec, name="s")
    a, b, c = tuner.ask(3)
    tuner.tell(a, 0.5)
    tuner.tell(b, None, "failed", reason="exited with code 1")
    status = build_status({}, tuner, spec, running={c.index}, unschedulable=0, generation=2,
                          outcome=tuner.outcome, hashes=spec_hashes(raw))
    assert status["phase"] == "Running" and status["progress"] == "2/4"
    assert status["trials"] == {"created": 3, "pending": 0, "running": 1, "succeeded": 1,
                                "failed": 1, "stopped": 0, "unschedulable": 0}
    assert status["bestTrial"]["name"] == a.name and status["bestValue"] == 0.5
    assert [t["state"] for t in status["recentTrials"]] == ["succeeded", "failed", "running"]
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Running"]["status"] == "True"
    assert by_type["Succeeded"]["status"] == "False"
    assert all(c["observedGeneration"] == 2 for c in status["conditions"])


def test_work_queue_dedupes_delays_and_serialises_a_key():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b", delay=0.2)
    assert q.get(timeout=1) == "a"
    q.add("a")  # while active: runs again after done
    assert q.get(timeout=0.05) is None
    q.done("a")
    assert q.get(timeout=1) == "a"
    q.done("a")
    started = time.monotonic()
    assert q.get(timeout=1) == "b" and time.monotonic() - started > 0.1
    q.done("b")
    got = []
    thread = threading.Thread(target=lambda: got.append(q.get()))
    thread.start()
    q.close()
    thread.join(1)
    assert got == [None]


def test_the_documented_conditions_and_reasons_are_the_codes():
    """Every condition type the operator sets and every reason a sweep ends with is in
    the CRD's description (`kubectl explain`) and the docs; a new one must be documented."""
    import re

    from kubesweep.k8s.crd import crd
    from kubesweep.k8s.status import CONDITION_TYPES
    from tests.helpers import REPO

    code = "".join(p.read_text() for p in (REPO / "operator" / "kubesweep").rglob("*.py"))
    set_types = set(re.findall(r'set_condition\(\s*[^,]+,\s*"(\w+)"', code))
    assert "StatusRecovered" in set_types and set_types <= set(CONDITION_TYPES)
    status = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"]
    described = status["properties"]["conditions"]["description"]
    operator_md = (REPO / "docs" / "operator.md").read_text()
    readme = (REPO / "README.md").read_text()
    for type_ in CONDITION_TYPES:
        assert type_ in described, f"condition {type_} not in the CRD's description"
        for name, text in (("docs/operator.md", operator_md), ("README.md", readme)):
            row = next(line for line in text.splitlines() if line.startswith("| `conditions`"))
            assert f"`{type_}`" in row, f"condition {type_} not in {name}'s status table"
    reasons = set(re.findall(r'Outcome\(\s*"(?:Succeeded|Failed)",\s*"(\w+)"', code))
    assert {"BudgetReached", "TargetReached", "FirstTrialsFailed", "NoFeasibleTrial",
            "NoSuccessfulTrial"} <= reasons
    for reason in reasons | {"InvalidSpec"}:
        assert f"`{reason}`" in operator_md, f"sweep end reason {reason} not in docs/operator.md"


def test_the_docs_say_how_many_recent_trials_the_status_lists():
    from kubesweep.k8s.status import build_status
    from kubesweep.rules import RECENT_TRIALS
    from tests.helpers import REPO

    for doc in ("README.md", "docs/operator.md"):
        assert f"the {RECENT_TRIALS} newest trials" in (REPO / doc).read_text(), doc
    spec = parse_spec(make_spec({"x": {"values": list(range(30))}}, maxTrials=30))
    tuner = Tuner(spec, seed=0)
    for trial in tuner.ask(RECENT_TRIALS + 3):
        tuner.tell(trial, 1.0)
    listed = build_status({}, tuner, spec, running=set(), unschedulable=0, generation=1,
                          outcome=None, hashes={})["recentTrials"]
    assert [t["index"] for t in listed] == list(range(3, RECENT_TRIALS + 3))
