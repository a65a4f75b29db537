"""One pass of the control loop over one Sweep: observe → decide → apply.

`snapshot.observe` reads (the Sweep, its Jobs, the pods and logs it needs), `decide.decide`
is a pure function of that snapshot, the time and the settings, and `apply.apply` is the
only code that writes, in the crash-safe order `decide`'s docstring describes.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from kubesweep.k8s.api import Api
from kubesweep.k8s.apply import apply
from kubesweep.k8s.decide import decide
from kubesweep.k8s.snapshot import observe
from kubesweep.settings import Settings


@dataclass
class Result:
    """What the caller should do next: run again after `requeue_after` seconds (or only
    on the next event when None)."""

    requeue_after: float | None = None
    phase: str | None = None


def reconcile(api: Api, settings: Settings, namespace: str, name: str) -> Result:
    """Bring the Sweep `namespace/name` one step closer to done."""
    snap = observe(api, namespace, name)
    if snap is None:
        return Result(None)
    now = datetime.datetime.now(datetime.timezone.utc)
    plan = decide(snap, now, settings)
    applied = apply(plan, api)
    if applied.rejected:
        # the API server refused some Jobs: record those trials as failed, from the status
        # as written so far and the Jobs that were created
        created = [c.body for c in plan.create if c.index not in applied.rejected]
        sweep = dict(snap.sweep, status=plan.recorded_status)
        snap = dataclasses.replace(snap, sweep=sweep, jobs=[*snap.jobs, *created],
                                   rejected=applied.rejected)
        plan = decide(snap, now, settings)
        apply(plan, api)
    return Result(plan.requeue_after, plan.phase)
