"""A job's final config: the tuned-hyperparameter file `recsys-scaling tune` writes
(tuned/<sweep>.yaml), applied to the composed config.

One entry per grid cell (backbone, arm, scale) with the best parameters found for it; a job
run with `train.tuned=<sweep>` (or a path) takes its cell's entry over lr / weight_decay / dropout.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

import yaml
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
TUNED_DIR = Path("tuned")


def tuned_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return path if path.suffix else TUNED_DIR / f"{name_or_path}.yaml"


def write_tuned(path: Path, sweep: str, storage: str, entries: List[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump({"sweep": sweep, "storage": storage, "cells": entries}, sort_keys=False))
    tmp.replace(path)
    return path


def tuned_params(name_or_path: str, backbone: str, arm: str, scale: int) -> Dict[str, float]:
    """The tuned parameters of one cell from tuned/<name>.yaml (or a path)."""
    path = tuned_path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"train.tuned={name_or_path}: no file {path} (run `recsys-scaling tune` first)")
    for entry in yaml.safe_load(path.read_text()).get("cells", []):
        if (entry["backbone"], entry["arm"], int(entry["scale"])) == (backbone, str(arm), int(scale)):
            return dict(entry["params"])
    raise KeyError(f"train.tuned={name_or_path}: {path} has no cell {backbone}-{arm}-{scale}x")


def resolve_job_config(cfg: DictConfig) -> DictConfig:
    """The job's final config, as trained and fingerprinted: tuned values applied (in place).
    The sweep runner, the pre-launch check and the job itself all go through here, so they
    agree on fingerprints."""
    applied = apply_tuned(cfg)
    if applied:
        log.info("tuned hyperparameters from %s: %s", cfg.train.tuned, applied)
    return cfg


def apply_tuned(cfg: DictConfig) -> Dict[str, float]:
    """Override this job's lr / weight_decay / dropout with its cell's tuned values (in place);
    returns what was applied. Applying twice gives the same config."""
    if not cfg.train.tuned:
        return {}
    params = tuned_params(cfg.train.tuned, cfg.model.backbone, cfg.arm, cfg.scale)
    for key, value in params.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return params
