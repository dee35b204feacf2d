"""One configured job, end to end: data -> model -> training -> MLflow run."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
from omegaconf import DictConfig

from . import tracking
from .budget import plan_job
from .collapse import CollapseProbe
from .config import embedding_shape, explicit_shape, job_fingerprint, job_name
from .data import data_fingerprint, load_dataset, positive_rate, with_train_fraction
from .data.splits import split_description
from .data.faults import check_labels
from .models import Shape, build_model, get_backbone, model_label
from .metrics import normalized_entropy
from .train import Checkpoint, fit, seed_everything
from .runtime import holder_is_gone, lease_holder
from .tuned import resolve_job_config
from .validate import check_job

log = logging.getLogger(__name__)


def job_tags(cfg: DictConfig) -> Dict[str, str]:
    tags = {
        "backbone": model_label(cfg.model),
        "arm": cfg.arm,
        "scale": str(cfg.scale),
        "seed": str(cfg.seed),
        "sweep": cfg.sweep.name,
        "dataset": cfg.data.name,
        "train_fraction": f"{float(cfg.data.train_fraction):g}",
    }
    if explicit_shape(cfg) is not None:  # a (K, d) cell: arm and scale do not say its shape
        tags["explicit_shape"] = "true"
    return tags


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


class JobBusy(RuntimeError):
    """The same job (config fingerprint) is running in another process right now."""


class JobLease:
    """An exclusive lock on one job (a file lock beside its checkpoint) held while it runs, so a
    second process launching the same job neither trains it twice nor takes over its live
    checkpoint. Released by the OS when the process dies, so a killed job can be resumed."""

    def __init__(self, path: Path):
        self.path, self._file = path, None
        self.holder = lease_holder()

    def __enter__(self) -> "JobLease":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")
        self._file.seek(0)
        holder = self._file.read().strip()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise JobBusy(f"already running in {holder or 'another process'}; not started twice") from None
        if holder:  # the lock was free, so its last holder has ended (killed, or finished)
            log.info("job lease %s: taken over from %s, which is no longer running", self.path.name, holder)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(self.holder)
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        self._file.seek(0)
        self._file.truncate()  # a clean end leaves no holder behind
        self._file.close()  # closing releases the lock; the file stays (removing it would race)


def run_job(cfg: DictConfig, resume: bool = False,
            on_epoch_end: Optional[Callable[[int, Dict[str, float]], None]] = None) -> Dict[str, float]:
    """Train one model and record it as one MLflow run; returns its final metrics.

    resume: skip the job when a FINISHED run with the same config fingerprint exists.
    on_epoch_end: called after every epoch with its metrics (e.g. an Optuna pruning hook).
    Bad input (config values, the data) fails before a store or a run is created."""
    resolve_job_config(cfg)
    check_job(cfg)
    set_threads(cfg.train.threads)
    name = job_name(model_label(cfg.model), cfg.arm, cfg.scale, cfg.seed, explicit_shape(cfg),
                    cfg.data.train_fraction)
    if name in cfg.sweep.shared_base:
        log.info("%s: not trained: ME with one set is the SE base, which this sweep trains once", name)
        return {"shared_base": 1.0}
    if name in cfg.sweep.deferred:
        log.info("%s: not trained in this round: the claims its cell feeds are decided", name)
        return {"deferred": 1.0}
    data_id = data_fingerprint(cfg.data)
    fingerprint = job_fingerprint(cfg, data_id)
    if resume and f"{name}#{fingerprint[:12]}" in cfg.sweep.finished:
        log.info("%s: skipped, finished before (found by the sweep)", name)
        return {"skipped": 1.0}
    if resume:
        done = tracking.Store.of(cfg).finished_run(fingerprint)
        if done is not None:
            log.info("%s: skipped, finished before as run %s", name, done)
            return {"skipped_as": done}
    with JobLease(Path(cfg.train.checkpoint_dir) / f"{fingerprint}.lock") as lease:
        return _train_and_record(cfg, name, fingerprint, data_id, on_epoch_end, lease.holder)


def _split_param(meta: dict, fraction: float) -> Dict[str, str]:
    """Which files (or days) trained and which validated and tested, for a raw dataset's run."""
    if not meta.get("inputs"):
        return {}
    said = split_description(meta)
    if fraction < 1:
        said += f"; this run trains on a seeded {fraction:g} of the training rows, drawn from all of them"
    return {"resolved.data_split": said[:6000]}


