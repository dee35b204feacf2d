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

from .job import JobBusy, run_job
from .paths import CONF_DIR
from .runtime import default_threads

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
    """Bad input found while a single job ran (bad rows under data.strict, a budget not met on the
    real vocabulary, the job already running elsewhere). A SystemExit, so that it passes Hydra's
    traceback printer; `recsys-scaling train` prints its message as one line."""


INPUT_ERRORS = (ValueError, LookupError, FileNotFoundError, JobBusy)


def _task(cfg: DictConfig) -> Optional[dict]:
    hydra_cfg = HydraConfig.get()
    set_execution(cfg, hydra_cfg)
    with job_device(cfg, hydra_cfg):
        return _run(cfg, hydra_cfg)


def _run(cfg: DictConfig, hydra_cfg) -> Optional[dict]:
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            return run_job(cfg)
        except INPUT_ERRORS as exc:
            raise JobInputError(str(exc)) from None
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
