"""A user's own tower (model=custom model.tower=PKG.MODULE:CLASS, or a plugin's entry point): the
fused ME form against a loop over separately built copies, measured counts, identity, every bad
tower in one line, and budget -> sweep -> report -> --compare through the real CLI and MLflow."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from recsys_scaling.budget import count_flops, count_params, plan_job
from recsys_scaling.config import BudgetConfig, EmbeddingShape, ModelConfig, config_fingerprint
from recsys_scaling.models import Shape, StackedTowers, TowerError, build_model, check_tower, measure
from recsys_scaling.sweep.grid import Composer

from conftest import ROOT, sweep_counts

TESTS = Path(__file__).resolve().parent
EXAMPLE = ROOT / "examples" / "acme_towers"
DIMS = [3, 10, 50, 200]
SMALL_FIELDS = [3, 4, 8, 20, 50, 200, 1000, 3000]  # conf/data/synthetic_small.yaml
CLI = [sys.executable, "-m", "recsys_scaling.cli"]


def tower_cfg(name: str = "FlatMLP", **args) -> ModelConfig:
    return ModelConfig(backbone="custom", tower=f"towers:{name}", tower_args=args or None, hidden=8)


WIDTH = {"NormedTower": 12, "FlatMLP": 16, "PairTower": 8}  # their default hidden sizes


def loop_output(towers, emb):
    return torch.stack([tower(emb[k]) for k, tower in enumerate(towers)])


# -- the fused ME form ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["NormedTower", "FlatMLP", "PairTower"])
def test_fused_towers_equal_a_loop_over_separately_built_copies(name):
    import towers

    torch.manual_seed(0)
    copies = [getattr(towers, name)(num_fields=4, embed_dim=5) for _ in range(3)]
    loop = copy.deepcopy(copies)
    fused = StackedTowers(copies, fused=True)
    assert fused._shared_names == (["rows", "cols"] if name == "PairTower" else []), "constants shared, unbatched"
    emb = torch.randn(3, 16, 4, 5)
    # SGD: Adam would blow the ~1e-9 rounding noise of the zero-gradient bias before a batch norm up to full steps
    loop_opt = torch.optim.SGD([p for t in loop for p in t.parameters()], lr=0.1)
    fused_opt = torch.optim.SGD(fused.parameters(), lr=0.1)
    for step in range(3):  # training steps: outputs, gradients and batch-norm statistics stay equal
        for t in loop:
            t.train()
        fused.train()
        target = torch.randn(3, 16, WIDTH[name])
        for model, optimizer, forward in ((loop, loop_opt, lambda: loop_output(loop, emb)),
                                          (fused, fused_opt, lambda: fused(emb))):
            optimizer.zero_grad()
            ((forward() - target) ** 2).mean().backward()
            optimizer.step()
    for t in loop:
        t.eval()
    fused.eval()
    torch.testing.assert_close(fused(emb), loop_output(loop, emb), rtol=1e-5, atol=1e-6)
    for k, tower in enumerate(loop):
        mine = fused.tower(k)
        for key, value in tower.state_dict().items():
            torch.testing.assert_close(mine[key].detach(), value, rtol=1e-5, atol=1e-6, msg=key)


def test_each_set_draws_its_own_weights_and_dropout():
    shape = Shape.of(4, EmbeddingShape(3, 5), "me")
    model = build_model("custom", DIMS, shape, tower_cfg("NormedTower", dropout=0.5))
    weights = [model.tower.tower(k)["net.0.weight"] for k in range(3)]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    model.train()
    out = model.tower(torch.randn(1, 64, 4, 5).expand(3, -1, -1, -1))  # every set sees the same input
    assert (out[0] == 0).float().mean() > 0.2  # dropout acts inside the map ...
    assert not torch.equal(out[0] == 0, out[1] == 0)  # ... with masks of its own per set


def test_the_fused_form_builds_on_the_meta_device_for_memory_estimates():
    from recsys_scaling.device import estimate_memory

    shape = Shape.of(4, EmbeddingShape(3, 5), "me")
    estimate = estimate_memory(lambda: build_model("custom", DIMS, shape, tower_cfg("PairTower")), DIMS, 64)
    assert estimate.parameters > 0 and estimate.activations > 0


def test_a_tower_vmap_cannot_map_runs_as_a_loop_with_the_same_interface(caplog):
    shape = Shape.of(4, EmbeddingShape(2, 5), "me")
    model = build_model("custom", DIMS, shape, tower_cfg("DataDependent"))
    assert model.tower.fused is False
    assert "runs as a loop" in caplog.text
    assert model(torch.randint(0, 3, (8, 4))).shape == (8,)


# -- counts measured on the built modules ----------------------------------------------------------
@pytest.mark.parametrize("k,d", [(1, 10), (3, 5)])
def test_counts_are_those_of_the_built_model(k, d):
    cfg = tower_cfg("NormedTower", hidden=12)
    model = build_model("custom", DIMS, Shape.of(4, EmbeddingShape(k, d), "me" if k > 1 else "se"), cfg)
    built = {"embedding": model.embedding.table.weight.numel()}
    built["dense"] = sum(p.numel() for p in model.parameters()) - built["embedding"]
    counts = count_params("custom", DIMS, d, k, tower="towers:NormedTower", tower_args={"hidden": 12}, hidden=8)
    assert counts == {**built, "total": built["embedding"] + built["dense"]}
    assert built["dense"] == k * measure(cfg, 4, d).params + (12 * 8 + 8 + 2 * 8) + (8 + 1)  # K towers + the head


def test_flops_come_from_torch_flop_counter():
    flops = count_flops("custom", 4, 5, 3, tower="towers:FlatMLP", tower_args={"hidden": 16}, hidden=8)
    assert flops == 3 * 2 * (4 * 5) * 16 + 2 * 16 * 8 + 2 * 8  # K towers' Linear(F·d, H) + the head


def test_scale_semantics_and_budgets_work_unchanged():
    cfg = tower_cfg("FlatMLP", hidden=16)
    se = plan_job(cfg, "se", 3, DIMS, BudgetConfig())
    me = plan_job(cfg, "me", 3, DIMS, BudgetConfig())
    assert (se.num_embeddings, se.embed_dim, me.num_embeddings, me.embed_dim) == (1, 30, 3, 10)
    assert se.counts["embedding"] == me.counts["embedding"]
    assert me.counts["dense"] == 3 * measure(cfg, 4, 10).params + (16 * 8 + 8 + 16 + 9)
    total = plan_job(cfg, "se", 3, DIMS, BudgetConfig(match="total"))
    assert total.reference == "me partner" and abs(total.mismatch) <= 0.02


# -- identity ------------------------------------------------------------------------------------
def _job(*overrides):
    return Composer(None)(["model=custom", "model.tower=towers:FlatMLP", *overrides])


def test_the_fingerprint_holds_the_tower_its_arguments_and_its_source(tmp_path, monkeypatch):
    module = tmp_path / "mytower.py"
    module.write_text((TESTS / "towers.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    base = config_fingerprint(_job("model.tower=mytower:FlatMLP"))
    assert base == config_fingerprint(_job("model.tower=mytower:FlatMLP"))
    assert base != config_fingerprint(_job("model.tower=mytower:NormedTower"))
    assert base != config_fingerprint(_job("model.tower=mytower:FlatMLP", "model.tower_args={hidden:32}"))
    module.write_text(module.read_text() + "\n# edited\n")
    assert base != config_fingerprint(_job("model.tower=mytower:FlatMLP")), "an edited tower is a new job"


def test_the_new_model_keys_leave_built_in_fingerprints_as_they_were():
    cfg = Composer(None)(["model=dnn"])
    tree = OmegaConf.to_container(cfg)
    for key in ("tower", "tower_args", "label"):
        del tree["model"][key]
    assert config_fingerprint(cfg) == config_fingerprint(OmegaConf.create(tree))


# -- bad towers: one line, nothing recorded ------------------------------------------------------
BAD = {
    "towers:not_a_class": "is a function, not a torch.nn.Module class",
    "towers:NotAModule": "NotAModule is a class, but not a torch.nn.Module subclass",
    "towers:NoFieldArguments": "cannot be built as NoFieldArguments(num_fields=..., embed_dim=...",
    "towers:RaisesInConstructor": "raised RuntimeError: needs a GPU",
    "towers:WrongShape": "WrongShape returns (4, 4, 5) for embeddings of shape (4, 4, 5); it must return (batch, "
                         "features)",
    "towers:MakesNaN": "MakesNaN returns NaN or inf",
    "towers:Detached": "Detached passes no gradient to the embeddings",
    "towers:NoParameters": "NoParameters has no parameters",
    "towers:Missing": "module towers has no attribute Missing",
    "no_such_package.towers:X": "cannot be imported: ModuleNotFoundError: No module named 'no_such_package'",
    "towers": "is not an import path; write PKG.MODULE:CLASS",
}


@pytest.mark.parametrize("path", sorted(BAD))
def test_every_bad_tower_is_one_line_naming_the_class_and_the_fault(path):
    with pytest.raises(TowerError) as error:
        check_tower(ModelConfig(backbone="custom", tower=path), 4, 5)
    assert str(error.value).startswith(f"model.tower={path}: ") and BAD[path] in str(error.value)
    assert "\n" not in str(error.value)


def _cli(args, cwd, extra_path=(), timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, extra_path), str(ROOT)]),
           "RECSYS_SCALING_CACHE": str(cwd / "cache"), "MLFLOW_TRACKING_URI": ""}
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("path", ["towers:MakesNaN", "towers:Detached", "no_such_package.towers:X"])
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_bad_tower_stops_train_and_sweep_before_anything_is_recorded(tmp_path, path, command):
    args = (["train", "data=synthetic_small", "model=custom", f"model.tower={path}"] if command == "train" else
            ["sweep", "demo", "model=custom", f"model.tower={path}"])
    result = _cli(args, tmp_path, [TESTS])
    assert result.returncode != 0
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and f"model.tower={path}: " in error[0] and BAD.get(path, "")[:20] in error[0], \
        result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()


# -- plugins and the example package ---------------------------------------------------------------
def _entry_point(site: Path, name: str, value: str) -> Path:
    info = site / "acme_towers-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-towers\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[recsys_scaling.backbones]\n{name} = {value}\n")
    return site


def test_an_entry_point_is_a_model_listed_by_train_help(tmp_path):
    site = _entry_point(tmp_path / "site", "gated_bilinear", "acme_towers:GatedBilinear")
    listed = _cli(["train", "--help"], tmp_path, [site, EXAMPLE])
    assert "gated_bilinear (acme_towers:GatedBilinear)" in listed.stdout, listed.stdout
    job = _cli(["train", "model=gated_bilinear", "--cfg", "job"], tmp_path, [site, EXAMPLE])
    model = OmegaConf.create(job.stdout)["model"]
    assert (model.backbone, model.tower, model.label) == ("custom", "acme_towers:GatedBilinear", "gated_bilinear")


@pytest.mark.slow
def test_the_example_package_installs_with_pip_and_trains_by_entry_point(tmp_path):
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(EXAMPLE)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    result = _cli(["train", "data=synthetic_small", "model=gated_bilinear", "arm=me", "scale=2",
                   "train.max_epochs=1", "train.progress=false"], tmp_path, [site])
    assert result.returncode == 0, result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run, = client.search_runs([client.get_experiment_by_name("recsys-scaling").experiment_id])
    assert run.info.run_name == "gated_bilinear-me-2x-s0" and run.data.tags["backbone"] == "gated_bilinear"
    assert run.data.params["model.tower"] == "acme_towers:GatedBilinear"
    assert run.data.metrics["test_auc"] > 0.5


SWEEP = """
defaults:
  - config
  - override model: {model}
  - override data: synthetic_small
  - override hydra/launcher: {launcher}
  - _self_
{extra}
report:
  margin: 0.01
