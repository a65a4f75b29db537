"""The alternative to ParEGO we measured: Monte-Carlo expected hypervolume improvement.

Two objectives only (exact 2-D hypervolume improvement per sample). One GP per objective
(same kernel, hyperparameter fit and target transform as kubesweep's bayes), 32 joint
samples per candidate from the independent posteriors, the mean improvement over the
current front of the transformed targets (pending points join the front at their
predicted means: kriging believer), reference point = worst observed + 10% of the range.
Candidates: kubesweep's own (Sobol + perturbations of good trials), no gradient polish.

    OMP_NUM_THREADS=1 nice python -m benchmarks.ehvi [--seeds 10 --first-seed 0]

prints hypervolume after 30/60 trials on ZDT1, ZDT2 and the forest on digits for
kubesweep's ParEGO bayes and this EHVI, as `benchmarks.multi mo` does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from benchmarks.multi import MO_PROBLEMS, _cell, _spec, hypervolume, kubesweep_mo
from benchmarks.problems import Param

N_SAMPLES = 32


def _front_2d(y: np.ndarray) -> np.ndarray:
    order = np.argsort(y[:, 0], kind="stable")
    front, best2 = [], np.inf
    for i in order:
        if y[i, 1] < best2:
            front.append(y[i])
            best2 = y[i, 1]
    return np.array(front).reshape(-1, 2)


def hvi_2d(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume improvement of each point (m, 2) over a 2-D front (minimisation)."""
    front = front[np.all(front < ref, axis=1)]
    xs = np.concatenate([[-np.inf], front[:, 0], [ref[0]]])  # staircase breakpoints
    heights = np.concatenate([[ref[1]], front[:, 1]])        # height on [xs[j], xs[j+1])
    lo, hi = xs[:-1][None, :], xs[1:][None, :]
    a, b = points[:, :1], points[:, 1:]
    width = np.clip(hi - np.maximum(lo, a), 0.0, None)
    height = np.clip(np.minimum(heights[None, :], ref[1]) - b, 0.0, None)
    return (width * height).sum(axis=1)


def ehvi_runner(params: list[Param], objective: Any, k: int, n: int, seed: int
                ) -> list[list[float]]:
    import kubesweep
    from kubesweep.strategies.gp import GP, fit_hyper
    from kubesweep.strategies.warping import transform_losses

    assert k == 2, "EHVI variant: two objectives only"
    tuner = kubesweep.Tuner(_spec(params, "bayes", n, metric={"name": "loss"}), seed=seed)
    strat = tuner.strategy
    out: list[list[float]] = []
    encs: list[np.ndarray] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        if i < strat.n_initial:
            enc = strat._space_filling(np.array(encs).reshape(-1, tuner.space.width), None,
                                       rng)
        else:
            x = np.array(encs)
            xn, xc = strat._features(x)
            losses = np.array(out)
            ys = [transform_losses(losses[:, j], None) for j in range(2)]
            gps = [GP(xn, xc, y, fit_hyper(xn, xc, y)) for y in ys]
            y = np.stack(ys, axis=1)
            ref = y.max(axis=0) + 0.1 * (y.max(axis=0) - y.min(axis=0) + 1e-9)
            front = _front_2d(y)
            cn, cc = strat._candidates(gps[0], rng)
            means, sds = [], []
            for gp in gps:
                m, v = gp.predict(cn, cc)
                means.append(m)
                sds.append(np.sqrt(v))
            mu, sd = np.stack(means, axis=1), np.stack(sds, axis=1)
            z = rng.standard_normal((N_SAMPLES, len(cn), 2))
            samples = mu[None] + sd[None] * z
            score = np.mean([hvi_2d(s, front, ref) for s in samples], axis=0)
            if np.all(score <= 0):
                score = sd.sum(axis=1)
            best = int(np.argmax(score))
            enc = strat._encoding(cn[best:best + 1], cc[best:best + 1])[0]
        params_i = tuner.space.decode(enc)
        encs.append(tuner.space.encode(params_i))
        out.append(objective(params_i))
    return out


def main(argv: list[str] | None = None) -> int:
    """ParEGO (kubesweep bayes) against the EHVI variant."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--problems", default="zdt1,zdt2,forest-digits")
    args = ap.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    methods = {"parego (kubesweep bayes)": kubesweep_mo("bayes"), "mc-ehvi": ehvi_runner}
    rows = {}
    for name in args.problems.split(","):
        params, objective, ref = MO_PROBLEMS[name]
        for method, run in methods.items():
            hv: dict[int, list[float]] = {30: [], 60: []}
            for seed in seeds:
                points = run(params, objective, 2, 60, seed)
                for b in hv:
                    hv[b].append(hypervolume(points[:b], ref))
            rows[(name, method)] = hv
            print(f"# {name} {method} " + " ".join(f"@{b}: {np.median(v):.4g}"
                                                    for b, v in hv.items()),
                  file=sys.stderr, flush=True)
    for b in (30, 60):
        print(f"\n### Hypervolume after {b} trials, ParEGO vs MC-EHVI (median [IQR], seeds "
              f"{seeds.start}-{seeds.stop - 1})\n")
        print("| problem | " + " | ".join(methods) + " |")
        print("|---" * (len(methods) + 1) + "|")
        for name in args.problems.split(","):
            print(f"| {name} | " + " | ".join(_cell(rows[(name, m)][b]) for m in methods)
                  + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
