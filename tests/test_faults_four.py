"""Faults, round four: grids, reports and stores an operator gets wrong, each through the real CLI
and a real store (the data-file cases are in test_data_files.py, next-step commands in test_launch.py)."""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recsys_scaling.cli import main

from conftest import sweep_counts
from test_faults import TINY, one_line

SMALL = ["data=synthetic_small", *TINY]


@pytest.mark.parametrize("text", ["tags.backbone=", "tags.arm = 'se' and", "metrics.test_auc > 0.5 or x",
                                  "params.hidden > 3"])
def test_a_malformed_report_filter_is_one_line_naming_it(text, workdir, capsys):
    assert main(["report", "demo", "--filter", text]) == 2
    err = one_line(capsys.readouterr().err, "report")
    assert "--filter" in err and "MLflow search syntax" in err, err
    assert list(workdir.iterdir()) == []


@pytest.mark.integration
def test_a_value_listed_twice_runs_its_job_once(workdir, store_uri, capsys, caplog):
    caplog.set_level(logging.WARNING)
    sweeps = workdir / "sweeps"
    sweeps.mkdir()
    (sweeps / "twice.yaml").write_text("defaults:\n  - config\n  - _self_\nhydra:\n  sweeper:\n    params:\n"
                                       "      model: dnn\n      scale: 2\n      arm: se,me,se\n")
    args = ["sweep", "twice", "--sweeps-dir", str(sweeps), f"tracking.uri={store_uri}", *SMALL, "seed=0,0"]
    assert main(args) == 0
    captured = capsys.readouterr()
    counts = sweep_counts(captured.out)
    assert counts["finished"] == 2 and counts["failed"] == 0, counts
    said = [line for line in (captured.err + caplog.text).splitlines() if "more than once" in line]
    assert any("seed=0,0" in line and "(seed=0)" in line for line in said), said
    assert any("arm=se,me,se" in line and "(arm=se,me)" in line for line in said), said


def test_a_huge_grid_plans_in_one_pass_and_asks_before_it_launches(workdir, capsys):
    big = ["sweep", "smoke", *SMALL, "seed=range(0,600)"]
    assert main([*big, "--plan"]) == 0
    out = capsys.readouterr().out
    assert "... 1,161 more jobs ..." in out and len(out.splitlines()) < 60, out[-2000:]
    assert "note: 1,200 jobs (more than 1,000): launching it asks first (or add --yes)" in out
    before = sorted(p.name for p in workdir.iterdir())
    assert main(big) == 2
    assert "add --yes to launch it" in one_line(capsys.readouterr().err, "sweep")
    assert main(["sweep", "smoke", *SMALL, "--until-decided", "--max-seeds", "600"]) == 2
    captured = capsys.readouterr()
    assert "worst case (every cell to 600 seeds): 1200 more job(s)" in captured.out
    assert "(worst case): 1,200 jobs" in one_line(captured.err, "sweep")
    assert sorted(p.name for p in workdir.iterdir()) == before, "nothing recorded: no store, no run"


def test_seeds_sharing_a_config_have_the_fingerprints_their_jobs_compute():
    from recsys_scaling.config import config_fingerprint, job_fingerprint
    from recsys_scaling.paths import find_sweep
    from recsys_scaling.sweep import grid
    from recsys_scaling.sweep.plan import fingerprints

    jobs = grid.expand(find_sweep("smoke", []), ["seed=0,7,8"])
    assert len(jobs) == 6 and sum(job.cfg is job.shared for job in jobs) == 2, "one composed config per arm"
    data_ids = {OmegaConf.to_yaml(jobs[0].shared.data): "d" * 64}
    for job, (fingerprint, config) in zip(jobs, fingerprints(jobs, data_ids)):
        composed = grid.Composer(find_sweep("smoke", []))(job.overrides)
        assert job.cfg.seed == job.seed == composed.seed
        assert config == config_fingerprint(composed)
        assert fingerprint == job_fingerprint(composed, "d" * 64)
    with pytest.raises(grid.SweepConfigError, match="seed=4294967296: must be in"):
        grid.validate(grid.expand(find_sweep("smoke", []), ["seed=0,4294967296"]))


