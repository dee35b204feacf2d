"""`recsys-scaling tune <sweep>`: native Optuna studies, one per grid cell (backbone x arm x scale).

Each study searches lr and weight decay (dropout optionally) on the cell's first seed, prunes
trials on their per-epoch validation AUC, and lives in an RDB storage (default: optuna.db beside
the MLflow store; any SQLAlchemy URL lets several workers, local or SLURM, share a study).
Every trial is an MLflow child run of a `tune-<sweep>` parent. The best parameters per cell go
to tuned/<sweep>.yaml; a sweep uses them with `train.tuned=<sweep>`.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import optuna
import yaml

from . import tracking
from .config import resolve_tracking_uri
from .job import run_job
from .sweep import grid, resolve_sweep_file

log = logging.getLogger(__name__)
TUNED_DIR = Path("tuned")
Cell = Tuple[str, str, int]


class PrunedTrial(optuna.TrialPruned):
    """Raised from the epoch hook; its MLflow run ends KILLED, tagged pruned."""

    run_status = "KILLED"


def default_storage(tracking_uri: str) -> str:
    """sqlite optuna.db in the folder of a sqlite MLflow store (else the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///'):]).parent / 'optuna.db'}"
    return "sqlite:///optuna.db"


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    pruners = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
               "none": optuna.pruners.NopPruner}
    if name not in pruners:
        raise ValueError(f"--pruner {name!r}: choose from {sorted(pruners)}")
    return pruners[name]()


def grid_cells(jobs: Sequence[grid.Job]) -> Dict[Cell, grid.Job]:
    """One job per (backbone, arm, scale): the one with the lowest seed."""
    cells: Dict[Cell, grid.Job] = {}
    for job in sorted(jobs, key=lambda j: j.cfg.seed):
        cells.setdefault((job.cfg.model.backbone, job.cfg.arm, int(job.cfg.scale)), job)
    return cells


def objective_for(job: grid.Job, parent: str, sweep: str, tune_dropout: bool):
    def objective(trial: optuna.Trial) -> float:
        cfg = copy.deepcopy(job.cfg)
        cfg.train.lr = trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
        cfg.train.weight_decay = trial.suggest_float("train.weight_decay", 1e-8, 1e-4, log=True)
        if tune_dropout:
            cfg.model.dropout = trial.suggest_float("model.dropout", 0.0, 0.5)
        cfg.tracking.parent_run_id = parent
        cfg.sweep.name = f"tune-{sweep}"

        def report(epoch: int, metrics: Dict[str, float]) -> None:
            trial.report(metrics["valid_auc"], epoch)
            if trial.should_prune():
                raise PrunedTrial(f"pruned after epoch {epoch} (valid AUC {metrics['valid_auc']:.5f})")

        return run_job(cfg, on_epoch_end=report)["best_valid_auc"]

    return objective


def tune_sweep(name: str, overrides: Sequence[str] = (), trials: int = 20, storage: Optional[str] = None,
               pruner: str = "median", tune_dropout: bool = False, timeout: Optional[float] = None,
               out_dir: Path = TUNED_DIR) -> Path:
    spec = resolve_sweep_file(name)
    jobs = grid.expand(spec, overrides)
    grid.validate(jobs)
    cells = grid_cells(jobs)
    first = jobs[0].cfg
    storage = storage or default_storage(resolve_tracking_uri(first.tracking.uri))
    parent = tracking.create_sweep_parent(first.tracking.uri, first.tracking.experiment, f"tune-{spec.stem}", spec,
                                          [f"{b}-{a}-{s}x" for b, a, s in cells])
    entries: List[dict] = []
    for (backbone, arm, scale), job in cells.items():
        study = optuna.create_study(study_name=f"{spec.stem}/{backbone}-{arm}-{scale}x", storage=storage,
                                    load_if_exists=True, direction="maximize", pruner=make_pruner(pruner),
                                    sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(objective_for(job, parent, spec.stem, tune_dropout), n_trials=trials, timeout=timeout,
                       catch=(Exception,))
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            log.warning("%s-%s-%sx: no completed trial, nothing tuned", backbone, arm, scale)
            continue
        entries.append({"backbone": backbone, "arm": arm, "scale": scale, "params": study.best_params,
                        "best_valid_auc": study.best_value, "trials": len(study.trials)})
    tracking.finish_sweep_parent(parent, bool(entries), {"tuned_cells": len(entries)})
    return write_tuned(out_dir / f"{spec.stem}.yaml", spec.stem, storage, entries)


def write_tuned(path: Path, sweep: str, storage: str, entries: List[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump({"sweep": sweep, "storage": storage, "cells": entries}, sort_keys=False))
    tmp.replace(path)
    return path


def tuned_params(name_or_path: str, backbone: str, arm: str, scale: int) -> Dict[str, float]:
    """The tuned parameters of one cell from tuned/<name>.yaml (or a path)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TUNED_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"train.tuned={name_or_path}: no file {path} (run `recsys-scaling tune` first)")
    for entry in yaml.safe_load(path.read_text()).get("cells", []):
        if (entry["backbone"], entry["arm"], int(entry["scale"])) == (backbone, arm, int(scale)):
            return dict(entry["params"])
    raise KeyError(f"train.tuned={name_or_path}: {path} has no cell {backbone}-{arm}-{scale}x")
