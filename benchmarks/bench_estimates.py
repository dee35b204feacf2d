"""How close the sweep estimates are: estimate a sweep, run it, compare (printed as ratios).

Goals (on 2 cores, the demo): the sweep's total within ±30% of its actual wall time, each job
within ±50% of its own. Runs in a scratch folder with its own store and caches; the calibration
is fresh unless --keep-calibration.

    python benchmarks/bench_estimates.py --quick     # 6 demo jobs, about 1.5 minutes
    python benchmarks/bench_estimates.py             # the whole demo (42 jobs), about 5-10 minutes
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["model=dnn,dcnv2", "scale=1,4", "seed=0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a subset of the demo: 6 jobs")
    parser.add_argument("--sweep", default="demo")
    parser.add_argument("--keep-calibration", action="store_true",
                        help="use this machine's cached calibration (default: a fresh one, timed first)")
    args = parser.parse_args()
    grid = QUICK if args.quick else []
    with tempfile.TemporaryDirectory(prefix="bench-estimates-") as folder:
        env = {**os.environ, "RECSYS_SCALING_CACHE": f"{folder}/cache", "MPLBACKEND": "Agg"}
        env.pop("MLFLOW_TRACKING_URI", None)
        if not args.keep_calibration:
            env["RECSYS_SCALING_CALIBRATION"] = f"{folder}/calibration"
        store = f"sqlite:///{folder}/mlflow.db"
        run = subprocess.run([sys.executable, "-m", "recsys_scaling.cli", "sweep", args.sweep, *grid,
                              f"tracking.uri={store}"], cwd=folder, env=env, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"the sweep failed:\n{run.stderr[-3000:]}")
        compare(store, args.sweep)


def compare(store_uri: str, sweep: str) -> None:
    sys.path.insert(0, str(ROOT))
    from recsys_scaling import tracking

    store = tracking.Store(store_uri)
    parent = store.latest_sweep_parent(sweep).info.run_id
    estimate = store.run_json(parent, "estimate.json")
    times = store.sweep_times(parent)
    measured = {r.info.run_name: (r.info.end_time - r.info.start_time) / 1000 for r in store.child_runs(parent)}
    ratios = []
    print(f"{'job':<18} {'estimated':>9} {'measured':>9} {'ratio':>6}")
    for job in estimate["jobs"]:
        ratio = job["seconds"] / measured[job["job"]]
        ratios.append(ratio)
        print(f"{job['job']:<18} {job['seconds']:>8.1f}s {measured[job['job']]:>8.1f}s {ratio:>6.2f}")
    total = times["estimated_seconds"] / times["actual_seconds"]
    inside = sum(0.5 <= r <= 1.5 for r in ratios)
    print(f"\nsweep {sweep}: {len(ratios)} jobs; estimated {times['estimated_seconds']:.0f} s, took "
          f"{times['actual_seconds']:.0f} s: ratio {total:.2f} (goal 0.70-1.30: {'met' if 0.7 <= total <= 1.3 else 'NOT met'})")
    print(f"per job: ratios {min(ratios):.2f}..{max(ratios):.2f}, median {sorted(ratios)[len(ratios) // 2]:.2f}; "
          f"{inside} of {len(ratios)} within 0.50-1.50 (goal: all: {'met' if inside == len(ratios) else 'NOT met'})")


if __name__ == "__main__":
    main()
