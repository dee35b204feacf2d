"""What reaches the console: warnings, errors and a sweep's progress lines; INFO stays in the log
files (a job's under multirun/) unless -v asks for everything."""
from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # also conf/config.yaml's, for the jobs
CONSOLE_INFO = ("recsys_scaling.sweep.progress",)  # INFO lines that are progress, shown anyway
QUIET_HYDRA = ["hydra/job_logging=quiet", "hydra/hydra_logging=quiet"]  # conf/hydra/*/quiet.yaml


class ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(CONSOLE_INFO)


def setup_console(verbose: bool) -> None:
    """Logging to stderr: everything from INFO with `verbose`, else what ConsoleFilter passes."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if not verbose:
        handler.addFilter(ConsoleFilter())
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's own handler: read when it is imported
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