@pytest.mark.integration
def test_a_report_after_two_concurrent_launches_reads_every_finished_run(workdir, store_uri, capsys):
    import json
    import subprocess as sp

    from test_faults import CLI, env_for

    launch = [*CLI, "sweep", "smoke", f"tracking.uri={store_uri}", *SMALL, "seed=0,1,2"]
    procs = [sp.Popen(launch, cwd=workdir, env=env_for(workdir), stdout=sp.PIPE, stderr=sp.STDOUT, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    counts = [sweep_counts(out) for out in outputs]
    assert all(c.get("failed") == 0 for c in counts), outputs[0][-3000:] + outputs[1][-3000:]
    from mlflow.tracking import MlflowClient

    trained = [run.info.run_name for run in MlflowClient(store_uri).search_runs(
        ["1"], "attributes.status = 'FINISHED' and tags.sweep = 'smoke' and attributes.run_name LIKE 'dnn-%'")]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 6, "never a job trained twice"
    assert main(["report", "smoke", "--tracking-uri", store_uri, "--resamples", "10", "--out", "out"]) == 0
    assert "(6 runs)" in capsys.readouterr().out
    fits = json.loads((workdir / "out" / "smoke" / "fits.json").read_text())
    assert fits["missing_jobs"] == [], "a job finished by the other launch is not 'never recorded'"


def test_a_planned_job_finished_under_another_parent_is_read_and_not_missing(workdir, store_uri):
    from recsys_scaling import tracking
    from recsys_scaling.report.collect import collect_runs

    store = tracking.Store(store_uri)
    first = store.create_sweep_parent("race", None, {"job-a": "fa", "job-b": "fb"})
    second = store.create_sweep_parent("race", None, {"job-a": "fa", "job-b": "fb"})
    for parent, name, fingerprint in ((first, "job-a", "fa"), (second, "job-b", "fb")):
        run = store.client.create_run(store.experiment_id, run_name=name,
                                      tags={tracking.PARENT_TAG: parent, "fingerprint": fingerprint, "sweep": "race"})
        store.client.set_terminated(run.info.run_id, "FINISHED")
    runs, missing = collect_runs(store, [second])
    assert sorted(runs["run_name"]) == ["job-a", "job-b"] and missing == []
    names_only = store.create_sweep_parent("race", None, ["job-a", "job-b"])  # recorded before fingerprints
    assert collect_runs(store, [names_only])[1] == ["job-a", "job-b"]


@contextlib.contextmanager
def folder_made_read_only(path: Path, monkeypatch):
    """A folder to fill, then `seal()` read-only: a tmpfs remounted read-only where the test can
    mount one; else its permission taken away (for root, who may write anyway, the permission
    check itself answers "no", as in test_faults.read_only_folder)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)],
                             capture_output=True).returncode == 0

    def seal():
        if mounted and subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True).returncode == 0:
            return
        for folder, _, _ in os.walk(path):
            Path(folder).chmod(0o555)
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(path)) and mode & os.W_OK
                            else real(p, mode))
    try:
        yield seal
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.integration
def test_a_report_reads_an_archived_store_in_a_read_only_folder(workdir, capsys, monkeypatch):
    archive = workdir / "archive"
    with folder_made_read_only(archive, monkeypatch) as seal:
        store = f"sqlite:///{archive / 'mlflow.db'}"
        assert main(["sweep", "smoke", f"tracking.uri={store}", *SMALL]) == 0
        assert (archive / "mlruns").is_dir(), "the artifacts follow the store, not the current folder"
        assert not (workdir / "mlruns").exists()
        seal()
        capsys.readouterr()
        assert main(["report", "smoke", "--tracking-uri", store, "--resamples", "10", "--out", "out"]) == 0
        out = capsys.readouterr().out
        assert "the store is read-only: the report is complete here" in out
        assert f"recsys-scaling ui --backend-store-uri {store}" in out
        assert (workdir / "out" / "smoke" / "index.html").is_file()


def test_unwritable_hydra_folders_are_one_line_and_record_nothing(workdir, capsys, monkeypatch):
    from test_faults import read_only_folder

    ro = workdir / "ro"
    with read_only_folder(ro, monkeypatch):
        assert main(["sweep", "smoke", *SMALL, f"hydra.sweep.dir={ro / 'x'}"]) == 2
        assert "hydra.sweep.dir=" in one_line(capsys.readouterr().err, "sweep")
        assert main(["train", *SMALL, f"hydra.run.dir={ro / 'y'}"]) == 2
        assert "hydra.run.dir=" in one_line(capsys.readouterr().err, "train")
        monkeypatch.chdir(ro)
        assert main(["train", *SMALL]) == 2
        line = one_line(capsys.readouterr().err, "train")
        assert "hydra.run.dir=outputs/" in line and "(or run from one)" in line
    assert sorted(p.name for p in workdir.iterdir()) == ["ro"], "no store, no run, no output folder"


def test_a_store_copy_taken_during_a_sweep_waits_for_its_running_runs_and_converges(workdir, capsys):
    from recsys_scaling import tracking
    from recsys_scaling.tracking.copy import COPIED_FROM, COPY_COMPLETE

    source, dest = f"sqlite:///{workdir / 'mine.db'}", f"sqlite:///{workdir / 'team.db'}"
    store = tracking.Store(source)
    parent = store.create_sweep_parent("live", None, {"job-a": "fa", "job-b": "fb"})  # the sweep: still RUNNING
    runs = {}
    for name in ("job-a", "job-b"):
        runs[name] = store.client.create_run(store.experiment_id, run_name=name,
                                             tags={tracking.PARENT_TAG: parent}).info.run_id
        store.client.log_metric(runs[name], "valid_auc", 0.6, step=0)
    store.client.set_terminated(runs["job-a"], "FINISHED")
    copy = ["store", "copy", source, dest]
    assert main(copy) == 0
    out = capsys.readouterr().out
    assert "1 runs copied" in out and "2 run(s) still RUNNING in the source" in out and "MISMATCH" not in out, out
    team = tracking.Store(dest)  # a copy an older version took of the running job, marked complete
    team.client.create_run(team.experiment_id, run_name="job-b",
                           tags={COPIED_FROM: runs["job-b"], COPY_COMPLETE: "1"})
    store.client.log_metric(runs["job-b"], "valid_auc", 0.7, step=1)
    for run_id in (runs["job-b"], parent):
        store.client.set_terminated(run_id, "FINISHED")
    assert main(copy) == 0
    out = capsys.readouterr().out
    assert "2 runs copied, 1 copied before, 1 half-copied ones replaced" in out and "MISMATCH" not in out, out
    assert main(copy) == 0 and "0 runs copied, 3 copied before" in capsys.readouterr().out
    copied = {run.info.run_name: run for run in team.client.search_runs([team.experiment_id])}
    assert copied["job-b"].data.tags[tracking.PARENT_TAG] == copied["sweep-live"].info.run_id


HUGE = ["data=synthetic_small", "data.synthetic.cardinalities=[1000000,10]", "model.base_dim=1500"]  # ~50 GiB at 2x


def test_a_model_too_big_for_the_machine_is_flagged_then_refused_before_any_run(workdir, capsys, monkeypatch):
    from recsys_scaling import device
    from recsys_scaling.sweep.calibration import Calibration

    monkeypatch.setattr(device, "memory_limit", lambda _: 16 << 30)  # the same answer on any CI machine
    monkeypatch.setattr(Calibration, "_measure", lambda *a: pytest.fail("timed a model that cannot be held"))
    assert main(["budget", "smoke", *HUGE]) == 0
    assert "2 job(s) need more memory than a job has here (16.0 GiB), e.g. dnn-me-2x-s0 about" in \
        capsys.readouterr().out
    assert main(["sweep", "smoke", *HUGE, "--plan"]) == 0
    assert "too big for this machine" in capsys.readouterr().out
    before = sorted(p.name for p in workdir.iterdir())
    assert main(["sweep", "smoke", *HUGE]) == 2
    line = one_line(capsys.readouterr().err, "sweep")
    assert "but a job has 16.0 GiB here" in line and "train.memory_check=false" in line
    assert main(["train", *HUGE, "scale=2"]) == 2
    assert "job dnn-se-2x-s0: needs about" in one_line(capsys.readouterr().err, "train")
    assert sorted(p.name for p in workdir.iterdir()) == before, "no store, no run"
    from recsys_scaling.cli.commands import check_train_memory
    from recsys_scaling.sweep.grid import Composer

    check_train_memory(Composer(None)([*HUGE, "scale=2", "train.memory_check=false"]))  # forced: no error
