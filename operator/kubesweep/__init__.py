"""kubesweep: Kubernetes-native hyperparameter sweeps.

    import kubesweep
    tuner = kubesweep.Tuner(spec, seed=0)
    trial = tuner.ask()
    tuner.tell(trial, 0.93)

Trial code reports metrics with `kubesweep.report(val_acc=0.93, step=3)`.
"""

from kubesweep.reporting import report
from kubesweep.spec import SpecError, Sweep, SweepSpec, parse_spec, parse_sweep
from kubesweep.tuner import Outcome, Trial, Tuner

__version__ = "0.1.0"

__all__ = [
    "Outcome",
    "SpecError",
    "Sweep",
    "SweepSpec",
    "Trial",
    "Tuner",
    "parse_spec",
    "parse_sweep",
    "report",
]
