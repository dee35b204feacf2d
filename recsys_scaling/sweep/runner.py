"""`recsys-scaling sweep <name>`: a parent MLflow run, a Hydra multirun of child jobs, a summary."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple


from .. import tracking
from ..app import launch
from ..logs import quiet_overrides
from ..runtime import stop_children
from . import grid
from .launch import LAUNCH_FILE, Launch
from .plan import Cell, confirm_size, plan_sweep, refuse_oversize
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
    elsewhere: int = 0  # planned jobs another launch, running at the same time, finished
    seconds: float = 0.0
    slowest: Optional[Tuple[str, float]] = None
    experiment_url: str = ""
    experiment: str = "recsys-scaling"
    estimated: Optional[float] = None  # the plan's wall time for this launch
    seed_plan: Optional[int] = None  # adaptive: the seed count the sweep's sequential intervals are planned for
    launch: Optional[Launch] = None  # the overrides and store of this launch: the commands it prints

    @property
    def ok(self) -> bool:
        return (self.failed == 0 and self.other == 0 and self.not_started == 0
                and self.finished + self.skipped + self.elsewhere > 0)

    def line(self) -> str:
        total = self.finished + self.failed + self.other + self.skipped + self.not_started + self.elsewhere
        extra = f", {self.elsewhere} finished by another launch" if self.elsewhere else ""
        extra += f", {self.other} not finished" if self.other else ""
        extra += f", {self.not_started} did not start (see the log)" if self.not_started else ""
        return (f"sweep {self.sweep}: {total} jobs: {self.finished} finished, {self.skipped} skipped "
                f"(finished before), {self.failed} failed{extra} (parent run {self.parent_run_id})")

    def table(self) -> str:
        """The closing summary: counts, slowest job, total time, where to look next."""
        rows = [("finished", str(self.finished)), ("skipped (finished before)", str(self.skipped)),
                ("failed", str(self.failed))]
        rows += [("finished by another launch", str(self.elsewhere))] if self.elsewhere else []
        rows += [("not finished", str(self.other))] if self.other else []
        rows += [("did not start (see the log)", str(self.not_started))] if self.not_started else []
        if self.slowest:
            rows.append(("slowest job", f"{self.slowest[0]} ({clock(self.slowest[1])})"))
        rows.append(("total time", clock(self.seconds)))
        if self.estimated is not None:
            rows.append(("estimated", clock(self.estimated)))
        width = max(len(k) for k, _ in rows)
        total = self.finished + self.failed + self.other + self.skipped + self.not_started + self.elsewhere
        lines = [f"sweep {self.sweep}: {'done' if self.ok else 'NOT complete'} ({total} jobs, parent run "
                 f"{self.parent_run_id})"]
        lines += [f"  {key:<{width}}  {value}" for key, value in rows]
        report = self.launch.report_command(self.sweep) if self.launch else f"recsys-scaling report {self.sweep}"
        ui = self.launch.ui_command() if self.launch else "recsys-scaling ui"
        lines += [f"report:  {report}",
                  f"runs:    {ui}   then open {self.experiment_url}" if self.experiment_url else f"runs:    {ui}"]
        return "\n".join(lines)


def compose_sweep(spec: Path, overrides: Sequence[str] = ()):
    """The sweep's base config with Hydra's (sweeper parameters unexpanded)."""
    return grid.Composer(spec)(overrides, hydra_config=True)


def run_sweep(name: str, overrides: Sequence[str] = (), force: bool = False,
              sweeps_dirs: Sequence[Path] = (), max_seeds: Optional[int] = None,
              only_cells: Optional[Set[Cell]] = None, announce=None, calibrate: bool = True,
              on_shape=None, yes: bool = False, ask=None, verbose: bool = False) -> SweepSummary:
    """Plan the sweep (plan.plan_sweep: expand and check every job, prepare the data, find what
    finished before, estimate the rest), then open the parent run and launch the multirun. Jobs
    whose config and data already have a FINISHED run are skipped (their runs are reused) unless
    `force`. `max_seeds`: this launch is a round of adaptive seeds planned up to that many, or up
    to the sweep's first plan (recorded, so that reports use sequential intervals). `only_cells`:
    train only the jobs of these (backbone, arm, scale) cells; the others' finished runs still
    stand in the sweep, and their unfinished jobs wait (deferred). `announce(text)` is told the
    estimate before launch. A launch above plan.BIG_SWEEP_JOBS jobs or BIG_SWEEP_HOURS needs
    `yes`, or `ask(question)` to answer yes (plan.confirm_size). Unless `verbose`, the launcher's
    and the jobs' INFO lines stay off the console (logs.QUIET_SWEEP; a job's are in its log file)."""
    user_overrides = list(overrides)
    plan = plan_sweep(name, overrides, force, sweeps_dirs, only_cells, open_store=tracking.existing_store,
                      calibrate=calibrate, on_shape=on_shape, max_seeds=max_seeds)
    sweep_name, spec, jobs, reused, overrides = plan.name, plan.spec, plan.jobs, plan.reused, plan.overrides
    if announce is not None:
        announce(f"plan: {plan.estimate.footer()}")
    refuse_oversize(plan)
    confirm_size(f"sweep {sweep_name}", len(plan.estimate.jobs), plan.estimate.wall if plan.estimate.known else None,
                 yes, ask)
    store = plan.store or tracking.Store.of(jobs[0].cfg)  # a new store is made only for a launch that goes on
    closed = store.close_stale_sweep_parents(sweep_name)
    if closed:
        log.info("sweep %s: %d earlier launch(es) left RUNNING by a process that ended are now KILLED", sweep_name,
                 closed)
    this_launch = Launch([str(o) for o in user_overrides], store.uri, store.experiment, plan.data,
                         [str(Path(d).resolve()) for d in sweeps_dirs])
    say_if_other_data(store, sweep_name, this_launch)
    planned = {job.name: plan.fingerprints[job.name] for job in jobs}
    parent = store.create_sweep_parent(sweep_name, spec, planned, reused,
                                       overrides=sweep_params(spec, overrides))
    store.client.log_dict(parent, this_launch.as_dict(), LAUNCH_FILE)
    store.record_sweep_settings(parent, {**report_settings(jobs[0].cfg), "max_seeds": plan.seed_plan})
    store.record_estimate(parent, plan.estimate.as_dict())
    if reused:
        log.info("sweep %s: %d of %d jobs finished before and are skipped (--force reruns them)",
                 sweep_name, len(reused), len(jobs))
    # Jobs log to exactly the parent's store, whatever their process's environment or cwd.
    args: List[str] = ["--multirun", "--config-dir", str(spec.parent), "--config-name", spec.stem,
                       f"sweep.name={sweep_name}", f"tracking.parent_run_id={parent}", *overrides,
                       f"tracking.uri='{store.uri}'", *([] if verbose else quiet_overrides(overrides))]
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
            summary = summarize(store, sweep_name, parent, planned, len(reused))
            summary.seconds, summary.slowest = progress.elapsed, progress.slowest()
            summary.experiment_url, summary.experiment = store.experiment_url(), store.experiment
            summary.estimated = plan.estimate.wall if plan.estimate.known else None
            summary.seed_plan, summary.launch = plan.seed_plan, this_launch
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


def say_if_other_data(store: tracking.Store, sweep: str, launch: Launch) -> None:
    """One line when this launch trains on other data than the sweep's last launch did: its runs
    form a series of their own in reports (runs on different data are never pooled)."""
    try:
        previous = Launch.of(store.run_json(store.latest_sweep_parent(sweep).info.run_id, LAUNCH_FILE))
    except LookupError:
        return
    if previous.data and launch.data and set(previous.data) != set(launch.data):
        log.warning("sweep %s: this launch trains on other data (%s) than its last launch (%s): reports show its runs "
                    "as a series of their own", sweep, ", ".join(d[:8] for d in launch.data),
                    ", ".join(d[:8] for d in previous.data))


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


def summarize(store: tracking.Store, sweep_name: str, parent_run_id: str, planned: Dict[str, str],
              skipped: int = 0) -> SweepSummary:
    """The launch's counts. `planned`: job name -> fingerprint; a job with no run here that
    another launch of the sweep (running at the same time) finished counts as done there."""
    children = store.child_runs(parent_run_id)
    statuses = Counter(run.info.status for run in children)
    recorded = sum(statuses.values())
    finished, failed = statuses.pop("FINISHED", 0), statuses.pop("FAILED", 0)
    names = {run.info.run_name for run in children}
    absent = {fp for name, fp in planned.items() if name not in names}
    elsewhere = max(0, len(store.finished_runs(absent)) - skipped) if len(absent) > skipped else 0
    return SweepSummary(sweep_name, parent_run_id, store.uri, finished, failed, sum(statuses.values()), skipped,
                        not_started=max(0, len(planned) - skipped - elsewhere - recorded), elsewhere=elsewhere)