train:
  max_epochs: 1
  progress: false
hydra:
{launcher_settings}  sweeper:
    params:
      scale: 1,2
      arm: se,me
      seed: 0,1,2
"""


@pytest.mark.slow
@pytest.mark.integration
def test_a_tower_by_import_path_goes_through_budget_sweep_report_and_compare(tmp_path):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    # the user's tower in joblib's worker processes (they import it too), the baseline in-process
    (sweeps / "mine.yaml").write_text(SWEEP.format(
        model="custom", launcher="joblib", launcher_settings="  launcher:\n    n_jobs: 2\n",
        extra="model:\n  tower: acme_towers:GatedBilinear\n  tower_args: {hidden: 16}\n"))
    (sweeps / "base.yaml").write_text(SWEEP.format(model="dnn", launcher="basic", launcher_settings="", extra=""))
    budget = _cli(["budget", "mine"], tmp_path, [EXAMPLE])
    assert budget.returncode == 0, budget.stderr[-2000:]
    assert "custom-me-2x-s0" in budget.stdout and "9 jobs" in budget.stdout
    for name in ("mine", "base"):
        done = _cli(["sweep", name], tmp_path, [EXAMPLE])
        assert done.returncode == 0, done.stderr[-3000:]
        assert sweep_counts(done.stdout)["finished"] == 9
    report = _cli(["report", "mine", "base", "--compare", "mine/custom/me:base/dnn/me", "--resamples", "50"],
                  tmp_path, [EXAMPLE])
    assert report.returncode == 0, report.stderr[-3000:]
    out = tmp_path / "reports" / "mine+base"
    fits = json.loads((out / "fits.json").read_text())
    custom = next(b for b in fits["backbones"] if b["backbone"] == "custom")
    assert {c["kind"] for c in custom["claims"]} >= {"gap", "scaling_gap", "trend"}
    comparison, = fits["comparisons"]
    assert (comparison["a"], comparison["b"], comparison["note"]) == ("mine/custom/me", "base/dnn/me", "")
    kinds = sorted(c["kind"] for c in comparison["claims"])
    assert kinds == ["series_gap"] * 2 + ["series_scaling_gap"]
    assert all(c["family"] != "claim" and c["p_adjusted"] is not None for c in comparison["claims"])
    assert "mine/custom/me vs base/dnn/me" in report.stdout
    assert (out / "compare_mine_custom_me_vs_base_dnn_me.png").is_file()
    page = (out / "index.html").read_text()
    assert "<h2>Comparisons</h2>" in page and "mine/custom/me vs base/dnn/me" in page
    assert (out / "scaling_mine___custom.png").is_file(), "the user's tower has its own verdicts and plots"
    runs = pd.read_csv(out / "runs.csv")
    me = runs[(runs["backbone"] == "custom") & (runs["arm"] == "me") & (runs["scale"] == 2)]
    se = runs[(runs["backbone"] == "custom") & (runs["arm"] == "se") & (runs["scale"] == 2)]
    assert len(me) == len(se) == 3
    assert set(me["params_embedding"]) == set(se["params_embedding"]), "matched embedding budgets"
    sys.path.insert(0, str(EXAMPLE))
    try:
        one = measure(ModelConfig(backbone="custom", tower="acme_towers:GatedBilinear", tower_args={"hidden": 16}),
                      len(SMALL_FIELDS), 10).params
    finally:
        sys.path.remove(str(EXAMPLE))
    head = 16 * 400 + 400 + 2 * 400 + 401
    assert set(me["params_dense"]) == {2 * one + head}, "ME carries K towers' dense parameters"


def test_a_sweep_over_two_towers_under_one_label_is_refused(tmp_path):
    from recsys_scaling.sweep.grid import SweepConfigError, expand, validate

    with pytest.raises(SweepConfigError, match="different towers .* give each its own model.label"):
        validate(expand(None, ["model=custom", "model.tower=towers:FlatMLP,towers:NormedTower", "scale=1",
                                 "arm=se", "seed=0"]))
