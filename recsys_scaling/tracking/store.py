"""The tracking store: a Store (a tracking store and an experiment in it, with its own client),
one run per job, one parent run per sweep, the UI's addresses."""
from __future__ import annotations

import json
import logging
import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Collection, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from ..config import resolve_tracking_uri
from ..runtime import holder_is_gone, lease_holder
from .opening import (artifact_location, check_not_foreign, creation_lock, probe_server, sqlite_path,
                      unusable_store_error, with_driver)
from .views import (EXPERIMENT_NOTE, NOTE_TAG, ROLE_TAG, SCALING_VIEW, VIEW_TAG, VIEW_VALUE, view_state,
                    experiment_url, run_url, ui_base_url)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow prints "View run ... at <url>" for every run it ends on a server; the tool prints its
# own addresses (with the scaling view), once.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
FEW_FINGERPRINTS = 200  # above this, finding finished runs reads the experiment's finished runs at once
DEFAULT_EXPERIMENT = "recsys-scaling"
SETTINGS_PREFIX = "recsys_scaling.report."
SETTINGS = {"margin": float, "ia_margin": float, "margin_note": str, "max_seeds": int}
LOOK_PREFIX = "recsys_scaling.look."
def absolute_store(uri: str) -> str:
    """A relative sqlite URI made absolute, so jobs in other directories share the store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def flatten(tree: Mapping, prefix: str = "") -> Dict[str, str]:
    flat: Dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def is_unreachable(exc: BaseException) -> bool:
    """Whether an error means the store did not answer (after the client's own retries), as
    opposed to the store refusing a request."""
    import requests
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, OperationalError)):
        return True
    text = str(exc)
    return isinstance(exc, MlflowException) and "API request to" in text and (
        "Max retries exceeded" in text or "Connection" in text or "timed out" in text)


class StopRun(Exception):
    """Raised inside a job to end its run with `status` rather than FAILED (a pruned trial)."""

    status = "KILLED"


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class JobRun:
    """One job's MLflow run, written through its store's client (no global MLflow state)."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id

    def log_epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, epoch) for k, v in metrics.items()]
        for chunk in _chunks(entries, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_metrics(self, metrics: Dict[str, float]) -> None:
        self.log_epoch(0, metrics)

    def log_params(self, params: Dict[str, str]) -> None:
        for chunk in _chunks([Param(k, v) for k, v in params.items()], MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)

    def set_tags(self, tags: Dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, payload: dict, name: str) -> None:
        self.client.log_dict(self.run_id, payload, name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)


def _source_tags(source: str) -> Dict[str, str]:
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"mlflow.source.name": source, "mlflow.source.type": "LOCAL", "mlflow.user": user}


