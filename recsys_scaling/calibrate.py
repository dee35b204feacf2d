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
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from .budget import count_params
from .config import EmbeddingShape
from .models import Shape, build_model

MEASURE_SECONDS, WINDOWS = 0.3, 3  # timing per shape, after warm-up: the fastest of 3 windows
MAX_CALIBRATION_PARAMS = 50_000_000  # larger models are timed with smaller tables (see `shape`)
# Without calibrating: what was measured on a 2-core machine (2026: 0.3-1 s, ~3 s, ~0.7 GB).
TYPICAL_JOB_OVERHEAD, TYPICAL_WORKER_START, TYPICAL_BASE_RSS = 1.0, 3.0, 700 << 20


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
    reference_step_seconds: float = 0.0  # the reference workload on a quiet machine (0: not measured)


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


class _Batches:
    """A loader of random batches (indices within the vocabulary), the way train_epoch reads one."""

    def __init__(self, field_dims: Sequence[int], batch: int, count: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        highs = torch.tensor(list(field_dims))
        self.batches = [((torch.rand(batch, len(field_dims), generator=generator) * highs).long(),
                         (torch.rand(batch, generator=generator) < 0.25).float()) for _ in range(count)]

    def epoch(self, epoch: int = 0):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Calibration:
    """Timings cached in `folder` (one file per machine, threads and device)."""

    def __init__(self, threads: int, device: str = "cpu", measure: bool = True, folder: Optional[Path] = None,
                 concurrency: int = 1):
        folder = calibration_folder() if folder is None else folder
        self.threads, self.device, self.measure = threads, device, measure
        self.concurrency = concurrency if device == "cpu" else 1
        key = machine_key(threads, device) + f"|{self.concurrency} at once"
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
        if key not in self.entries:
            with _threads(self.threads):
                flops, adam = _matmul_rate(), _adam_seconds_per_param()
                overhead, skip = _job_overhead() if self.measure else (TYPICAL_JOB_OVERHEAD, 0.5)
                reference = min(self.reference.step_seconds() for _ in range(8)) if self.measure else 0.0
            start, rss, contention = (_workers(self.threads, self.concurrency) if self.measure else
                                      (TYPICAL_WORKER_START, TYPICAL_BASE_RSS, 1.0))
            self.entries[key] = asdict(MachineTiming(overhead, start, rss, flops, adam, contention, skip, reference))
            self._save()
        return MachineTiming(**self.entries[key])

    def shape(self, job_cfg, field_dims: Sequence[int], shape: EmbeddingShape, flops_per_example: float) -> ShapeTiming:
        """The timing of one job's model (cached by everything that changes it)."""
        key = _shape_key(job_cfg, field_dims, shape, self.measure)
        if key not in self.entries.setdefault("shapes", {}):
            timing = (self._measure(job_cfg, field_dims, shape) if self.measure else
                      self._from_flops(job_cfg, field_dims, shape, flops_per_example))
            self.entries["shapes"][key] = asdict(timing)
            self._save()
        return ShapeTiming(**self.entries["shapes"][key])

    def _measure(self, cfg, field_dims: Sequence[int], shape: EmbeddingShape) -> ShapeTiming:
        from .train import make_optimizers, train_epoch

        dims, missing = _fitting_dims(cfg, field_dims, shape)
        timing_train = OmegaConf.merge(cfg.train, {"lr": 1e-3})  # the time of a step does not depend on lr
        with _threads(self.threads):
            torch.manual_seed(0)
            device = torch.device(self.device)
            model = build_model(cfg.model.backbone, dims, Shape.of(len(dims), shape, cfg.arm), cfg.model).to(device)
            optimizers = make_optimizers(model, timing_train)
            warm = _Batches(dims, cfg.train.batch_size, 2)
            train_epoch(model, warm, optimizers, 0, device, False, cfg.train.precision)
            before = self._busy_factor()
            step = (_best_step_seconds(model, optimizers, dims, cfg, device)
                    + missing * self.machine().adam_seconds_per_param)
            eval_row = _eval_seconds_per_row(model, dims, cfg.train.eval_batch_size, device)
            diagnostics = _diagnostics_seconds(model, dims, shape, cfg) if cfg.diagnostics.enabled else 0.0
            load = min(before, self._busy_factor())
        return ShapeTiming(step / load, eval_row / load, diagnostics / load, True)

    @property
    def reference(self) -> "_Reference":
        if getattr(self, "_reference", None) is None:
            self._reference = _Reference()
        return self._reference

    def _busy_factor(self) -> float:
        """How much slower than on a quiet machine the reference workload runs right now (≥ 1):
        a shape timed while something else keeps the cores busy is scaled back by it."""
        quiet = self.machine().reference_step_seconds
        if self.device != "cpu" or not quiet:
            return 1.0
        return max(1.0, self.reference.step_seconds() / quiet)

    def _from_flops(self, cfg, field_dims, shape: EmbeddingShape, flops_per_example: float) -> ShapeTiming:
        machine = self.machine()
        params = count_params(cfg.model.backbone, field_dims, shape.embed_dim, shape.num_embeddings)["total"]
        forward = flops_per_example / machine.matmul_flops_per_second
        step = 3 * forward * cfg.train.batch_size + params * machine.adam_seconds_per_param
        return ShapeTiming(step, forward, 0.0, False)


def _shape_key(cfg, field_dims, shape: EmbeddingShape, measured: bool) -> str:
    from omegaconf import OmegaConf

    model = OmegaConf.to_container(cfg.model, resolve=True)
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
    from .train import train_epoch

    best = float("inf")
    for window in range(WINDOWS):
        steps, seconds = 0, 0.0
        while seconds < MEASURE_SECONDS / WINDOWS or steps < 2:
            batches = _Batches(dims, cfg.train.batch_size, 2, seed=100 * window + steps + 1)
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
    x = _Batches(dims, rows, 1, seed=99).batches[0][0].to(device)
    model(x).sum().item()
    started = time.perf_counter()
    for _ in range(2):
        model(x).sum().item()  # .item(): wait for the device
    return (time.perf_counter() - started) / (2 * rows)


def _diagnostics_seconds(model, dims: Sequence[int], shape: EmbeddingShape, cfg) -> float:
    from . import diagnostics

    table = model.embedding.table.weight.detach().cpu().numpy()
    rows = [np.arange(min(dim, cfg.diagnostics.max_rows)) for dim in dims]
    started = time.perf_counter()
    diagnostics.embedding_diagnostics(table, shape.num_embeddings, [f"f{i}" for i in range(len(dims))], dims, rows)
    return time.perf_counter() - started


class _threads:
    def __init__(self, threads: int):
        self.threads, self.saved = threads, torch.get_num_threads()

    def __enter__(self):
        if self.threads > 0:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def _matmul_rate() -> float:
    a = torch.randn(512, 512)
    a @ a
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < 0.2:
        a @ a
        count += 1
    return 2 * 512**3 * count / (time.perf_counter() - started)


def _adam_seconds_per_param(size: int = 4_000_000) -> float:
    weight = torch.nn.Parameter(torch.randn(size))
    optimizer = torch.optim.Adam([weight], fused=True)
    weight.grad = torch.randn(size)
    optimizer.step()
    started = time.perf_counter()
    for _ in range(3):
        optimizer.step()
    return (time.perf_counter() - started) / (3 * size)


class _quiet:
    """The calibration's own job logs nothing below a warning (it is not the user's job)."""

    NAMES = ("recsys_scaling", "mlflow", "alembic")

    def __enter__(self):
        self.levels = {n: logging.getLogger(n).level for n in self.NAMES}
        for name in self.NAMES:
            logging.getLogger(name).setLevel(logging.WARNING)

    def __exit__(self, *exc):
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


def _job_overhead() -> tuple:
    """(seconds, idle seconds): a whole tiny job (its run, params, data, diagnostics and plots,
    artifacts) in a scratch folder and store, minus its training — what every job costs besides
    its model; and a job launched only to return at once."""
    from .job import run_job
    from .sweep.grid import Composer

    with tempfile.TemporaryDirectory(prefix="recsys-calibrate-") as folder, _quiet():
        cfg = Composer(None)([
            "data=synthetic_small", "data.synthetic.rows=2000", "data.synthetic.cardinalities=[3,10,50]",
            "train.max_epochs=1", "train.progress=false", "train.checkpoint=false", "data.min_class_rows=1",
            f"data.cache_dir={folder}/cache", f"tracking.uri=sqlite:///{folder}/mlflow.db"])
        run_job(cfg)  # the imports, the store's creation and the data: not timed
        started = time.perf_counter()
        cfg.seed = 1
        result = run_job(cfg)
        overhead = max(0.0, time.perf_counter() - started - result.get("train_seconds", 0.0))
        return overhead, _idle_launch_seconds(folder)


def _idle_launch_seconds(folder: str, count: int = 6) -> float:
    """What a job launched only to return at once costs (a relaunch's finished or deferred jobs):
    Hydra's set-up of a multirun job and the job's own checks, timed over a few of them."""
    from .app import launch
    from .config import job_name

    names = ",".join(f"'{job_name('dnn', 'se', 1, seed)}'" for seed in range(count))
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)  # Hydra reconfigures logging: put it back after
    started = time.perf_counter()
    try:
        _launch_idle(launch, count, names, folder)
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    return (time.perf_counter() - started) / count


