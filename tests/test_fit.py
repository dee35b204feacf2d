"""The scaling-law fitter on synthetic points with known parameters."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_scaling.report.fit import effective_size, effective_size_multiplier, fit_curve, fit_power_law

SIZES = np.array([1e5, 2e5, 4e5, 8e5, 1.6e6, 3.2e6])
TRUE = dict(E=0.18, A=0.02, alpha=0.5)


def truth(n):
    return TRUE["E"] + TRUE["A"] * (n / SIZES[0]) ** (-TRUE["alpha"])


def noisy_groups(rng, noise=2e-4, seeds=3):
    return [truth(n) + rng.normal(0, noise, seeds) for n in SIZES]


def test_recovers_known_parameters_from_noisy_points():
    rng = np.random.default_rng(0)
    groups = noisy_groups(rng)
    law = fit_power_law(SIZES, [g.mean() for g in groups])
    assert law.alpha == pytest.approx(TRUE["alpha"], rel=0.10)
    assert law.E == pytest.approx(TRUE["E"], abs=2e-3)
    assert law.A == pytest.approx(TRUE["A"], rel=0.15)


def test_bootstrap_interval_covers_the_true_alpha_in_most_trials():
    covered = 0
    trials = 20
    for t in range(trials):
        fit = fit_curve(SIZES, noisy_groups(np.random.default_rng(100 + t)), resamples=200, seed=t)
        covered += fit.alpha_ci[0] <= TRUE["alpha"] <= fit.alpha_ci[1]
    assert covered >= 0.7 * trials


def test_predicted_auc_stays_below_one():
    fit = fit_curve(SIZES, noisy_groups(np.random.default_rng(1)), resamples=100)
    predicted_error = fit.power_law().predict(np.geomspace(1e5, 1e12, 20))
    assert (predicted_error > 0).all()  # 1 - AUC > 0  <=>  AUC < 1
    assert fit.power_law().E >= 0


def test_two_point_curve_is_flagged_not_fitted():
    fit = fit_curve(SIZES[:2], noisy_groups(np.random.default_rng(2))[:2], resamples=50)
    assert fit.law is None and not fit.identified
    assert "at least 4" in fit.flags[0]


def test_three_sizes_interpolate_so_alpha_is_not_reported():
    fit = fit_curve(SIZES[:3], noisy_groups(np.random.default_rng(2))[:3], resamples=50)
    assert fit.law is None and not fit.identified and not fit.alpha_ci
    assert "interpolated exactly" in fit.flags[0]


def test_noisy_alpha_is_flagged_on_a_log_scale():
    fit = fit_curve(SIZES[:4], noisy_groups(np.random.default_rng(7), noise=3e-3)[:4], resamples=200)
    assert not fit.identified
    assert any("too noisy" in f or "alpha not identified" in f or "held-out" in f for f in fit.flags)


def test_flat_curve_is_flagged():
    rng = np.random.default_rng(3)
    fit = fit_curve(SIZES, [0.2 + rng.normal(0, 1e-4, 3) for _ in SIZES], resamples=100)
    assert not fit.identified


def test_holdout_predicts_the_largest_size():
    fit = fit_curve(SIZES, noisy_groups(np.random.default_rng(4), noise=5e-5), resamples=200)
    assert abs(fit.holdout["error"]) < 1e-3
    assert fit.holdout["size"] == SIZES[-1]
    assert not fit.holdout["missed"] and fit.identified


def test_holdout_miss_is_flagged():
    rng = np.random.default_rng(8)
    groups = noisy_groups(rng, noise=2e-5)
    groups[-1] = groups[-1] - 0.01  # the largest model is far better than the curve predicts
    fit = fit_curve(SIZES, groups, resamples=200)
    assert fit.holdout["missed"] and not fit.identified
    assert any("held-out miss" in f for f in fit.flags)


def test_effective_size_inverts_the_curve():
    law = fit_power_law(SIZES, truth(SIZES))
    n = effective_size(law, float(truth(8e5)))
    assert n == pytest.approx(8e5, rel=0.02)
    assert effective_size(law, TRUE["E"] - 0.01) == float("inf")


def test_effective_size_multiplier_interval_and_flags():
    rng = np.random.default_rng(6)
    se_groups = noisy_groups(rng, noise=5e-5)
    inside = effective_size_multiplier(SIZES, se_groups, 2e5, truth(8e5) + rng.normal(0, 5e-5, 3), resamples=300)
    assert inside["reached"] and not inside["extrapolated"]
    assert inside["multiplier"] == pytest.approx(4.0, rel=0.2)
    assert inside["multiplier_ci"][0] < inside["multiplier"] < inside["multiplier_ci"][1]
    beyond = effective_size_multiplier(SIZES, se_groups, 2e5, truth(2e7) + rng.normal(0, 5e-5, 3), resamples=300)
    assert beyond["reached"] and beyond["extrapolated"] and beyond["se_size_needed"] > SIZES[-1]
    never = effective_size_multiplier(SIZES, se_groups, 2e5, np.full(3, TRUE["E"] - 0.01), resamples=100)
    assert not never["reached"] and never["multiplier"] is None and never["multiplier_ci"][1] is None


def test_paper_table_and_comparison():
    import pandas as pd

    from recsys_scaling.report.paper import compare_with_paper, paper_table

    table = paper_table()
    criteo = table[table.dataset == "criteo"]
    assert len(criteo) == 6 * 10  # 5 SE cells and 5 ME cells (base shared) per backbone
    row = criteo[(criteo.backbone == "dcnv2") & (criteo.arm == "me") & (criteo.scale == 10)]
    assert row.paper_test_auc.item() == 0.81385
    assert table[(table.dataset == "avazu") & (table.backbone == "nfwfm") & (table.scale == 10)].empty
    summary = pd.DataFrame({"backbone": ["dnn", "dnn"], "arm": ["se", "me"], "scale": [1, 4], "seeds": [3, 3],
                            "test_auc_mean": [0.81, 0.815]})
    compared = compare_with_paper(summary, "criteo")
    assert compared.difference.round(5).tolist() == [round(0.81 - 0.81228, 5), round(0.815 - 0.81289, 5)]
