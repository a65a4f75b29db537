"""Warm start on a cluster: the finished trials of other Sweeps, from their status.

`snapshot.observe` reads the Sweeps that spec.warmStart.sweeps names (same namespace);
`decide` turns each into trials with `warm_trials` and hands them to the Tuner as its
`prior` (see kubesweep.warm_start for which ones the model uses).
"""

from __future__ import annotations

from typing import Any

from kubesweep.k8s import history
from kubesweep.spec import SpecError, parse_spec
from kubesweep.tuner import Trial
from kubesweep.warm_start import with_objective


def warm_trials(sweep: dict[str, Any]) -> list[Trial]:
    """The finished trials recorded in a Sweep's status, each with its objective value
    also under the objective's name in `metrics` (see warm_start.with_objective)."""
    status = sweep.get("status") or {}
    try:
        objective = parse_spec(sweep.get("spec") or {}).objective
        records = history.decode(status.get("history"))
    except (SpecError, ValueError, KeyError, TypeError):
        return []  # an unreadable Sweep seeds nothing (status.warmStart shows the count)
    listed = {t.get("index"): t for t in [*(status.get("recentTrials") or []),
                                          status.get("bestTrial") or {}]}
    out = []
    for record in records:
        record["metrics"] = {**record.get("metrics", {}),
                             **((listed.get(record["index"]) or {}).get("metrics") or {})}
        out.append(with_objective(Trial.from_dict(record), objective))
    return out


def warm_status(named: list[str], found: dict[str, dict[str, Any] | None],
                trials: list[Trial], used: int) -> dict[str, Any]:
    """status.warmStart: trials the model uses, trials read, named Sweeps not found."""
    return {"trials": used, "read": len(trials),
            "missing": [n for n in named if found.get(n) is None]}
