"""Budget matching and the budget table."""
from __future__ import annotations

import pytest

from recsys_scaling.budget import BudgetError, closest_integer, count_params, plan_job
from recsys_scaling.cli import main
from recsys_scaling.config import BudgetConfig, ModelConfig
from recsys_scaling.sweep import SweepConfigError, grid
from recsys_scaling.sweep.budget_table import budget_table

FIELD_DIMS = [105, 83, 71, 46, 50, 24, 27, 21, 37, 101, 84, 111, 70, 12133, 19414, 14590, 12646, 10873,
              11199, 18701, 5549, 16317, 13418, 57, 7884, 17148, 11087, 674, 15298, 14593, 16931, 3515,
              1788, 17263, 444, 10830, 1610, 5996, 9622]
DECLARED = "data.field_dims=[" + ",".join(map(str, FIELD_DIMS)) + "]"
BACKBONES = ["dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp"]


def test_closest_integer_is_the_brute_force_optimum():
    def f(x):
        return 7 * x * x + 3 * x + 11

    for target in [0, 10, 11, 21, 500, 12_345, 10**7]:
        best = min(range(1, 2000), key=lambda x: (abs(f(x) - target), x))
        assert closest_integer(f, target) == best


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("scale", [2, 4])
def test_total_matching_solves_the_se_size_within_tolerance(backbone, scale):
    model = ModelConfig(backbone=backbone, base_dim=50 if backbone == "nfwfm" else 10)
    loose = BudgetConfig(match="total", solve="se_dim", tolerance=1.0)
    me = plan_job(model, "me", scale, FIELD_DIMS, loose)
    se = plan_job(model, "se", scale, FIELD_DIMS, loose)
    assert se.reference_total == me.counts["total"]
    assert me.reference_total == se.counts["total"]  # the ME job is checked against its solved partner
    # no other SE size is closer
    for d in (se.embed_dim - 1, se.embed_dim + 1):
        other = count_params(backbone, FIELD_DIMS, d, 1, multi_embedding=False)["total"]
        assert abs(other - me.counts["total"]) >= abs(se.counts["total"] - me.counts["total"])
    # with the default tolerance a job is refused exactly when the best integer size misses by > 2%
    strict = BudgetConfig(match="total", solve="se_dim", tolerance=0.02)
    if abs(se.mismatch) <= 0.02:
        assert plan_job(model, "se", scale, FIELD_DIMS, strict).embed_dim == se.embed_dim
    else:
        with pytest.raises(BudgetError, match="budget.tolerance=2.00%"):
            plan_job(model, "se", scale, FIELD_DIMS, strict)


def test_me_dim_solving_matches_the_se_total():
    model = ModelConfig(backbone="dcnv2")
    budget = BudgetConfig(match="total", solve="me_dim", tolerance=0.05)
    se = plan_job(model, "se", 4, FIELD_DIMS, budget)
    me = plan_job(model, "me", 4, FIELD_DIMS, budget)
    assert (se.num_embeddings, se.embed_dim) == (1, 40)
    assert me.num_embeddings == 4 and me.embed_dim > 10
    assert me.reference_total == se.counts["total"] and abs(me.mismatch) <= 0.05


def test_out_of_tolerance_is_refused_naming_the_job():
    budget = BudgetConfig(match="total", tolerance=0.0001)
    with pytest.raises(BudgetError, match=r"dcnv2-se-4x-s0: total parameters .* budget.tolerance=0.01%"):
        plan_job(ModelConfig(backbone="dcnv2"), "se", 4, FIELD_DIMS, budget, job="dcnv2-se-4x-s0")


def test_targets_pick_k_and_d():
    budget = BudgetConfig(targets=[5_000_000, 20_000_000])
    se = plan_job(ModelConfig(backbone="dnn"), "se", 2, FIELD_DIMS, budget)
    me = plan_job(ModelConfig(backbone="dnn"), "me", 2, FIELD_DIMS, budget)
    assert se.num_embeddings == 1 and abs(se.counts["total"] - 20_000_000) / 20_000_000 < 0.02
    assert me.embed_dim == 10 and me.num_embeddings > 1
    assert abs(me.mismatch) < 0.02
    with pytest.raises(BudgetError, match="scale=3 indexes budget.targets"):
        plan_job(ModelConfig(backbone="dnn"), "se", 3, FIELD_DIMS, budget)


def test_embedding_matching_reports_the_partner_mismatch_without_refusing():
    plan = plan_job(ModelConfig(backbone="dcnv2"), "se", 10, FIELD_DIMS, BudgetConfig())
    assert (plan.num_embeddings, plan.embed_dim) == (1, 100)
    assert plan.mismatch > 0.02  # the paper's DCNv2 SE 10x is far bigger than ME 10x


def test_budget_table_of_the_paper_grid_equals_count_params():
    jobs = grid.expand(None, [f"model={','.join(BACKBONES)}", "scale=1,2,3,4,10", "arm=se,me", DECLARED])
    table = budget_table(jobs, grid.validate(jobs))
    assert len(table) == 6 * 5 * 2
    for row in table.itertuples():
        expected = count_params(row.backbone, FIELD_DIMS, row.d, row.K, multi_embedding=row.arm == "me")
        assert (row.embedding, row.dense, row.total) == (expected["embedding"], expected["dense"], expected["total"])
        base = 50 if row.backbone == "nfwfm" else 10
        assert (row.K, row.d) == ((1, row.scale * base) if row.arm == "se" else (row.scale, base))
    dcnv2 = table[(table.backbone == "dcnv2") & (table.scale == 1) & (table.arm == "se")].iloc[0]
    assert dcnv2.total == 3_632_861


def test_budget_command_prints_one_row_per_job(workdir, capsys, tmp_path):
    csv = tmp_path / "budget.csv"
    assert main(["budget", "demo", "--csv", str(csv), "--no-calibrate"]) == 0
    out = capsys.readouterr().out
    assert "dcnv2-me-4x-s1" in out and "mismatch_pct" in out and "est_time" in out
    assert "42 jobs · estimated " in out and "(joblib ×2)" in out and "from FLOPs, not calibrated" in out
    # 2 backbones x (4 SE + 3 ME scales) x 3 seeds: ME 1x is the SE base, listed once
    assert len(csv.read_text().strip().splitlines()) == 1 + 42 and "dnn-me-1x" not in csv.read_text()
    assert "6 ME jobs with one set are the SE base" in out


@pytest.mark.parametrize("override,named", [
    ("model=dnn,no_such_backbone", "model/no_such_backbone"),
    ("model.num_embeddings=0", "model.num_embeddings=0"),
    ("arm=sideways", r"arm=sideways: Invalid value 'sideways', expected one of \[se, me\]"),
])
def test_bad_grids_fail_before_launching(override, named, workdir, store_uri):
    with pytest.raises(SweepConfigError, match=named):
        grid.validate(grid.expand(None, [override]))
    from recsys_scaling.sweep import run_sweep

    with pytest.raises(SweepConfigError):
        run_sweep("smoke", [override, f"tracking.uri={store_uri}"])
    assert not (workdir / "mlflow.db").exists(), "nothing may launch"


def test_out_of_tolerance_sweep_fails_before_launching(workdir, capsys, store_uri):
    code = main(["sweep", "smoke", "budget.match=total", "budget.tolerance=0.00001", f"tracking.uri={store_uri}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "dnn-se-2x-s0" in err and "budget.tolerance" in err
    assert not (workdir / "mlflow.db").exists()
