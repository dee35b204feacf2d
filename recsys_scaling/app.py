"""The Hydra application behind `recsys-scaling train` and `recsys-scaling sweep`."""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator, List, Optional

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from . import tracking
from .job import JobBusy, run_job
from .paths import CONF_DIR
from .runtime import default_threads, install_interrupt_handler, stop_if_interrupted

log = logging.getLogger(__name__)


def set_execution(cfg: DictConfig, hydra_cfg) -> None:
    """Threads per job so that parallel jobs x threads fit the cores."""
    if cfg.train.threads == 0:
        cfg.train.threads = default_threads(hydra_cfg.launcher)


@contextlib.contextmanager
def job_device(cfg: DictConfig, hydra_cfg) -> Iterator[None]:
    """Resolve train.device=auto for the job's lifetime: a GPU slot (train.jobs_per_gpu per GPU)
    when CUDA is present, the GPU a cluster launcher assigned (Ray: its only visible one), else
    the CPU."""
    if cfg.train.device != "auto":
        yield
        return
    from .device import gpu_slot, visible_gpus

    gpus = visible_gpus()
    if not gpus:
        cfg.train.device = "cpu"
        yield
    elif hydra_cfg.launcher.get("gpus_per_job"):  # the launcher packed jobs onto GPUs itself
        cfg.train.device = "cuda:0"
        yield
    else:
        with gpu_slot(gpus, cfg.train.jobs_per_gpu) as gpu:
            cfg.train.device = f"cuda:{gpu}"
            log.info("job on cuda:%d (one of its %d slots)", gpu, cfg.train.jobs_per_gpu)
            yield


class JobInputError(SystemExit):
    """An error a single job met that is the user's to fix, not a bug: bad input (bad rows under
    data.strict, a budget not met on the real vocabulary, the job already running elsewhere), a
    store that stopped answering, a full or read-only disk. A SystemExit, so that it passes
    Hydra's traceback printer; `recsys-scaling train` re-raises `error` and prints one line."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


INPUT_ERRORS = (ValueError, LookupError, FileNotFoundError, JobBusy)


def _users_to_fix(exc: Exception) -> Optional[Exception]:
    """The error as the one-line kind main() reports, or None for a bug (left to Hydra)."""
    if isinstance(exc, JobBusy):
        return ValueError(str(exc))
    if isinstance(exc, INPUT_ERRORS):
        return exc
    if tracking.is_unreachable(exc) or isinstance(exc, ConnectionError):
        return tracking.StoreUnreachable(f"the tracking store stopped answering: {str(exc).splitlines()[0][:200]}")
    if isinstance(exc, OSError):
        return exc
    return None


def _task(cfg: DictConfig) -> Optional[dict]:
    # In a launcher's worker process too, SIGTERM ends the job as Ctrl-C does (its run KILLED, its
    # checkpoint kept), and a worker told to stop starts no further job.
    install_interrupt_handler()
    stop_if_interrupted()
    hydra_cfg = HydraConfig.get()
    set_execution(cfg, hydra_cfg)
    with job_device(cfg, hydra_cfg):
        return _run(cfg, hydra_cfg)


def _run(cfg: DictConfig, hydra_cfg) -> Optional[dict]:
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            return run_job(cfg)
        except Exception as exc:  # noqa: BLE001 - sorted into the user's errors and bugs
            error = _users_to_fix(exc)
            if error is None:
                raise
            raise JobInputError(error) from None
    # In a sweep one failing job must not stop the others: its run is already marked
    # FAILED with the message and traceback; the sweep summary reports it.
    try:
        return run_job(cfg, resume=cfg.sweep.resume)
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        log.error("job %s failed: %s: %s", HydraConfig.get().job.num, type(exc).__name__, exc)
        return None


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_task)


def launch(args: List[str]) -> None:
    """Run the Hydra app with command-line style arguments (overrides and Hydra flags)."""
    saved = sys.argv
    GlobalHydra.instance().clear()
    sys.argv = ["recsys-scaling", *args]
    try:
        _hydra_main()
    finally:
        sys.argv = saved
