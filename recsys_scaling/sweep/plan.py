"""A sweep before it launches: every job expanded and checked, the data prepared, the jobs that
finished before found, the rest planned (their time and memory estimated)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from omegaconf import OmegaConf

from .. import tracking
from ..config import config_fingerprint, job_fingerprint
from ..data import data_fingerprint, load_dataset
from ..models import model_label
from ..paths import find_sweep
from ..runtime import cpu_count, parallel_jobs, reserved_cpus
from . import grid
from .estimate import SweepEstimate, estimate_sweep

log = logging.getLogger(__name__)


@dataclass
class SweepPlan:
    spec: Path
    name: str
    jobs: List[grid.Job]  # the jobs of this launch: to train, or reused
    plans: list
    overrides: List[str]  # the command line's, plus the runner's own (shared base, deferred jobs)
    reused: Dict[str, str] = field(default_factory=dict)  # job#fingerprint -> its earlier FINISHED run
    estimate: Optional[SweepEstimate] = None  # of the jobs to train
    store: Optional[tracking.Store] = None
    seed_plan: Optional[int] = None  # adaptive: the seed count of the sweep's sequential intervals
    data: List[str] = field(default_factory=list)  # the content fingerprints of the data its jobs train on

    def to_train(self) -> Tuple[List[grid.Job], list]:
        finished = {key.split("#")[0] for key in self.reused}
        kept = [(j, p) for j, p in zip(self.jobs, self.plans) if j.name not in finished]
        return [j for j, _ in kept], [p for _, p in kept]


def plan_sweep(name: str, overrides: Sequence[str] = (), force: bool = False, sweeps_dirs: Sequence[Path] = (),
               only_cells: Optional[Set["Cell"]] = None, open_store: Optional[Callable] = None,
               calibrate: bool = True, on_shape=None, max_seeds: Optional[int] = None) -> SweepPlan:
    """Everything before the parent run exists. `open_store(cfg)` opens the tracking store once the
    data is ready (so bad data creates no store); it may return None (nothing finished before).
    `max_seeds`: an adaptive round, checked against the sweep's seed plan (`kept_seed_plan`)."""
    spec = find_sweep(name, sweeps_dirs)
    overrides = [*overrides, *(["sweep.resume=false"] if force else [])]
    jobs = grid.expand(spec, overrides)
    check_parallelism(jobs)
    plans = grid.validate(jobs)
    check_gpu_packing(jobs, plans)
    jobs, plans, base = grid.split_shared_base(jobs, plans)
    if base:
        overrides = [*overrides, "sweep.shared_base=[" + ",".join(f"'{job.name}'" for job in base) + "]"]
        log.info("sweep %s: %d ME jobs with one set are the SE base and are trained once, as SE", spec.stem,
                 len(base))
    log.info("sweep %s: %d jobs checked", spec.stem, len(jobs))
    data_ids = prepare_data(jobs)  # bad data or a full disk fail here, before a store or a run exists
    store = open_store(jobs[0].cfg) if open_store is not None else None
    seed_plan = kept_seed_plan(store, spec.stem, max_seeds)
    reused = {} if force or store is None else _finished_before(store, jobs, data_ids)
    if reused:  # the jobs need not ask the store again
        overrides = [*overrides, "sweep.finished=[" + ",".join(f"'{key}'" for key in reused) + "]"]
    deferred: list = []
    if only_cells is not None:
        jobs, plans, deferred = _defer_other_cells(jobs, plans, reused, only_cells)
        if deferred:
            overrides = [*overrides, "sweep.deferred=[" + ",".join(f"'{job.name}'" for job in deferred) + "]"]
    plan = SweepPlan(spec, spec.stem, jobs, plans, overrides, reused, store=store, seed_plan=seed_plan,
                     data=sorted(set(data_ids.values())))
    to_train = plan.to_train()
    launched_idle = len(jobs) - len(to_train[0]) + len(base) + len(deferred)
    plan.estimate = estimate_sweep(*to_train, calibrate=calibrate, on_shape=on_shape, skipped=launched_idle)
    return plan


Cell = Tuple[str, str, int]  # (backbone label, arm, scale)


def kept_seed_plan(store, sweep: str, max_seeds: Optional[int]) -> Optional[int]:
    """The seed count an adaptive round's sequential intervals are planned for: the sweep's first
    plan, kept by every later round, relaunch and report (α is split over its looks once). A
    smaller --max-seeds stops sooner under the same plan; a larger one would spend α twice."""
    earlier = store.adaptive_plan(sweep) if store is not None and max_seeds is not None else None
    if earlier is None or max_seeds <= earlier:
        return earlier or max_seeds
    raise ValueError(
        f"--max-seeds {max_seeds}: sweep {sweep} planned its sequential intervals up to {earlier} seeds per cell "
        f"(its first --until-decided), and the 5% of false claims is already split over those looks; more "
        f"seeds would spend it twice. Continue with --max-seeds {earlier} or less, or start a new series with "
        f"new seeds in another experiment (tracking.experiment=NAME seed=100,101,102)")


