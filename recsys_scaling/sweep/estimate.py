"""What a sweep will cost before it runs: per job, its time and peak memory on this machine
(calibrated, see calibration.py), and in total, the compute and the wall time under the sweep's
launcher and parallelism.

A job's time: max_epochs × (training steps × step time + validation rows × evaluation time per
row) + test rows × evaluation time per row + the embedding diagnostics + the per-job overhead
(its run, params, artifacts, plots). max_epochs is an upper bound: early stopping can end a job
sooner, and the estimate says so. Wall time: the jobs packed longest-first onto the launcher's
parallel slots, plus the start of its worker processes.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..runtime import cpu_count, default_threads, parallel_jobs, reserved_cpus
from ..data.subsample import subsample_rows
from .progress import clock


@dataclass
class JobEstimate:
    job: str
    seconds: Optional[float]  # None: the data's row counts are unknown (not prepared yet)
    peak_bytes: Optional[int]
    epochs: int
    train_seconds: Optional[float] = None  # the training steps alone (what a run logs as train_seconds)


@dataclass
class SweepEstimate:
    jobs: List[JobEstimate]
    parallel: int
    launcher: str  # "joblib ×2", "basic", ...
    worker_start: float
    calibrated: bool
    where: str  # "2 cores", "1 GPU", ...
    notes: List[str] = field(default_factory=list)
    skipped: int = 0  # jobs the launcher starts only to find them finished before (or deferred)
    skip_seconds: float = 0.0
    memory_limit: Optional[int] = None  # bytes a job may use here (device.memory_limit)

    @property
    def known(self) -> bool:
        return all(j.seconds is not None for j in self.jobs)

    @property
    def compute(self) -> float:
        return sum(j.seconds or 0.0 for j in self.jobs)

    @property
    def wall(self) -> float:
        starts = self.worker_start * min(self.parallel, len(self.jobs)) / max(self.parallel, 1) if self.jobs else 0.0
        skips = self.skipped * self.skip_seconds / max(self.parallel, 1)
        return makespan([j.seconds or 0.0 for j in self.jobs], self.parallel) + starts + skips

    def footer(self) -> str:
        if not self.jobs:
            return "0 jobs to run"
        if not self.known:
            return f"{len(self.jobs)} jobs · time unknown until the data is prepared (recsys-scaling data prepare ...)"
        epochs = max(j.epochs for j in self.jobs)
        return (f"{len(self.jobs)} jobs · estimated {clock(self.wall)} on {self.where} ({self.launcher}); "
                f"{clock(self.compute)} of compute; each job at most {epochs} epoch{'s' if epochs > 1 else ''} "
                f"(early stopping can end it sooner){'' if self.calibrated else '; from FLOPs, not calibrated'}")

    def oversize(self) -> List[JobEstimate]:
        """The jobs whose estimated peak memory exceeds what a job may use here."""
        limit = self.memory_limit
        return [j for j in self.jobs if limit and j.peak_bytes is not None and j.peak_bytes > limit]

    def memory_note(self) -> str:
        """One line on the jobs too big for this machine ("" when there are none)."""
        big = self.oversize()
        if not big:
            return ""
        worst = max(big, key=lambda j: j.peak_bytes)
        return (f"{len(big)} job(s) need more memory than a job has here ({memory_text(self.memory_limit)}), e.g. "
                f"{worst.job} about {memory_text(worst.peak_bytes)}: sweep and train refuse them "
                "(train.memory_check=false tries anyway)")

    def as_dict(self) -> dict:
        return {"jobs": [asdict(j) for j in self.jobs], "parallel": self.parallel, "launcher": self.launcher,
                "worker_start_seconds": self.worker_start, "calibrated": self.calibrated, "where": self.where,
                "compute_seconds": self.compute if self.known else None,
                "wall_seconds": self.wall if self.known else None}

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.as_dict(), indent=1))
        return path


def makespan(seconds: Sequence[float], slots: int) -> float:
    """Longest-first onto the least-loaded of `slots` (what a pool of workers does, near enough)."""
    loads = [0.0] * max(1, slots)
    for value in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += value
    return max(loads)


def launcher_slots(launcher, device: str) -> Tuple[int, str, str]:
    """(jobs at once, how the launcher is called, what it runs on) for a sweep's launcher."""
    from ..device import visible_gpus

    target = str((launcher or {}).get("_target_", "")).lower()
    gpus = visible_gpus() if device in ("auto", "cuda") or device.startswith("cuda") else 0
    if "ray" in target:
        per_job = max(1, reserved_cpus(launcher))
        slots = max(1, cpu_count() // per_job)
        return slots, f"ray, {slots} jobs at once on this machine", f"{cpu_count()} cores"
    if "submitit" in target and "local" not in target:
        return 1, "a cluster: its queue sets the wall time; this is one job at a time", "one node"
    parallel = parallel_jobs(launcher)
    name = f"joblib ×{parallel}" if "joblib" in target else "one job at a time"
    if gpus:
        return parallel, name, f"{gpus} GPU{'s' if gpus > 1 else ''}"
    return parallel, name, f"{cpu_count()} cores"


def data_rows(data_cfg) -> Optional[Tuple[int, int, int]]:
    """(train, valid, test) rows a job uses: the synthetic generator's or a prepared cache's
    split, the training rows cut to data.train_fraction (time grows with them)."""
    rows = _split_rows(data_cfg)
    if rows is None:
        return None
    train, valid, test = rows
    return subsample_rows(train, float(data_cfg.get("train_fraction", 1.0))) if train else 0, valid, test


def _split_rows(data_cfg) -> Optional[Tuple[int, int, int]]:
    if data_cfg.kind == "synthetic" or data_cfg.declared_rows:
        rows = int(data_cfg.declared_rows or data_cfg.synthetic.rows)
        train = int(round(rows * data_cfg.split[0]))
        valid = int(round(rows * data_cfg.split[1]))
        return train, valid, rows - train - valid
    try:
        from ..data import open_prepared

        split = open_prepared(data_cfg).meta["split_rows"]
        return int(split["train"]), int(split["valid"]), int(split["test"])
    except (ValueError, LookupError, OSError):
        return None


def estimate_sweep(jobs: Sequence, plans: Sequence, calibrate: bool = True,
                   on_shape: Optional[Callable[[int, int], None]] = None, skipped: int = 0) -> SweepEstimate:
    """Estimates for `jobs` (grid.Job with their plans). `on_shape(done, total)` reports the
    calibration's progress (the distinct shapes it times); `skipped` jobs are launched only to
    find that they finished before (or are deferred), which costs a little each."""
    from ..device import memory_limit, visible_gpus
    from .calibration import Calibration

    if not jobs:
        return SweepEstimate([], 1, "", 0.0, calibrate, "", skipped=skipped)
    launcher, first = jobs[0].launcher, jobs[0].shared
    device = _device(first.train.device)
    if device == "cuda" and not visible_gpus():
        raise ValueError(f"train.device={first.train.device}: no CUDA device here to time the models on; run "
                         "`budget` on the GPU machine (or leave train.device=cpu to estimate this machine)")
    slots, name, where = launcher_slots(launcher, first.train.device)
    threads = first.train.threads or default_threads(launcher)
    calibration = Calibration(threads, device, measure=calibrate, concurrency=min(slots, cpu_count()))
    machine = calibration.machine()
    limit = memory_limit(device)
    shapes = {(id_, p.shape) for id_, p in ((_shape_id(j), p) for j, p in zip(jobs, plans)) if p is not None}
    done, estimates, shared = set(), [], {}  # shared: one estimate per config its seeds share
    for job, plan in zip(jobs, plans):
        if id(job.shared) in shared:
            estimates.append(replace(shared[id(job.shared)], job=job.name))
            continue
        rows = data_rows(job.shared.data)
        if plan is None or rows is None:
            estimates.append(JobEstimate(job.name, None, None, int(job.shared.train.max_epochs)))
        else:
            dims = _field_dims(job.shared)
            peak = _peak_bytes(job.shared, plan, dims, sum(rows), machine.base_rss_bytes, device)
            timing = calibration.shape(job.shared, dims, plan.shape, plan.flops, fits=peak <= limit)
            done.add((_shape_id(job), plan.shape))
            if on_shape is not None:
                on_shape(len(done), len(shapes))
            estimates.append(_job_estimate(job, rows, timing, machine, peak))
        shared[id(job.shared)] = estimates[-1]
    notes = [] if calibrate else ["not calibrated: times from FLOPs over the machine's matmul rate"]
    parallel_start = machine.worker_start_seconds if slots > 1 or "ray" in name else 0.0
    return SweepEstimate(estimates, slots, name, parallel_start, calibrate, where, notes, skipped,
                         machine.skip_seconds, limit)


def _job_estimate(job, rows: Tuple[int, int, int], timing, machine, peak: int) -> JobEstimate:
    train, valid, test = rows
    cfg = job.shared
    epochs = int(cfg.train.max_epochs)
    steps = math.ceil(train / cfg.train.batch_size)
    training = epochs * steps * timing.step_seconds * machine.contention
    seconds = (epochs * (steps * timing.step_seconds + valid * timing.eval_seconds_per_row)
               + test * timing.eval_seconds_per_row + timing.diagnostics_seconds + machine.job_overhead_seconds)
    seconds *= machine.contention  # the other jobs running beside it share the cores' memory and caches
    return JobEstimate(job.name, seconds, peak, epochs, training)


def job_peak_bytes(cfg, device: str) -> Optional[Tuple[int, int]]:
    """(a job's estimated peak memory, what a job may use here) before it runs; None when its
    vocabulary sizes or rows are not known yet (the data is not prepared)."""
    from ..budget import plan_job
    from ..data import declared_field_dims
    from ..device import memory_limit
    from .probes import TYPICAL_BASE_RSS

    dims, rows = declared_field_dims(cfg.data), data_rows(cfg.data)
    if dims is None or rows is None:
        return None
    plan = plan_job(cfg.model, cfg.arm, cfg.scale, list(dims), cfg.budget)
    device = _device(device)
    return _peak_bytes(cfg, plan, list(dims), sum(rows), TYPICAL_BASE_RSS, device), memory_limit(device)


def _peak_bytes(cfg, plan, dims: Sequence[int], rows: int, base_rss: int, device: str) -> int:
    """GPU: the model's memory (weights, gradients, Adam, activations; device.estimate_memory).
    CPU: that, plus the dataset in memory and the process itself (its measured start)."""
    from ..device import estimate_memory
    from ..models import Shape, build_model

    model = estimate_memory(lambda: build_model(cfg.model.backbone, list(dims), Shape.of(len(dims), plan.shape,
                                                                                        cfg.arm), cfg.model),
                            list(dims), cfg.train.batch_size).total
    if device != "cpu":
        return int(model)
    data = rows * (len(dims) + 1) * 4
    return int(model + data + base_rss)


def _field_dims(cfg) -> List[int]:
    from ..data import declared_field_dims

    return list(declared_field_dims(cfg.data))


def _shape_id(job) -> str:
    return f"{job.shared.model.backbone}|{job.shared.train.batch_size}|{job.shared.arm}"


def _device(device: str) -> str:
    from ..device import visible_gpus

    if device == "auto":
        return "cuda" if visible_gpus() else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def memory_text(value: Optional[int]) -> str:
    if value is None:
        return "-"
    return f"{value / 2**30:.1f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


def per_job(estimate: SweepEstimate) -> Dict[str, JobEstimate]:
    return {j.job: j for j in estimate.jobs}
