"""How α is spread over the adaptive loop's looks: the even split against the spending function
α·(k/K)² the report uses, on the loop's own logic (look, add a seed to every cell behind an
undecided claim, look again) with simulated runs (the generator and the replay of
tests/test_noise.py). Printed per rule: the share of claims decided at the end, how often the
planted scaling gap was found, the mean seeds per cell used, and the chance that a null backbone
showed a false claim at any look (must stay ≤ 5%).

    python benchmarks/bench_spending.py             # about 2 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_noise import M, replay_until_decided, spec, table  # noqa: E402

from recsys_scaling.report import intervals  # noqa: E402

RULES = {"even (Bonferroni)": lambda k, K: 1.0 / K, "alpha*(k/K)^2": intervals.spending_share}


def adaptive(rule, me_slope: float, backbones: int, max_seeds: int, seed: int) -> dict:
    intervals.spending_share = rule
    cells = spec(me_slope=me_slope, seeds=max_seeds, top_seeds=max_seeds)
    wrong, results, seeds_of = replay_until_decided(table(np.random.default_rng(seed), cells, backbones), max_seeds)
    return {"decided": np.mean([c.decided for r in results for c in r.claims]),
            "found": np.mean([r.scaling_gap.verdict == "me_scales_better" for r in results]),
            "seeds": np.mean(list(seeds_of.values())), "false": len(wrong) / backbones}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", type=int, default=150)
    parser.add_argument("--max-seeds", type=int, default=10)
    args = parser.parse_args()
    original = intervals.spending_share
    try:
        print(f"adaptive loop, looks at 3..{args.max_seeds} seeds, margin {M}")
        for name, rule in RULES.items():
            for slope in (0.3 * M, 0.6 * M):
                power = adaptive(rule, slope, args.backbones, args.max_seeds, seed=5)
                print(f"{name:>18}  ME +{slope / M:.1f} M/doubling: claims decided {power['decided']:.3f}, "
                      f"scaling gap found {power['found']:.3f}, mean seeds per cell {power['seeds']:.2f}")
            null = adaptive(rule, 0.0, 2 * args.backbones, args.max_seeds, seed=9)
            print(f"{name:>18}  global null: a backbone with a false claim at any look {null['false']:.3f}")
    finally:
        intervals.spending_share = original


if __name__ == "__main__":
    main()
