"""How α is spread over the adaptive loop's looks: the even split against the spending function
α·(k/K)² the report uses, on the loop's own logic (look, add a seed to every cell behind an
undecided claim, look again) with simulated runs. Printed per rule: the share of claims decided
at the end, how often the planted scaling gap was found, the mean seeds per cell used, and the
chance that a null backbone showed a false claim at any look (must stay ≤ 5%).

    python benchmarks/bench_spending.py             # about 2 minutes on 2 cores
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from recsys_scaling.report import analyse, intervals
from recsys_scaling.sweep.adaptive import undecided_cells

SCALES = (1, 2, 4, 10)
SD, MARGIN = 2e-4, 5e-4
RULES = {"even (Bonferroni)": lambda k, K: 1.0 / K, "alpha*(k/K)^2": intervals.spending_share}


def runs_table(rng, me_slope: float, seeds: int, backbones: int) -> pd.DataFrame:
    rows = []
    for b in range(backbones):
        for arm in ("se", "me"):
            for scale in SCALES[1:] if arm == "me" else SCALES:
                truth = 0.7 + (me_slope if arm == "me" else 0.0) * np.log2(scale)
                for seed, value in enumerate(truth + rng.normal(0, SD, seeds)):
                    rows.append((f"{b}-{arm}-{scale}-{seed}", f"b{b:03d}", arm, scale, 1 if arm == "se" else scale,
                                 seed, value, 1e5 * scale))
    runs = pd.DataFrame(rows, columns=["run_id", "backbone", "arm", "scale", "num_embeddings", "seed", "test_auc",
                                       "params_total"])
    return runs.assign(status="FINISHED", series="sim", fingerprint=runs["run_id"], test_logloss=0.5)


def adaptive(rule, me_slope: float, backbones: int, max_seeds: int, seed: int) -> dict:
    intervals.spending_share = rule
    full = runs_table(np.random.default_rng(seed), me_slope, max_seeds, backbones)
    seeds_of = {key: 3 for key in zip(full["backbone"], full["arm"], full["scale"])}
    wrong, results = set(), []
    for _ in range(max_seeds - 2):
        keep = [s < seeds_of[key] for s, key in zip(full["seed"], zip(full["backbone"], full["arm"], full["scale"]))]
        results = analyse(full[keep], resamples=1, fit=False, margin=MARGIN, sequential=True, max_seeds=max_seeds)
        wrong |= {r.backbone for r in results if any(c.directional for c in r.claims)}
        undecided = undecided_cells([(r.backbone, r.claims) for r in results])
        if not undecided:
            break
        for key in undecided:
            seeds_of[key] += 1
    claims = [c for r in results for c in r.claims]
    return {"decided": np.mean([c.decided for c in claims]),
            "found": np.mean([r.scaling_gap.verdict == "me_scales_better" for r in results]),
            "seeds": np.mean(list(seeds_of.values())), "false": len(wrong) / backbones}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", type=int, default=150)
    parser.add_argument("--max-seeds", type=int, default=10)
    args = parser.parse_args()
    original = intervals.spending_share
    try:
        print(f"adaptive loop, looks at 3..{args.max_seeds} seeds, seed sd {SD}, margin {MARGIN}")
        for name, rule in RULES.items():
            for slope in (0.3 * MARGIN, 0.6 * MARGIN):
                power = adaptive(rule, slope, args.backbones, args.max_seeds, seed=5)
                print(f"{name:>18}  ME +{slope / MARGIN:.1f} M/doubling: claims decided {power['decided']:.3f}, "
                      f"scaling gap found {power['found']:.3f}, mean seeds per cell {power['seeds']:.2f}")
            null = adaptive(rule, 0.0, 2 * args.backbones, args.max_seeds, seed=9)
            print(f"{name:>18}  global null: a backbone with a false claim at any look {null['false']:.3f}")
    finally:
        intervals.spending_share = original


if __name__ == "__main__":
    main()