def _train_and_record(cfg: DictConfig, name: str, fingerprint: str, data_id: str, on_epoch_end,
                      holder: str) -> Dict[str, float]:
    data = load_dataset(cfg.data, progress=cfg.train.progress)
    check_labels(data.y, data.splits, str(cfg.data.path or cfg.data.name), minimum=1)  # AUC must be defined
    train_positive_rate = positive_rate(data)  # of the whole training split: one NE reference for every fraction
    data = with_train_fraction(data, float(cfg.data.train_fraction), int(cfg.data.split_seed))
    backbone = get_backbone(cfg.model.backbone)
    backbone.check(len(data.field_dims), embedding_shape(cfg.model, cfg.arm, cfg.scale).embed_dim, cfg.model)
    plan = plan_job(cfg.model, cfg.arm, cfg.scale, data.field_dims, cfg.budget, job=name)
    backbone.check(len(data.field_dims), plan.embed_dim, cfg.model)  # the budget may have solved another d
    store = tracking.Store.of(cfg)
    checkpoint = Checkpoint(Path(cfg.train.checkpoint_dir) / f"{fingerprint}.pt" if cfg.train.checkpoint else None)
    tags = {**job_tags(cfg), "fingerprint": fingerprint, "data_fingerprint": data_id, "lease": holder}
    with store.job_run(cfg, name, tags) as run:
        closed = store.close_stale_runs(fingerprint, keep=run.run_id, why=_stale_reason(checkpoint))
        if closed:
            log.info("%s: %d earlier run(s) of this job left RUNNING by an ended process are now KILLED", name, closed)
        run.set_tags({"num_embeddings": str(plan.num_embeddings), "embed_dim": str(plan.embed_dim)})
        train_rows = len(data.splits["train"])
        run.log_params({**resolved_params(plan), "resolved.data_fingerprint": data_id, "train_rows": str(train_rows),
                        **_split_param(data.meta, float(cfg.data.train_fraction))})
        run.log_metrics({**plan_metrics(plan), **oracle_metrics(data.meta), "train_rows": train_rows,
                         "train_positive_rate": train_positive_rate})
        shape = Shape.of(len(data.field_dims), plan.shape, cfg.arm)
        seed_everything(cfg.seed)
        model = build_model(cfg.model.backbone, data.field_dims, shape, cfg.model)
        log.info("%s: K=%d, d=%d, %s parameters (%s embedding) on %s (%s rows)", name, plan.num_embeddings,
                 plan.embed_dim, f"{plan.counts['total']:,}", f"{plan.counts['embedding']:,}", cfg.data.name,
                 f"{data.meta['rows']:,}")
        probe = CollapseProbe(data, cfg.diagnostics.max_rows) if cfg.diagnostics.enabled else None
        callbacks = _chain(_periodic_diagnostics(probe, model, run, cfg.diagnostics.every_n_epochs), on_epoch_end)
        result = fit(model, data, cfg.train, cfg.seed, logger=run, checkpoint=checkpoint, on_epoch_end=callbacks)
        final = {**result.final_metrics(), **data_metrics(plan, train_rows, result, train_positive_rate)}
        run.log_metrics({**final, **model.diagnostics()})
        if probe is not None:
            collapse = probe.log_final(model.embedding, run, name)
            log.info("%s: mean IA %.2f (random reference %.2f)", name, collapse["ia_mean"],
                     collapse["ia_random_mean"])
        log.info("%s: test AUC %.5f, logloss %.5f (best epoch %d)", name, result.test_auc,
                 result.test_logloss, result.best_epoch)
    checkpoint.remove()
    return final


def _stale_reason(checkpoint: Checkpoint):
    """Why an earlier RUNNING run of the job being started is stale, or None if it may be live.
    We hold the job's lease, so with a checkpoint on disk its writer has ended; without one, only a
    run whose recorded process on this host has ended is known to be stale."""
    resuming = checkpoint.path is not None and checkpoint.path.is_file()

    def reason(run) -> Optional[str]:
        if resuming:
            return "interrupted; its checkpoint was resumed"
        holder = run.data.tags.get("lease")
        if holder_is_gone(holder):
            return f"interrupted: its process ({holder}) ended without closing the run"
        return None

    return reason


def resolved_params(plan) -> Dict[str, str]:
    """K, d and the counts the job actually trains with, as params to filter on (the config's
    model.num_embeddings / model.embed_dim params are null when they follow from arm and scale)."""
    values = {"num_embeddings": plan.num_embeddings, "embed_dim": plan.embed_dim,
              **{f"params_{k}": v for k, v in plan.counts.items()}, "flops_per_example": plan.flops}
    return {f"resolved.{k}": str(v) for k, v in values.items()}


def plan_metrics(plan) -> Dict[str, float]:
    metrics = {f"params_{k}": v for k, v in plan.counts.items()}
    metrics["flops_per_example"] = plan.flops
    if plan.mismatch is not None:
        metrics["budget_reference_total"] = plan.reference_total
        metrics["budget_mismatch"] = plan.mismatch
    return metrics


def data_metrics(plan, train_rows: int, result, train_positive_rate: float) -> Dict[str, float]:
    """The data and compute axes of a finished run: its training compute, measured as
    3 x forward FLOPs per example (forward + backward) x training rows x epochs run, and the
    normalized entropy of its test logloss."""
    return {"train_flops": 3.0 * plan.flops * train_rows * result.epochs_run,
            "test_ne": normalized_entropy(result.test_logloss, train_positive_rate)}


def oracle_metrics(meta: dict) -> Dict[str, float]:
    """The synthetic teacher's oracle test AUCs (Bayes, truncated widths), for the report."""
    oracle = meta.get("oracle") or {}
    metrics = {"oracle_bayes_auc": oracle["bayes_auc"]} if "bayes_auc" in oracle else {}
    metrics.update({f"oracle_auc_width_{w}": auc for w, auc in oracle.get("truncated_auc", {}).items()})
    return metrics


def _chain(*callbacks):
    """One epoch callback calling the given ones (None entries skipped); None if there are none."""
    active = [c for c in callbacks if c is not None]
    if not active:
        return None

    def call_all(epoch: int, metrics: Dict[str, float]) -> None:
        for callback in active:
            callback(epoch, metrics)

    return call_all


def _periodic_diagnostics(probe, model, run, every: int):
    if probe is None or every <= 0:
        return None

    def on_epoch_end(epoch: int, metrics: Dict[str, float]) -> None:
        if (epoch + 1) % every == 0:
            run.log_epoch(epoch, probe.metrics(model.embedding))

    return on_epoch_end
