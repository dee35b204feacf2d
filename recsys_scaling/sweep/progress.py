"""Following a running sweep: job k/N, its name and time, elapsed and ETA; a closing table.

Progress is read from the store (the child runs of the sweep's parent), so it works the same for
every launcher that keeps the command in the foreground: basic, joblib, submitit, Ray. On a
terminal an overall bar sits under the log; otherwise each finished job is one log line.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .. import tracking

log = logging.getLogger(__name__)
DONE = ("FINISHED", "FAILED", "KILLED")


def clock(seconds: float) -> str:
    """1:02:03, 4:05 or 0:07."""
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class JobDone:
    name: str
    status: str
    seconds: float


@dataclass
class SweepProgress:
    """Polls the parent's child runs in a background thread and reports each job that ends."""

    store: tracking.Store
    parent_run_id: str
    sweep: str
    total: int  # jobs this launch runs (reused ones excluded)
    interval: float = 2.0
    done: Dict[str, JobDone] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._bar = None

    def __enter__(self) -> "SweepProgress":
        if self.total <= 0:
            return self
        log.info("sweep %s: %d jobs to run", self.sweep, self.total)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=f"sweep {self.sweep}", unit="job", leave=False)
        self._thread = threading.Thread(target=self._follow, name="sweep-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            try:
                self.poll()  # jobs that ended after the last poll
            except Exception as exc:  # noqa: BLE001 - the summary that follows says what the store holds
                log.debug("progress poll failed: %s", exc)
        if self._bar is not None:
            self._bar.close()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - progress must never stop a sweep
                log.debug("progress poll failed: %s", exc)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self) -> Optional[float]:
        """Remaining jobs at the rate jobs have ended so far (parallel launchers included)."""
        if not self.done:
            return None
        return self.elapsed / len(self.done) * max(0, self.total - len(self.done))

    def poll(self) -> List[JobDone]:
        ended = []
        for run in self.store.child_runs(self.parent_run_id):
            if run.info.status in DONE and run.info.run_id not in self.done:
                seconds = ((run.info.end_time or 0) - (run.info.start_time or 0)) / 1000
                job = JobDone(run.info.run_name or run.info.run_id, run.info.status, seconds)
                self.done[run.info.run_id] = job
                ended.append(job)
                self._report(job)
        return ended

    def _report(self, job: JobDone) -> None:
        eta = self.eta()
        word = {"FINISHED": "finished", "FAILED": "FAILED", "KILLED": "killed"}[job.status]
        line = (f"job {len(self.done)}/{self.total} {word}: {job.name} in {clock(job.seconds)} · "
                f"elapsed {clock(self.elapsed)} · ETA {clock(eta) if eta is not None else '?'}")
        if self._bar is not None:
            self._bar.update(1)
            self._bar.write(line)
        else:
            log.info("sweep %s: %s", self.sweep, line)

    def slowest(self) -> Optional[Tuple[str, float]]:
        finished = [j for j in self.done.values() if j.status == "FINISHED"]
        top = max(finished, key=lambda j: j.seconds, default=None)
        return (top.name, top.seconds) if top else None
