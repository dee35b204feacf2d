"""One configured job, end to end: data -> model -> training -> MLflow run."""
from __future__ import annotations

import logging
from typing import Dict

import torch
from omegaconf import DictConfig

from . import tracking
from .budget import plan_job
from .collapse import CollapseProbe
from .data import load_dataset
from .models import Shape, build_model
from .train import fit, seed_everything

log = logging.getLogger(__name__)


def job_tags(cfg: DictConfig) -> Dict[str, str]:
    return {
        "backbone": cfg.model.backbone,
        "arm": cfg.arm,
        "scale": str(cfg.scale),
        "seed": str(cfg.seed),
        "sweep": cfg.sweep.name,
        "dataset": cfg.data.name,
    }


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def run_job(cfg: DictConfig) -> Dict[str, float]:
    """Train one model and record it as one MLflow run; returns its final metrics."""
    set_threads(cfg.train.threads)
    name = tracking.run_name(cfg.model.backbone, cfg.arm, cfg.scale, cfg.seed)
    with tracking.job_run(cfg, name, job_tags(cfg)) as run:
        data = load_dataset(cfg.data, progress=cfg.train.progress)
        plan = plan_job(cfg.model, cfg.arm, cfg.scale, data.field_dims, cfg.budget, job=name)
        run.set_tags({"num_embeddings": str(plan.num_embeddings), "embed_dim": str(plan.embed_dim)})
        run.log_metrics(plan_metrics(plan))
        shape = Shape(len(data.field_dims), plan.embed_dim, plan.num_embeddings, cfg.arm == "me")
        seed_everything(cfg.seed)
        model = build_model(cfg.model.backbone, data.field_dims, shape, cfg.model)
        log.info("%s: K=%d, d=%d, %s parameters (%s embedding) on %s (%s rows)", name, plan.num_embeddings,
                 plan.embed_dim, f"{plan.counts['total']:,}", f"{plan.counts['embedding']:,}", cfg.data.name,
                 f"{data.meta['rows']:,}")
        probe = CollapseProbe(data, cfg.diagnostics.max_rows) if cfg.diagnostics.enabled else None
        result = fit(model, data, cfg.train, cfg.seed, logger=run,
                     on_epoch_end=_periodic_diagnostics(probe, model, run, cfg.diagnostics.every_n_epochs))
        final = result.final_metrics()
        run.log_metrics({**final, **model.diagnostics()})
        if probe is not None:
            collapse = probe.log_final(model.embedding, run, name)
            log.info("%s: mean IA %.2f (random reference %.2f)", name, collapse["ia_mean"],
                     collapse["ia_random_mean"])
        log.info("%s: test AUC %.5f, logloss %.5f (best epoch %d)", name, result.test_auc,
                 result.test_logloss, result.best_epoch)
        return final


def plan_metrics(plan) -> Dict[str, float]:
    metrics = {f"params_{k}": v for k, v in plan.counts.items()}
    metrics["flops_per_example"] = plan.flops
    if plan.mismatch is not None:
        metrics["budget_reference_total"] = plan.reference_total
        metrics["budget_mismatch"] = plan.mismatch
    return metrics


def _periodic_diagnostics(probe, model, run, every: int):
    if probe is None or every <= 0:
        return None

    def on_epoch_end(epoch: int) -> None:
        if (epoch + 1) % every == 0:
            run.log_epoch(epoch, probe.metrics(model.embedding))

    return on_epoch_end