def _launch_idle(launch, count: int, names: str, folder: str) -> None:
    launch(["--multirun", f"seed={','.join(map(str, range(count)))}", f"sweep.deferred=[{names}]",
            "data=synthetic_small", f"data.cache_dir={folder}/cache", f"tracking.uri=sqlite:///{folder}/mlflow.db",
            f"hydra.sweep.dir={folder}/multirun", "hydra.hydra_logging.root.level=WARNING",
            "hydra.job_logging.root.level=WARNING"])


WORKER_PROBE = """
import json, resource, sys, time
started = time.perf_counter()
import recsys_scaling.app, recsys_scaling.job
from recsys_scaling.calibrate import workload_seconds
imported = time.perf_counter() - started
print(json.dumps({"start": imported, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "work": workload_seconds(int(sys.argv[1]))}))
"""


def _workers(threads: int, concurrency: int) -> tuple:
    """(start seconds, base memory, contention) of fresh worker processes: each imports what a job
    imports and times a fixed training workload; run alone, then `concurrency` at once (the
    slowdown of jobs sharing the machine's cores and memory bandwidth)."""
    alone = _probe_workers(threads, 1)[0]
    together = _probe_workers(threads, concurrency) if concurrency > 1 else [alone]
    contention = max(1.0, float(np.mean([w["work"] for w in together])) / max(alone["work"], 1e-9))
    return alone["start"], int(alone["rss"]), contention


