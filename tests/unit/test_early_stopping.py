"""Hyperband and median stopping decisions over intermediate histories."""

from __future__ import annotations

import kubesweep
from kubesweep.early_stopping import HyperbandRule, MedianRule
from kubesweep.spec import EarlyTerminate
from tests.helpers import make_spec


def curve(values: list[float], start: int = 1) -> list[tuple[int, float]]:
    return [(start + i, v) for i, v in enumerate(values)]


def test_hyperband_brackets_from_min_iter_and_eta():
    rule = HyperbandRule(EarlyTerminate(type="hyperband", minIter=1, maxIter=27, eta=3))
    assert rule.brackets == [1, 3, 9, 27]
    rule = HyperbandRule(EarlyTerminate(type="hyperband", maxIter=81, s=2, eta=3))
    assert rule.brackets == [9, 27]


def test_hyperband_stops_trials_outside_the_top_third():
    rule = HyperbandRule(EarlyTerminate(type="hyperband", minIter=3, eta=3))
    peers = [curve([5, 4, 1.0]), curve([5, 4, 2.0]), curve([5, 4, 3.0]), curve([5, 4, 4.0])]
    assert rule.should_stop(curve([5, 4, 0.5]), peers) is None
    reason = rule.should_stop(curve([5, 4, 3.5]), peers)
    assert reason is not None and "step 3" in reason and "1/3" in reason


def test_hyperband_waits_until_a_bracket_is_reached_and_has_peers():
    rule = HyperbandRule(EarlyTerminate(type="hyperband", minIter=3, eta=3))
    assert rule.should_stop(curve([9, 9]), [curve([1, 1, 1])] * 5) is None  # step 2 < 3
    assert rule.should_stop(curve([9, 9, 9]), [curve([1, 1, 1])]) is None  # too few peers


def test_hyperband_strict_uses_value_at_bracket():
    peers = [curve([1.0, 1.0, v]) for v in (1.0, 1.1, 1.2, 1.3, 1.4)]
    # was excellent at step 1 but worse at the bracket (step 3)
    regressed = curve([0.1, 2.0, 2.0])
    lenient = HyperbandRule(EarlyTerminate(type="hyperband", minIter=3, eta=3, strict=False))
    strict = HyperbandRule(EarlyTerminate(type="hyperband", minIter=3, eta=3, strict=True))
    assert lenient.should_stop(regressed, peers) is None
    assert strict.should_stop(regressed, peers) is not None


def test_median_rule():
    rule = MedianRule(EarlyTerminate(type="median", minIter=2, minTrials=3))
    peers = [curve([3, 2, 1]), curve([3, 2.5, 2]), curve([3, 3, 3])]
    assert rule.should_stop(curve([9, 9]), peers) is not None
    assert rule.should_stop(curve([9]), peers) is None  # warm-up
    assert rule.should_stop(curve([2, 1.5]), peers) is None
    assert rule.should_stop(curve([9, 9]), peers[:2]) is None  # too few peers


def test_tuner_applies_the_rule_in_the_users_direction():
    spec = make_spec({"x": {"min": 0.0, "max": 1.0}}, maxTrials=6,
                     earlyTerminate={"type": "median", "minIter": 1, "minTrials": 2})
    spec["metric"] = {"name": "acc", "goal": "maximize"}
    tuner = kubesweep.Tuner(spec)
    trials = tuner.ask(3)
    for t, acc in zip(trials[:2], (0.8, 0.9), strict=True):
        tuner.report(t, 1, acc)
        tuner.tell(t, acc)
    tuner.report(trials[2], 1, 0.95)
    assert tuner.should_stop(trials[2]) is None
    tuner.report(trials[2], 2, 0.95)
    late = tuner.ask()
    tuner.report(late, 1, 0.1)
    reason = tuner.should_stop(late)
    assert reason is not None and "0.1" in reason
