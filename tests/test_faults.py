"""Faults, round two: changed data is never answered from old runs, no process outlives its
command, disks fill and files rot without a traceback — each through the real components (real
processes where the fault is about processes, a real tmpfs where the test can mount one)."""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from recsys_scaling import tracking
from recsys_scaling.cli import main

from conftest import sweep_counts

CLI = [sys.executable, "-m", "recsys_scaling.cli"]
TINY = ["train.progress=false", "diagnostics.enabled=false", "train.max_epochs=1"]
CSV = ["data=csv", "data.schema.label=clicked", "data.schema.categorical=[user,item]", "data.schema.numeric=[price]",
       "data.schema.drop=[]"]


def one_line(stderr: str, command: str) -> str:
    ours = [line for line in stderr.splitlines() if line.startswith(f"recsys-scaling {command}: error: ")]
    assert len(ours) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return ours[0]


def click_log(path: Path, rows: int = 3000, seed: int = 0, signal_strength: float = 0.3, label=None) -> Path:
    """A small CSV click log: the label depends on the user id (so AUC > 0.5 is learnable)."""
    rng = random.Random(seed)
    lines = ["clicked,user,item,price"]
    for i in range(rows):
        user = rng.randint(0, 40)
        p = 0.2 + signal_strength * (user % 2)
        clicked = label(i) if label else int(rng.random() < p)
        lines.append(f"{clicked},u{user},i{rng.randint(0, 30)},{rng.randint(1, 100)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def env_for(tmp_path: Path) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg", "RECSYS_SCALING_CACHE": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


# -- data identity ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_rewritten_data_file_makes_new_jobs_and_a_touched_one_does_not(workdir, store_uri, capsys):
    data = click_log(workdir / "clicks.csv")
    sweep = ["sweep", "smoke", f"tracking.uri={store_uri}", *CSV, *TINY, "scale=2"]
    assert main([*sweep, f"data.path={data}"]) == 0
    assert sweep_counts(capsys.readouterr().out)["finished"] == 2
    store = tracking.Store(store_uri)
    first = store.child_runs(store.latest_sweep_parent("smoke").info.run_id)
    assert {r.data.tags["data_fingerprint"] for r in first} == {r.data.params["resolved.data_fingerprint"]
                                                              for r in first}
    # touched (a new mtime), the same bytes: the same data, the jobs are skipped
    os.utime(data)
    assert main([*sweep, f"data.path={data}"]) == 0
    assert sweep_counts(capsys.readouterr().out)["skipped"] == 2
    # the file rewritten in place, its mtime set back: new data, new jobs (not "finished before")
    stat = data.stat()
    click_log(data, seed=1, signal_strength=0.0)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main([*sweep, f"data.path={data}"]) == 0
    out = capsys.readouterr().out
    assert sweep_counts(out)["finished"] == 2 and sweep_counts(out)["skipped"] == 0
    second = store.child_runs(store.latest_sweep_parent("smoke").info.run_id)
    assert {r.data.tags["data_fingerprint"] for r in second}.isdisjoint({r.data.tags["data_fingerprint"]
                                                                          for r in first})
    assert main([*sweep, f"data.path={data}"]) == 0  # unchanged now: skipped
    assert sweep_counts(capsys.readouterr().out)["skipped"] == 2


def test_runs_on_different_data_are_never_one_series():
    import pandas as pd

    from recsys_scaling.report.collect import split_series_by_data

    table = pd.DataFrame({"series": ["demo"] * 4, "data_fingerprint": ["aaaa1111", "aaaa1111", "bbbb2222", None]})
    split, notes = split_series_by_data(table)
    assert sorted(split["series"].unique()) == ["demo @ data aaaa1111", "demo @ data bbbb2222", "demo @ data unknown"]
    assert len(notes) == 1 and "3 different data" in notes[0]
    same, none = split_series_by_data(table.iloc[:2])
    assert list(same["series"].unique()) == ["demo"] and none == []


# -- processes -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stopped_at_the_end(proc):
    """A failing test must not leave the command (and what it started) running."""
    try:
        yield
    finally:
        if proc.poll() is None:
            for child in _descendants(proc.pid):
                child.kill()
            proc.kill()
            proc.communicate()


def _descendants(pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for(condition, timeout: float, proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-3000:])
        time.sleep(0.5)
    raise AssertionError("timed out")


def _running_jobs(store_uri: str) -> int:
    import sqlite3
    from contextlib import closing

    path = store_uri[len("sqlite:///"):]
    if not Path(path).exists():
        return 0
    try:
        with closing(sqlite3.connect(path, timeout=1)) as db:  # closed at once: no lock left on the store
            return db.execute("select count(*) from runs where status = 'RUNNING' and name != 'sweep-smoke'"
                              ).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.integration
def test_sigterm_stops_a_joblib_sweep_and_every_worker(tmp_path):
    store_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen([*CLI, "sweep", "smoke", "seed=0,1", "train.max_epochs=50", "train.patience=50",
                             "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data.synthetic.rows=200000",
                             "train.progress=false", f"tracking.uri={store_uri}"], cwd=tmp_path, env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _stopped_at_the_end(proc):
        _wait_for(lambda: _running_jobs(store_uri) == 2, 240, proc)
        workers = _descendants(proc.pid)
        assert workers
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.time() - sent < 30, stderr[-3000:]
    assert "Traceback" not in stderr and "terminated (SIGTERM)" in stderr.strip().splitlines()[-1]
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, [p.cmdline() for p in alive]
    store = tracking.Store(store_uri)
    parent = store.latest_sweep_parent("smoke")
    assert parent.info.status == "KILLED"
    assert {r.info.status for r in store.child_runs(parent.info.run_id)} == {"KILLED"}


@pytest.mark.integration
def test_a_sweep_killed_outright_is_closed_by_its_next_launch(tmp_path):
    store_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [*CLI, "sweep", "smoke", "arm=se", "train.max_epochs=50", "train.patience=50",
               "data.synthetic.rows=100000", "train.progress=false", f"tracking.uri={store_uri}"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with _stopped_at_the_end(proc):
        _wait_for(lambda: _running_jobs(store_uri) == 1, 240, proc)
        proc.kill()  # SIGKILL: nothing can close its runs
        proc.communicate()
    store = tracking.Store(store_uri)
    dead = store.latest_sweep_parent("smoke").info.run_id
    assert store.run_status(dead) == "RUNNING"
    rerun = subprocess.run([*command[:-5], "train.max_epochs=1", f"tracking.uri={store_uri}"], cwd=tmp_path,
                           env=env_for(tmp_path), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    closed = store.client.get_run(dead)
    assert closed.info.status == "KILLED" and "closed by the next launch" in closed.data.tags["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_sigterm_stops_the_ui_and_its_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([*CLI, "ui", "--port", str(port)], cwd=tmp_path, env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _stopped_at_the_end(proc):
        lines = iter(proc.stdout.readline, "")
        assert any("MLflow UI:" in line for line in lines)  # the server's own log shares the stream
        server = _descendants(proc.pid)
        assert server
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        _, alive = psutil.wait_procs(server, timeout=10)
        assert not alive and not tracking.port_in_use("127.0.0.1", port)


# -- disks and files -------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str, monkeypatch):
    """A real tmpfs of `size` at `path` where this machine lets the test mount one; otherwise the
    fault is injected at the lowest write layer (the free-space query of data/faults.py)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if not mounted:
        import recsys_scaling.data.faults as faults

        total = int(size.rstrip("k")) * 1024
        monkeypatch.setattr(faults.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(total, total, total))
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with small_disk(tmp_path / "disk", "200k", monkeypatch) as mounted:
        monkeypatch.setenv("RECSYS_SCALING_CACHE", str(tmp_path / "disk" / "cache"))
        assert main(["sweep", "smoke", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", *TINY]) == 1
        line = one_line(capsys.readouterr().err, "sweep")
        assert "no space left on device" in line and "the cache needs" in line, line
        assert not list((tmp_path / "disk").rglob("*.tmp-*")), "a temporary cache folder was left"
        assert not (tmp_path / "mlflow.db").exists()  # data is prepared before any run is recorded
        print(f"full disk through a {'real tmpfs' if mounted else 'fault injected at the free-space query'}")


def test_a_truncated_checkpoint_is_set_aside_and_the_job_starts_over(workdir, store_uri, capsys):
    from recsys_scaling.config import job_fingerprint
    from recsys_scaling.data import data_fingerprint
    from recsys_scaling.sweep.grid import Composer
    from recsys_scaling.tuned import resolve_job_config

    overrides = ["data=synthetic_small", *TINY, f"tracking.uri={store_uri}"]
    cfg = resolve_job_config(Composer(None)(overrides))
    checkpoint = Path(cfg.train.checkpoint_dir) / f"{job_fingerprint(cfg, data_fingerprint(cfg.data))}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"PK\x03\x04 cut short")
    assert main(["train", *overrides]) == 0
    err = capsys.readouterr().err
    assert "cannot be read" in err and "set aside as" in err and "Traceback" not in err
    assert checkpoint.with_name(checkpoint.name + ".corrupt").exists() and not checkpoint.exists()
    (run,) = tracking.Store(store_uri).client.search_runs([tracking.Store(store_uri).experiment_id])
    assert run.info.status == "FINISHED"


def test_a_corrupt_cache_meta_is_rebuilt(workdir, capsys):
    assert main(["data", "prepare", "data=synthetic_small"]) == 0
    (meta,) = Path(os.environ["RECSYS_SCALING_CACHE"]).glob("synthetic_small-*/meta.json")
    meta.write_text(json.dumps({"format_version": 1}))  # valid JSON, nothing in it
    capsys.readouterr()
    assert main(["data", "prepare", "data=synthetic_small"]) == 0
    assert json.loads(meta.read_text())["rows"] > 0


def test_a_corrupt_store_is_one_line_naming_the_file(workdir, capsys):
    (workdir / "mlflow.db").write_text("not a database at all\n" * 100)
    assert main(["sweep", "smoke", *TINY]) == 2
    line = one_line(capsys.readouterr().err, "sweep")
    assert "mlflow.db: not an MLflow store" in line


def _foreign_databases(folder: Path) -> dict:
    """An app's sqlite file (a users table) and an Alembic-managed one (as Optuna's optuna.db is)."""
    import sqlite3

    made = {}
    for name, tables in (("app.db", ["users"]), ("optuna.db", ["alembic_version", "studies", "trials"])):
        with contextlib.closing(sqlite3.connect(folder / name)) as connection:
            for table in tables:
                connection.execute(f"CREATE TABLE {table} (id INTEGER)")
            connection.commit()
        made[name] = (folder / name).read_bytes()
    return made


def test_another_programs_sqlite_database_is_refused_and_left_byte_for_byte(workdir, capsys):
    from recsys_scaling.tracking.server import start_server

    from recsys_scaling import tracking

    before = _foreign_databases(workdir)
    source = tracking.Store(f"sqlite:///{workdir / 'source.db'}").uri  # an MLflow store to copy from
    for name in before:
        uri = f"sqlite:///{workdir / name}"
        for command in (["train", *TINY, f"tracking.uri={uri}"], ["sweep", "smoke", *TINY, f"tracking.uri={uri}"],
                        ["report", "smoke", "--tracking-uri", uri],
                        ["store", "copy", source, uri]):
            assert main(command) != 0
            line = one_line(capsys.readouterr().err, command[0])
            assert f"{name}: not an MLflow store (it holds another program's tables" in line, (command, line)
        with pytest.raises(ValueError, match="not an MLflow store"):
            start_server(uri, "127.0.0.1", 5999, workdir / "artifacts")
        assert (workdir / name).read_bytes() == before[name], f"{name} was changed"
    assert not (workdir / "mlflow.db").exists()


@pytest.mark.integration
def test_runs_deleted_in_mlflow_leave_the_report_and_their_jobs_run_again(workdir, store_uri, capsys):
    import subprocess as sp

    from mlflow.tracking import MlflowClient

    from recsys_scaling import tracking

    sweep = ["sweep", "smoke", f"tracking.uri={store_uri}", "data=synthetic_small", *TINY]
    assert main(sweep) == 0 and main(sweep) == 0  # the second launch reuses both runs
    store = tracking.Store(store_uri)
    parent = store.latest_sweep_parent("smoke").info.run_id
    reused = {job.split("#")[0]: run_id for job, run_id in store.run_json(parent, "reused.json").items()}
    assert sorted(reused) == ["dnn-me-2x-s0", "dnn-se-2x-s0"]
    MlflowClient(store_uri).delete_run(reused["dnn-me-2x-s0"])
    capsys.readouterr()
    report = ["report", "smoke", "--tracking-uri", store_uri, "--resamples", "10"]
    assert main(report) == 0
    out = capsys.readouterr().out
    assert "1 reused run(s) were deleted in MLflow since (dnn-me-2x-s0): left out" in out
    assert "(1 runs)" in out
    gc = sp.run([sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", store_uri, "--tracking-uri", store_uri],
                capture_output=True, text=True, cwd=workdir)
    assert gc.returncode == 0, gc.stderr[-2000:]
    assert main(report) == 0, "a run removed for good is no traceback"
    assert "were deleted in MLflow since (dnn-me-2x-s0)" in capsys.readouterr().out
    assert main(sweep) == 0
    counts = sweep_counts(capsys.readouterr().out)
    assert counts["finished"] == 1 and counts["skipped"] == 1, counts


@contextlib.contextmanager
def read_only_folder(path: Path, monkeypatch):
    """A read-only tmpfs where the test can mount one; else a folder without write permission
    (for root, who may write anyway, the permission check itself answers "no")."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if not mounted:
        path.chmod(0o555)
        import recsys_scaling.validate as validate

        real = os.access
        monkeypatch.setattr(validate.os, "access", lambda p, mode: False if str(p).startswith(str(path)) and
                            mode & os.W_OK else real(p, mode))
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_folders_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ro = tmp_path / "ro"
    with read_only_folder(ro, monkeypatch):
        for key in ("train.checkpoint_dir", "data.cache_dir"):
            assert main(["train", "data=synthetic_small", *TINY, f"{key}={ro / 'x'}"]) == 2
            line = one_line(capsys.readouterr().err, "train")
            assert f"{key}=" in line and "cannot be written" in line
        assert main(["train", "data=synthetic_small", *TINY, f"tracking.uri=sqlite:///{ro / 'mlflow.db'}"]) == 2
        assert "cannot be written" in one_line(capsys.readouterr().err, "train")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]


# -- input sanity ----------------------------------------------------------------------------------


def test_labels_auc_cannot_use_are_refused_at_prepare_and_train(workdir, store_uri, capsys):
    zeros = click_log(workdir / "zeros.csv", label=lambda i: 0)
    few = click_log(workdir / "few.csv", label=lambda i: int(i in (3, 11)))
    for path, expected in ((zeros, "every label is 0"), (few, "split has")):
        assert main(["data", "prepare", *CSV, f"data.path={path}"]) == 2
        assert expected in one_line(capsys.readouterr().err, "data")
        assert main(["train", *CSV, f"data.path={path}", *TINY, f"tracking.uri={store_uri}"]) == 2
        assert expected in one_line(capsys.readouterr().err, "train")
    assert not (workdir / "mlflow.db").exists()


def _latin1(path: Path) -> Path:
    lines = ["clicked,user,item,price"] + [f"{i % 2},Zürich-{i % 7},Málaga Göteborg,{i}" for i in range(3000)]
    path.write_bytes("\n".join(lines).encode("latin-1"))
    return path


def _truncated_gzip(path: Path) -> Path:
    import gzip

    data = gzip.compress(click_log(path.with_suffix(""), rows=20000).read_bytes())
    path.write_bytes(data[: len(data) // 2])
    return path


def _nested_parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"clicked": [0, 1] * 500, "user": [[1, 2]] * 1000, "item": ["a"] * 1000,
                             "price": [3] * 1000}), path)
    return path


BAD_FILES = [("clicks.csv", _latin1, "not UTF-8 text"),
             ("clicks.csv.gz", _truncated_gzip, "compressed stream is cut short"),
             ("clicks.parquet", _nested_parquet, "column 'user' holds list<"),
             ("junk.parquet", lambda p: (p.write_bytes(b"PAR1 not really"), p)[1], "cannot be read as Parquet")]


@pytest.mark.parametrize("name,make,message", BAD_FILES, ids=[m for _, _, m in BAD_FILES])
def test_data_files_that_cannot_be_read_are_one_line(name, make, message, workdir, capsys):
    path = make(workdir / name)
    cache = Path(os.environ["RECSYS_SCALING_CACHE"])
    before = set(cache.iterdir()) if cache.exists() else set()
    assert main(["data", "prepare", *CSV, f"data.path={path}"]) == 2
    assert message in one_line(capsys.readouterr().err, "data")
    assert {p.name for p in cache.iterdir()} - {p.name for p in before} <= {"input-hashes.json"}  # no cache, no .tmp


def test_optuna_and_mlflow_in_one_database_is_refused(workdir, capsys):
    for storage, uri in (("sqlite:///mlflow.db", f"sqlite:///{workdir / 'mlflow.db'}"),
                         ("postgresql://bob@dbhost:5432/shared", "postgresql+psycopg://alice@dbhost/shared")):
        assert main(["tune", "smoke", "--trials", "1", "--storage", storage, f"tracking.uri={uri}"]) == 2
        assert "that is the MLflow store's database" in one_line(capsys.readouterr().err, "tune")
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_copying_a_store_into_itself_is_refused_whatever_the_spelling(workdir, capsys):
    tracking.Store(f"sqlite:///{workdir / 'mlflow.db'}").experiment_id
    os.symlink(workdir / "mlflow.db", workdir / "alias.db")
    for dest in (f"sqlite:///{workdir / 'mlflow.db'}", "sqlite:///alias.db", f"sqlite:///{workdir}/./mlflow.db"):
        assert main(["store", "copy", "sqlite:///mlflow.db", dest]) == 2
        assert "are the same store" in one_line(capsys.readouterr().err, "store")


def test_a_dead_tracking_server_is_one_line_within_seconds(workdir, capsys):
    port = _free_port()
    started = time.time()
    assert main(["train", *TINY, f"tracking.uri=http://127.0.0.1:{port}"]) == 3
    assert time.time() - started < 30
    assert "does not answer" in one_line(capsys.readouterr().err, "train")
    assert sorted(p.name for p in workdir.iterdir()) == []


# -- every subcommand, malformed ------------------------------------------------------------------

MALFORMED = [
    ["train", "scale=abc"], ["train", "tracking.uri=postgresql+psycopg://u@/db?host=/sock"],
    ["train", "data=criteo"], ["train", "data=nosuch"], ["train", "seed=-1"],
    ["sweep", "no_such_sweep"], ["sweep", "smoke", "--max-seeds", "2", "--until-decided"],
    ["sweep", "smoke", "--margin", "0.01"], ["sweep", "smoke", "model=nosuch"], ["sweep", "smoke", "--sweeps-dir", "/no"],
    ["sweep", "demo", "hydra/launcher=basic"], ["sweep", "smoke", "train.bogus=1"],
    ["sweeps", "--sweeps-dir", "/no/such"], ["budget", "smoke", "scale=0"], ["budget", "no_such_sweep"],
    ["tune", "smoke", "--trials", "0"], ["tune", "smoke", "--timeout", "-5"],
    ["report"], ["report", "demo"], ["report", "demo", "--margin", "-1"], ["report", "demo", "--x", "weird"],
    ["report", "demo", "--max-seeds", "1"], ["report", "demo", "--out", "afile"],
    ["data", "prepare", "data=criteo"], ["data", "info", "data=csv", "data.path=/no/such.csv"],
    ["data", "explode"], ["store", "copy", "sqlite:///no.db", "sqlite:///other.db"], ["store", "move", "a", "b"],
    ["ui", "--port", "-1"], ["ui", "--host", "0.0.0.0"], ["server", "--backend-store-uri", "http://x:1"],
    ["nosuchcommand"], [],
]


@pytest.mark.parametrize("args", MALFORMED, ids=[" ".join(a) or "(nothing)" for a in MALFORMED])
def test_malformed_arguments_fail_briefly_and_create_nothing(args, workdir, capsys):
    (workdir / "afile").write_text("")
    before = sorted(p.name for p in workdir.iterdir())
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code not in (0, None), err
    assert "Traceback" not in err, err[-3000:]
    assert len([line for line in err.splitlines() if line.strip()]) <= 3, err
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_a_composition_error_names_the_key_and_a_launcher_swap_says_what_to_do(workdir, capsys):
    assert main(["sweep", "demo", "hydra/launcher=basic", "--plan"]) == 2
    err = one_line(capsys.readouterr().err, "sweep")
    assert "Key 'n_jobs' not in 'BasicLauncherConf'" in err and "hydra.launcher.n_jobs=1" in err
    assert main(["sweep", "smoke", "train.bogus=1", "--plan"]) == 2
    assert "Key 'bogus' not in 'TrainConfig'" in one_line(capsys.readouterr().err, "sweep")
