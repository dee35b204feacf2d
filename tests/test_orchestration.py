"""Sweep orchestration with real processes: resume, checkpoints, parallel launchers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from recsys_scaling import tracking
from recsys_scaling.cli import main
from recsys_scaling.sweep import SweepConfigError, run_sweep

from conftest import sweep_counts

TINY = ["data=synthetic_small", "train.max_epochs=1", "train.progress=false"]


def children(store_uri, sweep="smoke"):
    parent = tracking.Store(store_uri).latest_sweep_parent(sweep)
    return parent, tracking.Store(store_uri).child_runs(parent.info.run_id)


@pytest.mark.integration
def test_relaunch_skips_finished_jobs_and_reruns_failed_ones(store_uri, workdir, capsys):
    args = ["sweep", "smoke", f"tracking.uri={store_uri}", *TINY, "arm=se", "train.lr=0.001,1e30"]
    assert main(args) == 1  # the second job fails
    assert sweep_counts(capsys.readouterr().out) == {"finished": 1, "skipped": 0, "failed": 1}
    assert main(args) == 1  # the finished one is skipped, the failed one runs (and fails) again
    assert sweep_counts(capsys.readouterr().out) == {"finished": 0, "skipped": 1, "failed": 1}
    parent, runs = children(store_uri)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--resamples", "20"]) == 0
    runs_csv = (workdir / "reports" / "smoke" / "runs.csv").read_text()
    assert runs_csv.count("FINISHED") == 1 and runs_csv.count("FAILED") == 1  # the reused run is reported
    assert main([*args, "--force"]) == 1
    assert sweep_counts(capsys.readouterr().out)["finished"] == 1


@pytest.mark.integration
def test_parallel_joblib_jobs_into_one_sqlite_store(store_uri, workdir, capsys):
    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", *TINY, "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=4", "seed=0,1"]) == 0
    assert sweep_counts(capsys.readouterr().out) == {"finished": 4, "skipped": 0, "failed": 0}
    _, runs = children(store_uri)
    client = MlflowClient(store_uri)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"test_auc", "params_total", "ia_mean", "valid_auc"} <= set(run.data.metrics)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_auc")] == [0]
        assert run.data.params["train.threads"] == str(max(1, (os.cpu_count() or 1) // 4))


@pytest.mark.integration
def test_submitit_local_runs_two_jobs(store_uri, workdir, capsys):
    assert main(["sweep", "smoke", f"tracking.uri={store_uri}", *TINY, "hydra/launcher=submitit_local",
                 "hydra.launcher.timeout_min=10"]) == 0
    _, runs = children(store_uri)
    assert sorted(r.info.run_name for r in runs) == ["dnn-me-2x-s0", "dnn-se-2x-s0"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_too_many_threads_for_the_cores_fails_before_launching(store_uri, workdir):
    with pytest.raises(SweepConfigError, match=r"hydra.launcher.n_jobs=4 x train.threads=64"):
        run_sweep("smoke", [f"tracking.uri={store_uri}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                            "train.threads=64"])
    assert not (workdir / "mlflow.db").exists()


def _train(store_uri, workdir, epochs, extra=()):
    return [sys.executable, "-m", "recsys_scaling.cli", "train", "data=synthetic", "data.synthetic.rows=60000",
            f"train.max_epochs={epochs}", "train.patience=100", "train.progress=false", "train.threads=1",
            "train.batch_size=256", "model=dcnv2", "diagnostics.enabled=false", f"tracking.uri={store_uri}",
            f"train.checkpoint_dir={workdir / 'ckpt'}", *extra]


@pytest.mark.integration
def test_killed_job_resumes_from_its_checkpoint_with_identical_results(store_uri, workdir):
    env = {**os.environ, "RECSYS_SCALING_CACHE": os.environ["RECSYS_SCALING_CACHE"]}
    reference = subprocess.run(_train(store_uri, workdir, 3, ["seed=7", "train.checkpoint=false"]), env=env,
                               cwd=workdir, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr[-2000:]
    job = subprocess.Popen(_train(store_uri, workdir, 3, ["seed=7"]), env=env, cwd=workdir,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    checkpoints = workdir / "ckpt"
    while time.time() < deadline and not any(checkpoints.glob("*.pt")):
        time.sleep(0.2)
    assert any(checkpoints.glob("*.pt")), "no checkpoint written"
    job.send_signal(signal.SIGKILL)
    job.wait()
    resumed = subprocess.run(_train(store_uri, workdir, 3, ["seed=7"]), env=env, cwd=workdir,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from the checkpoint" in resumed.stdout + resumed.stderr
    client = MlflowClient(store_uri)
    runs = client.search_runs([client.get_experiment_by_name("recsys-scaling").experiment_id],
                              order_by=["attributes.start_time ASC"])
    first, killed, continued = runs
    assert killed.info.status == "KILLED" and continued.info.status == "FINISHED"
    assert continued.data.metrics["test_auc"] == first.data.metrics["test_auc"]
    assert continued.data.metrics["test_logloss"] == first.data.metrics["test_logloss"]
    assert [m.step for m in client.get_metric_history(continued.info.run_id, "valid_auc")] == [0, 1, 2]
    assert not any(checkpoints.glob("*.pt")), "a finished job removes its checkpoint"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_mlflow_server_receives_a_parallel_sweep(workdir, capsys, monkeypatch):
    port = free_port()
    monkeypatch.setenv("RECSYS_SCALING_UI_PORT", str(port))
    server = tracking.start_server(f"sqlite:///{workdir / 'server.db'}", port=port, artifacts=workdir / "artifacts")
    url = f"http://127.0.0.1:{port}"
    try:
        tracking.wait_for_server(url, timeout=120, process=server)
        assert main(["sweep", "smoke", "tracking=server", *TINY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                     "seed=0,1"]) == 0
        assert sweep_counts(capsys.readouterr().out)["finished"] == 4
        parent, runs = children(url)
        assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
        client = MlflowClient(url)
        for run in runs:
            assert {"test_auc", "params_total", "ia_mean"} <= set(run.data.metrics)
            assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    finally:
        tracking.stop_server(server)
    assert server.poll() is not None
    with pytest.raises(OSError):
        import urllib.request

        urllib.request.urlopen(f"{url}/health", timeout=2)


def test_server_refuses_a_non_loopback_host(workdir):
    with pytest.raises(ValueError, match="not a loopback address"):
        tracking.start_server("sqlite:///x.db", host="0.0.0.0", port=free_port())


@pytest.mark.integration
def test_tuning_study_with_pruning_writes_best_parameters(store_uri, workdir, capsys):
    import optuna
    import yaml

    code = main(["tune", "smoke", "--trials", "2", f"tracking.uri={store_uri}", "data=synthetic_small",
                 "train.max_epochs=3", "train.progress=false", "arm=se", "diagnostics.enabled=false"])
    assert code == 0
    tuned = workdir / "tuned" / "smoke.yaml"
    assert str(tuned) in capsys.readouterr().out
    entry = yaml.safe_load(tuned.read_text())["cells"][0]
    assert (entry["backbone"], entry["arm"], entry["scale"]) == ("dnn", "se", 2)
    assert set(entry["params"]) == {"train.lr", "train.weight_decay"}
    study = optuna.load_study(study_name="smoke/dnn-se-2x", storage=f"sqlite:///{workdir / 'optuna.db'}")
    assert len(study.trials) == 2
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    _, runs = children(store_uri, "tune-smoke")
    assert len(runs) == 2 and {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    # a sweep picks the tuned values up
    assert main(["train", "data=synthetic_small", "train.max_epochs=1", "train.progress=false", "scale=2",
                 f"tracking.uri={store_uri}", "train.tuned=smoke"]) == 0
    client = MlflowClient(store_uri)
    last = client.search_runs([client.get_experiment_by_name("recsys-scaling").experiment_id],
                              order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert float(last.data.params["train.lr"]) == pytest.approx(entry["params"]["train.lr"])



@pytest.mark.integration
def test_relaunch_with_tuned_values_records_the_skipped_jobs(store_uri, workdir, capsys):
    """Regression: the runner fingerprinted jobs before tuned values were applied and the job
    after, so a relaunch with train.tuned=... skipped every job without recording it."""
    from recsys_scaling.tuned import write_tuned

    cells = [{"backbone": "dnn", "arm": arm, "scale": 2, "params": {"train.lr": 0.003}} for arm in ("se", "me")]
    write_tuned(workdir / "tuned" / "smoke.yaml", "smoke", "sqlite:///optuna.db", cells)
    args = ["sweep", "smoke", f"tracking.uri={store_uri}", *TINY, "diagnostics.enabled=false", "train.tuned=smoke"]
    assert main(args) == 0
    assert sweep_counts(capsys.readouterr().out) == {"finished": 2, "skipped": 0, "failed": 0}
    assert main(args) == 0
    assert sweep_counts(capsys.readouterr().out) == {"finished": 0, "skipped": 2, "failed": 0}
    _, runs = children(store_uri)
    assert runs == []  # nothing ran the second time


@pytest.mark.integration
def test_pruned_trials_end_killed(store_uri, workdir):
    import optuna

    from recsys_scaling import tune

    tune.make_pruner = lambda name: optuna.pruners.ThresholdPruner(lower=0.999)  # prunes every trial
    try:
        tune.tune_sweep("smoke", [f"tracking.uri={store_uri}", "data=synthetic_small", "train.max_epochs=3",
                                  "train.progress=false", "arm=me", "diagnostics.enabled=false"], trials=1,
                        out_dir=workdir / "tuned")
    finally:
        import importlib

        importlib.reload(tune)
    _, runs = children(store_uri, "tune-smoke")
    (run,) = runs
    assert run.info.status == "KILLED" and "pruned after epoch 0" in run.data.tags["error"]


@pytest.fixture
def ray_cluster():
    """A real one-node Ray cluster on loopback (`ray start --head --block`), stopped afterwards."""
    import shutil
    import tempfile

    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in head.stdout:
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail(f"ray start exited with {head.wait()}")
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a graceful Ray shutdown takes ~30 s; the test is over
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.integration
def test_ray_launcher_runs_a_sweep_on_an_existing_cluster(ray_cluster, store_uri, workdir, capsys):
    args = ["sweep", "smoke", f"tracking.uri={store_uri}", *TINY, "hydra/launcher=ray",
            f"hydra.launcher.address={ray_cluster}", "arm=se", "seed=0,1", "train.lr=0.001,1e30"]
    assert main(args) == 1  # the lr=1e30 jobs fail; the others are unaffected
    assert sweep_counts(capsys.readouterr().out) == {"finished": 2, "skipped": 0, "failed": 2}
    _, runs = children(store_uri)
    by_status = {}
    for run in runs:
        by_status.setdefault(run.info.status, []).append(run)
        assert run.data.params["train.threads"] == "1"  # the one CPU Ray reserves per job
    assert {float(r.data.params["train.lr"]) for r in by_status["FINISHED"]} == {0.001}
    assert all("loss" in r.data.tags["error"].lower() for r in by_status["FAILED"])
    assert main(args) == 1  # relaunching on the cluster skips the finished jobs
    assert sweep_counts(capsys.readouterr().out) == {"finished": 0, "skipped": 2, "failed": 2}
    _a_dead_worker_is_reported_not_raised(ray_cluster)


def _a_dead_worker_is_reported_not_raised(address):
    import ray
    from hydra.core.utils import JobStatus
    from hydra_plugins.recsys_scaling_ray_launcher.ray_launcher import RayLauncher

    ray.init(address=address)
    try:
        dies = ray.remote(max_retries=0)(lambda: os._exit(1)).remote()
        lost = RayLauncher._result(ray, dies, 3, ["seed=1"])
        assert lost.status == JobStatus.COMPLETED and lost.return_value is None  # the summary counts it
    finally:
        ray.shutdown()


def test_ray_launcher_checks_threads_against_reserved_cpus(store_uri, workdir):
    with pytest.raises(SweepConfigError, match=r"train.threads=4 exceeds hydra.launcher.cpus_per_job=2"):
        run_sweep("smoke", [f"tracking.uri={store_uri}", "hydra/launcher=ray", "hydra.launcher.cpus_per_job=2",
                            "train.threads=4"])
    assert not (workdir / "mlflow.db").exists()