def cell_of(job: grid.Job) -> Cell:
    return model_label(job.cfg.model), str(job.cfg.arm), int(job.cfg.scale)


def _defer_other_cells(jobs: Sequence[grid.Job], plans: list, reused: dict, cells: Set[Cell]) -> tuple:
    """(jobs this launch keeps: those of `cells` and those finished before, their plans; the others)."""
    finished = {key.split("#")[0] for key in reused}
    keep = [cell_of(job) in cells or job.name in finished for job in jobs]
    return ([j for j, k in zip(jobs, keep) if k], [p for p, k in zip(plans, keep) if k],
            [j for j, k in zip(jobs, keep) if not k])


def prepare_data(jobs: Sequence[grid.Job]) -> Dict[str, str]:
    """Prepare (or open) every distinct dataset of the grid once, before anything is recorded;
    returns data config -> its content fingerprint (see data.data_fingerprint)."""
    ids: Dict[str, str] = {}
    for job in jobs:
        key = OmegaConf.to_yaml(job.cfg.data)
        if key not in ids:
            load_dataset(job.cfg.data, progress=True)
            ids[key] = data_fingerprint(job.cfg.data)
    return ids


def fingerprint_of(job: grid.Job, data_ids: Dict[str, str]) -> str:
    return job_fingerprint(job.cfg, data_ids[OmegaConf.to_yaml(job.cfg.data)])


def _finished_before(store: tracking.Store, jobs: Sequence[grid.Job], data_ids: Dict[str, str]) -> dict:
    """job name + fingerprint -> id of its earlier FINISHED run (same config, same data)."""
    reused, unknown_data = {}, 0
    for job in jobs:
        fingerprint = fingerprint_of(job, data_ids)
        done = store.finished_run(fingerprint)
        if done is not None:
            reused[f"{job.name}#{fingerprint[:12]}"] = done
        elif store.finished_run(config_fingerprint(job.cfg)) is not None:
            unknown_data += 1
    if unknown_data:
        log.info("%d job(s) have FINISHED runs from before runs recorded their data's fingerprint: what data they "
                 "saw is unknown, so they are not reused and train again", unknown_data)
    return reused


def check_parallelism(jobs: Sequence[grid.Job]) -> None:
    """Parallel jobs x torch threads per job must not exceed the cores (on a cluster: the CPUs
    reserved per job)."""
    reserved = reserved_cpus(jobs[0].launcher)
    parallel = parallel_jobs(jobs[0].launcher)
    for job in jobs:
        threads = job.cfg.train.threads
        if reserved and threads > reserved:
            raise grid.SweepConfigError(
                f"{job.describe()}: train.threads={threads} exceeds hydra.launcher.cpus_per_job={reserved}; "
                "raise cpus_per_job or use train.threads=0")
        if reserved:
            continue
        if threads and parallel * threads > cpu_count():
            raise grid.SweepConfigError(
                f"{job.describe()}: hydra.launcher.n_jobs={parallel} x train.threads={threads} exceeds the "
                f"{cpu_count()} cores; lower one (train.threads=0 divides the cores automatically)")


def check_gpu_packing(jobs: Sequence[grid.Job], plans) -> None:
    """With GPUs here and train.device=auto, train.jobs_per_gpu copies of each job must fit in one
    GPU's memory (weights, gradients, Adam state, activations at the batch size); checked before
    anything runs. Needs the vocabulary sizes, so jobs on unprepared data are not checked."""
    from ..device import visible_gpus

    launcher = jobs[0].launcher
    if not visible_gpus() or (launcher is not None and launcher.get("gpus_per_job")):
        return
    import torch

    capacity = torch.cuda.get_device_properties(0).total_memory
    slots = visible_gpus() * jobs[0].cfg.train.jobs_per_gpu
    if parallel_jobs(launcher) > slots:
        log.warning("%d parallel jobs for %d GPU slots (train.jobs_per_gpu per GPU): the extra jobs wait for a "
                    "free slot", parallel_jobs(launcher), slots)
    for job, job_plan in zip(jobs, plans):
        if job.cfg.train.device != "auto" or job_plan is None:
            continue
        try:
            grid.check_memory(job, job_plan, capacity)
        except ValueError as exc:
            raise grid.SweepConfigError(str(exc)) from None
