#!/usr/bin/env python3
"""Generate the Grafana dashboard and the Prometheus alert rules of the Helm chart.

One source for both, built on the operator's metrics contract (docs/metrics.md):

    charts/kubesweep/dashboards/kubesweep.json    the dashboard (ConfigMap in the chart)
    charts/kubesweep/rules/kubesweep.rules.yaml   the alert rules (PrometheusRule in the
                                                  chart; a plain rules file for promtool)

    python scripts/gen-dashboard.py           # rewrite both files
    python scripts/gen-dashboard.py --check   # exit 1 when a file differs (the drift test)

Panel queries use the template variables `$namespace` and `$sweep` (multi-value regexes)
and `$__rate_interval`; the tests substitute them and run every query against a real
Prometheus scraping a real operator.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_PATH = ROOT / "charts/kubesweep/dashboards/kubesweep.json"
RULES_PATH = ROOT / "charts/kubesweep/rules/kubesweep.rules.yaml"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: The per-sweep label matcher every sweep-scoped query carries.
SEL = 'namespace=~"$namespace", sweep=~"$sweep"'
SWEEP_LEGEND = "{{namespace}}/{{sweep}}"

# -- dashboard --------------------------------------------------------------------------


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    """One Prometheus query of a panel."""
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto",
            "refId": ref, **extra}


def panel(kind: str, title: str, description: str, targets: list[dict[str, Any]],
          pos: tuple[int, int, int, int], unit: str = "short",
          custom: dict[str, Any] | None = None,
          options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A panel at grid position (x, y, w, h); ids are assigned in `dashboard`."""
    x, y, w, h = pos
    return {
        "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom or {}}, "overrides": []},
        "options": options or {}, "targets": targets,
    }


def row(title: str, y: int) -> dict[str, Any]:
    """A collapsible row header."""
    return {"type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def timeseries(title: str, description: str, targets: list[dict[str, Any]],
               pos: tuple[int, int, int, int], unit: str = "short", stack: bool = False,
               points: bool = False, legend: bool = True) -> dict[str, Any]:
    """A time series panel; `points` draws samples only (one dot per finished trial);
    `legend=False` hides the legend (a series per trial would make it a wall)."""
    custom: dict[str, Any] = {"drawStyle": "points" if points else "line",
                              "lineWidth": 1, "fillOpacity": 20 if stack else 0,
                              "showPoints": "always" if points else "never",
                              "pointSize": 6 if points else 4, "spanNulls": False}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    options = {"legend": {"displayMode": "table", "placement": "right",
                          "calcs": ["lastNotNull"]} if legend else
               {"displayMode": "hidden", "placement": "bottom", "showLegend": False},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, description, targets, pos, unit, custom, options)


def quantiles(metric: str, by: str, selector: str = "") -> list[dict[str, Any]]:
    """p50/p90/p99 of a histogram, one target each."""
    inner = f"{{{selector}}}" if selector else ""
    legend_prefix = "".join(f"{{{{{label}}}}} " for label in by.split(", ") if label)
    group = f"le, {by}" if by else "le"
    return [target(f"histogram_quantile({q}, sum by ({group}) "
                   f"(rate({metric}_bucket{inner}[$__rate_interval])))",
                   f"{legend_prefix}p{round(q * 100)}", ref)
            for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))]


