"""The operator's settings and their defaults, in one place.

`kubesweep operator`'s command-line flags are generated from these fields (`add_flags`),
and tests/unit/test_settings.py checks that the Helm chart's `values.yaml` defaults and
the flags its Deployment passes are the same (drift test).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: The extended resource name GPUs have on most clusters (NVIDIA's device plugin).
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


def _flag(help_: str, metavar: str | None = None) -> dict[str, Any]:
    return {"help": help_, "metavar": metavar}


@dataclass(frozen=True)
class Settings:
    """Operator-wide knobs; each field is the flag `--field-name` of `kubesweep operator`."""

    #: port of the Prometheus /metrics endpoint
    metrics_port: int = field(default=8080, metadata=_flag(
        "port of the Prometheus /metrics endpoint", "PORT"))
    #: address the /metrics endpoint listens on
    metrics_address: str = field(default="0.0.0.0", metadata=_flag(
        "address the /metrics endpoint listens on (e.g. 127.0.0.1 to keep it local)",
        "ADDR"))
    #: port of the /healthz liveness and /readyz readiness probes
    liveness_port: int = field(default=8081, metadata=_flag(
        "port of the /healthz liveness probe", "PORT"))
    #: address the probes listen on
    liveness_address: str = field(default="0.0.0.0", metadata=_flag(
        "address the /healthz liveness probe listens on", "ADDR"))
    #: seconds a trial's pod may take to start (scheduling, image pull) before it fails
    trial_start_timeout: float = field(default=600.0, metadata=_flag(
        "fail a trial whose pod has not started after this long (unschedulable, image "
        "pull errors)", "SECONDS"))
    #: resource name of spec.trialResources.gpu when the Sweep does not name one
    gpu_resource_name: str = field(default=DEFAULT_GPU_RESOURCE, metadata=_flag(
        "resource name of spec.trialResources.gpu", "NAME"))
    #: seconds between passes while trials run, to catch what no Job event announces
    #: (a start timeout, a missed watch event)
    poll_interval: float = field(default=30.0, metadata=_flag(
        "look at a running sweep at least this often, events or not", "SECONDS"))
    #: seconds between passes while early termination watches running trials' metrics
    early_stop_interval: float = field(default=5.0, metadata=_flag(
        "how often running trials' metrics are read for early termination", "SECONDS"))
    #: finished trial Jobs kept (for `kubectl logs`) once their results are in the status;
    #: older ones are deleted (the best trial's is always kept). -1 keeps every Job.
    keep_finished_jobs: int = field(default=100, metadata=_flag(
        "finished trial Jobs kept per sweep for `kubectl logs` once their results are in "
        "the status (the best trial's is always kept; -1 keeps all)", "N"))
    #: sweeps reconciled in parallel
    workers: int = field(default=4, metadata=_flag("sweeps reconciled in parallel", "N"))
    #: reconcile only while holding a Lease, so several replicas can run (hot standbys)
    leader_elect: bool = field(default=False, metadata=_flag(
        "run as one of several replicas: reconcile only while holding the Lease "
        "(leader election); the others stand by and take over within ~15 s"))
    #: the Lease the replicas share
    lease_name: str = field(default="kubesweep-operator", metadata=_flag(
        "name of the leader-election Lease", "NAME"))
    #: namespace of the Lease; empty means the operator's own namespace
    lease_namespace: str = field(default="", metadata=_flag(
        "namespace of the leader-election Lease (default: the operator's own namespace)",
        "NAMESPACE"))


def flag_name(name: str) -> str:
    """The command-line flag of the setting `name` (`poll_interval` → `--poll-interval`)."""
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting, with the setting's default and type."""
    for f in dataclasses.fields(Settings):
        if str(f.type) == "bool":
            default = "on" if f.default else "off"
            parser.add_argument(flag_name(f.name), dest=f.name, default=f.default,
                                action=argparse.BooleanOptionalAction,
                                help=f"{f.metadata['help']} (default {default})")
            continue
        kind = {"int": int, "float": float, "str": str}[str(f.type)]
        shown = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
        parser.add_argument(flag_name(f.name), dest=f.name, type=kind, default=f.default,
                            metavar=f.metadata.get("metavar"),
                            help=f"{f.metadata['help']} (default {shown})" if shown else
                            f.metadata["help"])


def from_args(args: argparse.Namespace) -> Settings:
    """The settings parsed by a parser that `add_flags` set up."""
    return Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
