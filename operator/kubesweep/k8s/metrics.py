"""Prometheus metrics of the operator (served on --metrics-port, default 8080).

The names and labels are a contract with the Grafana dashboard and the alerts in the
Helm chart; docs/metrics.md lists them. Change them only together.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

PHASES = ("Pending", "Running", "Succeeded", "Failed")
STATES = ("pending", "running", "succeeded", "failed", "stopped")

SWEEPS = Gauge("kubesweep_sweeps", "1 for the sweep's current phase, 0 for the others",
               ["namespace", "sweep", "phase"])
TRIALS = Gauge("kubesweep_trials", "Trials of a sweep by state",
               ["namespace", "sweep", "state"])
TRIALS_CREATED = Counter("kubesweep_trials_created", "Trial Jobs created",
                         ["namespace", "sweep"])
BEST_VALUE = Gauge("kubesweep_sweep_best_value", "Best value of the objective metric so far",
                   ["namespace", "sweep", "metric"])
TRIAL_VALUE = Gauge("kubesweep_trial_value",
                    "Objective value of each recently finished trial (one series per trial, "
                    "the newest TRIAL_VALUE_SERIES of each sweep)",
                    ["namespace", "sweep", "metric", "trial"])
#: Finished trials per sweep whose kubesweep_trial_value series is kept. One series per
#: trial means no trial is lost when several finish within one scrape interval; dropping
#: the oldest keeps the series count bounded (Prometheus has every sample it scraped).
TRIAL_VALUE_SERIES = 50
_trial_series: dict[tuple[str, str], list[tuple[str, str]]] = {}
MAX_TRIALS = Gauge("kubesweep_sweep_max_trials", "Trial budget of the sweep",
                   ["namespace", "sweep"])
UNSCHEDULABLE = Gauge("kubesweep_trials_unschedulable",
                      "Trials whose pod is Pending and unschedulable (e.g. waiting for GPUs)",
                      ["namespace", "sweep"])
TRIAL_DURATION = Histogram(
    "kubesweep_trial_duration_seconds", "Run time of finished trials", ["namespace", "sweep",
                                                                        "state"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400))
SUGGEST_DURATION = Histogram(
    "kubesweep_suggest_duration_seconds", "Time the strategy takes to suggest one batch",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RECONCILE_ERRORS = Counter("kubesweep_reconcile_errors", "Reconciles that raised an error",
                           ["namespace", "sweep"])
API_ERRORS = Counter("kubesweep_api_errors", "Failed Kubernetes API calls",
                     ["verb", "resource", "code"])
RECONCILE_DURATION = Histogram(
    "kubesweep_reconcile_duration_seconds", "Time of one reconcile of one sweep",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
#: Not part of the dashboard contract: every API call the operator's reconciles make
#: (kopf's own watches excluded); the throughput benchmark divides it by trials.
STATUS_CONFLICTS = Counter(
    "kubesweep_status_conflicts", "Passes decided again because the Sweep changed during "
    "them (its status write was conditional on the version read)", ["namespace", "sweep"])
LEADER = Gauge("kubesweep_leader",
               "1 while this replica holds the leader-election Lease (or runs without one)")
LEADER.set(1)
API_REQUESTS = Counter("kubesweep_api_requests", "Kubernetes API calls made by reconciles",
                       ["verb", "resource"])


def serve(port: int, addr: str) -> None:
    """Serve /metrics on `port` from a background thread."""
    start_http_server(port, addr=addr)


def forget_sweep(namespace: str, sweep: str, metric: str | None) -> None:
    """Drop a deleted sweep's series so dashboards do not show it forever."""
    for phase in PHASES:
        _remove(SWEEPS, namespace, sweep, phase)
    for state in STATES:
        _remove(TRIALS, namespace, sweep, state)
        _remove(TRIAL_DURATION, namespace, sweep, state)
    for gauge in (TRIALS_CREATED, MAX_TRIALS, UNSCHEDULABLE, RECONCILE_ERRORS):
        _remove(gauge, namespace, sweep)
    if metric:
        _remove(BEST_VALUE, namespace, sweep, metric)
    for metric_name, trial in _trial_series.pop((namespace, sweep), []):
        _remove(TRIAL_VALUE, namespace, sweep, metric_name, trial)


def _remove(metric: object, *labels: str) -> None:
    try:
        metric.remove(*labels)  # type: ignore[attr-defined]
    except KeyError:
        pass


def set_phase(namespace: str, sweep: str, phase: str) -> None:
    """Set only the phase gauge (a sweep the operator will not run)."""
    for p in PHASES:
        SWEEPS.labels(namespace, sweep, p).set(1 if p == phase else 0)


def set_sweep(namespace: str, sweep: str, phase: str, counts: dict[str, int],
              max_trials: int, metric: str, best: float | None) -> None:
    """Set the per-sweep gauges from a freshly computed status."""
    for p in PHASES:
        SWEEPS.labels(namespace, sweep, p).set(1 if p == phase else 0)
    for state in STATES:
        TRIALS.labels(namespace, sweep, state).set(counts.get(state, 0))
    MAX_TRIALS.labels(namespace, sweep).set(max_trials)
    UNSCHEDULABLE.labels(namespace, sweep).set(counts.get("unschedulable", 0))
    if best is not None:
        BEST_VALUE.labels(namespace, sweep, metric).set(best)


def set_trial_value(namespace: str, sweep: str, metric: str, trial: int, value: float) -> None:
    """A finished trial's objective value as its own series (bounded per sweep)."""
    TRIAL_VALUE.labels(namespace, sweep, metric, str(trial)).set(value)
    kept = _trial_series.setdefault((namespace, sweep), [])
    if (metric, str(trial)) not in kept:
        kept.append((metric, str(trial)))
    while len(kept) > TRIAL_VALUE_SERIES:
        old_metric, old_trial = kept.pop(0)
        _remove(TRIAL_VALUE, namespace, sweep, old_metric, old_trial)
