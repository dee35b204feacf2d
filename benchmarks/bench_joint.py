"""The joint law's fit on a 5 x 5 grid (3 seeds per cell): variable projection (joint.py: a
grid over the two exponents, Nelder-Mead on them, the three linear constants solved exactly)
against a plain five-parameter nonlinear least squares (scipy's curve_fit from a generic
start: E at the smallest value, A and B half the range, both exponents 0.2), on the same planted sweeps. Printed: the time per fit and its ratio, how often each
recovers the planted exponents within 20%, and the time of a whole law (fit, held-out check,
intervals) and of one compute-optimal answer (4000 draws).

    python benchmarks/bench_joint.py            # ~20 s on 2 cores
    python benchmarks/bench_joint.py --quick
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import optimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_joint import ROWS, SIZES, TRUTH, planted, planted_runs  # noqa: E402

from recsys_scaling.report.joint import Cells, fit_law, joint_law  # noqa: E402


def sweep(rng) -> Cells:
    N, D = np.meshgrid(SIZES, ROWS, indexing="ij")
    N, D = np.repeat(N.ravel(), 3), np.repeat(D.ravel(), 3)
    return Cells(N, D, planted(N, D) + rng.normal(0, 1e-3, len(N)), np.repeat(np.arange(25), 3))


def plain_fit(cells: Cells) -> np.ndarray:
    def law(X, E, A, alpha, B, beta):
        return E + A * (X[0] / SIZES[0]) ** -alpha + B * (X[1] / ROWS[0]) ** -beta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            spread = float(cells.y.max() - cells.y.min())
            start = [float(cells.y.min()), spread / 2, 0.2, spread / 2, 0.2]  # no knowledge of the truth
            theta, _ = optimize.curve_fit(law, np.vstack([cells.N, cells.D]), cells.y, p0=start, maxfev=20000)
        except RuntimeError:
            return np.full(5, np.nan)
    return theta


def timed(function, items):
    start = time.perf_counter()
    out = [function(item) for item in items]
    return (time.perf_counter() - start) / len(items), out


def recovered(theta) -> bool:
    return bool(abs(theta[2] / TRUTH["alpha"] - 1) < 0.2 and abs(theta[4] / TRUTH["beta"] - 1) < 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 20 if args.quick else 100
    rng = np.random.default_rng(0)
    sweeps = [sweep(rng) for _ in range(reps)]
    varpro_time, varpro = timed(fit_law, sweeps)
    plain_time, plain = timed(plain_fit, sweeps)
    print(f"fit on 5 x 5 cells x 3 seeds, {reps} planted sweeps")
    print(f"  variable projection: {1e3 * varpro_time:7.1f} ms/fit, exponents recovered in "
          f"{np.mean([recovered(f.theta) for f in varpro]):.0%}, converged {np.mean([f.converged for f in varpro]):.0%}")
    print(f"  plain curve_fit:     {1e3 * plain_time:7.1f} ms/fit, exponents recovered in "
          f"{np.mean([recovered(t) for t in plain]):.0%}")
    print(f"  time ratio variable projection / plain: {varpro_time / plain_time:.2f}")
    runs = planted_runs(np.random.default_rng(1))
    law_time, laws = timed(lambda _: joint_law(runs, metric="logloss"), range(3 if args.quick else 10))
    optimum_time, _ = timed(lambda law: law.optimal(1e13), laws)
    print(f"  a whole law (fit, held-out refit, intervals, cost): {1e3 * law_time:.0f} ms; "
          f"one compute-optimal answer (4000 draws): {1e3 * optimum_time:.0f} ms")


if __name__ == "__main__":
    main()
