"""A sweep before it launches: every job expanded and checked, the data prepared, the jobs that
finished before found, the rest planned (their time and memory estimated)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from omegaconf import OmegaConf

from .. import tracking
from ..config import config_fingerprint, fingerprint_tree, job_fingerprint
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
    fingerprints: Dict[str, str] = field(default_factory=dict)  # job name -> its fingerprint (config and data)

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
    overrides = grid.without_duplicate_values(spec, [*overrides, *(["sweep.resume=false"] if force else [])])
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
    prints = fingerprints(jobs, data_ids)
    reused = {} if force or store is None else _finished_before(store, jobs, prints)
    if reused:  # the jobs need not ask the store again
        overrides = [*overrides, "sweep.finished=[" + ",".join(f"'{key}'" for key in reused) + "]"]
    deferred: list = []
    if only_cells is not None:
        jobs, plans, deferred = _defer_other_cells(jobs, plans, reused, only_cells)
        if deferred:
            overrides = [*overrides, "sweep.deferred=[" + ",".join(f"'{job.name}'" for job in deferred) + "]"]
    plan = SweepPlan(spec, spec.stem, jobs, plans, overrides, reused, store=store, seed_plan=seed_plan,
                     data=sorted(set(data_ids.values())),
                     fingerprints={job.name: fp for job, (fp, _) in zip(jobs, prints)})
    to_train = plan.to_train()
    launched_idle = len(jobs) - len(to_train[0]) + len(base) + len(deferred)
    plan.estimate = estimate_sweep(*to_train, calibrate=calibrate, on_shape=on_shape, skipped=launched_idle)
    return plan


Cell = Tuple[str, str, int]  # (backbone label, arm, scale)

# A launch above either asks first (sweep --yes): a typo in a grid should not start weeks of work
BIG_SWEEP_JOBS = 1000
BIG_SWEEP_HOURS = 24


def too_big(jobs: int, wall_seconds: Optional[float]) -> str:
    """Why a launch of `jobs` jobs taking `wall_seconds` needs a yes ("" when it does not)."""
    reasons = [f"{jobs:,} jobs (more than {BIG_SWEEP_JOBS:,})"] if jobs > BIG_SWEEP_JOBS else []
    if wall_seconds is not None and wall_seconds > BIG_SWEEP_HOURS * 3600:
        reasons.append(f"an estimated {wall_seconds / 3600:,.0f} hours (more than {BIG_SWEEP_HOURS})")
    return " and ".join(reasons)


def refuse_oversize(plan: "SweepPlan") -> None:
    """A job whose estimated peak memory exceeds what a job may use here fails the sweep before
    anything is recorded, unless its train.memory_check is off."""
    estimates = {e.job: e for e in plan.estimate.oversize()}
    for job in plan.jobs:
        if job.name in estimates and job.shared.train.memory_check:
            raise grid.SweepConfigError(oversize_message(job.describe(), estimates[job.name].peak_bytes,
                                                         plan.estimate.memory_limit))


def oversize_message(job: str, peak: int, limit: int) -> str:
    from .estimate import memory_text

    return (f"{job}: needs about {memory_text(peak)} of memory (weights, gradients, Adam, activations and the data) "
            f"but a job has {memory_text(limit)} here; lower scale, model sizes or train.batch_size, or add "
            "train.memory_check=false to try anyway")


def confirm_size(what: str, jobs: int, wall_seconds: Optional[float], yes: bool,
                 ask: Optional[Callable[[str], bool]]) -> None:
    """Go on when the launch is small, `yes` was given, or `ask(question)` (a terminal) says yes;
    else ValueError saying how to launch it. Nothing is recorded before this."""
    reason = too_big(jobs, wall_seconds)
    if not reason or yes:
        return
    if ask is not None and ask(f"{what}: {reason}. Launch it? [y/N] "):
        return
    raise ValueError(f"{what}: {reason}; nothing was launched. Check the grid with --plan, then add --yes to launch it")


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
    return model_label(job.shared.model), str(job.shared.arm), int(job.shared.scale)


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
    for job in grid.distinct_models(jobs):
        key = OmegaConf.to_yaml(job.shared.data)
        if key not in ids:
            load_dataset(job.shared.data, progress=True)
            ids[key] = data_fingerprint(job.shared.data)
    return ids


def fingerprints(jobs: Sequence[grid.Job], data_ids: Dict[str, str]) -> List[Tuple[str, str]]:
    """(job fingerprint, config fingerprint) of each job, the config resolved once per shared
    config (a seed's variant is that tree with its seed set)."""
    trees: dict = {}
    out = []
    for job in jobs:
        if id(job.shared) not in trees:
            trees[id(job.shared)] = (fingerprint_tree(job.shared), data_ids[OmegaConf.to_yaml(job.shared.data)])
        tree, data_id = trees[id(job.shared)]
        config = config_fingerprint(None, {**tree, "seed": job.own_seed} if job.own_seed is not None else tree)
        out.append((job_fingerprint(None, data_id, config), config))
    return out


def _finished_before(store: tracking.Store, jobs: Sequence[grid.Job], prints: List[Tuple[str, str]]) -> dict:
    """job name + fingerprint -> id of its earlier FINISHED run (same config, same data)."""
    reused, unknown_data = {}, 0
    finished = store.finished_runs([fp for pair in prints for fp in pair])
    for job, (fingerprint, config) in zip(jobs, prints):
        done = finished.get(fingerprint)
        if done is not None:
            reused[f"{job.name}#{fingerprint[:12]}"] = done
        elif config in finished:
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
    for job in grid.distinct_models(jobs):
        threads = job.shared.train.threads
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
    distinct = set(grid.distinct_models(jobs))
    slots = visible_gpus() * jobs[0].cfg.train.jobs_per_gpu
    if parallel_jobs(launcher) > slots:
        log.warning("%d parallel jobs for %d GPU slots (train.jobs_per_gpu per GPU): the extra jobs wait for a "
                    "free slot", parallel_jobs(launcher), slots)
    for job, job_plan in zip(jobs, plans):
        if job not in distinct or job.shared.train.device != "auto" or job_plan is None:
            continue
        try:
            grid.check_memory(job, job_plan, capacity)
        except ValueError as exc:
            raise grid.SweepConfigError(str(exc)) from None
