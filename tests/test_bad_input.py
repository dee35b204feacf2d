"""Mistakes a new user makes, and two terminals at once: every one is caught before launch with
one clear line (exit 2), nothing is created or half-done, and no running job is taken over."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys_scaling import tracking
from recsys_scaling.cli import main

CLI = [sys.executable, "-m", "recsys_scaling.cli"]
TINY = ["data=synthetic_small", "train.progress=false", "diagnostics.enabled=false"]


def criteo_rows(good: int, bad_line: int) -> str:
    row = "\t".join(["1", *["1"] * 13, *["aa"] * 26])
    lines = [row if i != bad_line else "\t".join(["1"] * 10) for i in range(1, good + 1)]
    return "\n".join(lines) + "\n"


def one_error_line(stderr: str, command: str) -> str:
    ours = [line for line in stderr.splitlines() if line.startswith(f"recsys-scaling {command}: error: ")]
    assert len(ours) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return ours[0]


def created(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


BAD_VALUES = [
    (["train.batch_size=0"], "train.batch_size=0: must be at least 1"),
    (["train.max_epochs=0"], "train.max_epochs=0: must be at least 1"),
    (["train.lr=-1"], "train.lr=-1.0: must be a positive number"),
    (["scale=0"], "scale=0: must be at least 1"),
    (["model.num_embeddings=0"], "model.num_embeddings=0: must be at least 1"),
    (["model.dropout=1.5"], "model.dropout=1.5: must be in [0, 1)"),
    (["budget.tolerance=-0.1"], "budget.tolerance=-0.1: must be >= 0"),
    (["data.split=[0.5,0.5]"], "data.split=[0.5, 0.5]: needs three positive fractions"),
    (["data=criteo", "data.path=/no/such/file.txt"], "data.path=/no/such/file.txt: no such file"),
    (["tracking.uri=file:///tmp/mlruns"], "not a tracking store URI"),
    (["tracking.uri=sqlite:///no/such/folder/mlflow.db"], "does not exist"),
    (["+trian.max_epochs=1"], "trian.max_epochs: not a config key; did you mean train.max_epochs?"),
    (["arm=sideways"], "arm=sideways: Invalid value 'sideways', expected one of [se, me]"),
    (["seed=18446744073709551616"], "seed=18446744073709551616: must be in [0, 2**32)"),
]


# Every value through `train`; sweep, budget and tune share the same check (grid.plan), so a
# sample of four goes through each of them.
CASES = [("train", o, m) for o, m in BAD_VALUES] + [
    (command, o, m) for command in ("sweep", "budget", "tune") for o, m in BAD_VALUES[::4]]


@pytest.mark.parametrize("command,overrides,message", CASES, ids=[f"{c}-{' '.join(o)}" for c, o, _ in CASES])
def test_bad_value_is_one_line_and_creates_nothing(command, overrides, message, workdir, capsys):
    args = {"train": ["train"], "sweep": ["sweep", "smoke"], "budget": ["budget", "smoke"],
            "tune": ["tune", "smoke"]}[command]
    assert main([*args, *TINY, *overrides]) == 2
    err = capsys.readouterr().err
    line = one_error_line(err, command)
    assert message in line, line
    assert created(workdir) == [], "a rejected command created files"


def test_data_error_found_while_training_is_one_line_without_a_run(workdir, capsys):
    """Rows the pre-launch check cannot see (data.strict on a bad row): one line, no run, no store."""
    path = workdir / "train.txt"
    path.write_text(criteo_rows(40, bad_line=7))
    assert main(["train", "data=criteo", f"data.path={path}", "data.strict=true", "train.progress=false"]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "train.txt:7: wrong column count" in line
    assert not (workdir / "mlflow.db").exists()


def test_strict_fails_on_a_reused_cache_that_recorded_bad_rows(workdir, capsys):
    path = workdir / "train.txt"
    path.write_text(criteo_rows(40, bad_line=12))
    assert main(["data", "prepare", "data=criteo", f"data.path={path}", "data.min_class_rows=0"]) == 0
    capsys.readouterr()
    assert main(["data", "prepare", "data=criteo", f"data.path={path}", "data.min_class_rows=0",
                 "data.strict=true"]) == 2
    line = one_error_line(capsys.readouterr().err, "data")
    assert "train.txt:12: wrong column count" in line and "recorded 1 bad rows" in line


def test_binary_file_error_is_short(workdir, capsys):
    path = workdir / "clicks.csv"
    path.write_bytes(bytes(range(256)) * 80)
    assert main(["data", "prepare", "data=csv", f"data.path={path}", "data.schema.label=click"]) == 2
    line = one_error_line(capsys.readouterr().err, "data")
    assert "binary content" in line and len(line) < 300


def test_ui_refuses_a_port_in_use(workdir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    line = one_error_line(capsys.readouterr().err, "ui")
    assert f"127.0.0.1:{port} is already in use" in line
    assert not (workdir / "mlflow.db").exists()


def _fingerprint(overrides):
    """A job's fingerprint (its config and its data's content), as its lease and checkpoint use."""
    from recsys_scaling.config import job_fingerprint
    from recsys_scaling.data import data_fingerprint
    from recsys_scaling.sweep.grid import Composer
    from recsys_scaling.tuned import resolve_job_config

    cfg = resolve_job_config(Composer(None)(overrides))
    return job_fingerprint(cfg, data_fingerprint(cfg.data))


HOLD_LEASE = """
import sys, time
from pathlib import Path
from recsys_scaling.job import JobLease
with JobLease(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.mark.integration
def test_a_running_job_is_not_started_twice(workdir, store_uri, capsys, caplog):
    """Another process holds the job's lease: `train` refuses in one line and records nothing;
    a sweep counts it as not started; once the holder is gone the lease is taken over."""
    from recsys_scaling.job import JobLease
    from recsys_scaling.sweep import run_sweep

    overrides = [*TINY, "train.max_epochs=1", f"tracking.uri={store_uri}"]
    checkpoints = Path(".cache/recsys_scaling/checkpoints")
    lease = checkpoints / f"{_fingerprint(overrides)}.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(lease)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    try:
        assert main(["train", *overrides]) == 2
        line = one_error_line(capsys.readouterr().err, "train")
        assert f"already running in pid {holder.pid} on " in line
    finally:
        holder.kill()  # dies holding the lease: the OS releases it
        holder.wait()
    caplog.set_level(logging.INFO)
    with JobLease(lease):
        pass
    # (Hydra's job logging, set up by the refused `train`, may hold the log: look in both places)
    assert f"taken over from pid {holder.pid}" in caplog.text + capsys.readouterr().err
    sweep = [*TINY, "train.max_epochs=1", f"tracking.uri={store_uri}", "model=dnn", "scale=2", "arm=se"]
    with JobLease(checkpoints / f"{_fingerprint(sweep)}.lock"):
        summary = run_sweep("smoke", sweep)
    assert (summary.not_started, summary.finished, summary.ok) == (1, 0, False)
    assert "1 did not start" in summary.line()
    assert main(["train", *overrides]) == 0  # the lease is free again


@pytest.mark.integration
def test_two_sweeps_start_at_once_on_a_fresh_store(workdir, store_uri):
    """Both create the store at the same moment: neither crashes on its tables."""
    script = ("import sys, time; from recsys_scaling import tracking\n"
              "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
              "store = tracking.Store(sys.argv[1]); store.create_sweep_parent('race', None, [])\n")
    start = time.time() + 4
    procs = [subprocess.Popen([sys.executable, "-c", script, store_uri, str(start)], stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), [err[-500:] for _, err in results]
    parents = tracking.Store(store_uri).client.search_runs(
        [tracking.Store(store_uri).experiment_id], filter_string="tags.sweep = 'race'")
    assert len(parents) == 4


@pytest.mark.integration
def test_bad_input_through_the_real_entry_point(tmp_path):
    """The installed command as a user runs it: exit codes, one line on stderr, an empty folder."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cases = [["train", "train.batch_size=0"], ["sweep", "smoke", "train.max_epochs=0"], ["sweep", "no_such_sweep"],
             ["budget", "smoke", "+trian.max_epochs=1"]]
    procs = [subprocess.Popen([*CLI, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in cases]
    for args, proc in zip(cases, procs):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stderr
        one_error_line(stderr, args[0])
    assert created(tmp_path) == []


def _has_trained_an_epoch(store_uri: str) -> bool:
    """A run of the store is RUNNING and has logged an epoch (so Ctrl-C lands in training)."""
    import sqlite3
    from contextlib import closing

    path = store_uri[len("sqlite:///"):]
    if not Path(path).exists():
        return False
    try:
        # closed at once: an open connection would hold a lock the job needs to close its run
        with closing(sqlite3.connect(path, timeout=1)) as db:
            return bool(db.execute("select count(*) from metrics where key = 'valid_auc'").fetchone()[0])
    except sqlite3.Error:
        return False


@pytest.mark.integration
def test_ctrl_c_is_one_line_exit_130_and_the_run_is_killed(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "RECSYS_SCALING_CACHE": str(tmp_path / "cache")}
    store_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen([*CLI, "train", "data=synthetic_small", "train.max_epochs=200", "train.patience=200",
                             "train.progress=false", "diagnostics.enabled=false", f"tracking.uri={store_uri}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not _has_trained_an_epoch(store_uri):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("recsys-scaling train: interrupted")
    store = tracking.Store(store_uri)
    (run,) = store.client.search_runs([store.experiment_id])
    assert run.info.status == "KILLED"


@pytest.mark.parametrize("flag,message", [(["--resamples", "0"], "--resamples 0: must be at least 1"),
                                          (["--resamples", "-3"], "--resamples -3: must be at least 1"),
                                          (["--margin", "inf"], "--margin inf: must be a positive number")])
def test_report_refuses_what_advise_refuses(flag, message, workdir, capsys):
    assert main(["report", "smoke", *flag]) == 2
    assert message in one_error_line(capsys.readouterr().err, "report")
    assert created(workdir) == []
