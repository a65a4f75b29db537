"""The `kubesweep` command: run a sweep locally, validate a manifest, run the operator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubesweep.manifest import ManifestError, load_sweep, load_sweep_document
from kubesweep.settings import add_flags
from kubesweep.spec import SpecError, Sweep

EXIT_INVALID = 2


def _load(path: str, name: str | None, max_trials: int | None = None) -> Sweep:
    notes: list[str] = []
    sweep = load_sweep(Path(path), name, warnings=notes, max_trials=max_trials)
    for note in notes:
        print(f"{path}: warning: {note}", file=sys.stderr)
    return sweep


def _print_problems(path: str, exc: Exception) -> None:
    if isinstance(exc, SpecError):
        print(f"{path}: invalid Sweep:", file=sys.stderr)
        for field, message in exc.problems:
            print(f"  {field}: {message}" if field else f"  {message}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the problems of a manifest (exit 2), or a one-line summary of a valid one."""
    try:
        sweep = _load(args.file, args.name, args.max_trials)
    except (SpecError, ManifestError) as exc:
        _print_problems(args.file, exc)
        return EXIT_INVALID
    spec = sweep.spec
    names = list(spec.leaf_parameters)
    goal = f"{spec.metric.goal.value} {spec.metric.name}" if spec.metric is not None else \
        "no metric (records every metric)"
    print(f"{args.file}: Sweep {sweep.metadata.name} is valid: {spec.method} search over "
          f"{len(names)} parameters ({', '.join(names)}), {spec.budget} trials, {goal}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Print the Sweep resource equivalent to a W&B sweep config (YAML)."""
    import yaml

    from kubesweep.spec import parse_sweep

    path = Path(args.file)
    notes: list[str] = []
    try:
        doc, from_wandb = load_sweep_document(path, warnings=notes, max_trials=args.max_trials,
                                              image=args.image)
        if not from_wandb:
            raise ManifestError(f"{path}: is already a Sweep manifest, not a W&B sweep config")
        sweep = load_sweep(path, max_trials=args.max_trials, image=args.image)
    except (SpecError, ManifestError) as exc:
        _print_problems(args.file, exc)
        return EXIT_INVALID
    for note in notes:
        print(f"{args.file}: note: {note}", file=sys.stderr)
    if args.image is None:
        print(f"{args.file}: note: no --image given: the trial container runs "
              f"{doc['spec']['trialTemplate']['spec']['template']['spec']['containers'][0]['image']}"
              ", which does not hold your program; build an image with it and pass --image",
              file=sys.stderr)
    if args.namespace:
        doc["metadata"]["namespace"] = args.namespace
    parse_sweep(doc)  # the printed manifest is exactly the one validated
    doc["metadata"]["name"] = sweep.metadata.name
    sys.stdout.write(yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a sweep with trials as local processes."""
    from kubesweep.local.results import ResultsError
    from kubesweep.local.runner import LocalRunner
    from kubesweep.local.view import View

    try:
        sweep = _load(args.file, args.name, args.max_trials)
        overrides = {k: v for k, v in (("parallelism", args.parallelism),
                                       ("maxTrials", args.max_trials), ("seed", args.seed))
                     if v is not None}
        if overrides:
            from kubesweep.spec import parse_sweep

            data = sweep.model_dump(mode="json", exclude_none=True)
            data["spec"].update(overrides)
            sweep = parse_sweep(data)
    except (SpecError, ManifestError) as exc:
        _print_problems(args.file, exc)
        return EXIT_INVALID
    name = sweep.metadata.name or "sweep"
    out = Path(args.out) if args.out else Path("kubesweep-results") / name / "trials.jsonl"
    if out.exists() and not (args.resume or args.overwrite):
        print(f"error: {out} holds the results of an earlier run; add --resume to continue "
              "it, --overwrite to start over, or --out FILE to write elsewhere",
              file=sys.stderr)
        return EXIT_INVALID
    view = View(sys.stdout, live=False if args.plain else None, quiet=args.quiet)
    try:
        runner = LocalRunner(sweep, Path(args.file).resolve().parent, out.resolve(),
                             resume=args.resume, view=view)
        result = runner.run()
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return result.exit_code


def cmd_operator(args: argparse.Namespace) -> int:
    """Run the Kubernetes operator (kopf) until stopped."""
    from kubesweep.k8s.main import run_operator
    from kubesweep.settings import from_args

    return run_operator(from_args(args), namespaces=args.namespace or (),
                        all_namespaces=args.all_namespaces, verbose=args.verbose)


def cmd_crd(args: argparse.Namespace) -> int:
    """Print the Sweep CustomResourceDefinition (YAML) generated from the spec models."""
    from kubesweep.k8s.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `kubesweep` command."""
    parser = argparse.ArgumentParser(
        prog="kubesweep",
        description="Hyperparameter sweeps from one Sweep manifest, on Kubernetes or locally.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a sweep with trials as local processes",
                         description="Run the Sweep in FILE on this machine: each trial's "
                         "container command runs as a process in FILE's directory.")
    run.add_argument("file", metavar="FILE", help="Sweep manifest (YAML)")
    run.add_argument("--name", help="which Sweep, when FILE holds several")
    run.add_argument("--out", metavar="FILE",
                     help="results file (JSON lines; default kubesweep-results/NAME/trials.jsonl)")
    run.add_argument("--resume", action="store_true",
                     help="continue the sweep recorded in the results file")
    run.add_argument("--overwrite", action="store_true",
                     help="start over even if the results file exists")
    run.add_argument("--parallelism", type=int, help="override spec.parallelism")
    run.add_argument("--max-trials", type=int, help="override spec.maxTrials")
    run.add_argument("--seed", type=int, help="override spec.seed")
    run.add_argument("--plain", action="store_true",
                     help="print a line per trial instead of the live view")
    run.add_argument("--quiet", action="store_true", help="print only the final table")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("file", metavar="FILE", help="Sweep manifest (YAML)")
    validate.add_argument("--name", help="which Sweep, when FILE holds several")
    validate.add_argument("--max-trials", type=int,
                          help="the budget of a W&B sweep config without run_cap")
    validate.set_defaults(func=cmd_validate)

    convert = sub.add_parser(
        "convert", help="print the Sweep resource equivalent to a W&B sweep config",
        description="Read a W&B sweep config (method, metric, parameters, early_terminate, "
        "run_cap, program, command, ...) and print the equivalent Sweep manifest, ready for "
        "kubectl apply.")
    convert.add_argument("file", metavar="FILE", help="W&B sweep config (YAML)")
    convert.add_argument("--image", metavar="IMG",
                         help="image of the trial container (it must hold the program)")
    convert.add_argument("--max-trials", type=int,
                         help="the budget when the config has no run_cap")
    convert.add_argument("--namespace", "-n", metavar="NS", help="metadata.namespace")
    convert.set_defaults(func=cmd_convert)

    op = sub.add_parser("operator", help="run the Kubernetes operator",
                        description="Reconcile Sweeps on the cluster of the current kubeconfig "
                        "(or the in-cluster service account): one Job per trial.")
    scope = op.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", metavar="NS",
                       help="watch this namespace (repeatable; default: the operator's own)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch Sweeps in every namespace")
    add_flags(op)
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    op.set_defaults(func=cmd_operator)

    crd = sub.add_parser("crd", help="print the Sweep CustomResourceDefinition (YAML)")
    crd.set_defaults(func=cmd_crd)

    # trials / report / logs / best: the same commands as the kubectl plugin
    from kubesweep.plugin import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kubesweep` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
