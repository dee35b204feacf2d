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

from . import tracking
from .config import resolve_tracking_uri
from .job import run_job
from .paths import find_sweep
from .sweep import grid
from .tuned import TUNED_DIR, write_tuned

log = logging.getLogger(__name__)
Cell = Tuple[str, str, int]


class PrunedTrial(optuna.TrialPruned, tracking.StopRun):
    """Raised from the epoch hook: Optuna records the trial PRUNED, its MLflow run ends KILLED."""


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
    for job in sorted(jobs, key=lambda j: j.seed):
        cells.setdefault((str(job.shared.model.backbone), str(job.shared.arm), int(job.shared.scale)), job)
    return cells


def objective_for(job: grid.Job, parent: str, sweep: str, tune_dropout: bool):
    def objective(trial: optuna.Trial) -> float:
        cfg = copy.deepcopy(job.cfg)
        cfg.train.lr = trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
        cfg.train.weight_decay = trial.suggest_float("train.weight_decay", 1e-8, 1e-4, log=True)
        if tune_dropout:
            cfg.model.dropout = trial.suggest_float("model.dropout", 0.0, 0.5)
        cfg.train.tuned = None  # the trial's values, not an earlier study's
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
               out_dir: Path = TUNED_DIR, sweeps_dirs: Sequence[Path] = (), seed: Optional[int] = None
               ) -> Optional[Path]:
    """One study per cell of the sweep's grid, `trials` trials each in this process. Several
    processes given the same `storage` share the studies. `seed` makes one worker's sampler
    reproducible; by default each worker draws its own, so parallel workers propose different
    trials (with one shared seed they would propose the same ones). Returns the tuned file, or
    None when no study completed a trial (nothing is written then)."""
    if trials < 1:
        raise ValueError(f"--trials {trials}: must be at least 1 (trials per study in this process)")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"--timeout {timeout:g}: must be a positive number of seconds")
    spec = find_sweep(name, sweeps_dirs)
    jobs = grid.expand(spec, overrides)
    grid.validate(jobs)
    cells = grid_cells(jobs)
    first = jobs[0].cfg
    uri = tracking.absolute_store(resolve_tracking_uri(first.tracking.uri))
    storage = tracking.with_driver(storage or default_storage(uri))
    check_own_database(storage, uri)
    store = tracking.Store.of(first)
    parent = store.create_sweep_parent(f"tune-{spec.stem}", spec, [f"{b}-{a}-{s}x" for b, a, s in cells])
    entries: List[dict] = []
    for (backbone, arm, scale), job in cells.items():
        study = optuna.create_study(study_name=f"{spec.stem}/{backbone}-{arm}-{scale}x", storage=storage,
                                    load_if_exists=True, direction="maximize", pruner=make_pruner(pruner),
                                    sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective_for(job, parent, spec.stem, tune_dropout), n_trials=trials, timeout=timeout,
                       catch=(Exception,))
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            log.warning("%s-%s-%sx: no completed trial, nothing tuned", backbone, arm, scale)
            continue
        entries.append({"backbone": backbone, "arm": arm, "scale": scale, "params": study.best_params,
                        "best_valid_auc": study.best_value, "trials": len(study.trials)})
    store.finish_sweep_parent(parent, "FINISHED" if entries else "FAILED", {"tuned_cells": len(entries)})
    return write_tuned(out_dir / f"{spec.stem}.yaml", spec.stem, storage, entries) if entries else None


def check_own_database(storage: str, tracking_uri: str) -> None:
    """Optuna and MLflow both keep an `alembic_version` table: one database cannot hold both."""
    from .tracking.reach import store_identity

    if store_identity(storage) == store_identity(tracking_uri):
        raise ValueError(f"--storage {storage}: that is the MLflow store's database; Optuna needs its own (both "
                         "keep an alembic_version table), e.g. another database on the same server, or leave "
                         "--storage out for optuna.db beside mlflow.db")