class Store:
    """One MLflow tracking store (a sqlite file, a database URL or a tracking server) and one
    experiment in it. Everything the tool records or reads goes through here."""

    def __init__(self, uri: Optional[str] = None, experiment: str = DEFAULT_EXPERIMENT, probe: bool = True):
        """`probe`: a tracking server must answer now, within seconds (one that never answered is
        one line, not minutes of retries); jobs of a running sweep skip it, so that a server
        restarting mid-sweep is ridden out by the client's retries."""
        self.uri = with_driver(absolute_store(resolve_tracking_uri(uri)))
        self.experiment = experiment
        if probe:
            probe_server(self.uri)
        check_not_foreign(self.uri)
        new_file = sqlite_path(self.uri) is not None and not sqlite_path(self.uri).exists()
        try:
            with creation_lock(self.uri):
                self.client = MlflowClient(tracking_uri=self.uri)
                if not self.uri.startswith(("http://", "https://")):
                    self.client.search_experiments(max_results=1)  # creates or upgrades the schema now
        except Exception as exc:  # noqa: BLE001 - re-raised as one line when it is the file's fault
            if new_file:  # a store half-created (a full disk) is not left behind
                sqlite_path(self.uri).unlink(missing_ok=True)
            raise unusable_store_error(self.uri, exc) from exc
        self._experiment_id: Optional[str] = None

    @classmethod
    def of(cls, cfg: DictConfig) -> "Store":
        return cls(cfg.tracking.uri, cfg.tracking.experiment, probe=not cfg.tracking.parent_run_id)

    @property
    def experiment_id(self) -> str:
        """The experiment's id; the experiment is created on first use."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment, artifact_location(self.uri, self.experiment),
                        tags={NOTE_TAG: EXPERIMENT_NOTE, VIEW_TAG: VIEW_VALUE})
                    return self._experiment_id
                except MlflowException:  # created concurrently by another job
                    found = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = found.experiment_id
            # Experiments made by older versions: add the description, bring the view up to date.
            if NOTE_TAG not in found.tags:
                self.client.set_experiment_tag(self._experiment_id, NOTE_TAG, EXPERIMENT_NOTE)
            if view_state(found.tags.get(VIEW_TAG)) != SCALING_VIEW:
                self.client.set_experiment_tag(self._experiment_id, VIEW_TAG, VIEW_VALUE)
        return self._experiment_id

    @property
    def ui_url(self) -> str:
        return ui_base_url(self.uri)

    def experiment_url(self) -> str:
        return experiment_url(self.ui_url, self.experiment_id)

    def run_url(self, run_id: str) -> str:
        return run_url(self.ui_url, self.experiment_id, run_id)

    # -- jobs -----------------------------------------------------------------------------------
    @contextmanager
    def job_run(self, cfg: DictConfig, name: str, tags: Dict[str, str]) -> Iterator[JobRun]:
        """Start a job's run (a child when tracking.parent_run_id is set): config as params and
        as a YAML artifact. An exception ends the run FAILED with its message and traceback; a
        StopRun (a pruned trial) or Ctrl-C ends it KILLED."""
        command = f"sweep {cfg.sweep.name}" if cfg.tracking.parent_run_id else "train"
        all_tags = {ROLE_TAG: "job", **_source_tags(f"recsys-scaling {command}"), **tags}
        if cfg.tracking.parent_run_id:
            all_tags[PARENT_TAG] = cfg.tracking.parent_run_id
        run = JobRun(self.client, self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id)
        try:
            run.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
            run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            yield run
        except BaseException as exc:
            self.client.set_tag(run.run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
            run.log_text(traceback.format_exc(), "traceback.txt")
            status = exc.status if isinstance(exc, StopRun) else (
                "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            self.client.set_terminated(run.run_id, status)
            raise
        else:
            self.client.set_terminated(run.run_id, "FINISHED")

    def finished_run(self, fingerprint: str) -> Optional[str]:
        """The id of a FINISHED job run with this config fingerprint, if any."""
        runs = self.client.search_runs([self.experiment_id], max_results=1,
                                       filter_string=f"tags.fingerprint = '{fingerprint}' and "
                                                     "attributes.status = 'FINISHED'")
        return runs[0].info.run_id if runs else None

    def finished_runs(self, fingerprints: Collection[str]) -> Dict[str, str]:
        """fingerprint -> the id of a FINISHED job run with it, for those that have one: a query
        per fingerprint for a few, else one paged search of the experiment's finished runs."""
        wanted = set(fingerprints)
        if len(wanted) <= FEW_FINGERPRINTS:
            found = {fp: self.finished_run(fp) for fp in wanted}
            return {fp: run_id for fp, run_id in found.items() if run_id}
        found, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment_id], "attributes.status = 'FINISHED' and tags.fingerprint "
                                           "IS NOT NULL", max_results=50_000, page_token=token)
            for run in page:  # newest first, as finished_run answers
                fp = run.data.tags["fingerprint"]
                if fp in wanted and fp not in found:
                    found[fp] = run.info.run_id
            token = page.token
            if not token:
                return found

    def close_stale_runs(self, fingerprint: str, keep: str, why: Callable[[Run], Optional[str]]) -> int:
        """Runs of this fingerprint left RUNNING by a process that is gone (killed, or it lost the
        store and could not close its run): each one `why` gives a reason for ends KILLED with it
        as its error. Returns how many were closed."""
        closed = 0
        for run in self.client.search_runs([self.experiment_id], filter_string=f"tags.fingerprint = "
                                           f"'{fingerprint}' and attributes.status = 'RUNNING'"):
            reason = why(run) if run.info.run_id != keep else None
            if reason:
                self.client.set_tag(run.info.run_id, "error", f"{reason}; continued as run {keep}")
                self.client.set_terminated(run.info.run_id, "KILLED")
                closed += 1
        return closed

    # -- sweeps ---------------------------------------------------------------------------------
    def create_sweep_parent(self, sweep: str, spec_file: Optional[Path], job_names: Collection[str] = (),
                            reused: Optional[Dict[str, str]] = None, overrides: Optional[Dict[str, str]] = None) -> str:
        """The sweep's parent run: its grid and command-line overrides as params, a description,
        its source; the sweep file, the planned jobs (names, or name -> fingerprint) and the runs
        reused from earlier launches (job -> run id) as artifacts."""
        source = f"recsys-scaling sweep {spec_file if spec_file is not None else sweep}"
        note = (f"Sweep `{sweep}`: {len(job_names)} jobs ({len(reused or {})} reused from earlier launches).\n\n"
                f"Verdicts appear here after `recsys-scaling report {sweep}`.")
        run = self.client.create_run(self.experiment_id, run_name=f"sweep-{sweep}",
                                     tags={"sweep": sweep, ROLE_TAG: "sweep", NOTE_TAG: note, "lease": lease_holder(),
                                           **_source_tags(source)})
        run_id = run.info.run_id
        if overrides:
            JobRun(self.client, run_id).log_params({k: str(v)[:MAX_PARAM_LENGTH] for k, v in overrides.items()})
        if spec_file is not None:
            self.client.log_artifact(run_id, str(spec_file))
        self.client.log_dict(run_id, dict(job_names) if isinstance(job_names, Mapping) else list(job_names),
                             "jobs.json")
        self.client.log_dict(run_id, dict(reused or {}), "reused.json")
        self.client.log_metric(run_id, "jobs_planned", len(job_names))
        return run_id

    def record_sweep_settings(self, run_id: str, settings: Mapping[str, object]) -> None:
        """How the report should read this sweep (its margins, an adaptive seed plan), as tags."""
        self.client.log_batch(run_id, tags=[RunTag(SETTINGS_PREFIX + k, str(v)) for k, v in settings.items()
                                            if v is not None and v != ""])

    def sweep_settings(self, run_id: str) -> dict:
        """What record_sweep_settings wrote on a sweep's parent run ({} for older sweeps)."""
        tags = self.client.get_run(run_id).data.tags
        found = {}
        for key, cast in SETTINGS.items():
            value = tags.get(SETTINGS_PREFIX + key)
            if value:
                try:
                    found[key] = cast(value)
                except ValueError:
                    log.warning("sweep run %s: tag %s%s=%r is not a %s; ignored", run_id, SETTINGS_PREFIX, key,
                                value, cast.__name__)
        return found

    def adaptive_plan(self, sweep: str) -> Optional[int]:
        """The seed count the first adaptive launch of this sweep planned its sequential intervals
        for (None: never adaptive). The 5% is split over that plan's looks once; every later
        launch and report of the sweep keeps to it, so that no look spends it twice."""
        runs = self.client.search_runs([self.experiment_id], filter_string=_parents_of(sweep),
                                       order_by=["attributes.start_time ASC"])
        for run in runs:
            value = run.data.tags.get(SETTINGS_PREFIX + "max_seeds", "")
            if value.isdigit():
                return int(value)
        return None

    def record_look(self, run_id: str, signature: str, kind: str) -> None:
        """A look at a sweep's claims: the data read (a signature of its runs) and how ("fixed",
        or "sequential@N" for look N of an adaptive plan), as a tag on the sweep's parent run."""
        self.client.set_tag(run_id, f"{LOOK_PREFIX}{signature}", kind)

    def looks_seen(self, sweep: str) -> dict:
        """Every look recorded on any parent of this sweep: {signature: kind}."""
        looks = {}
        for run in self.client.search_runs([self.experiment_id], filter_string=_parents_of(sweep)):
            looks.update({k[len(LOOK_PREFIX):]: v for k, v in run.data.tags.items() if k.startswith(LOOK_PREFIX)})
        return looks

    def record_estimate(self, run_id: str, estimate: dict) -> None:
        """The launch's estimate before it ran: wall time as a metric, per job as estimate.json."""
        if estimate.get("wall_seconds") is not None:
            self.client.log_metric(run_id, "estimated_seconds", float(estimate["wall_seconds"]))
        self.client.log_dict(run_id, estimate, "estimate.json")

    def sweep_times(self, run_id: str) -> dict:
        """A sweep parent's estimated and actual wall time (seconds; None where unknown)."""
        run = self.client.get_run(run_id)
        actual = ((run.info.end_time - run.info.start_time) / 1000.0
                  if run.info.end_time and run.info.status != "RUNNING" else None)
        return {"estimated_seconds": run.data.metrics.get("estimated_seconds"), "actual_seconds": actual}

    def close_stale_sweep_parents(self, sweep: str) -> int:
        """Parents of this sweep left RUNNING by a launching process that has ended (SIGKILL, a
        crash, a lost machine on this host): closed KILLED with a note. Returns how many."""
        closed = 0
        for run in self.client.search_runs([self.experiment_id],
                                           filter_string=f"{_parents_of(sweep)} and attributes.status = 'RUNNING'"):
            holder = run.data.tags.get("lease")
            if holder_is_gone(holder):
                self.client.set_tag(run.info.run_id, "error", f"interrupted: its process ({holder}) ended without "
                                    "closing the sweep; closed by the next launch of the sweep")
                self.client.set_terminated(run.info.run_id, "KILLED")
                closed += 1
        return closed

    def close_running_children(self, parent_run_id: str, reason: str) -> int:
        """A stopped sweep's job runs still RUNNING (their process was killed before it could
        close them): KILLED, with `reason`. Returns how many."""
        closed = 0
        for run in self.child_runs(parent_run_id, "attributes.status = 'RUNNING'"):
            self.client.set_tag(run.info.run_id, "error", reason)
            self.client.set_terminated(run.info.run_id, "KILLED")
            closed += 1
        return closed

    def describe_run(self, run_id: str, text: str) -> None:
        """Replace a run's description (markdown, shown on its page in the UI)."""
        self.client.set_tag(run_id, NOTE_TAG, text)

    def finish_sweep_parent(self, run_id: str, status: str, summary: Dict[str, int]) -> None:
        for key, value in summary.items():
            self.client.log_metric(run_id, f"jobs_{key}", value)
        self.client.set_terminated(run_id, status)

    def latest_sweep_parent(self, sweep: str) -> Run:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=_parents_of(sweep),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise LookupError(f"no sweep named {sweep!r} in experiment {self.experiment!r} of {self.uri}")
        return runs[0]

    def child_runs(self, parent_run_id: str, filter_string: str = "") -> List[Run]:
        parent = self.client.get_run(parent_run_id)
        query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" + (f" and {filter_string}" if filter_string else "")
        return self.client.search_runs([parent.info.experiment_id], filter_string=query, max_results=50_000)

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def sweep_name(self, run_id: str) -> str:
        """The sweep a parent run belongs to (its `sweep` tag, else its name)."""
        run = self.client.get_run(run_id)
        return run.data.tags.get("sweep") or run.info.run_name or run_id

    def live_runs(self, run_ids: Sequence[str]) -> Tuple[List[Run], List[str]]:
        """(the runs of these ids that still exist, the ids deleted in MLflow or gone after `mlflow gc`)."""
        found, gone = [], []
        for run_id in run_ids:
            try:
                run = self.client.get_run(run_id)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                gone.append(run_id)
                continue
            if run.info.lifecycle_stage == "deleted":
                gone.append(run_id)
            else:
                found.append(run)
        return found, gone

    # -- artifacts ------------------------------------------------------------------------------
    def run_json(self, run_id: str, name: str):
        """A JSON artifact of a run (a sweep's jobs.json, a job's collapse.json); None if absent."""
        try:
            with open(self.client.download_artifacts(run_id, name)) as fh:
                return json.load(fh)
        except Exception:  # noqa: BLE001 - older runs, or diagnostics switched off
            return None

    def log_artifacts_to(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)


def _parents_of(sweep: str) -> str:
    """The search filter for a sweep's parent runs (one per launch)."""
    return f"tags.sweep = '{sweep}' and tags.`{ROLE_TAG}` = 'sweep'"
