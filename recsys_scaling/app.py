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

log = logging.getLogger(__name__)
CONF_DIR = project_root() / "conf"
SWEEPS_DIR = project_root() / "sweeps"

register_configs()


def _task(cfg: DictConfig) -> Optional[dict]:
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return run_job(cfg)
    # In a sweep one failing job must not stop the others: its run is already marked
    # FAILED with the message and traceback; the sweep summary reports it.
    try:
        return run_job(cfg)
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
