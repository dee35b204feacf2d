"""A sweep launch as the commands that repeat or extend it: the overrides it was launched with,
its store and experiment, kept on its parent run (launch.json) so that every command a report
or a sweep prints runs on the same data and store as printed (quoted for the shell)."""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

from ..tracking import DEFAULT_EXPERIMENT, absolute_store, with_driver

LAUNCH_FILE = "launch.json"
# Overrides a printed command sets itself, or that only the runner adds.
OWN_KEYS = ("seed", "sweep.", "tracking.parent_run_id", "tracking.uri", "tracking.experiment")


@dataclass
class Launch:
    overrides: List[str] = field(default_factory=list)  # as given on the command line
    store: str = ""
    experiment: str = DEFAULT_EXPERIMENT
    data: List[str] = field(default_factory=list)  # the data fingerprints its jobs train on
    sweeps_dirs: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, payload: Optional[dict]) -> "Launch":
        known = {k: v for k, v in (payload or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def kept_overrides(self) -> List[str]:
        return [o for o in self.overrides if not o.lstrip("+~").startswith(OWN_KEYS)]

    def store_flags(self, option: bool = True) -> List[str]:
        """`--tracking-uri URI --experiment E` (report) or `tracking.uri=URI ...` (sweep), when not the defaults."""
        parts = []
        if self.store and self.store != with_driver(absolute_store("sqlite:///mlflow.db")):
            parts.append(f"--tracking-uri {shlex.quote(self.store)}" if option else
                         shlex.quote(f"tracking.uri={self.store}"))
        if self.experiment and self.experiment != DEFAULT_EXPERIMENT:
            parts.append(f"--experiment {shlex.quote(self.experiment)}" if option else
                         shlex.quote(f"tracking.experiment={self.experiment}"))
        return parts

    def sweep_command(self, sweep: str, extra: Sequence[str] = (), flags: Sequence[str] = ()) -> str:
        """`recsys-scaling sweep NAME` with this launch's overrides and store, then `extra`."""
        dirs = [f"--sweeps-dir {shlex.quote(d)}" for d in self.sweeps_dirs]
        words = ["recsys-scaling sweep", shlex.quote(sweep), *dirs, *flags,
                 *(shlex.quote(o) for o in self.kept_overrides()), *self.store_flags(option=False), *extra]
        return " ".join(words)

    def report_command(self, sweep: str) -> str:
        return " ".join(["recsys-scaling report", shlex.quote(sweep), *self.store_flags()])

    def ui_command(self) -> str:
        """`recsys-scaling ui` on this launch's store and experiment."""
        flags = [f.replace("--tracking-uri", "--backend-store-uri") for f in self.store_flags()]
        return " ".join(["recsys-scaling ui", *flags])
