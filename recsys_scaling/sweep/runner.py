"""`recsys-scaling sweep <name>`: a parent MLflow run, a Hydra multirun of child jobs, a summary."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from omegaconf import OmegaConf

from .. import tracking
from ..app import launch
from ..config import config_fingerprint, job_fingerprint
from ..data import data_fingerprint, load_dataset
from ..models import model_label
from ..paths import find_sweep
from ..runtime import cpu_count, parallel_jobs, reserved_cpus, stop_children
from . import grid
from .progress import SweepProgress, clock

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    sweep: str
    parent_run_id: str
    store_uri: str
    finished: int
    failed: int
    other: int
    skipped: int = 0
    not_started: int = 0  # planned jobs with no run: bad data, or running in another process
    seconds: float = 0.0
    slowest: Optional[Tuple[str, float]] = None
    experiment_url: str = ""
    experiment: str = "recsys-scaling"

    @property
    def ok(self) -> bool:
        return (self.failed == 0 and self.other == 0 and self.not_started == 0
                and self.finished + self.skipped > 0)

    def line(self) -> str:
        total = self.finished + self.failed + self.other + self.skipped + self.not_started
        extra = f", {self.other} not finished" if self.other else ""
        extra += f", {self.not_started} did not start (see the log)" if self.not_started else ""
        return (f"sweep {self.sweep}: {total} jobs: {self.finished} finished, {self.skipped} skipped "
                f"(finished before), {self.failed} failed{extra} (parent run {self.parent_run_id})")

    def table(self) -> str:
        """The closing summary: counts, slowest job, total time, where to look next."""
        rows = [("finished", str(self.finished)), ("skipped (finished before)", str(self.skipped)),
                ("failed", str(self.failed))]
        rows += [("not finished", str(self.other))] if self.other else []
        rows += [("did not start (see the log)", str(self.not_started))] if self.not_started else []
        if self.slowest:
            rows.append(("slowest job", f"{self.slowest[0]} ({clock(self.slowest[1])})"))
        rows.append(("total time", clock(self.seconds)))
        width = max(len(k) for k, _ in rows)
        total = self.finished + self.failed + self.other + self.skipped + self.not_started
        lines = [f"sweep {self.sweep}: {'done' if self.ok else 'NOT complete'} ({total} jobs, parent run "
                 f"{self.parent_run_id})"]
        lines += [f"  {key:<{width}}  {value}" for key, value in rows]
        lines += [f"report:  recsys-scaling report {self.sweep}",
                  f"runs:    recsys-scaling ui   then open {self.experiment_url}" if self.experiment_url else
                  "runs:    recsys-scaling ui"]
        return "\n".join(lines)


def compose_sweep(spec: Path, overrides: Sequence[str] = ()):
    """The sweep's base config with Hydra's (sweeper parameters unexpanded)."""
    return grid.Composer(spec)(overrides, hydra_config=True)


def run_sweep(name: str, overrides: Sequence[str] = (), force: bool = False,
              sweeps_dirs: Sequence[Path] = (), max_seeds: Optional[int] = None,
              only_cells: Optional[Set[Cell]] = None) -> SweepSummary:
    """Expand and check every job, then open the parent run and launch the multirun. Jobs whose
    config already has a FINISHED run are skipped (their runs are reused) unless `force`.
    `max_seeds`: this launch is a round of adaptive seeds planned up to that many (recorded, so
    that reports use sequential intervals). `only_cells`: train only the jobs of these
    (backbone, arm, scale) cells; the others' finished runs still stand in the sweep, and their
    unfinished jobs wait (deferred)."""
    spec = find_sweep(name, sweeps_dirs)
    sweep_name = spec.stem
    overrides = [*overrides, *(["sweep.resume=false"] if force else [])]
    jobs = grid.expand(spec, overrides)
    check_parallelism(jobs)
    plans = grid.validate(jobs)
    check_gpu_packing(jobs, plans)
    jobs, _, base = grid.split_shared_base(jobs, plans)
    if base:
        overrides = [*overrides, "sweep.shared_base=[" + ",".join(f"'{job.name}'" for job in base) + "]"]
        log.info("sweep %s: %d ME jobs with one set are the SE base and are trained once, as SE", sweep_name,
                 len(base))
    log.info("sweep %s: %d jobs checked", sweep_name, len(jobs))
    data_ids = prepare_data(jobs)  # bad data or a full disk fail here, before a store or a run exists
    store = tracking.Store.of(jobs[0].cfg)
    reused = {} if force else _finished_before(store, jobs, data_ids)
    if only_cells is not None:
        jobs, deferred = _defer_other_cells(jobs, reused, only_cells)
        if deferred:
            overrides = [*overrides, "sweep.deferred=[" + ",".join(f"'{job.name}'" for job in deferred) + "]"]
    closed = store.close_stale_sweep_parents(sweep_name)
    if closed:
        log.info("sweep %s: %d earlier launch(es) left RUNNING by a process that ended are now KILLED", sweep_name,
                 closed)
    parent = store.create_sweep_parent(sweep_name, spec, [job.name for job in jobs], reused,
                                       overrides=sweep_params(spec, overrides))
    store.record_sweep_settings(parent, {**report_settings(jobs[0].cfg), "max_seeds": max_seeds})
    if reused:
        log.info("sweep %s: %d of %d jobs finished before and are skipped (--force reruns them)",
                 sweep_name, len(reused), len(jobs))
    # Jobs log to exactly the parent's store, whatever their process's environment or cwd.
    args: List[str] = ["--multirun", "--config-dir", str(spec.parent), "--config-name", spec.stem,
                       f"sweep.name={sweep_name}", f"tracking.parent_run_id={parent}", *overrides,
                       f"tracking.uri='{store.uri}'"]
    status = "FAILED"
    progress = SweepProgress(store, parent, sweep_name, total=len(jobs) - len(reused))
    try:
        with progress:
            launch(args)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        stop_children()  # launcher workers mark their runs KILLED on SIGTERM; any left are closed below
        try:
            store.close_running_children(parent, "interrupted: the sweep was stopped (Ctrl-C or SIGTERM)")
        except Exception as exc:  # noqa: BLE001 - the store may be the reason; the next launch closes them
            log.warning("sweep %s: could not close its running job runs: %s", sweep_name, _first_line(exc))
        log.warning("sweep %s interrupted: %d of %d jobs finished in this launch; the same command resumes it "
                    "(finished jobs are skipped, the interrupted one continues from its checkpoint)", sweep_name,
                    sum(1 for job in progress.done.values() if job.status == "FINISHED"), progress.total)
        raise
    finally:
        try:
            summary = summarize(store, sweep_name, parent, len(jobs), len(reused))
            summary.seconds, summary.slowest = progress.elapsed, progress.slowest()
            summary.experiment_url, summary.experiment = store.experiment_url(), store.experiment
            if status == "FINISHED" and not summary.ok:
                status = "FAILED"
            store.finish_sweep_parent(parent, status, {"finished": summary.finished, "failed": summary.failed,
                                                       "skipped": summary.skipped,
                                                       "not_started": summary.not_started})
        except Exception as exc:
            if not tracking.is_unreachable(exc):
                raise
            raise tracking.StoreUnreachable(
                f"sweep {sweep_name}: the tracking store {store.uri} stopped answering ({_first_line(exc)}). "
                "Jobs that ended before are recorded; when the store is back, run the same command to complete "
                "the sweep"
            ) from None
    return summary


Cell = Tuple[str, str, int]  # (backbone label, arm, scale)


def cell_of(job: grid.Job) -> Cell:
    return model_label(job.cfg.model), str(job.cfg.arm), int(job.cfg.scale)


def _defer_other_cells(jobs: Sequence[grid.Job], reused: dict, cells: Set[Cell]) -> tuple:
    """(jobs this launch keeps: those of `cells` and those finished before; the others)."""
    finished = {key.split("#")[0] for key in reused}
    kept = [job for job in jobs if cell_of(job) in cells or job.name in finished]
    return kept, [job for job in jobs if all(job is not k for k in kept)]


def report_settings(cfg) -> dict:
    """The sweep file's `report.*` settings, for `recsys-scaling report` to read back."""
    return {"margin": cfg.report.margin, "ia_margin": cfg.report.ia_margin, "margin_note": cfg.report.margin_note}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:150]


def sweep_params(spec: Path, overrides: Sequence[str]) -> dict:
    """The sweep's grid (its sweeper params) and the command-line overrides, as the parent run's
    params: key -> value as written (e.g. scale -> "1,2,4")."""
    plain = [o for o in overrides if "," not in o.split("=", 1)[-1]]
    params = {str(k): str(v) for k, v in (compose_sweep(spec, plain).hydra.sweeper.params or {}).items()}
    for override in overrides:
        key, _, value = override.partition("=")
        if key.startswith(("hydra", "sweep.")):
            continue
        params[key.lstrip("+~")] = value
    return params


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


def summarize(store: tracking.Store, sweep_name: str, parent_run_id: str, planned: int,
              skipped: int = 0) -> SweepSummary:
    statuses = Counter(run.info.status for run in store.child_runs(parent_run_id))
    recorded = sum(statuses.values())
    finished, failed = statuses.pop("FINISHED", 0), statuses.pop("FAILED", 0)
    return SweepSummary(sweep_name, parent_run_id, store.uri, finished, failed, sum(statuses.values()), skipped,
                        not_started=max(0, planned - skipped - recorded))
