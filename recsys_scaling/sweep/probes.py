"""What this machine does besides a model's own steps, measured for the calibration: its matmul
and Adam rates, what a job costs around its training, what a relaunched job costs only to
return, what a fresh worker process costs to start, and how much slower jobs run side by side."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import numpy as np
import torch

from ..config import EmbeddingShape
from ..models import Shape, build_model

# Without calibrating: what was measured on a 2-core machine (2026: 0.3-1 s, ~3 s, ~0.7 GB).
TYPICAL_JOB_OVERHEAD, TYPICAL_WORKER_START, TYPICAL_BASE_RSS = 1.0, 3.0, 700 << 20


class Batches:
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



class threads_set_to:
    def __init__(self, threads: int):
        self.threads, self.saved = threads, torch.get_num_threads()

    def __enter__(self):
        if self.threads > 0:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def matmul_rate() -> float:
    a = torch.randn(512, 512)
    a @ a
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < 0.2:
        a @ a
        count += 1
    return 2 * 512**3 * count / (time.perf_counter() - started)


def adam_seconds_per_param(size: int = 4_000_000) -> float:
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


def job_overhead() -> tuple:
    """(seconds, idle seconds): a whole tiny job (its run, params, data, diagnostics and plots,
    artifacts) in a scratch folder and store, minus its training — what every job costs besides
    its model; and a job launched only to return at once."""
    from ..job import run_job
    from .grid import Composer

    with tempfile.TemporaryDirectory(prefix="recsys-calibrate-") as folder, _quiet():
        cfg = Composer(None)([
            "data=synthetic_small", "data.synthetic.rows=2000", "data.synthetic.cardinalities=[3,10,50]",
            "train.max_epochs=1", "train.progress=false", "train.checkpoint=false", "data.min_class_rows=1",
            f"data.cache_dir={folder}/cache", f"tracking.uri=sqlite:///{folder}/mlflow.db",
            f"train.checkpoint_dir={folder}/checkpoints"])  # its lease too: two first sweeps calibrate at once
        run_job(cfg)  # the imports, the store's creation and the data: not timed
        started = time.perf_counter()
        cfg.seed = 1
        result = run_job(cfg)
        overhead = max(0.0, time.perf_counter() - started - result.get("train_seconds", 0.0))
        return overhead, _idle_launch_seconds(folder)


def _idle_launch_seconds(folder: str, count: int = 6) -> float:
    """What a job launched only to return at once costs (a relaunch's finished or deferred jobs):
    Hydra's set-up of a multirun job and the job's own checks, timed over a few of them."""
    from ..app import launch
    from ..config import job_name

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
from recsys_scaling.sweep.probes import workload_seconds
imported = time.perf_counter() - started
print(json.dumps({"start": imported, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "work": workload_seconds(int(sys.argv[1]))}))
"""


def workers(threads: int, concurrency: int) -> tuple:
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


def workload_seconds(threads: int, steps: int = 12) -> float:
    """A fixed piece of training (a DNN on 12 fields, width 40, batch 2048): seconds per step."""
    from ..config import ModelConfig
    from ..train import train_epoch

    if threads > 0:
        torch.set_num_threads(threads)
    dims = [1000] * 4 + [50] * 8
    torch.manual_seed(0)
    model = build_model("dnn", dims, Shape.of(len(dims), EmbeddingShape(1, 40), "se"), ModelConfig(backbone="dnn"))
    optimizers = [torch.optim.Adam(model.parameters(), fused=True)]
    device = torch.device("cpu")
    train_epoch(model, Batches(dims, 2048, 2), optimizers, 0, device, False)
    batches = Batches(dims, 2048, steps, seed=1)
    started = time.perf_counter()
    train_epoch(model, batches, optimizers, 0, device, False)
    return (time.perf_counter() - started) / steps
