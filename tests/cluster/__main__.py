"""`python -m tests.cluster up|down|status`: a test cluster for the shell.

    eval "$(python -m tests.cluster up | grep ^KUBECONFIG=)"; export KUBECONFIG
    kubectl get nodes
    python -m tests.cluster down
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import processes, real_node
from .control_plane import ClusterError, ClusterState, LocalCluster, NodeSpec, stop_state
from .paths import MissingBinaryError, default_run_dir, tools_bin_dir
from .real_node import RealNodeError, RealNodeSpec


def _running(state: ClusterState) -> bool:
    return all(processes.alive(pid) for pid in state.pids.values())


def up(args: argparse.Namespace) -> int:
    """Start a detached cluster (or report the one already running) and print KUBECONFIG."""
    run_dir: Path = args.run_dir
    state = ClusterState.load(run_dir)
    if state is not None:
        if _running(state):
            print(f"cluster already running in {run_dir}", file=sys.stderr)
            print(f"KUBECONFIG={state.kubeconfig}")
            return 0
        stop_state(state)  # half-dead leftovers: clear them before starting afresh
    if args.nodes is not None and args.nodes < 0:
        print(f"error: --nodes must be >= 0, got {args.nodes}", file=sys.stderr)
        return 2
    if args.gpus < 0:
        print(f"error: --gpus must be >= 0, got {args.gpus}", file=sys.stderr)
        return 2
    # With a real node, process nodes only when asked for.
    n_nodes = args.nodes if args.nodes is not None else (0 if args.kubelet else 1)
    nodes = [NodeSpec(name=f"kubesweep-node-{i}", cpu=args.cpu, memory=args.memory,
                      pods=args.pods, gpus=args.gpus, workdir=args.workdir)
             for i in range(n_nodes)]
    real = RealNodeSpec(gpus=args.gpus) if args.kubelet else None
    cluster = LocalCluster(run_dir, nodes, die_with_parent=False, real_node=real)
    try:
        state = cluster.start(timeout=args.timeout)
    except (ClusterError, MissingBinaryError, RealNodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"cluster up: {state.server}; logs in {run_dir / 'logs'}", file=sys.stderr)
    print(f"kubectl: {tools_bin_dir() / 'kubectl'} (scripts/install-tools.sh)", file=sys.stderr)
    print(f"KUBECONFIG={state.kubeconfig}")
    return 0


def down(args: argparse.Namespace) -> int:
    """Stop every process of the cluster in run_dir."""
    state = ClusterState.load(args.run_dir)
    if state is None:
        # A real node whose `up` crashed before writing state.json still left its record.
        problems = real_node.sweep_dead(args.run_dir.resolve())
        print(f"no cluster state in {args.run_dir}" +
              (f"; real node cleanup: {problems}" if problems else ""), file=sys.stderr)
        return 0
    problems: list[str] = []
    swept = stop_state(state, problems)
    if swept:
        print(f"killed leftover processes: {swept}", file=sys.stderr)
    (args.run_dir / "state.json").unlink(missing_ok=True)
    if problems:
        print(f"error: the real node's teardown: {'; '.join(problems)}", file=sys.stderr)
        return 1
    print(f"cluster in {args.run_dir} stopped (logs kept in {args.run_dir / 'logs'})",
          file=sys.stderr)
    return 0


def status(args: argparse.Namespace) -> int:
    """Print each component's pid and whether it runs; exit 1 unless all do."""
    state = ClusterState.load(args.run_dir)
    if state is None:
        print("not running")
        return 1
    for name, pid in state.pids.items():
        print(f"{name:28} pid {pid:<8} {'running' if processes.alive(pid) else 'DEAD'}"
              f"  {state.logs.get(name, '')}")
    print(f"KUBECONFIG={state.kubeconfig}")
    return 0 if _running(state) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=default_run_dir(),
                   help="state, certificates and logs (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start a cluster in the background")
    u.add_argument("--nodes", type=int, default=None,
                   help="process nodes (default: 1, or 0 with --kubelet)")
    u.add_argument("--kubelet", action="store_true",
                   help="also start a real node: containerd + kubelet + kube-proxy in a "
                        "network namespace (root; see tests/cluster/README.md)")
    u.add_argument("--gpus", type=int, default=2,
                   help="nvidia.com/gpu per node (on the real node: fake devices of a "
                        "device plugin)")
    u.add_argument("--cpu", default="32")
    u.add_argument("--memory", default="64Gi")
    u.add_argument("--pods", type=int, default=110)
    u.add_argument("--workdir", type=Path, default=None,
                   help="working directory of pod processes (default: repository root); "
                        "e.g. examples/ to apply the example Sweeps unchanged")
    u.add_argument("--timeout", type=float, default=300.0)
    u.set_defaults(func=up)
    sub.add_parser("down", help="stop the cluster").set_defaults(func=down)
    sub.add_parser("status", help="show the cluster's processes").set_defaults(func=status)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
