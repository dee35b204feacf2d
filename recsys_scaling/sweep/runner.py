"""`recsys-scaling sweep <name>`: a parent MLflow run, a Hydra multirun of child jobs, a summary."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from .. import tracking
from ..app import SWEEPS_DIR, launch
from . import grid

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    sweep: str
    parent_run_id: str
    finished: int
    failed: int
    other: int

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.other == 0 and self.finished > 0

    def line(self) -> str:
        total = self.finished + self.failed + self.other
        extra = f", {self.other} not finished" if self.other else ""
        return (f"sweep {self.sweep}: {total} jobs: {self.finished} finished, {self.failed} failed{extra} "
                f"(parent run {self.parent_run_id})")


def resolve_sweep_file(name: str) -> Path:
    """A sweep is a name in ./sweeps or the project's sweeps/, or a path to a YAML file."""
    candidates = [Path(name)] if name.endswith((".yaml", ".yml")) else [
        Path.cwd() / "sweeps" / f"{name}.yaml", SWEEPS_DIR / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    known = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"sweep {name!r}: no file {candidates[0]}; known sweeps: {', '.join(known)}")


def compose_sweep(spec: Path, overrides: Sequence[str] = ()):
    """The sweep's base config with Hydra's (sweeper parameters unexpanded)."""
    return grid.Composer(spec)(overrides, hydra_config=True)


def run_sweep(name: str, overrides: Sequence[str] = ()) -> SweepSummary:
    """Expand and check every job, then open the parent run and launch the multirun."""
    spec = resolve_sweep_file(name)
    sweep_name = spec.stem
    jobs = grid.expand(spec, overrides)
    grid.validate(jobs)
    log.info("sweep %s: %d jobs checked", sweep_name, len(jobs))
    first = jobs[0].cfg
    parent = tracking.create_sweep_parent(first.tracking.uri, first.tracking.experiment, sweep_name, spec,
                                          [job.name for job in jobs])
    args: List[str] = ["--multirun", "--config-dir", str(spec.parent), "--config-name", spec.stem,
                       f"sweep.name={sweep_name}", f"tracking.parent_run_id={parent}", *overrides]
    try:
        launch(args)
    finally:
        summary = summarize(sweep_name, parent)
        tracking.finish_sweep_parent(parent, summary.ok, {"finished": summary.finished,
                                                           "failed": summary.failed})
    return summary


def summarize(sweep_name: str, parent_run_id: str) -> SweepSummary:
    statuses = Counter(run.info.status for run in tracking.child_runs(parent_run_id))
    finished, failed = statuses.pop("FINISHED", 0), statuses.pop("FAILED", 0)
    return SweepSummary(sweep_name, parent_run_id, finished, failed, sum(statuses.values()))
