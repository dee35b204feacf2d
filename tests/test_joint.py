"""The joint size × data law: recovery, calibrated intervals (3 seeds per cell, equal and
unequal spreads), the compute-optimal allocation against the analytic optimum, multipliers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from recsys_scaling.report.compute import compute_multiplier
from recsys_scaling.report.joint import Cells, fit_law, joint_law, joint_laws, raw_intervals

SIZES = 2e5 * 2.0 ** np.arange(5)
ROWS = 2e4 * 2.0 ** np.arange(5)
TRUTH = {"E": 0.44, "A": 0.02 * SIZES[0] ** 0.5, "alpha": 0.5, "B": 0.05 * ROWS[0] ** 0.35, "beta": 0.35}
GAMMA, K, EPOCHS = 0.5, 40.0, 4


def planted(N, D, truth=TRUTH):
    return truth["E"] + truth["A"] * np.asarray(N) ** -truth["alpha"] + truth["B"] * np.asarray(D) ** -truth["beta"]


def planted_runs(rng, sd=lambda n, d: 0.001, seeds=3, arm="se", truth=TRUTH, backbone="dnn") -> pd.DataFrame:
    rows = []
    for scale, N in enumerate(SIZES, start=1):
        for fraction, D in zip((0.0625, 0.125, 0.25, 0.5, 1.0), ROWS):
            for seed in range(seeds):
                fpe = K * N ** GAMMA
                rows.append({"run_id": f"{arm}{scale}{fraction}{seed}", "status": "FINISHED", "series": "planted",
                             "backbone": backbone, "arm": arm, "scale": scale, "seed": seed,
                             "num_embeddings": 2 if arm == "me" else 1, "params_total": N,
                             "train_fraction": fraction, "train_rows": D, "flops_per_example": fpe,
                             "train_flops": 3 * fpe * D * EPOCHS,
                             "test_logloss": planted(N, D, truth) + rng.normal(0, sd(N, D))})
    return pd.DataFrame(rows)


def test_a_planted_law_is_recovered_with_its_cost():
    law = joint_law(planted_runs(np.random.default_rng(0), sd=lambda n, d: 5e-5), metric="logloss")
    summary = law.as_dict()
    assert summary["converged"] and set(summary["params"]) == {"E", "A", "alpha", "B", "beta"}
    for name, value in TRUTH.items():
        entry = summary["params"][name]
        assert entry["low"] <= value <= entry["high"], (name, entry)
        assert entry["estimate"] == pytest.approx(value, rel=0.25)
    assert law.cost.gamma == pytest.approx(GAMMA) and law.cost.epochs_factor == pytest.approx(3 * EPOCHS)
    assert summary["trusted"] and summary["holdout_error"] < 5e-4


def _analytic_optimum(compute: float):
    """Minimise the planted law on its cost curve numerically (independent of the closed form)."""
    def loss(log_n):
        N = np.exp(log_n)
        return planted(N, compute / (3 * EPOCHS * K * N ** GAMMA))
    best = optimize.minimize_scalar(loss, bounds=(np.log(1e3), np.log(1e12)), method="bounded",
                                    options={"xatol": 1e-10})
    N = float(np.exp(best.x))
    return N, compute / (3 * EPOCHS * K * N ** GAMMA), float(best.fun)


def test_the_optimum_matches_the_analytic_optimum_of_a_planted_law():
    law = joint_law(planted_runs(np.random.default_rng(1), sd=lambda n, d: 1e-6), metric="logloss")
    for compute in (1e12, 1e13):
        N, D, best = _analytic_optimum(compute)
        answer = law.optimal(compute)
        assert answer["size"]["estimate"] == pytest.approx(N, rel=0.02)
        assert answer["rows"]["estimate"] == pytest.approx(D, rel=0.02)
        assert answer["metric"]["estimate"] == pytest.approx(best, abs=1e-5)
        assert answer["size"]["low"] <= answer["size"]["estimate"] <= answer["size"]["high"]
    assert law.optimal(1e17)["extrapolated"], "an optimum beyond the measured grid is flagged"


def test_compute_multiplier_against_the_planted_ratio_and_never():
    rng = np.random.default_rng(2)
    better = {**TRUTH, "A": TRUTH["A"] * 0.5}
    runs = pd.concat([planted_runs(rng, sd=lambda n, d: 1e-6), planted_runs(rng, sd=lambda n, d: 1e-6, arm="me",
                                                                           truth=better)])
    laws = {law.arm: law for law in joint_laws(runs, metric="logloss")[0]}
    result = compute_multiplier(slow=laws["se"], fast=laws["me"])
    target = planted(SIZES[-1], ROWS[-1], better)

    def least_compute(truth):
        return optimize.brentq(lambda log_c: _optimum_loss(truth, np.exp(log_c)) - target, np.log(1e9),
                               np.log(1e22))
    ratio = np.exp(least_compute(TRUTH) - least_compute(better))
    assert result["estimate"] == pytest.approx(ratio, rel=0.03) and result["estimate"] > 1
    assert result["low"] <= result["estimate"] <= result["high"]
    floor = {**TRUTH, "E": TRUTH["E"] + 0.05}  # SE's floor above ME's reach: never
    laws = {law.arm: law for law in joint_laws(pd.concat([planted_runs(rng, truth=floor, sd=lambda n, d: 1e-6),
                                                          planted_runs(rng, arm="me", sd=lambda n, d: 1e-6)]))[0]}
    assert compute_multiplier(slow=laws["se"], fast=laws["me"])["never"]


def _optimum_loss(truth, compute):
    def loss(log_n):
        N = np.exp(log_n)
        return planted(N, compute / (3 * EPOCHS * K * N ** GAMMA), truth)
    return optimize.minimize_scalar(loss, bounds=(np.log(1e2), np.log(1e14)), method="bounded").fun


def test_too_few_data_sizes_is_a_clear_error():
    runs = planted_runs(np.random.default_rng(3))
    with pytest.raises(ValueError, match="2 data size.*3 of each"):
        joint_law(runs[runs["train_fraction"] >= 0.5], metric="logloss")
    with pytest.raises(ValueError, match="metric"):
        joint_law(runs, metric="mse")


@pytest.mark.slow
@pytest.mark.parametrize("spread", ["equal", "unequal"])
def test_intervals_cover_the_planted_constants_and_optimum(spread):
    """200 planted sweeps (5 × 5 cells, 3 seeds each): every constant's 95% interval and the
    optimum's size interval cover the truth at about 95%; with unequal spreads the seed sd of
    each cell is drawn over a 10x range."""
    rng = np.random.default_rng(7 if spread == "equal" else 8)
    compute = 3 * EPOCHS * K * SIZES[2] ** GAMMA * ROWS[2] * 4  # inside the measured grid
    true_size = _analytic_optimum(compute)[0]
    hits, reps = {name: 0 for name in [*TRUTH, "optimal size"]}, 200
    for _ in range(reps):
        sds = {}
        sd = (lambda n, d: 0.001) if spread == "equal" else (
            lambda n, d: sds.setdefault((n, d), 3e-4 * 10 ** rng.uniform(0, 1)))
        law = joint_law(planted_runs(rng, sd=sd), metric="logloss")
        for name, value in TRUTH.items():
            hits[name] += law.params[name]["low"] <= value <= law.params[name]["high"]
        size = law.optimal(compute, draws=1500)["size"]
        hits["optimal size"] += size["low"] <= true_size <= size["high"]
    coverage = {name: count / reps for name, count in hits.items()}
    print(spread, coverage)
    assert all(0.90 <= c <= 0.99 for c in coverage.values()), coverage


def test_fit_time_on_a_five_by_five_grid_is_small_enough_for_a_report():
    rng = np.random.default_rng(4)
    N, D = np.meshgrid(SIZES, ROWS, indexing="ij")
    N, D = np.repeat(N.ravel(), 3), np.repeat(D.ravel(), 3)
    cells = Cells(N, D, planted(N, D) + rng.normal(0, 1e-3, len(N)), np.repeat(np.arange(25), 3))
    fit = fit_law(cells)
    assert fit.converged and set(raw_intervals(fit)) == set(TRUTH)


def test_a_flat_size_axis_is_dropped_and_every_flop_goes_to_rows():
    """Size that does not matter (A = 0) leaves the full law unidentified; the law without the
    size term fits as well, so it is the answer: the smallest size, the compute on rows."""
    flat = {**TRUTH, "A": 0.0}
    law = joint_law(planted_runs(np.random.default_rng(5), truth=flat, sd=lambda n, d: 3e-4), metric="logloss")
    assert law.fit.converged and law.fit.dropped == "size" and law.as_dict()["dropped_term"] == "size"
    assert law.params["beta"]["low"] <= TRUTH["beta"] <= law.params["beta"]["high"]
    answer = law.optimal(1e13)
    assert answer["size"]["estimate"] == SIZES[0]
    assert answer["rows"]["estimate"] == pytest.approx(1e13 / (3 * EPOCHS * K * SIZES[0] ** GAMMA), rel=1e-6)
