"""`kubectl sweep ...` (the kubectl plugin) and the same commands under `kubesweep ...`:

    trials NAME   every trial: index, state, value, params, duration, reason
    report NAME   one self-contained HTML file with plots and the trial table
    logs NAME T   a trial's log
    best NAME     the best parameters as json, env or yaml

NAME is a Sweep on the cluster (kubeconfig, `--context`, `-n` as for kubectl), or the
results directory of a local run (`kubesweep-results/NAME`). Problems print one clear
line on stderr and exit 1 (2 for bad arguments); never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
EXIT_USAGE = 2


def _is_local(name: str) -> bool:
    # Kubernetes names cannot contain "/" or end in .jsonl: those are local results, and
    # so is a directory here holding a results file; any other word is a Sweep name
    return "/" in name or name.endswith(".jsonl") or (Path(name) / "trials.jsonl").exists()


def _connect(args: argparse.Namespace) -> Any:
    from kubesweep.views.cluster import Cluster

    return Cluster.connect(args.kubeconfig, args.context, args.namespace)


def load(args: argparse.Namespace) -> Any:
    """The `SweepResults` NAME points at (local directory or cluster Sweep)."""
    from kubesweep.views import model

    if _is_local(args.name):
        return model.load_local(Path(args.name))
    cluster = _connect(args)
    sweep = cluster.get_sweep(args.name)
    return model.from_cluster(sweep, cluster.jobs(args.name))


def _importance(results: Any) -> dict[str, float]:
    from kubesweep.importance import importances

    space = results.space
    if space is None:
        return {}
    done = [t for t in results.trials if t.state == "succeeded" and t.value is not None]
    return importances(space, [t.params for t in done], [t.value for t in done])


def cmd_trials(args: argparse.Namespace) -> int:
    """Print the trials table."""
    from kubesweep.views import table

    results = load(args)
    rows = table.select(results, args.state, args.sort)
    if args.output == "json":
        out = table.render_json(rows)
    elif args.output == "csv":
        out = table.render_csv(results, rows)
    else:
        wide = args.output == "wide"
        out = table.render_table(results, rows, wide, _importance(results) if wide else None)
    sys.stdout.write(out)
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    """Print the best trial's parameters."""
    from kubesweep.views.table import render_best

    sys.stdout.write(render_best(load(args), args.output))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report."""
    from kubesweep.views.report import render_report

    results = load(args)
    if args.output:
        out = Path(args.output)
    elif _is_local(args.name):
        out = Path(results.source).parent / "report.html"
    else:
        out = Path(f"{results.name}-report.html")
    out.write_text(render_report(results, _importance(results)), encoding="utf-8")
    print(f"wrote {out} ({len(results.trials)} trials); open it in a browser")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a trial's log (its pod's, or the local log file)."""
    from kubesweep.k8s import objects

    trial = _trial_index(args.trial)
    if _is_local(args.name):
        from kubesweep.views import model

        results = model.load_local(Path(args.name))
        row = next((t for t in results.trials if t.index == trial), None)
        if row is None:
            raise LookupError(f"{results.source}: no trial {trial}")
        path = Path(results.source).parent / "logs" / f"{row.name}.log"
        if not path.exists():
            raise LookupError(f"{path}: the log of trial {trial} is missing")
        text = path.read_text(encoding="utf-8", errors="replace")
        if args.tail is not None:
            text = "".join(text.splitlines(keepends=True)[-args.tail:]) if args.tail else ""
        sys.stdout.write(text)
        return 0
    cluster = _connect(args)
    sweep = cluster.get_sweep(args.name)
    pods = [p for p in cluster.pods(args.name) if objects.trial_index(p) == trial]
    if not pods:
        raise LookupError(
            f"trial {trial} of Sweep {args.name} has no pod left (its Job was pruned once "
            "the result was recorded; the operator's --keep-finished-jobs keeps more). "
            f"`kubectl sweep trials {args.name}` still shows its result")
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    container = None
    try:
        from kubesweep.spec import parse_spec

        container = parse_spec(dict(sweep.get("spec") or {})).primary_container().get("name")
    except ValueError:
        container = None
    sys.stdout.write(cluster.log(pods[-1]["metadata"]["name"], container, args.tail))
    return 0


def _trial_index(text: str) -> int:
    tail = text.rsplit("-", 1)[-1]  # a Job name (NAME-INDEX) works too
    if not tail.isdigit():
        raise ValueError(f"TRIAL {text!r}: give the trial's number (as in `trials`) or its "
                         "Job name")
    return int(tail)


def add_commands(sub: Any) -> None:
    """Add trials/report/logs/best to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", metavar="NAME",
                        help="Sweep name on the cluster, or a local results directory "
                        "(kubesweep-results/NAME)")
    common.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--context", help="kubeconfig context (default: the current one)")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or "
                        "~/.kube/config)")

    trials = sub.add_parser("trials", parents=[common], help="list every trial of a sweep")
    trials.add_argument("-o", "--output", default="table",
                        choices=("table", "wide", "json", "csv"),
                        help="table (default); wide adds metrics, full reasons and "
                        "parameter importance; json; csv")
    trials.add_argument("--sort", metavar="COLUMN",
                        help="index (default), value (best first), duration, or a "
                        "parameter or metric name")
    trials.add_argument("--state", choices=("succeeded", "failed", "stopped", "running",
                                            "pending", "finishing"),
                        help="only trials in this state (finishing: done, not yet recorded "
                        "by the operator)")
    trials.set_defaults(func=_guarded(cmd_trials))

    report = sub.add_parser("report", parents=[common],
                            help="write an HTML report (plots, importance, trial table)")
    report.add_argument("-o", "--output", metavar="FILE",
                        help="where to write (default NAME-report.html, or report.html in "
                        "a local results directory)")
    report.set_defaults(func=_guarded(cmd_report))

    logs = sub.add_parser("logs", parents=[common], help="print a trial's log")
    logs.add_argument("trial", metavar="TRIAL", help="trial number (or its Job name)")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    logs.set_defaults(func=_guarded(cmd_logs))

    best = sub.add_parser("best", parents=[common], help="print the best parameters")
    best.add_argument("-o", "--output", default="json", choices=("json", "env", "yaml"),
                      help="json (default), env (KEY=value lines) or yaml")
    best.set_defaults(func=_guarded(cmd_best))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[
        [argparse.Namespace], int]:
    """`command` with every expected problem turned into one line on stderr."""
    def run(args: argparse.Namespace) -> int:
        from kubesweep.local.results import ResultsError
        from kubesweep.views.cluster import ClusterError

        try:
            return int(command(args))
        except (ClusterError, ResultsError, LookupError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `kubectl sweep`."""
    parser = argparse.ArgumentParser(
        prog="kubectl sweep",
        description="Look at kubesweep Sweeps: every trial, an HTML report, logs, the best "
        "parameters. Works on a cluster Sweep or a local results directory.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `kubectl-sweep` (kubectl runs it for `kubectl sweep ...`)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