def panels() -> list[dict[str, Any]]:
    """Every panel, top to bottom."""
    out: list[dict[str, Any]] = [row("Sweeps", 0)]
    out.append(panel(
        "stat", "Sweeps by phase",
        "How many of the selected sweeps are in each phase now.",
        [target(f"sum by (phase) (kubesweep_sweeps{{{SEL}}})", "{{phase}}")],
        (0, 1, 8, 6),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "value", "graphMode": "none", "textMode": "value_and_name",
                 "orientation": "horizontal"}))
    out.append(panel(
        "bargauge", "Progress (finished / max trials)",
        "Finished trials (succeeded, failed or stopped) as a fraction of spec.maxTrials.",
        [target(f'sum by (namespace, sweep) (kubesweep_trials{{{SEL}, '
                f'state=~"succeeded|failed|stopped"}}) / on (namespace, sweep) '
                f"max by (namespace, sweep) (kubesweep_sweep_max_trials{{{SEL}}})",
                SWEEP_LEGEND)],
        (8, 1, 8, 6), unit="percentunit",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "displayMode": "gradient", "orientation": "horizontal",
                 "minVizHeight": 10}))
    out.append(panel(
        "stat", "Trials waiting for GPUs",
        "Trials whose pod is Pending and unschedulable (for example, no free GPU). "
        "Non-zero for long: add capacity or lower spec.parallelism.",
        [target(f"sum(kubesweep_trials_unschedulable{{{SEL}}})", "unschedulable")],
        (16, 1, 8, 6),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "background", "graphMode": "area", "textMode": "value"}))
    out.append(row("Trials", 7))
    out.append(timeseries(
        "Trials by state", "Trials of the selected sweeps in each state over time.",
        [target(f"sum by (state) (kubesweep_trials{{{SEL}}})", "{{state}}")],
        (0, 8, 12, 8), stack=True))
    out.append(timeseries(
        "Trials pending for GPUs", "Unschedulable trial pods per sweep over time.",
        [target(f"sum by (namespace, sweep) (kubesweep_trials_unschedulable{{{SEL}}})",
                SWEEP_LEGEND)],
        (12, 8, 12, 8)))
    out.append(timeseries(
        "Trials created per second", "Rate at which the operator creates trial Jobs.",
        [target(f"sum by (namespace, sweep) "
                f"(rate(kubesweep_trials_created_total{{{SEL}}}[$__rate_interval]))",
                SWEEP_LEGEND)],
        (0, 16, 12, 8), unit="ops"))
    out.append(timeseries(
        "Trial duration", "Quantiles of the run time of trials that finished.",
        quantiles("kubesweep_trial_duration_seconds", "", SEL),
        (12, 16, 12, 8), unit="s"))
    out.append(row("Objective", 24))
    out.append(timeseries(
        "Best value per sweep", "The best objective value found so far by each sweep.",
        [target(f"max by (namespace, sweep, metric) (kubesweep_sweep_best_value{{{SEL}}})",
                SWEEP_LEGEND + " {{metric}}")],
        (0, 25, 12, 9)))
    # kubesweep_trial_value has one series per trial (the newest 50 per sweep); a series
    # is new for one rate interval after its trial finished, so `unless ... offset`
    # draws each trial once, at the time it finished, however many finish per scrape
    by = "namespace, sweep, metric, trial"
    out.append(timeseries(
        "Trial values", "The objective value of each finished trial: one point per trial, "
        "at the time it finished.",
        [target(f"max by ({by}) (kubesweep_trial_value{{{SEL}}}) unless max by ({by}) "
                f"(kubesweep_trial_value{{{SEL}}} offset $__rate_interval)",
                SWEEP_LEGEND + " trial {{trial}}")],
        (12, 25, 12, 9), points=True, legend=False))
    out.append(row("Operator", 34))
    out.append(timeseries(
        "Suggest latency", "Time the search strategy takes to propose a batch, by method.",
        quantiles("kubesweep_suggest_duration_seconds", "method"),
        (0, 35, 8, 8), unit="s"))
    out.append(timeseries(
        "Reconcile duration", "Time of one reconcile pass of one sweep.",
        quantiles("kubesweep_reconcile_duration_seconds", ""),
        (8, 35, 8, 8), unit="s"))
    out.append(timeseries(
        "Reconcile and API errors", "Reconcile passes that failed (per sweep) and failed "
        "Kubernetes API calls (by verb, resource and HTTP code; 403 means missing RBAC).",
        [target(f"sum by (namespace, sweep) "
                f"(increase(kubesweep_reconcile_errors_total{{{SEL}}}[$__rate_interval]))",
                "reconcile " + SWEEP_LEGEND, "A"),
         target("sum by (verb, resource, code) "
                "(increase(kubesweep_api_errors_total[$__rate_interval]))",
                "api {{verb}} {{resource}} {{code}}", "B")],
        (16, 35, 8, 8)))
    return out


def variables() -> list[dict[str, Any]]:
    """The datasource, namespace and sweep template variables."""

    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
                "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
                "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1, "hide": 0, "options": [], "regex": ""}

    return [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "refresh": 1, "hide": 0, "regex": "", "options": [],
         "current": {"selected": False, "text": "default", "value": "default"}},
        query_var("namespace", "Namespace", "label_values(kubesweep_sweeps, namespace)"),
        query_var("sweep", "Sweep",
                  'label_values(kubesweep_sweeps{namespace=~"$namespace"}, sweep)'),
    ]


