"""What reaches the console: warnings, errors and a sweep's progress lines; INFO stays in the log
files (a job's under multirun/) unless -v asks for everything."""
from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # also conf/config.yaml's, for the jobs
CONSOLE_INFO = ("recsys_scaling.sweep.progress",)  # INFO lines that are progress, shown anyway
# A quiet sweep: Hydra's logging configs (conf/hydra/*/quiet.yaml) and no per-batch bars in the jobs.
QUIET_SWEEP = ["hydra/job_logging=quiet", "hydra/hydra_logging=quiet", "train.progress=false"]


def quiet_overrides(overrides) -> list:
    """QUIET_SWEEP less any key the launch already overrides (Hydra refuses a key given twice)."""
    given = {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}
    return [o for o in QUIET_SWEEP if o.split("=", 1)[0] not in given]


class ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(CONSOLE_INFO)


class ConsoleFormatter(logging.Formatter):
    """A progress line as itself; anything else as `warning: message` (the log files keep LOG_FORMAT)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        if record.name.startswith(CONSOLE_INFO) and record.levelno < logging.WARNING:
            return record.message
        return f"{record.levelname.lower()}: {record.message}"


def setup_console(verbose: bool) -> None:
    """Logging to stderr: everything from INFO with `verbose`, else what ConsoleFilter passes."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if not verbose:
        handler.setFormatter(ConsoleFormatter())
        handler.addFilter(ConsoleFilter())
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's own handler: read when it is imported
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
