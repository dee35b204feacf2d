"""A Hydra launcher that runs each job of a multirun as a Ray task.

Every job reserves `cpus_per_job` CPUs (and `gpus_per_job` GPUs) of the cluster, so Ray packs as
many jobs per node as its resources allow. Jobs are independent: one that fails is reported by
the job itself (its MLflow run is FAILED) and the others go on.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.recsys_scaling_ray_launcher.ray_launcher.RayLauncher"
    # "auto" or "host:port" of an existing cluster (`ray start --head`); null follows Ray's own
    # rule: $RAY_ADDRESS, else a cluster started on this machine, else a new one-machine instance.
    address: Optional[str] = None
    cpus_per_job: int = 1  # also the job's torch threads when train.threads=0
    gpus_per_job: float = 0.0
    memory_gb: Optional[float] = None  # reserved per job; null = no reservation
    # Reruns after a worker or node dies; a rerun continues from the job's last checkpoint
    # when train.checkpoint_dir is on storage the nodes share.
    max_retries: int = 0
    runtime_env: Dict[str, Any] = field(default_factory=dict)  # e.g. {working_dir: ., env_vars: {...}}
    init_kwargs: Dict[str, Any] = field(default_factory=dict)  # any other ray.init() argument


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf,
                             provider="recsys_scaling")


def execute_job(index: int, overrides: Sequence[str], hydra_context: HydraContext, config: DictConfig,
                task_function: TaskFunction, singleton_state: Dict[Any, Any], driver_cwd: str) -> JobReturn:
    """Runs in the Ray worker: rebuild Hydra's global state, compose the job's config, run it."""
    # Relative paths (data cache, checkpoints) mean what they mean for the other launchers
    # wherever the launching directory exists: this machine, or storage the nodes share.
    if os.path.isdir(driver_cwd):
        os.chdir(driver_cwd)
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{index}"
        sweep_config.hydra.job.num = index
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


class RayLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings = RayLauncherConf(**{k: v for k, v in settings.items() if k != "_target_"})
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            import ray
        except ImportError as exc:
            raise ImportError("hydra/launcher=ray needs Ray: pip install 'recsys-scaling[ray]'") from exc
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            return self._run(ray, job_overrides, initial_job_idx)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray) -> None:
        s = self.settings
        init_kwargs = OmegaConf.to_container(OmegaConf.create(s.init_kwargs)) if s.init_kwargs else {}
        runtime_env = OmegaConf.to_container(OmegaConf.create(s.runtime_env)) if s.runtime_env else None
        try:
            ray.init(address=s.address, runtime_env=runtime_env, log_to_driver=True, **init_kwargs)
        except ConnectionError as exc:
            raise ConnectionError(f"hydra.launcher.address={s.address}: no Ray cluster there ({exc}); "
                                  "start one with `ray start --head` or leave the address null") from exc
        log.info("Ray cluster: %s", ray.cluster_resources())

    def _run(self, ray, job_overrides: Sequence[Sequence[str]], first_index: int) -> List[JobReturn]:
        s = self.settings
        options = {"num_cpus": s.cpus_per_job, "num_gpus": s.gpus_per_job, "max_retries": s.max_retries}
        if s.memory_gb:
            options["memory"] = int(s.memory_gb * 2**30)
        remote_job = ray.remote(execute_job).options(**options)
        state = Singleton.get_state()
        pending = {}
        for offset, overrides in enumerate(job_overrides):
            index = first_index + offset
            log.info("\t#%d : %s", index, " ".join(filter_overrides(overrides)))
            ref = remote_job.remote(index, list(overrides), self.hydra_context, self.config,
                                    self.task_function, state, os.getcwd())
            pending[ref] = offset
        results: List[Optional[JobReturn]] = [None] * len(job_overrides)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            offset = pending.pop(done[0])
            results[offset] = self._result(ray, done[0], first_index + offset, job_overrides[offset])
            log.info("Ray: job #%d returned (%d of %d)", first_index + offset,
                     len(job_overrides) - len(pending), len(job_overrides))
        return results  # type: ignore[return-value]

    @staticmethod
    def _result(ray, ref, index: int, overrides: Sequence[str]) -> JobReturn:
        """A job whose worker or node died (after max_retries) is logged and returned as an empty
        result, like a job that raised: the sweep summary counts its run as not finished and the
        sweep exits non-zero, while the other jobs' results are kept."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            log.error("job #%d (%s) was lost by Ray: %s", index, " ".join(filter_overrides(overrides)), exc)
            return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
