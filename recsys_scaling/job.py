"""One configured job, end to end: data -> model -> training -> MLflow run."""
from __future__ import annotations

import logging
from typing import Dict

import torch
from omegaconf import DictConfig, OmegaConf

from . import tracking
from .budget import count_params
from .collapse import CollapseProbe
from .config import embedding_shape
from .data import load_dataset
from .models import Shape, build_model
from .train import fit, seed_everything

log = logging.getLogger(__name__)


def job_tags(cfg: DictConfig, num_embeddings: int, embed_dim: int) -> Dict[str, str]:
    return {
        "backbone": cfg.model.backbone,
        "arm": cfg.arm,
        "scale": str(cfg.scale),
        "num_embeddings": str(num_embeddings),
        "embed_dim": str(embed_dim),
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
    emb = embedding_shape(cfg.model, cfg.arm, cfg.scale)
    name = tracking.run_name(cfg.model.backbone, cfg.arm, cfg.scale, cfg.seed)
    with tracking.job_run(cfg, name, job_tags(cfg, emb.num_embeddings, emb.embed_dim)) as run:
        data = load_dataset(cfg.data, progress=cfg.train.progress)
        shape = Shape(len(data.field_dims), emb.embed_dim, emb.num_embeddings, cfg.arm == "me")
        seed_everything(cfg.seed)
        model = build_model(cfg.model.backbone, data.field_dims, shape, cfg.model)
        counts = count_params(cfg.model.backbone, data.field_dims, emb.embed_dim, emb.num_embeddings,
                              multi_embedding=cfg.arm == "me", **_model_options(cfg.model))
        run.log_metrics({f"params_{k}": v for k, v in counts.items()})
        log.info("%s: %s parameters (%s embedding) on %s (%s rows)", name, f"{counts['total']:,}",
                 f"{counts['embedding']:,}", cfg.data.name, f"{data.meta['rows']:,}")
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


def _periodic_diagnostics(probe, model, run, every: int):
    if probe is None or every <= 0:
        return None

    def on_epoch_end(epoch: int) -> None:
        if (epoch + 1) % every == 0:
            run.log_epoch(epoch, probe.metrics(model.embedding))

    return on_epoch_end


def _model_options(model_cfg) -> dict:
    options = OmegaConf.to_container(model_cfg, resolve=True)
    for key in ("backbone", "base_dim", "embed_dim", "num_embeddings"):
        options.pop(key, None)
    return options
