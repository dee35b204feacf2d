"""Every YAML in conf/ and sweeps/ composes against the typed schema."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from recsys_scaling.paths import BUILTIN_SWEEPS_DIR as SWEEPS_DIR, CONF_DIR
from recsys_scaling.config import embedding_shape
from recsys_scaling.models import BACKBONES
from recsys_scaling.sweep.runner import compose_sweep

GROUP_OPTIONS = [(p.parent.name, p.stem) for p in sorted(CONF_DIR.glob("*/*.yaml"))]
SWEEPS = sorted(SWEEPS_DIR.glob("*.yaml"))


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def test_every_group_option_is_covered():
    assert {g for g, _ in GROUP_OPTIONS} == {"model", "data", "tracking"}
    assert len(SWEEPS) >= 2


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}/{o}" for g, o in GROUP_OPTIONS])
def test_group_option_composes(group, option):
    cfg = _compose([f"{group}={option}"])
    if cfg.data.kind != "synthetic":  # a raw file is the one thing the user must name
        assert OmegaConf.is_missing(cfg.data, "path")
        cfg.data.path = "train.txt"
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if group == "model":
        assert cfg.model.backbone in BACKBONES
        for arm in ("se", "me"):
            shape = embedding_shape(cfg.model, arm, 2)
            assert shape.num_embeddings >= 1 and shape.embed_dim >= 1


@pytest.mark.parametrize("spec", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_composes(spec: Path):
    cfg = compose_sweep(spec)
    params = cfg.hydra.sweeper.params
    assert params, f"{spec.name} sweeps nothing"
    for backbone in str(params.get("model", cfg.model.backbone)).split(","):
        assert (CONF_DIR / "model" / f"{backbone.strip()}.yaml").is_file()
    OmegaConf.to_container(cfg.model, resolve=True, throw_on_missing=True)


def test_misspelt_key_is_rejected_naming_it():
    with pytest.raises(ConfigCompositionException, match="lrr"):
        _compose(["train.lrr=0.1"])


def test_wrong_type_is_rejected_naming_the_key():
    with pytest.raises(ConfigCompositionException, match="train.batch_size"):
        _compose(["train.batch_size=big"])


@pytest.mark.parametrize("arm,scale,expected", [("se", 1, (1, 10)), ("se", 4, (1, 40)), ("me", 4, (4, 10))])
def test_scale_semantics(arm, scale, expected):
    shape = embedding_shape(_compose([]).model, arm, scale)
    assert (shape.num_embeddings, shape.embed_dim) == expected


CHOICES = [("arm", "Arm"), ("model.aggregation", "Aggregation"), ("data.kind", "DataKind"),
           ("data.vocab_scope", "VocabScope"), ("data.schema.numeric_rule", "NumericRule"),
           ("budget.match", "BudgetMatch"), ("budget.solve", "BudgetSolve")]


@pytest.mark.parametrize("key,enum_name", CHOICES)
def test_a_closed_choice_fails_at_composition_naming_key_and_allowed_values(key, enum_name):
    import recsys_scaling.config as config
    from recsys_scaling.config import explain

    allowed = ", ".join(getattr(config, enum_name))
    with pytest.raises(ConfigCompositionException) as caught:
        _compose([f"{key}=nonsense"])
    line = explain(caught.value)
    assert f"{key}=nonsense" in line and f"expected one of [{allowed}]" in line, line


def test_every_raw_data_kind_has_a_reader():
    from recsys_scaling.config import DataKind
    from recsys_scaling.data.sources import FORMATS

    assert set(FORMATS) | {DataKind.synthetic} == set(DataKind)


def test_bad_arm_and_scale_are_clear_errors():
    model = _compose([]).model
    with pytest.raises(ValueError, match="arm='xx'"):
        embedding_shape(model, "xx", 1)
    with pytest.raises(ValueError, match="scale=0"):
        embedding_shape(model, "se", 0)


def test_hetero_moe_variants_get_their_own_run_names():
    from recsys_scaling.paths import find_sweep
    from recsys_scaling.sweep import grid

    names = sorted(job.name for job in grid.expand(find_sweep("hetero_moe")))
    assert names == ["hetero_moe-gate-me-1x-s0", "hetero_moe-gate-me-1x-s1",
                     "hetero_moe-mean-me-1x-s0", "hetero_moe-mean-me-1x-s1"]