def dashboard() -> dict[str, Any]:
    """The whole dashboard, with stable panel ids."""
    all_panels = panels()
    for i, p in enumerate(all_panels, start=1):
        p["id"] = i
    return {
        "uid": "kubesweep", "title": "kubesweep", "tags": ["kubesweep", "hyperparameters"],
        "description": "Hyperparameter sweeps run by the kubesweep operator.",
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "timezone": "", "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables()}, "annotations": {"list": []}, "links": [],
        "panels": all_panels,
    }


# -- alert rules ------------------------------------------------------------------------


def alert(name: str, expr: str, for_: str, severity: str, summary: str,
          description: str) -> dict[str, Any]:
    """One alerting rule."""
    return {"alert": name, "expr": expr, "for": for_, "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description}}


def rules() -> dict[str, Any]:
    """The rule groups, in Prometheus's rule file format (also a PrometheusRule spec)."""
    where = "Sweep {{ $labels.namespace }}/{{ $labels.sweep }}"
    return {"groups": [{"name": "kubesweep", "rules": [
        alert("KubesweepSweepFailed",
              'max by (namespace, sweep) (kubesweep_sweeps{phase="Failed"}) == 1', "0m",
              "warning", f"{where} failed.",
              f"{where} is in phase Failed. `kubectl describe sweep -n "
              "{{ $labels.namespace }} {{ $labels.sweep }}` shows the condition and the "
              "events that say why."),
        alert("KubesweepReconcileErrors",
              "sum by (namespace, sweep) "
              "(increase(kubesweep_reconcile_errors_total[10m])) > 2", "5m",
              "warning", f"The operator keeps failing to reconcile {where}.",
              f"{where} had {{{{ $value | humanize }}}} failed reconcile passes in 10 "
              "minutes. The operator's log says why: kubectl logs -A -l "
              "app.kubernetes.io/name=kubesweep --tail=100"),
        alert("KubesweepApiForbidden",
              'sum by (verb, resource) (increase(kubesweep_api_errors_total{code="403"}'
              "[10m])) > 0", "0m",
              "critical", "The operator may not {{ $labels.verb }} {{ $labels.resource }}.",
              "The Kubernetes API refused the operator's {{ $labels.verb }} on "
              "{{ $labels.resource }} (403): its RBAC is missing a rule. Reinstall the "
              "Helm chart with rbac.create=true, or grant the rule in docs/helm.md."),
        alert("KubesweepTrialsUnschedulable",
              "max by (namespace, sweep) (kubesweep_trials_unschedulable) > 0", "15m",
              "warning", f"Trials of {where} cannot be scheduled.",
              f"{{{{ $value }}}} trial pods of {where} have been Pending and unschedulable "
              "for 15 minutes (usually: not enough free GPUs). Add capacity or lower "
              "spec.parallelism."),
        alert("KubesweepTrialsStuckPending",
              'max by (namespace, sweep) (kubesweep_trials{state="pending"}) > 0 '
              'unless on (namespace, sweep) max by (namespace, sweep) '
              '(kubesweep_trials{state="running"}) > 0', "30m",
              "warning", f"{where} makes no progress: trials wait, none run.",
              f"{where} has had trials waiting to start and none running for 30 "
              "minutes. `kubectl get pods -n {{ $labels.namespace }} -l "
              "kubesweep.io/sweep={{ $labels.sweep }}` shows what they wait for."),
    ]}]}


# -- output -----------------------------------------------------------------------------

RULES_HEADER = ("# Generated by scripts/gen-dashboard.py: edit the script, not this file.\n"
                "# A Prometheus rules file (promtool check rules) and the spec of the chart's\n"
                "# PrometheusRule.\n")


def render() -> dict[Path, str]:
    """The file contents, by path."""
    return {
        DASHBOARD_PATH: json.dumps(dashboard(), indent=2, sort_keys=False) + "\n",
        RULES_PATH: RULES_HEADER + yaml.safe_dump(rules(), sort_keys=False, width=1000),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report those that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run python scripts/gen-dashboard.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
