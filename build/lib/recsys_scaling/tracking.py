"""MLflow tracking: one run per job, one parent run per sweep."""
from __future__ import annotations

import logging
import os
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from .config import resolve_tracking_uri

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "recsys_scaling.role"
MAX_PARAM_LENGTH = 6000


def absolute_store(uri: str) -> str:
    """A relative sqlite URI made absolute, so jobs in other directories share the store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def use_store(uri: Optional[str], experiment: str) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    resolved = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(experiment)
    except mlflow.exceptions.MlflowException:  # created concurrently by another job
        return mlflow.get_experiment_by_name(experiment).experiment_id


def current_uri() -> str:
    return mlflow.get_tracking_uri()


def flatten(tree: Mapping, prefix: str = "") -> Dict[str, str]:
    flat: Dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def run_name(backbone: str, arm: str, scale: int, seed: int) -> str:
    return f"{backbone}-{arm}-{scale}x-s{seed}"


class JobRun:
    """The active MLflow run of one job."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def log_epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=epoch)

    def log_metrics(self, metrics: Dict[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def set_tags(self, tags: Dict[str, str]) -> None:
        mlflow.set_tags(tags)

    def log_dict(self, payload: dict, name: str) -> None:
        mlflow.log_dict(payload, name)

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None) -> None:
        mlflow.log_artifact(str(path), artifact_path)


@contextmanager
def job_run(cfg: DictConfig, name: str, tags: Dict[str, str]) -> Iterator[JobRun]:
    """Start a job's run (a child when tracking.parent_run_id is set): config as params and
    as a YAML artifact. An exception marks the run FAILED with its message and traceback."""
    experiment_id = use_store(cfg.tracking.uri, cfg.tracking.experiment)
    all_tags = {ROLE_TAG: "job", **tags}
    if cfg.tracking.parent_run_id:
        all_tags[PARENT_TAG] = cfg.tracking.parent_run_id
    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=all_tags)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        mlflow.log_params(flatten(resolved))
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        yield JobRun(run.info.run_id)
    except BaseException as exc:
        mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.log_text(traceback.format_exc(), "traceback.txt")
        # An exception may say how its run ends (a pruned trial is KILLED, not FAILED).
        status = getattr(exc, "run_status", "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        mlflow.end_run(status=status)
        raise
    else:
        mlflow.end_run(status="FINISHED")


def finished_run(uri: Optional[str], experiment: str, fingerprint: str) -> Optional[str]:
    """The id of a FINISHED job run with this config fingerprint, if any."""
    experiment_id = use_store(uri, experiment)
    runs = MlflowClient().search_runs([experiment_id], max_results=1,
                                      filter_string=f"tags.fingerprint = '{fingerprint}' and "
                                                    "attributes.status = 'FINISHED'")
    return runs[0].info.run_id if runs else None


def mark_interrupted(fingerprint: str, keep: str) -> None:
    """Runs of this fingerprint left RUNNING by a killed process: mark them KILLED."""
    client = MlflowClient()
    active = mlflow.active_run()
    experiment_id = active.info.experiment_id if active else None
    for run in client.search_runs([experiment_id], filter_string=f"tags.fingerprint = '{fingerprint}' and "
                                                                 "attributes.status = 'RUNNING'"):
        if run.info.run_id != keep:
            client.set_tag(run.info.run_id, "error", "interrupted; continued from its checkpoint in run " + keep)
            client.set_terminated(run.info.run_id, "KILLED")


def create_sweep_parent(uri: Optional[str], experiment: str, sweep: str, spec_file: Optional[Path],
                        job_names: Sequence[str] = (), reused: Optional[Dict[str, str]] = None) -> str:
    """The sweep's parent run, with the sweep file, the planned job names and the runs reused
    from earlier launches (job -> run id) as artifacts."""
    experiment_id = use_store(uri, experiment)
    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=f"sweep-{sweep}",
                            tags={"sweep": sweep, ROLE_TAG: "sweep"})
    if spec_file is not None:
        client.log_artifact(run.info.run_id, str(spec_file))
    client.log_dict(run.info.run_id, list(job_names), "jobs.json")
    client.log_dict(run.info.run_id, dict(reused or {}), "reused.json")
    client.log_metric(run.info.run_id, "jobs_planned", len(job_names))
    return run.info.run_id


def finish_sweep_parent(run_id: str, ok: bool, summary: Dict[str, int]) -> None:
    client = MlflowClient()
    for key, value in summary.items():
        client.log_metric(run_id, f"jobs_{key}", value)
    client.set_terminated(run_id, "FINISHED" if ok else "FAILED")


def child_runs(parent_run_id: str, filter_string: str = "") -> List[Run]:
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" + (f" and {filter_string}" if filter_string else "")
    return client.search_runs([parent.info.experiment_id], filter_string=query, max_results=50_000)


def run_json(run_id: str, name: str):
    """A JSON artifact of a run (a sweep's jobs.json, a job's collapse.json); None if absent."""
    import json

    try:
        with open(MlflowClient().download_artifacts(run_id, name)) as fh:
            return json.load(fh)
    except Exception:  # noqa: BLE001 - older runs, or diagnostics switched off
        return None


def sweep_name(run_id: str) -> str:
    """The sweep a parent run belongs to (its `sweep` tag, else its name)."""
    run = MlflowClient().get_run(run_id)
    return run.data.tags.get("sweep") or run.info.run_name or run_id


def runs_by_id(run_ids: Sequence[str]) -> List[Run]:
    client = MlflowClient()
    return [client.get_run(run_id) for run_id in run_ids]


def latest_sweep_parent(uri: Optional[str], experiment: str, sweep: str) -> Run:
    experiment_id = use_store(uri, experiment)
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.sweep = '{sweep}' and tags.`{ROLE_TAG}` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise LookupError(f"no sweep named {sweep!r} in experiment {experiment!r} "
                          f"of {mlflow.get_tracking_uri()}")
    return runs[0]


def log_artifacts_to(run_id: str, folder: Path, artifact_path: str) -> None:
    MlflowClient().log_artifacts(run_id, str(folder), artifact_path)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def start_server(backend_uri: str, host: str = "127.0.0.1", port: int = 5000,
                 artifacts: Path = Path("mlartifacts"), allow_remote: bool = False):
    """Start `mlflow server` on the project's store in its own process group; returns the Popen.
    Binds to loopback unless `allow_remote`."""
    import subprocess
    import sys

    if host not in LOOPBACK and not allow_remote:
        raise ValueError(f"--host {host}: not a loopback address; pass --allow-remote to expose the server")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri, "--host", host,
               "--port", str(port), "--artifacts-destination", str(Path(artifacts).resolve()), "--workers", "1"]
    return subprocess.Popen(command, start_new_session=True)


def wait_for_server(url: str, timeout: float = 60.0, process=None) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"no MLflow server answered at {url} within {timeout:.0f} s")


def stop_server(process, timeout: float = 15.0) -> None:
    import signal
    import subprocess

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