def _probe_workers(threads: int, count: int) -> list:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_PROBE, str(threads)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(count)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        try:
            results.append(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            results.append({"start": TYPICAL_WORKER_START, "rss": TYPICAL_BASE_RSS, "work": 1.0})
    return results


class _Reference:
    """A small fixed training workload, built once, timed on demand (seconds per step)."""

    def __init__(self):
        from .config import ModelConfig

        self.dims = [1000] * 4 + [50] * 8
        torch.manual_seed(0)
        self.model = build_model("dnn", self.dims, Shape.of(len(self.dims), EmbeddingShape(1, 20), "se"),
                                 ModelConfig(backbone="dnn", hidden=200))
        self.optimizers = [torch.optim.Adam(self.model.parameters(), fused=True)]
        self.batches = _Batches(self.dims, 1024, 3, seed=7)
        for _ in range(3):  # warm up: the first steps allocate
            self.step_seconds()

    def step_seconds(self) -> float:
        from .train import train_epoch

        started = time.perf_counter()
        train_epoch(self.model, self.batches, self.optimizers, 0, torch.device("cpu"), False)
        return (time.perf_counter() - started) / len(self.batches)


def workload_seconds(threads: int, steps: int = 12) -> float:
    """A fixed piece of training (a DNN on 12 fields, width 40, batch 2048): seconds per step."""
    from .config import ModelConfig
    from .train import train_epoch

    if threads > 0:
        torch.set_num_threads(threads)
    dims = [1000] * 4 + [50] * 8
    torch.manual_seed(0)
    model = build_model("dnn", dims, Shape.of(len(dims), EmbeddingShape(1, 40), "se"), ModelConfig(backbone="dnn"))
    optimizers = [torch.optim.Adam(model.parameters(), fused=True)]
    device = torch.device("cpu")
    train_epoch(model, _Batches(dims, 2048, 2), optimizers, 0, device, False)
    batches = _Batches(dims, 2048, steps, seed=1)
    started = time.perf_counter()
    train_epoch(model, batches, optimizers, 0, device, False)
    return (time.perf_counter() - started) / steps
