"""The Hydra application behind `recsys-scaling train` and `recsys-scaling sweep`."""
from __future__ import annotations

import logging
import sys
from typing import List, Optional

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import project_root, register_configs
from .job import run_job
from .runtime import cpu_count

log = logging.getLogger(__name__)
CONF_DIR = project_root() / "conf"
SWEEPS_DIR = project_root() / "sweeps"

register_configs()


def parallel_jobs(launcher) -> int:
    """How many jobs the launcher runs at once (joblib's n_jobs; -1 = one per core)."""
    n_jobs = launcher.get("n_jobs") if launcher is not None else None
    if not n_jobs:
        return 1
    return cpu_count() if n_jobs < 0 else int(n_jobs)


def reserved_cpus(launcher) -> int:
    """CPUs a cluster launcher reserves per job (Ray's cpus_per_job); 0 when it reserves none."""
    return int(launcher.get("cpus_per_job") or 0) if launcher is not None else 0


def default_threads(launcher) -> int:
    """Torch threads for a job with train.threads=0: the CPUs reserved for it, or the local cores
    shared among parallel jobs; 0 (torch's default) for a job that runs alone."""
    if reserved_cpus(launcher):
        return reserved_cpus(launcher)
    parallel = parallel_jobs(launcher)
    return max(1, cpu_count() // parallel) if parallel > 1 else 0


def set_execution(cfg: DictConfig, hydra_cfg) -> None:
    """Threads per job so that parallel jobs x threads fit the cores; the job's device."""
    if cfg.train.threads == 0:
        cfg.train.threads = default_threads(hydra_cfg.launcher)
    if cfg.train.device == "auto":
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        number = hydra_cfg.job.get("num") or 0
        cfg.train.device = f"cuda:{number % gpus}" if gpus else "cpu"


def _task(cfg: DictConfig) -> Optional[dict]:
    hydra_cfg = HydraConfig.get()
    set_execution(cfg, hydra_cfg)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return run_job(cfg)
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
