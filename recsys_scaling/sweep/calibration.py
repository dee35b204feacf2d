"""What a job's model costs on this machine: a few training steps (forward, backward, Adam) and
evaluation batches of each distinct model shape, timed with the job's threads and precision;
plus what every job costs besides training (its run, artifacts and plots) and what a launcher's
new worker process costs to start. Measured once and cached per machine (a JSON file in
$RECSYS_SCALING_CALIBRATION, else ~/.cache/recsys_scaling/calibration), so a second estimate is
instant. Without calibrating (`--no-calibrate`), times come from FLOPs over a measured matmul rate.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from ..budget import count_params, model_options
from ..config import EmbeddingShape
from ..plugins import tower_source_hash
from ..models import Shape, build_model
from .probes import (TYPICAL_BASE_RSS, TYPICAL_JOB_OVERHEAD, TYPICAL_WORKER_START, Batches,
                     adam_seconds_per_param, job_overhead, matmul_rate, threads_set_to, workers)

MEASURE_SECONDS, WINDOWS = 0.3, 3  # timing per shape, after warm-up: the fastest of 3 windows
METHOD = 2  # raised whenever what is measured changes: a cache of an earlier method is not read
MAX_CALIBRATION_PARAMS = 50_000_000  # larger models are timed with smaller tables (see `shape`)


@dataclass(frozen=True)
class ShapeTiming:
    step_seconds: float  # one training step at the job's batch size
    eval_seconds_per_row: float
    diagnostics_seconds: float
    measured: bool  # False: from FLOPs over the machine's matmul rate


@dataclass(frozen=True)
class MachineTiming:
    job_overhead_seconds: float  # a job besides training and evaluation: its run, params, artifacts, plots
    worker_start_seconds: float  # a launcher's new worker process importing the stack
    base_rss_bytes: int  # that process's memory before any job
    matmul_flops_per_second: float
    adam_seconds_per_param: float
    contention: float = 1.0  # how much slower a job runs beside `concurrency` - 1 others (CPU)
    skip_seconds: float = 0.5  # a job launched only to find it finished before (or deferred)


def calibration_folder() -> Path:
    """Per machine, not per project: $RECSYS_SCALING_CALIBRATION, else the user's cache folder."""
    if os.environ.get("RECSYS_SCALING_CALIBRATION"):
        return Path(os.environ["RECSYS_SCALING_CALIBRATION"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "recsys_scaling" / "calibration"


def machine_key(threads: int, device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{socket.gethostname()}|{cpu}|{os.cpu_count()}|torch {torch.__version__}|{device}|threads {threads}"


class Calibration:
    """Timings cached in `folder` (one file per machine, threads and device)."""

    def __init__(self, threads: int, device: str = "cpu", measure: bool = True, folder: Optional[Path] = None,
                 concurrency: int = 1):
        folder = calibration_folder() if folder is None else folder
        self.threads, self.device, self.measure = threads, device, measure
        self.concurrency = concurrency if device == "cpu" else 1
        key = machine_key(threads, device) + f"|{self.concurrency} at once|method {METHOD}"
        self.path = Path(folder) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        self.entries = self._load()
        self.entries.setdefault("machine_key", key)

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            tmp.replace(self.path)
        except OSError:
            pass  # an unwritable cache only costs the next calibration

    def machine(self) -> MachineTiming:
        """Measured once (a tiny real job, a fresh worker process: ~10 s); without calibrating,
        only the matmul and Adam rates are measured, the rest are typical values."""
        key = "machine" if self.measure else "machine_uncalibrated"
        if not _fits(MachineTiming, self.entries.get(key)):
            with threads_set_to(self.threads):
                flops, adam = matmul_rate(), adam_seconds_per_param()
                overhead, skip = job_overhead() if self.measure else (TYPICAL_JOB_OVERHEAD, 0.5)
            start, rss, contention = (workers(self.threads, self.concurrency) if self.measure else
                                      (TYPICAL_WORKER_START, TYPICAL_BASE_RSS, 1.0))
            self.entries[key] = asdict(MachineTiming(overhead, start, rss, flops, adam, contention, skip))
            self._save()
        return MachineTiming(**self.entries[key])

    def shape(self, job_cfg, field_dims: Sequence[int], shape: EmbeddingShape, flops_per_example: float,
              fits: bool = True) -> ShapeTiming:
        """The timing of one job's model (cached by everything that changes it). A model that does
        not fit in memory (`fits` False) is never built: its time comes from its FLOPs."""
        measure = self.measure and fits
        key = _shape_key(job_cfg, field_dims, shape, measure)
        if not _fits(ShapeTiming, self.entries.setdefault("shapes", {}).get(key)):
            timing = (self._measure(job_cfg, field_dims, shape) if measure else
                      self._from_flops(job_cfg, field_dims, shape, flops_per_example))
            self.entries["shapes"][key] = asdict(timing)
            self._save()
        return ShapeTiming(**self.entries["shapes"][key])

    def _measure(self, cfg, field_dims: Sequence[int], shape: EmbeddingShape) -> ShapeTiming:
        from ..train import make_optimizers, train_epoch

        dims, missing = _fitting_dims(cfg, field_dims, shape)
        timing_train = OmegaConf.merge(cfg.train, {"lr": 1e-3})  # the time of a step does not depend on lr
        with threads_set_to(self.threads):
            torch.manual_seed(0)
            device = torch.device(self.device)
            model = build_model(cfg.model.backbone, dims, Shape.of(len(dims), shape, cfg.arm), cfg.model).to(device)
            optimizers = make_optimizers(model, timing_train)
            warm = Batches(dims, cfg.train.batch_size, 2)
            train_epoch(model, warm, optimizers, 0, device, False, cfg.train.precision)
            step = (_best_step_seconds(model, optimizers, dims, cfg, device)
                    + missing * self.machine().adam_seconds_per_param)
            eval_row = _eval_seconds_per_row(model, dims, cfg.train.eval_batch_size, device)
            diagnostics = _diagnostics_seconds(model, dims, shape, cfg) if cfg.diagnostics.enabled else 0.0
        return ShapeTiming(step, eval_row, diagnostics, True)

    def _from_flops(self, cfg, field_dims, shape: EmbeddingShape, flops_per_example: float) -> ShapeTiming:
        machine = self.machine()
        params = count_params(cfg.model.backbone, field_dims, shape.embed_dim, shape.num_embeddings,
                              multi_embedding=cfg.arm == "me", **model_options(cfg.model))["total"]
        forward = flops_per_example / machine.matmul_flops_per_second
        step = 3 * forward * cfg.train.batch_size + params * machine.adam_seconds_per_param
        return ShapeTiming(step, forward, 0.0, False)


def _fits(kind: type, entry) -> bool:
    """A cached entry written by this version (another version's is measured again)."""
    return isinstance(entry, dict) and set(entry) == {f.name for f in fields(kind)}


def _shape_key(cfg, field_dims, shape: EmbeddingShape, measured: bool) -> str:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if model.get("tower"):  # a user's tower: an edited file is another model to time
        model["tower_source"] = tower_source_hash(model["tower"])
    train = {k: cfg.train[k] for k in ("batch_size", "eval_batch_size", "precision", "sparse_embedding")}
    blob = json.dumps([model, train, list(field_dims), shape.num_embeddings, shape.embed_dim, cfg.arm,
                       bool(cfg.diagnostics.enabled), cfg.diagnostics.max_rows, measured], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _fitting_dims(cfg, field_dims: Sequence[int], shape: EmbeddingShape) -> tuple:
    """Vocabulary sizes to time with: the real ones, or for a model too big to allocate here
    (Criteo's tables), scaled down; returns them and the parameters left out, whose Adam
    update is added from the machine's per-parameter rate (the lookups do not depend on it)."""
    total = sum(field_dims) * shape.num_embeddings * shape.embed_dim
    if total <= MAX_CALIBRATION_PARAMS:
        return list(field_dims), 0
    factor = MAX_CALIBRATION_PARAMS / total
    dims = [max(2, int(d * factor)) for d in field_dims]
    return dims, (sum(field_dims) - sum(dims)) * shape.num_embeddings * shape.embed_dim


def _best_step_seconds(model, optimizers, dims: Sequence[int], cfg, device) -> float:
    """Seconds per training step: the fastest of a few short windows, so that a busy moment of
    a shared machine does not land in the estimate (the sweep's own contention is measured
    apart, see `_workers`)."""
    from ..train import train_epoch

    best = float("inf")
    for window in range(WINDOWS):
        steps, seconds = 0, 0.0
        while seconds < MEASURE_SECONDS / WINDOWS or steps < 2:
            batches = Batches(dims, cfg.train.batch_size, 2, seed=100 * window + steps + 1)
            started = time.perf_counter()
            train_epoch(model, batches, optimizers, 0, device, False, cfg.train.precision)
            seconds += time.perf_counter() - started
            steps += len(batches)
        best = min(best, seconds / steps)
    return best


@torch.no_grad()
def _eval_seconds_per_row(model, dims: Sequence[int], eval_batch: int, device: torch.device) -> float:
    model.eval()
    rows = min(eval_batch, 8192)
    x = Batches(dims, rows, 1, seed=99).batches[0][0].to(device)
    model(x).sum().item()
    started = time.perf_counter()
    for _ in range(2):
        model(x).sum().item()  # .item(): wait for the device
    return (time.perf_counter() - started) / (2 * rows)


def _diagnostics_seconds(model, dims: Sequence[int], shape: EmbeddingShape, cfg) -> float:
    from .. import diagnostics

    table = model.embedding.table.weight.detach().cpu().numpy()
    rows = [np.arange(min(dim, cfg.diagnostics.max_rows)) for dim in dims]
    started = time.perf_counter()
    diagnostics.embedding_diagnostics(table, shape.num_embeddings, [f"f{i}" for i in range(len(dims))], dims, rows)
    return time.perf_counter() - started


