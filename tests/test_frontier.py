"""Compute-optimal shapes: `advise` on iso-budget lines, measured by simulation (printing its
rates), the fitted surface for budgets in between or beyond, and a real frontier sweep."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_scaling.cli import main
from recsys_scaling.report.frontier import advise, budget_lines, frontier, shape_cells

VOCAB = 1000  # embedding parameters = VOCAB * K * d
SD = 0.003


def cells_table(rng, truth: dict, seeds: int, sd: float = SD, backbone: str = "dcnv2") -> pd.DataFrame:
    """truth: (K, d) -> true test AUC; `seeds` finished runs per cell with normal seed noise."""
    rows = []
    for (k, d), auc in truth.items():
        for s in range(seeds):
            rows.append({"run_id": f"{backbone}-{k}-{d}-{s}", "status": "FINISHED", "series": "sim",
                         "backbone": backbone, "arm": "me", "scale": 1, "seed": s, "num_embeddings": k,
                         "embed_dim": d, "explicit_shape": "true", "test_auc": auc + rng.normal(0, sd),
                         "params_embedding": float(VOCAB * k * d), "params_total": float(VOCAB * k * d * 1.5),
                         "flops_per_example": float(50 * k * d)})
    return pd.DataFrame(rows)


LINE = [(1, 20), (2, 10), (4, 5)]  # K·d = 20


def line_truth(lead: float, best=(2, 10)) -> dict:
    return {shape: 0.70 + (lead if shape == best else 0.0) for shape in LINE}


def rate(results, verdict):
    return sum(r["verdict"] == verdict for r in results) / len(results)


@pytest.mark.slow
def test_a_planted_best_shape_is_found_and_a_flat_line_is_not_called(capsys):
    rng = np.random.default_rng(0)
    found = [advise(cells_table(rng, line_truth(6 * SD), 5), VOCAB * 20, resamples=1) for _ in range(200)]
    flat = [advise(cells_table(rng, line_truth(0.0), 5), VOCAB * 20, resamples=1) for _ in range(600)]
    with capsys.disabled():
        print(f"\n[frontier] best shape leads by 6 seed-sd, 5 seeds: P(clear_winner) {rate(found, 'clear_winner'):.3f}, "
              f"P(the right shape) {np.mean([r['K'] == 2 for r in found]):.3f}")
        print(f"[frontier] flat line of 3 shapes, 5 seeds: P(clear_winner) {rate(flat, 'clear_winner'):.3f} "
              "(nominal <= 0.05)")
    assert rate(found, "clear_winner") >= 0.8 and all(r["K"] == 2 for r in found if r["verdict"] == "clear_winner")
    assert rate(flat, "clear_winner") <= 0.05


@pytest.mark.slow
def test_two_equal_shapes_are_not_called_more_than_five_percent(capsys):
    rng = np.random.default_rng(1)
    truth = {(1, 20): 0.70, (2, 10): 0.70}
    flat = [advise(cells_table(rng, truth, 3), VOCAB * 20, resamples=1) for _ in range(800)]
    with capsys.disabled():
        print(f"\n[frontier] two equal shapes, 3 seeds: P(clear_winner) {rate(flat, 'clear_winner'):.3f}")
    assert rate(flat, "clear_winner") <= 0.065  # 5% nominal, ~0.8% Monte Carlo sd


def sized_table(rng, shape_lead: float, seeds: int = 3, sd: float = SD) -> pd.DataFrame:
    """K in {1, 2, 4} x d in {5, 10, 20}; dense parameters grow with K, so the cells of one K·d
    differ in total size by up to 27%; the true AUC rises 0.04 per doubling of total size, plus
    `shape_lead` for K=2."""
    runs = cells_table(rng, {(k, d): 0.0 for k in (1, 2, 4) for d in (5, 10, 20)}, seeds, sd)
    runs["params_total"] = VOCAB * runs["num_embeddings"] * runs["embed_dim"] * (1 + 0.1 * runs["num_embeddings"])
    runs["test_auc"] += 0.70 + 0.04 * np.log2(runs["params_total"] / 1e4) + shape_lead * (runs["num_embeddings"] == 2)
    return runs


@pytest.mark.slow
def test_a_bigger_cell_does_not_win_for_being_bigger(capsys):
    """On the total axis the candidates of K·d = 20 span 27% in size and AUC rises with size: the
    size-adjusted comparison keeps "clear winner" at ≤ 5% (unadjusted, the largest cell was a
    "clear winner" 39% of the time) and still finds a planted shape effect."""
    rng = np.random.default_rng(7)
    budget = VOCAB * 20 * 1.25
    flat = [advise(sized_table(rng, 0.0), budget, axis="total", resamples=1) for _ in range(300)]
    planted = [advise(sized_table(rng, 5 * SD), budget, axis="total", resamples=1) for _ in range(100)]
    rate_flat = rate(flat, "clear_winner")
    with capsys.disabled():
        print(f"\n[frontier] total axis, no shape effect, AUC rising with size: P(clear_winner) {rate_flat:.3f} "
              f"(nominal <= 0.05); K=2 ahead by 5 seed-sd at equal size: P(clear_winner) "
              f"{rate(planted, 'clear_winner'):.3f}, size spread {flat[0]['size_spread']:.0%}")
    assert rate_flat <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / 300)
    assert rate(planted, "clear_winner") >= 0.6 and all(r["K"] == 2 for r in planted if r["verdict"] == "clear_winner")
    assert "size slope" in flat[0]["method"] and "span" in flat[0]["method"]


def test_the_embedding_axis_compares_exactly_equal_budgets():
    runs = cells_table(np.random.default_rng(8), {(1, 20): 0.7, (2, 10): 0.7, (3, 7): 0.9}, 3)  # 21 is not 20
    result = advise(runs, VOCAB * 20, resamples=10)
    assert sorted((c["K"], c["d"]) for c in result["candidates"]) == [(1, 20), (2, 10)]
    assert "same K·d" in result["method"]


def test_one_seed_is_insufficient_and_the_candidates_are_listed():
    result = advise(cells_table(np.random.default_rng(2), line_truth(0.01), 1), VOCAB * 20, resamples=50)
    assert result["verdict"] == "insufficient_seeds"
    assert sorted((c["K"], c["d"]) for c in result["candidates"]) == sorted(LINE)
    assert {"budget", "axis", "K", "d", "predicted_auc", "low", "high", "p_best", "verdict", "candidates",
            "extrapolated", "method"} <= set(result)


def grid_truth() -> dict:
    """A smooth truth over K in {1, 2, 4} x d in {5, 10, 20}: width helps, sets help a little."""
    return {(k, d): 0.74 - 0.02 * 2.0 ** (-0.8 * np.log2(d / 5)) - 0.006 * 2.0 ** (-np.log2(k))
            for k in (1, 2, 4) for d in (5, 10, 20)}


def test_a_budget_beyond_the_grid_is_extrapolated_from_the_fitted_surface_but_not_far():
    runs = cells_table(np.random.default_rng(3), grid_truth(), 3, sd=5e-4)  # K·d from 5 to 80
    beyond = advise(runs, VOCAB * 150, resamples=50)
    assert beyond["verdict"] == "fitted" and beyond["extrapolated"] and "extrapolated beyond" in beyond["method"]
    assert beyond["K"] <= 8 and 2.5 <= beyond["d"] <= 40, "a shape near the measured grid"
    assert beyond["K"] * beyond["d"] == pytest.approx(150, rel=0.15)
    between = advise(runs, VOCAB * 30, resamples=50)  # no cell has K·d = 30
    assert between["verdict"] == "fitted" and not between["extrapolated"]
    assert between["low"] <= between["predicted_auc"] <= between["high"]
    for budget in (VOCAB * 400, 1e18, 1e30, VOCAB):
        far = advise(runs, budget, resamples=50)
        assert far["verdict"] == "extrapolated" and far["K"] is None and far["predicted_auc"] is None
        assert "no recommendation; the measured budgets span 5e+03..8e+04" in far["method"]
    for budget in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match="positive, finite"):
            advise(runs, budget)


def test_a_steep_curve_never_predicts_an_auc_above_one():
    steep = {(k, d): min(0.999, 0.90 + 0.03 * np.log2(k * d / 5)) for k in (1, 2, 4) for d in (5, 10, 20)}
    result = advise(cells_table(np.random.default_rng(6), steep, 3, sd=5e-4), VOCAB * 150, resamples=50)
    assert result["verdict"] == "fitted"
    assert 0.0 <= result["low"] <= result["predicted_auc"] <= result["high"] <= 1.0


def test_iso_budget_lines_and_the_frontier_of_a_grid():
    runs = cells_table(np.random.default_rng(4), grid_truth(), 3, sd=5e-4)
    lines = budget_lines(shape_cells(runs))
    assert [sorted((c.K, c.d) for c in line) for line in lines] == [[(1, 10), (2, 5)], [(1, 20), (2, 10), (4, 5)],
                                                                   [(2, 20), (4, 10)]]
    (front,) = frontier(runs, resamples=50)
    assert len(front.lines) == 3 and front.surface is not None and front.optimum
    as_json = json.loads(json.dumps(front.as_dict(), default=float))
    assert as_json["surface"]["form"] in {"additive", "interaction", "power law"}
    with pytest.raises(ValueError, match="several backbones"):
        advise(pd.concat([runs, cells_table(np.random.default_rng(5), grid_truth(), 3, backbone="dnn")]), VOCAB * 20)


@pytest.mark.integration
def test_a_frontier_sweep_then_advise_and_its_report(workdir, store_uri, capsys):
    grid = ["model.num_embeddings=1,2", "model.embed_dim=5,10", "data=synthetic_small",
            f"tracking.uri={store_uri}"]
    assert main(["budget", "frontier", *grid]) == 0
    assert "K·d=10: 1x10, 2x5" in capsys.readouterr().out
    assert main(["sweep", "frontier", *grid]) == 0
    capsys.readouterr()
    assert main(["advise", "frontier", "--budget", "10d", "--tracking-uri", store_uri, "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "K·d = 10 per field" in out and "verdict:" in out and "recommended: K=" in out
    assert main(["advise", "frontier", "--budget", "30d", "--tracking-uri", store_uri]) == 0
    beyond = capsys.readouterr().out
    assert "extrapolated beyond" in beyond and "measure it: recsys-scaling sweep frontier model.num_embeddings=" in beyond
    assert main(["advise", "frontier", "--budget", "1e18", "--tracking-uri", store_uri]) == 1
    assert "extrapolated: no recommendation; the measured budgets span" in capsys.readouterr().out
    assert main(["advise", "frontier", "--budget", "inf", "--tracking-uri", store_uri]) == 2
    assert "--budget inf: must be a positive, finite number" in capsys.readouterr().err
    assert main(["report", "frontier", "--tracking-uri", store_uri, "--resamples", "50"]) == 0
    fits = json.loads((workdir / "reports" / "frontier" / "fits.json").read_text())
    assert fits["frontier"] and fits["frontier"][0]["lines"][0]["verdict"] in {"clear_winner", "no_clear_winner"}
    page = (workdir / "reports" / "frontier" / "index.html").read_text()
    assert "Frontier: which shape" in page and "frontier_" in " ".join(p.name for p in
                                                                        (workdir / "reports" / "frontier").iterdir())
